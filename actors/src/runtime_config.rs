//! The options that may change while a messenger runs (`config set` on the admin socket). Each
//! is read where it is used, at its next use: backoffs at a session's next fault, fault
//! injection at a socket's next read or write. Every other option is fixed at build time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use msgr::Config;

use crate::inject::Injector;
use crate::throttle::Throttle;

/// The options `config set` may change.
pub(crate) const RUNTIME_OPTIONS: &[&str] = &[
    "ms_initial_backoff",
    "ms_max_backoff",
    "ms_inject_socket_failures",
    "ms_inject_internal_delays",
    "debug_ms",
    "ms_dispatch_throttle_bytes",
];

/// What applies a log filter (a `tracing` directive such as `msgr=debug,msgr_actors=debug`).
type LogHook = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The program's log hook: logging is the program's, not the library's.
static LOG_HOOK: OnceLock<LogHook> = OnceLock::new();

/// Lets `debug_ms` change the log level: `hook` gets a `tracing` filter directive for the
/// messenger's crates and applies it (say, through a `tracing_subscriber` reload handle).
/// Set once per process; later calls are ignored.
pub fn set_log_level_hook(hook: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let _ = LOG_HOOK.set(Box::new(hook));
}

/// The `tracing` directive for a `debug_ms` level.
pub(crate) fn debug_ms_directive(level: u8) -> String {
    let l = match level {
        0 => "warn",
        1..=4 => "info",
        5..=9 => "debug",
        _ => "trace",
    };
    format!("msgr={l},msgr_actors={l}")
}

/// Applies a `debug_ms` level (0-20) through the program's log level hook.
pub fn apply_debug_ms(level: u8) -> Result<(), String> {
    let hook = LOG_HOOK
        .get()
        .ok_or("debug_ms: this program installed no log level hook")?;
    hook(&debug_ms_directive(level))
}

/// The messenger's parts that hold run-time options themselves.
pub(crate) struct Live<'a> {
    pub(crate) injector: &'a Injector,
    pub(crate) dispatch_throttle: &'a Throttle,
}

/// The current values of the run-time options that live here (fault injection's live in the
/// messenger's `Injector`, which every socket shares, and the dispatch throttle's budget in the
/// throttle itself).
#[derive(Debug)]
pub(crate) struct RuntimeConfig {
    initial_backoff_ns: AtomicU64,
    max_backoff_ns: AtomicU64,
    inject_socket_failures: AtomicU64,
    inject_internal_delays: AtomicU64,
    debug_ms: Mutex<String>,
}

impl RuntimeConfig {
    pub(crate) fn new(c: &Config) -> Self {
        RuntimeConfig {
            initial_backoff_ns: AtomicU64::new(c.ms_initial_backoff.as_nanos() as u64),
            max_backoff_ns: AtomicU64::new(c.ms_max_backoff.as_nanos() as u64),
            inject_socket_failures: AtomicU64::new(c.ms_inject_socket_failures),
            inject_internal_delays: AtomicU64::new(c.ms_inject_internal_delays.to_bits()),
            debug_ms: Mutex::new(c.debug_ms.clone()),
        }
    }

    /// (`ms_initial_backoff`, `ms_max_backoff`) now.
    pub(crate) fn backoff_limits(&self) -> (Duration, Duration) {
        (
            Duration::from_nanos(self.initial_backoff_ns.load(Relaxed)),
            Duration::from_nanos(self.max_backoff_ns.load(Relaxed)),
        )
    }

    /// `base` with the run-time options' current values.
    pub(crate) fn current(&self, base: &Config, dispatch_throttle: &Throttle) -> Config {
        let (initial, max) = self.backoff_limits();
        let mut c = base.clone();
        c.ms_initial_backoff = initial;
        c.ms_max_backoff = max;
        c.ms_inject_socket_failures = self.inject_socket_failures.load(Relaxed);
        c.ms_inject_internal_delays = f64::from_bits(self.inject_internal_delays.load(Relaxed));
        c.debug_ms = self.debug_ms.lock().expect("debug_ms lock").clone();
        c.ms_dispatch_throttle_bytes = dispatch_throttle.capacity();
        c
    }

