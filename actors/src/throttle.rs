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

    /// Permits asked of the semaphore for `units`: at most the whole budget, so one huge
    /// message can still pass alone.
    fn permits(&self, units: u64) -> u32 {
        units.min(self.capacity).min(u32::MAX as u64) as u32
    }

    /// Takes `units` if they are free right now.
    pub fn try_acquire(&self, units: u64) -> Option<OwnedSemaphorePermit> {
        self.sem
            .clone()
            .try_acquire_many_owned(self.permits(units))
            .ok()
    }

    /// Takes `units`, waiting while they are not free.
    pub async fn acquire(&self, units: u64) -> OwnedSemaphorePermit {
        if let Some(p) = self.try_acquire(units) {
            return p;
        }
        self.sem
            .clone()
            .acquire_many_owned(self.permits(units))
            .await
            .expect("throttle semaphores are never closed")
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
    /// Takes every throttle for a message of `bytes` if all are free right now; otherwise
    /// takes none (what was taken is released) and returns `None`.
    pub fn try_acquire(&self, bytes: u64) -> Option<ThrottleGuard> {
        let mut guard = ThrottleGuard::default();
        if let Some(t) = &self.policy_msgs {
            guard._policy_msgs = Some(t.try_acquire(1)?);
        }
        if let Some(t) = &self.policy_bytes {
            guard._policy_bytes = Some(t.try_acquire(bytes)?);
        }
        guard._dispatch = Some(self.dispatch_bytes.try_acquire(bytes)?);
        Some(guard)
    }

    /// Takes every throttle for a message of `bytes`, in Ceph's order (policy, then dispatch),
    /// waiting while any is exhausted.
    pub async fn acquire(&self, bytes: u64) -> ThrottleGuard {
        let mut guard = ThrottleGuard::default();
        if let Some(t) = &self.policy_msgs {
            guard._policy_msgs = Some(t.acquire(1).await);
        }
        if let Some(t) = &self.policy_bytes {
            guard._policy_bytes = Some(t.acquire(bytes).await);
        }
        guard._dispatch = Some(self.dispatch_bytes.acquire(bytes).await);
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttles(dispatch: u64, policy_bytes: u64, policy_msgs: u64) -> ReceiveThrottles {
        ReceiveThrottles {
            dispatch_bytes: Throttle::new(dispatch),
            policy_bytes: Some(Throttle::new(policy_bytes)),
            policy_msgs: Some(Throttle::new(policy_msgs)),
        }
    }

    #[test]
    fn try_acquire_takes_all_or_nothing() {
        let t = throttles(100, 1000, 10);
        let g = t.try_acquire(60).expect("everything free");
        assert_eq!(t.dispatch_bytes.available(), 40);
        // The dispatch throttle is short: the policy permits taken first are given back.
        assert!(t.try_acquire(60).is_none());
        assert_eq!(t.policy_bytes.as_ref().unwrap().available(), 940);
        assert_eq!(t.policy_msgs.as_ref().unwrap().available(), 9);
        drop(g);
        assert_eq!(t.dispatch_bytes.available(), 100);
        assert!(t.try_acquire(60).is_some());
    }

    #[test]
    fn a_message_larger_than_a_throttle_takes_all_of_it() {
        let t = throttles(100, 1000, 10);
        let g = t.try_acquire(5000).expect("one huge message passes alone");
        assert_eq!(t.dispatch_bytes.available(), 0);
        assert_eq!(t.policy_bytes.as_ref().unwrap().available(), 0);
        assert!(t.try_acquire(1).is_none());
        drop(g);
        assert_eq!(t.dispatch_bytes.available(), 100);
    }
}
