//! Fault injection with Ceph's option names (`ms_inject_*`), for tests and soak runs.

use std::time::Duration;

use msgr::{Config, EntityType};
use rand::Rng;

/// Decides when to fail a socket operation or delay something, per the config.
#[derive(Debug, Clone, Default)]
pub struct Injector {
    socket_failures: u64,
    internal_delay: f64,
    delay_types: Vec<EntityType>,
    delay_max: Duration,
    delay_probability: f64,
}

impl Injector {
    /// From the `ms_inject_*` options.
    pub fn from_config(c: &Config) -> Self {
        Injector {
            socket_failures: c.ms_inject_socket_failures,
            internal_delay: c.ms_inject_internal_delays,
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
        self.socket_failures > 0 && rand::thread_rng().gen_range(0..self.socket_failures) == 0
    }

    /// A random delay up to `ms_inject_internal_delays`, if set.
    pub fn internal_delay(&self) -> Option<Duration> {
        (self.internal_delay > 0.0).then(|| {
            Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..self.internal_delay))
        })
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