    /// Sets option `name` to `value` (text, as Ceph writes it), checked like a build-time
    /// configuration; options fixed at build time are refused.
    pub(crate) fn set(
        &self,
        base: &Config,
        live: &Live<'_>,
        name: &str,
        value: &str,
    ) -> Result<(), String> {
        let key = name.replace('-', "_");
        let mut next = self.current(base, live.dispatch_throttle);
        next.set(&key, value).map_err(|e| e.to_string())?;
        if !RUNTIME_OPTIONS.contains(&key.as_str()) {
            return Err(format!(
                "{key} cannot be changed at run time; restart with the new value (run-time options: {})",
                RUNTIME_OPTIONS.join(", ")
            ));
        }
        next.validate().map_err(|e| e.to_string())?;
        if key == "debug_ms" {
            apply_debug_ms(next.debug_ms_level().expect("validated"))?;
            *self.debug_ms.lock().expect("debug_ms lock") = next.debug_ms.clone();
        }
        self.initial_backoff_ns
            .store(next.ms_initial_backoff.as_nanos() as u64, Relaxed);
        self.max_backoff_ns
            .store(next.ms_max_backoff.as_nanos() as u64, Relaxed);
        self.inject_socket_failures
            .store(next.ms_inject_socket_failures, Relaxed);
        self.inject_internal_delays
            .store(next.ms_inject_internal_delays.to_bits(), Relaxed);
        live.injector
            .set_socket_failures(next.ms_inject_socket_failures);
        live.injector
            .set_internal_delay(next.ms_inject_internal_delays);
        live.dispatch_throttle
            .set_capacity(next.ms_dispatch_throttle_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_options_change_others_are_refused_and_values_are_checked() {
        let base = Config::default();
        let rt = RuntimeConfig::new(&base);
        let inj = Injector::from_config(&base);
        let throttle = Throttle::new(base.ms_dispatch_throttle_bytes);
        let live = Live {
            injector: &inj,
            dispatch_throttle: &throttle,
        };
        rt.set(&base, &live, "ms_max_backoff", "7").unwrap();
        assert_eq!(rt.backoff_limits().1, Duration::from_secs(7));
        assert_eq!(
            rt.current(&base, &throttle).get("ms_max_backoff").unwrap(),
            "7"
        );
        rt.set(&base, &live, "ms-inject-socket-failures", "50")
            .unwrap();
        assert_eq!(rt.current(&base, &throttle).ms_inject_socket_failures, 50);
        let refused = rt.set(&base, &live, "ms_crc_data", "false").unwrap_err();
        assert!(
            refused.contains("cannot be changed at run time"),
            "{refused}"
        );
        // Checked as a whole: the initial backoff may not exceed the maximum.
        assert!(rt.set(&base, &live, "ms_initial_backoff", "60").is_err());
        assert!(rt.set(&base, &live, "ms_max_backoff", "soon").is_err());
        assert!(rt.set(&base, &live, "ms_nope", "1").is_err());
        assert_eq!(
            rt.backoff_limits().1,
            Duration::from_secs(7),
            "failed sets change nothing"
        );
        rt.set(&base, &live, "ms_dispatch_throttle_bytes", "1000")
            .unwrap();
        assert_eq!(throttle.capacity(), 1000);
        assert!(rt
            .set(&base, &live, "ms_dispatch_throttle_bytes", "0")
            .is_err());
        assert_eq!(debug_ms_directive(5), "msgr=debug,msgr_actors=debug");
        assert_eq!(debug_ms_directive(0), "msgr=warn,msgr_actors=warn");
        // No program hook in this test binary: refused, and nothing changes.
        assert!(rt.set(&base, &live, "debug_ms", "5").is_err());
        assert_eq!(rt.current(&base, &throttle).debug_ms, "0/0");
    }
}
