//! Receive throttles: bytes (and messages) read from sockets but not yet dispatched.
//!
//! The reader takes permits for a message as soon as its header is decoded, before it reads the
//! body, and holds them until the dispatcher returns. When a throttle is exhausted, readers stop
//! reading, so a slow dispatcher bounds memory instead of letting it grow.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One throttle: a budget of units (bytes or messages).
#[derive(Debug, Clone)]
pub struct Throttle {
    sem: Arc<Semaphore>,
    capacity: u64,
}

impl Throttle {
    /// A throttle of `capacity` units.
    pub fn new(capacity: u64) -> Self {
        // tokio caps semaphores at usize::MAX >> 3 permits.
        let capacity = capacity.clamp(1, (usize::MAX >> 3) as u64);
        Throttle {
            sem: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
        }
    }

    /// Units free right now.
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64
    }

    /// The budget.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Takes `units` (at most the whole budget, so one huge message can still pass alone),
    /// waiting while they are not free. Returns the permit and whether it had to wait.
    pub async fn acquire(&self, units: u64) -> (OwnedSemaphorePermit, bool) {
        let n = units.min(self.capacity).min(u32::MAX as u64) as u32;
        if let Ok(p) = self.sem.clone().try_acquire_many_owned(n) {
            return (p, false);
        }
        let p = self
            .sem
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("throttle semaphores are never closed");
        (p, true)
    }
}

/// Permits a received message holds until it is dispatched; dropping it releases them.
#[derive(Debug, Default)]
pub struct ThrottleGuard {
    _dispatch: Option<OwnedSemaphorePermit>,
    _policy_bytes: Option<OwnedSemaphorePermit>,
    _policy_msgs: Option<OwnedSemaphorePermit>,
}

/// The throttles one connection's reader takes from.
#[derive(Debug, Clone)]
pub struct ReceiveThrottles {
    /// Messenger-wide `ms_dispatch_throttle_bytes`.
    pub dispatch_bytes: Throttle,
    /// The policy's per-connection byte throttle.
    pub policy_bytes: Option<Throttle>,
    /// The policy's per-connection message throttle.
    pub policy_msgs: Option<Throttle>,
}

impl ReceiveThrottles {
    /// Takes every throttle for a message of `bytes`, in Ceph's order (policy, then dispatch).
    /// Returns the guard and whether any of them made us wait.
    pub async fn acquire(&self, bytes: u64) -> (ThrottleGuard, bool) {
        let mut waited = false;
        let mut guard = ThrottleGuard::default();
        if let Some(t) = &self.policy_msgs {
            let (p, w) = t.acquire(1).await;
            guard._policy_msgs = Some(p);
            waited |= w;
        }
        if let Some(t) = &self.policy_bytes {
            let (p, w) = t.acquire(bytes).await;
            guard._policy_bytes = Some(p);
            waited |= w;
        }
        let (p, w) = self.dispatch_bytes.acquire(bytes).await;
        guard._dispatch = Some(p);
        (guard, waited | w)
    }
}
