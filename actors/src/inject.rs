//! Fault injection with Ceph's option names (`ms_inject_*`), for tests and soak runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use msgr::{Config, EntityType};
use rand::Rng;

/// Decides when to fail a socket operation or delay something, per the config. Clones share
/// the two rates that can change at run time (`config set` on the admin socket), so a change
/// reaches every live socket at its next read or write.
#[derive(Debug, Clone, Default)]
pub struct Injector {
    socket_failures: Arc<AtomicU64>,
    /// `ms_inject_internal_delays` in seconds, as f64 bits.
    internal_delay: Arc<AtomicU64>,
    delay_types: Vec<EntityType>,
    delay_max: Duration,
    delay_probability: f64,
}

impl Injector {
    /// From the `ms_inject_*` options.
    pub fn from_config(c: &Config) -> Self {
        Injector {
            socket_failures: Arc::new(AtomicU64::new(c.ms_inject_socket_failures)),
            internal_delay: Arc::new(AtomicU64::new(c.ms_inject_internal_delays.to_bits())),
            delay_types: c
                .ms_inject_delay_type
                .split_whitespace()
                .filter_map(EntityType::from_name)
                .collect(),
            delay_max: c.ms_inject_delay_max,
            delay_probability: c.ms_inject_delay_probability,
        }
    }

    /// True about once in `ms_inject_socket_failures` calls (never when 0).
    pub fn socket_should_fail(&self) -> bool {
        let one_in = self.socket_failures.load(Relaxed);
        one_in > 0 && rand::thread_rng().gen_range(0..one_in) == 0
    }

    /// A random delay up to `ms_inject_internal_delays`, if set.
    pub fn internal_delay(&self) -> Option<Duration> {
        let max = f64::from_bits(self.internal_delay.load(Relaxed));
        (max > 0.0).then(|| Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..max)))
    }

    /// Changes `ms_inject_socket_failures` for every socket.
    pub(crate) fn set_socket_failures(&self, one_in: u64) {
        self.socket_failures.store(one_in, Relaxed);
    }

    /// Changes `ms_inject_internal_delays` everywhere.
    pub(crate) fn set_internal_delay(&self, secs: f64) {
        self.internal_delay.store(secs.to_bits(), Relaxed);
    }

    /// A delivery delay for a message from `peer`, per `ms_inject_delay_*`.
    pub fn delivery_delay(&self, peer: EntityType) -> Option<Duration> {
        if self.delay_probability <= 0.0 || !self.delay_types.contains(&peer) {
            return None;
        }
        let mut rng = rand::thread_rng();
        rng.gen_bool(self.delay_probability.min(1.0))
            .then(|| self.delay_max.mul_f64(rng.gen_range(0.0..1.0)))
    }
}
