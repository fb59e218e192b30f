//! `Config`: the `ms_*` options, with Ceph's names and 16.2.15 defaults (spec §7), plus the few
//! limits of our own that Ceph lacks (marked "msgr" below).
//!
//! Every option can be set by its Ceph name from text ([`Config::set`]), which is how the `msgr`
//! command turns `--ms-inject-socket-failures 30` into configuration.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Default cap on one message (front + middle + data): 256 MiB. Ceph v1 has no cap at all.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 << 20;

/// A configuration value that is wrong, or an option that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No option has this name.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// The text is not a valid value for the option's type.
    #[error("option {name}: cannot parse {value:?} as {expected}")]
    BadValue {
        /// Option name.
        name: String,
        /// The text given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Options that parse but contradict each other or their range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Parsing an option value from text.
trait OptionValue: Sized {
    const EXPECTED: &'static str;
    fn parse_value(s: &str) -> Option<Self>;
    fn show(&self) -> String;
}

impl OptionValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse_value(s: &str) -> Option<Self> {
        match s {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

macro_rules! int_option {
    ($($t:ty),*) => {$(
        impl OptionValue for $t {
            const EXPECTED: &'static str = "an integer";
            fn parse_value(s: &str) -> Option<Self> { s.parse().ok() }
            fn show(&self) -> String { self.to_string() }
        }
    )*};
}
int_option!(u16, u32, u64, usize);

impl OptionValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn parse_value(s: &str) -> Option<Self> {
        s.parse().ok().filter(|v: &f64| v.is_finite())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl OptionValue for String {
    const EXPECTED: &'static str = "a string";
    fn parse_value(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

/// Addresses as Ceph writes them in `public_addr`: `IP`, `IP:PORT`, optionally with a `v1:`
/// prefix and a `/NONCE` suffix (ignored: the messenger owns its nonce); empty means unset. A
/// missing or zero port means "the port that was bound".
impl OptionValue for Option<SocketAddr> {
    const EXPECTED: &'static str = "an IP or IP:PORT (empty: unset)";
    fn parse_value(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        let s = s.strip_prefix("v1:").unwrap_or(s);
        let s = s.split_once('/').map_or(s, |(a, _)| a);
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(Some(a));
        }
        let ip = s.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<IpAddr>()
            .ok()
            .map(|ip| Some(SocketAddr::new(ip, 0)))
    }
    fn show(&self) -> String {
        self.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// Durations are written in seconds, as Ceph does (`0.2`, `15`).
impl OptionValue for Duration {
    const EXPECTED: &'static str = "seconds (a non-negative number)";
    fn parse_value(s: &str) -> Option<Self> {
        let secs: f64 = s.parse().ok()?;
        (0.0..1e12)
            .contains(&secs)
            .then(|| Duration::from_secs_f64(secs))
    }
    fn show(&self) -> String {
        self.as_secs_f64().to_string()
    }
}

macro_rules! options {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ; )*) => {
        /// Messenger configuration. Field names are Ceph's option names.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )* }
            }
        }

        impl Config {
            /// Every option name, in declaration order.
            pub const OPTION_NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// What an option does (its documentation), by name; `None` for an unknown name.
            /// Options that Ceph 16.2.15 lacks start with "msgr:".
            pub fn describe(name: &str) -> Option<&'static str> {
                let key = name.replace('-', "_");
                match key.as_str() {
                    $( stringify!($name) => Some(concat!($($doc),*).trim()), )*
                    _ => None,
                }
            }

            /// Sets one option by its Ceph name (`-` and `_` are interchangeable) from text.
            pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
                let key = name.replace('-', "_");
                $(
                    if key == stringify!($name) {
                        self.$name = <$ty as OptionValue>::parse_value(value).ok_or_else(|| {
                            ConfigError::BadValue {
                                name: key.clone(),
                                value: value.to_string(),
                                expected: <$ty as OptionValue>::EXPECTED,
                            }
                        })?;
                        return Ok(());
                    }
                )*
                Err(ConfigError::UnknownOption(name.to_string()))
            }

            /// Reads one option as text, by its Ceph name.
            pub fn get(&self, name: &str) -> Option<String> {
                let key = name.replace('-', "_");
                $( if key == stringify!($name) { return Some(self.$name.show()); } )*
                None
            }

            $(
                $(#[doc = $doc])*
                #[doc = "(builder form)"]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

options! {
    /// The address this daemon advertises to its peers (Ceph's `public_addr`): what they dial
    /// and what our handshakes claim. Set it when peers reach us through NAT, a container's
    /// port mapping or a proxy; a port of 0 (or none) means the port that was bound. Unset: the
    /// bound address. With it set, nothing is learned from peers.
    public_addr: Option<SocketAddr> = None;
    /// The addresses advertised per protocol (Ceph's `public_addrv`): `[v2:IP:PORT,v1:IP:PORT]`
    /// (either may be left out; a port of 0 means the bound one). A v1 entry takes the place
    /// of `public_addr`; a v2 entry is what a msgr2 socket advertises (empty: the bound address,
    /// or `public_addr`'s IP).
    public_addrv: String = String::new();
    /// The address a daemon binds when it differs from the advertised one (Ceph's
    /// `public_bind_addr`), used by `msgr serve` when it is given no `--bind`.
    public_bind_addr: Option<SocketAddr> = None;
    /// Path of the admin socket (a Unix socket the `ceph --admin-daemon PATH CMD` command talks
    /// to); `$name`, `$type`, `$id`, `$cluster` and `$pid` are expanded. Empty: none.
    admin_socket: String = String::new();
    /// Ceph's messenger log level, `LOG` or `LOG/GATHER` (0-20). msgr logs through `tracing`
    /// and maps it: 0 warn, 1-4 info, 5-9 debug, 10 and up trace; a program that installed a
    /// log level hook (the msgr command does) applies it, also at run time.
    debug_ms: String = "0/0".to_string();
    /// Lowest port a daemon binds when no port is given.
    ms_bind_port_min: u16 = 6800;
    /// Highest port a daemon binds when no port is given.
    ms_bind_port_max: u16 = 7300;
    /// Bind attempts after the first fails.
    ms_bind_retry_count: u32 = 3;
    /// Delay between bind attempts.
    ms_bind_retry_delay: Duration = Duration::from_secs(5);
    /// First reconnect delay; doubles per failed attempt.
    ms_initial_backoff: Duration = Duration::from_millis(200);
    /// Largest reconnect delay, and the delay after WAIT.
    ms_max_backoff: Duration = Duration::from_secs(15);
    /// Set TCP_NODELAY on every socket.
    ms_tcp_nodelay: bool = true;
    /// SO_RCVBUF for sockets; 0 leaves the kernel default.
    ms_tcp_rcvbuf: usize = 0;
    /// Read-ahead: bytes read from the socket in one go when no large section is pending.
    ms_tcp_prefetch_max_size: usize = 4096;
    /// Listen backlog.
    ms_tcp_listen_backlog: u32 = 512;
    /// Deadline for a handshake to reach READY, on both sides.
    ms_connection_ready_timeout: Duration = Duration::from_secs(10);
    /// An open connection with no traffic for this long is closed.
    ms_connection_idle_timeout: Duration = Duration::from_secs(900);
    /// Check header, front and middle CRCs.
    ms_crc_header: bool = true;
    /// Compute and check data CRCs.
    ms_crc_data: bool = true;
    /// Bytes of received messages not yet dispatched, across the messenger, before reading pauses.
    ms_dispatch_throttle_bytes: u64 = 100 << 20;
    /// Panic on an old (duplicate) message instead of dropping it. Test hook.
    ms_die_on_old_message: bool = false;
    /// Learn our own IP from the address the peer saw.
    ms_learn_addr_from_peer: bool = true;
    /// Accept errors in a row before the accepter gives up.
    ms_max_accept_failures: u32 = 4;
    /// N > 0: about 1 in N socket reads / writes fails on purpose. Test hook.
    ms_inject_socket_failures: u64 = 0;
    /// Seconds (at most, random) to sleep at chosen points of connection handling: before each
    /// dial, and between an accept decision and the hand-over of its socket. Test hook.
    ms_inject_internal_delays: f64 = 0.0;
    /// Peer types (space-separated names: "osd client") whose messages get delayed. Test hook.
    ms_inject_delay_type: String = String::new();
    /// Largest injected delivery delay.
    ms_inject_delay_max: Duration = Duration::from_secs(1);
    /// Chance (0..1) that a message from a listed peer type is delayed.
    ms_inject_delay_probability: f64 = 0.0;
    /// msgr: largest message accepted (front + middle + data), checked before allocating.
    ms_max_message_bytes: u64 = DEFAULT_MAX_MESSAGE_BYTES;
    /// msgr: KEEPALIVE2 cadence on idle lossless sessions (0 disables).
    ms_keepalive_interval: Duration = Duration::from_secs(10);
    /// msgr: a peer that stops mid-frame for this long is faulted.
    ms_stall_timeout: Duration = Duration::from_secs(30);
    /// msgr: most accepted connections open at once (0 = unlimited); extra ones are closed at once.
    ms_max_connections: usize = 0;
    /// msgr: worker threads (arbiters); 0 means one per core.
    ms_threads: usize = 0;
    /// msgr: most socket readiness events a shard thread takes from the OS per poll. Small
    /// batches keep each connection's read, dispatch and write close together in time (its
    /// bytes still in cache: 8 reads of a 33 KB window fit in L2, 32 did not); tokio's default
    /// of 1024 queues hundreds of readers first.
    ms_io_events_per_tick: usize = 8;
    /// msgr: after a read, a shard thread keeps polling sockets for this many microseconds
    /// instead of sleeping (0: off). Cuts request/reply latency between threads and processes
    /// at the cost of CPU while traffic flows.
    ms_busy_poll_us: u64 = 0;
    /// Methods demanded from mon, osd, mds and mgr peers (`cephx`, `none`, `cephx, none`).
    /// Ceph's default is `cephx`; msgr's is empty: cephx when the messenger has keys, else none.
    auth_cluster_required: String = String::new();
    /// Methods demanded from other peers (clients). Empty: cephx with keys, else none.
    auth_service_required: String = String::new();
    /// Methods offered when dialling, in order. Ceph's default is `cephx, none`; empty: that
    /// when the messenger has keys, else none.
    auth_client_required: String = String::new();
    /// Sign v1 messages on sessions opened with a cephx authorizer (and check the peer's).
    cephx_sign_messages: bool = true;
    /// msgr2 connection modes a client offers a monitor, in order (`secure`, `crc`).
    ms_mon_client_mode: String = "secure crc".to_string();
    /// msgr2 connection modes a client offers other daemons, in order.
    ms_client_mode: String = "crc secure".to_string();
    /// msgr2 modes a monitor allows from non-monitor peers.
    ms_mon_service_mode: String = "secure crc".to_string();
    /// msgr2 modes a daemon allows from clients.
    ms_service_mode: String = "crc secure".to_string();
    /// msgr2 modes between monitors (and monitor / manager).
    ms_mon_cluster_mode: String = "secure crc".to_string();
    /// msgr2 modes between daemons.
    ms_cluster_mode: String = "crc secure".to_string();
}

/// A msgr2 mode list as Ceph writes it (`secure crc`, commas or spaces): 2 = secure, 1 = crc.
pub fn parse_modes(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for w in text.split([',', ' ', ';', '\t']).filter(|w| !w.is_empty()) {
        let m = match w {
            "secure" => 2,
            "crc" => 1,
            other => return Err(format!("unknown connection mode {other:?}")),
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("no connection mode".into());
    }
    Ok(out)
}

/// An addrvec as Ceph writes it, `[v2:IP:PORT,v1:IP:PORT]`: the (v1, v2) socket addresses.
pub fn parse_addrv(text: &str) -> Result<(Option<SocketAddr>, Option<SocketAddr>), String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(text.trim());
    let (mut v1, mut v2) = (None, None);
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (slot, rest) = match part.split_once(':') {
            Some(("v2", rest)) => (&mut v2, rest),
            Some(("v1", rest)) => (&mut v1, rest),
            _ => return Err(format!("{part}: give v1: or v2:")),
        };
        let rest = rest.split_once('/').map_or(rest, |(a, _)| a);
        let addr: SocketAddr = rest.parse().map_err(|e| format!("{part}: {e}"))?;
        if slot.replace(addr).is_some() {
            return Err(format!("{text}: two addresses of one kind"));
        }
    }
    Ok((v1, v2))
}

impl Config {
    /// The msgr2 modes we offer a peer of type `peer` when we are of type `me` (Ceph's
    /// `AuthRegistry` choice of option).
    pub fn client_modes(&self, me: crate::EntityType, peer: crate::EntityType) -> Vec<u32> {
        use crate::EntityType as T;
        let mon_or_mgr = |t: T| matches!(t, T::MON | T::MGR);
        let daemon = |t: T| matches!(t, T::MON | T::OSD | T::MDS | T::MGR);
        let text = if mon_or_mgr(me) && mon_or_mgr(peer) {
            &self.ms_mon_cluster_mode
        } else if mon_or_mgr(peer) {
            &self.ms_mon_client_mode
        } else if daemon(me) && daemon(peer) {
            &self.ms_cluster_mode
        } else {
            &self.ms_client_mode
        };
        parse_modes(text).unwrap_or_else(|_| vec![2, 1])
    }

    /// Sets all six msgr2 mode options (`ms_cluster_mode`, `ms_service_mode`,
    /// `ms_client_mode` and their `ms_mon_*` forms) to `modes`, e.g. `"secure"` to encrypt
    /// every msgr2 session.
    pub fn ms_modes(mut self, modes: &str) -> Self {
        for option in [
            &mut self.ms_cluster_mode,
            &mut self.ms_service_mode,
            &mut self.ms_client_mode,
            &mut self.ms_mon_cluster_mode,
            &mut self.ms_mon_service_mode,
            &mut self.ms_mon_client_mode,
        ] {
            *option = modes.to_string();
        }
        self
    }

    /// Checks ranges and relations between options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.ms_bind_port_min > self.ms_bind_port_max {
            return bad(format!(
                "ms_bind_port_min {} > ms_bind_port_max {}",
                self.ms_bind_port_min, self.ms_bind_port_max
            ));
        }
        if self.ms_initial_backoff > self.ms_max_backoff {
            return bad("ms_initial_backoff exceeds ms_max_backoff".into());
        }
        if let Err(e) = parse_addrv(&self.public_addrv) {
            return bad(format!("public_addrv: {e}"));
        }
        for (name, v) in [
            ("ms_mon_client_mode", &self.ms_mon_client_mode),
            ("ms_client_mode", &self.ms_client_mode),
            ("ms_mon_service_mode", &self.ms_mon_service_mode),
            ("ms_service_mode", &self.ms_service_mode),
            ("ms_mon_cluster_mode", &self.ms_mon_cluster_mode),
            ("ms_cluster_mode", &self.ms_cluster_mode),
        ] {
            if let Err(e) = parse_modes(v) {
                return bad(format!("{name}: {e}"));
            }
        }
        for (name, v) in [
            ("auth_cluster_required", &self.auth_cluster_required),
            ("auth_service_required", &self.auth_service_required),
            ("auth_client_required", &self.auth_client_required),
        ] {
            if let Err(e) = crate::auth::AuthMethods::parse(v) {
                return bad(format!("{name}: {e}"));
            }
        }
        if self.ms_initial_backoff.is_zero() {
            return bad("ms_initial_backoff must be positive".into());
        }
        if self.ms_max_message_bytes == 0 || self.ms_max_message_bytes > u32::MAX as u64 * 3 {
            return bad("ms_max_message_bytes must be in 1..=3*u32::MAX".into());
        }
        if self.ms_io_events_per_tick == 0 {
            return bad("ms_io_events_per_tick must be positive".into());
        }
        if self.ms_dispatch_throttle_bytes == 0 {
            return bad("ms_dispatch_throttle_bytes must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.ms_inject_delay_probability) {
            return bad("ms_inject_delay_probability must be within 0..=1".into());
        }
        if self.ms_inject_internal_delays < 0.0 {
            return bad("ms_inject_internal_delays must not be negative".into());
        }
        if self.ms_tcp_prefetch_max_size == 0 {
            return bad("ms_tcp_prefetch_max_size must be positive".into());
        }
        if self.ms_connection_ready_timeout.is_zero() {
            return bad("ms_connection_ready_timeout must be positive".into());
        }
        if self.debug_ms_level().is_none() {
            return bad(format!(
                "debug_ms {:?}: expected LOG or LOG/GATHER, levels 0-20",
                self.debug_ms
            ));
        }
        for name in self.ms_inject_delay_type.split_whitespace() {
            if crate::entity::EntityType::from_name(name).is_none() {
                return bad(format!(
                    "ms_inject_delay_type: unknown entity type {name:?}"
                ));
            }
        }
        Ok(())
    }

    /// The log level of `debug_ms` (its first number), if it is well formed.
    pub fn debug_ms_level(&self) -> Option<u8> {
        let (log, gather) = match self.debug_ms.split_once('/') {
            Some((l, g)) => (l, Some(g)),
            None => (self.debug_ms.as_str(), None),
        };
        let level = |s: &str| s.trim().parse::<u8>().ok().filter(|n| *n <= 20);
        if let Some(g) = gather {
            level(g)?;
        }
        level(log)
    }

    /// The receive-side limits the frame decoder enforces.
    pub fn decoder_limits(&self) -> crate::wire::decoder::DecoderLimits {
        crate::wire::decoder::DecoderLimits {
            max_message_bytes: self.ms_max_message_bytes,
            crc_header: self.ms_crc_header,
            crc_data: self.ms_crc_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ceph_16_2_15() {
        let c = Config::default();
        assert_eq!((c.ms_bind_port_min, c.ms_bind_port_max), (6800, 7300));
        assert_eq!(c.ms_initial_backoff, Duration::from_millis(200));
        assert_eq!(c.ms_max_backoff, Duration::from_secs(15));
        assert_eq!(c.ms_dispatch_throttle_bytes, 104857600);
        assert_eq!(c.ms_connection_idle_timeout, Duration::from_secs(900));
        assert_eq!(c.ms_max_accept_failures, 4);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn set_by_name_with_dashes_and_errors() {
        let mut c = Config::default();
        c.set("ms-inject-socket-failures", "30").unwrap();
        assert_eq!(c.ms_inject_socket_failures, 30);
        c.set("ms_max_backoff", "1").unwrap();
        assert_eq!(c.get("ms_max_backoff").unwrap(), "1");
        assert!(matches!(
            c.set("ms_nope", "1"),
            Err(ConfigError::UnknownOption(_))
        ));
        assert!(matches!(
            c.set("ms_tcp_nodelay", "maybe"),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.set("ms_max_backoff", "-1"),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(Config::OPTION_NAMES.contains(&"ms_crc_data"));
        assert!(Config::describe("ms-busy-poll-us")
            .unwrap()
            .starts_with("msgr: after a read"));
        assert!(Config::describe("ms_nope").is_none());
    }

    #[test]
    fn public_addr_takes_cephs_forms() {
        let mut c = Config::default();
        assert_eq!(c.get("public_addr").unwrap(), "");
        for (text, want) in [
            ("10.1.2.3", "10.1.2.3:0"),
            ("10.1.2.3:6789", "10.1.2.3:6789"),
            ("v1:10.1.2.3:6789/0", "10.1.2.3:6789"),
            ("[::1]:7000", "[::1]:7000"),
            ("::1", "[::1]:0"),
        ] {
            c.set("public-addr", text).unwrap();
            assert_eq!(c.public_addr.unwrap().to_string(), want, "{text}");
        }
        c.set("public_addr", "").unwrap();
        assert_eq!(c.public_addr, None);
        assert!(matches!(
            c.set("public_bind_addr", "somewhere"),
            Err(ConfigError::BadValue { .. })
        ));
    }

    #[test]
    fn validation_catches_contradictions() {
        let c = Config::default()
            .ms_bind_port_min(8000)
            .ms_bind_port_max(7000);
        assert!(c.validate().is_err());
        let c = Config::default().ms_initial_backoff(Duration::from_secs(20));
        assert!(c.validate().is_err());
        let c = Config::default().ms_inject_delay_probability(2.0);
        assert!(c.validate().is_err());
        let c = Config::default().ms_inject_delay_type("osd bogus".into());
        assert!(c.validate().is_err());
        let c = Config::default().ms_io_events_per_tick(0);
        assert!(c.validate().is_err());
        for (text, level) in [("0/0", Some(0)), ("5", Some(5)), ("20/20", Some(20))] {
            let c = Config::default().debug_ms(text.into());
            assert_eq!(c.debug_ms_level(), level, "{text}");
            assert!(c.validate().is_ok());
        }
        for text in ["21", "x", "1/y", ""] {
            assert!(
                Config::default().debug_ms(text.into()).validate().is_err(),
                "{text}"
            );
        }
    }
}
