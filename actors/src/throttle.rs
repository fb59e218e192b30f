//! Receive throttles: bytes (and messages) read from sockets but not yet dispatched.
//!
//! The reader takes permits for a message as soon as its header is decoded, before it reads the
//! body, and holds them until the dispatcher returns. When a throttle is exhausted, readers stop
//! reading, so a slow dispatcher bounds memory instead of letting it grow.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// One throttle: a budget of units (bytes or messages).
///
/// Lock-free: taking and giving back units are single atomic operations on the common path
/// (the messenger-wide dispatch throttle is hit by every message on every shard thread, and a
/// semaphore's release takes a lock). A reader that must wait registers as a waiter; while
/// any waits, `try_acquire` refuses, so a stream of small messages cannot starve a big one.
#[derive(Debug, Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    available: AtomicU64,
    capacity: u64,
    waiters: AtomicUsize,
    released: Notify,
}

/// Units taken from a [`Throttle`]; dropping it gives them back.
#[derive(Debug)]
pub struct ThrottlePermit {
    inner: Arc<Inner>,
    units: u64,
}

impl Drop for ThrottlePermit {
    fn drop(&mut self) {
        self.inner.available.fetch_add(self.units, Ordering::SeqCst);
        // SeqCst pairs with the waiter's increment and take: either it sees these units or
        // we see it waiting.
        if self.inner.waiters.load(Ordering::SeqCst) > 0 {
            self.inner.released.notify_waiters();
        }
    }
}

impl Throttle {
    /// A throttle of `capacity` units.
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        Throttle {
            inner: Arc::new(Inner {
                available: AtomicU64::new(capacity),
                capacity,
                waiters: AtomicUsize::new(0),
                released: Notify::new(),
            }),
        }
    }

    /// Units free right now.
    pub fn available(&self) -> u64 {
        self.inner.available.load(Ordering::Relaxed)
    }

    /// The budget.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Takes `units` (at most the whole budget, so one huge message can still pass alone) if
    /// they are free, ignoring waiters.
    fn take(&self, units: u64) -> Option<ThrottlePermit> {
        let units = units.min(self.inner.capacity);
        self.inner
            .available
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(units))
            .ok()?;
        Some(ThrottlePermit {
            inner: self.inner.clone(),
            units,
        })
    }

    /// Takes `units` if they are free right now and nobody is waiting for units.
    pub fn try_acquire(&self, units: u64) -> Option<ThrottlePermit> {
        if self.inner.waiters.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.take(units)
    }

    /// Takes `units`, waiting while they are not free.
    pub async fn acquire(&self, units: u64) -> ThrottlePermit {
        if let Some(p) = self.try_acquire(units) {
            return p;
        }
        self.inner.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = WaiterGuard(&self.inner);
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before the attempt: a release between the attempt and the await
            // still wakes us.
            released.as_mut().enable();
            if let Some(p) = self.take(units) {
                return p;
            }
            released.await;
        }
    }
}

/// Counts a waiter out however its wait ends (it may be cancelled).
struct WaiterGuard<'a>(&'a Inner);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Permits a received message holds until it is dispatched; dropping it releases them.
#[derive(Debug, Default)]
pub struct ThrottleGuard {
    _dispatch: Option<ThrottlePermit>,
    _policy_bytes: Option<ThrottlePermit>,
    _policy_msgs: Option<ThrottlePermit>,
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

    #[tokio::test]
    async fn a_waiter_is_woken_by_a_release_and_holds_off_others() {
        let t = Throttle::new(100);
        let first = t.try_acquire(80).unwrap();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.acquire(50).await })
        };
        // Bounded polling: the waiter registers once it has run.
        for _ in 0..1000 {
            if t.inner.waiters.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(t.inner.waiters.load(Ordering::SeqCst), 1);
        // 20 units are free, but the waiter came first.
        assert!(t.try_acquire(10).is_none());
        drop(first);
        let got = waiter.await.unwrap();
        assert_eq!(t.available(), 50);
        assert_eq!(t.inner.waiters.load(Ordering::SeqCst), 0);
        assert!(t.try_acquire(10).is_some());
        drop(got);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_waiter_behind() {
        let t = Throttle::new(10);
        let held = t.try_acquire(10).unwrap();
        let wait = t.acquire(5);
        tokio::select! {
            biased;
            _ = wait => panic!("nothing was free"),
            _ = std::future::ready(()) => {}
        }
        assert_eq!(t.inner.waiters.load(Ordering::SeqCst), 0);
        drop(held);
        assert!(t.try_acquire(10).is_some());
    }
}
