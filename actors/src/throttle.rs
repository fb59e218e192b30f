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
    /// The budget; it may change at run time (`config set ms_dispatch_throttle_bytes`).
    capacity: AtomicU64,
    /// Units a shrunk budget still has to claw back from permits in use: returned units pay
    /// this first, so the budget comes down as the permits come back.
    debt: AtomicU64,
    waiters: AtomicUsize,
    released: Notify,
}

impl Inner {
    /// Like [`take`](Self::take), but refuses while anyone waits for units.
    fn try_take(&self, units: u64) -> Option<u64> {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.take(units)
    }

    /// Takes `units` (at most the whole budget, so one huge message can still pass alone) if
    /// they are free, ignoring waiters; returns the units taken.
    fn take(&self, units: u64) -> Option<u64> {
        let units = units.min(self.capacity.load(Ordering::Relaxed));
        self.available
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(units))
            .ok()?;
        Some(units)
    }
}

/// Units taken from a [`Throttle`]; dropping it gives them back.
#[derive(Debug)]
pub struct ThrottlePermit {
    inner: Arc<Inner>,
    units: u64,
}

impl ThrottlePermit {
    /// Takes `units` more from the same throttle if they are free right now and nobody waits;
    /// returns the units taken (at most the whole budget, as for a new permit).
    pub fn try_grow(&mut self, units: u64) -> Option<u64> {
        let taken = self.inner.try_take(units)?;
        self.units += taken;
        Some(taken)
    }

    /// Moves `units` (at most all this permit holds) into a permit of their own.
    pub fn split(&mut self, units: u64) -> ThrottlePermit {
        let units = units.min(self.units);
        self.units -= units;
        ThrottlePermit {
            inner: self.inner.clone(),
            units,
        }
    }

    /// Takes over the units of `other`, a permit of the same throttle.
    pub fn absorb(&mut self, mut other: ThrottlePermit) {
        debug_assert!(
            Arc::ptr_eq(&self.inner, &other.inner),
            "permits of one throttle"
        );
        self.units += std::mem::take(&mut other.units);
    }

    /// The units this permit holds.
    pub fn units(&self) -> u64 {
        self.units
    }
}

impl Inner {
    /// Gives `units` back: first to a shrunk budget's debt, the rest to the free units.
    fn give_back(&self, mut units: u64) {
        if self.debt.load(Ordering::Relaxed) > 0 {
            let paid = self
                .debt
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                    Some(d - d.min(units))
                })
                .map_or(0, |d| d.min(units));
            units -= paid;
        }
        self.available.fetch_add(units, Ordering::SeqCst);
    }
}

impl Drop for ThrottlePermit {
    fn drop(&mut self) {
        self.inner.give_back(self.units);
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
                capacity: AtomicU64::new(capacity),
                debt: AtomicU64::new(0),
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
        self.inner.capacity.load(Ordering::Relaxed)
    }

    /// Changes the budget (at least 1). Growing frees the new units at once (after paying any
    /// debt of an earlier shrink); shrinking takes what is free now and the rest from permits
    /// as they come back, so holders keep what they have.
    pub fn set_capacity(&self, capacity: u64) {
        let capacity = capacity.max(1);
        let old = self.inner.capacity.swap(capacity, Ordering::SeqCst);
        if capacity >= old {
            self.inner.give_back(capacity - old);
            if self.inner.waiters.load(Ordering::SeqCst) > 0 {
                self.inner.released.notify_waiters();
            }
        } else {
            let cut = old - capacity;
            let from_free = self
                .inner
                .available
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| Some(a - a.min(cut)))
                .map_or(0, |a| a.min(cut));
            self.inner.debt.fetch_add(cut - from_free, Ordering::SeqCst);
        }
    }

    /// A permit for `units` already taken from this throttle.
    fn permit(&self, units: u64) -> ThrottlePermit {
        ThrottlePermit {
            inner: self.inner.clone(),
            units,
        }
    }

    /// Takes `units` if they are free right now and nobody is waiting for units.
    pub fn try_acquire(&self, units: u64) -> Option<ThrottlePermit> {
        Some(self.permit(self.inner.try_take(units)?))
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
            if let Some(units) = self.inner.take(units) {
                return self.permit(units);
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
///
/// Its share of the messenger-wide dispatch throttle is normally held by the permit of the
/// read batch it arrived in (see [`ReceiveThrottles::try_acquire`]): taking and giving back
/// one permit per message would put four atomic operations per message on a cache line that
/// every shard thread writes. It moves into a permit of its own only when the message is
/// queued for later dispatch ([`detach_dispatch`](Self::detach_dispatch)).
#[derive(Debug, Default)]
pub struct ThrottleGuard {
    dispatch: Option<ThrottlePermit>,
    dispatch_units: u64,
    _policy_bytes: Option<ThrottlePermit>,
    _policy_msgs: Option<ThrottlePermit>,
}

impl ThrottleGuard {
    /// Moves this message's dispatch units out of its batch's permit into a permit of its
    /// own, for a message that outlives the handling of its batch.
    pub fn detach_dispatch(&mut self, batch: &mut Option<ThrottlePermit>) {
        if self.dispatch.is_none() {
            if let Some(batch) = batch {
                self.dispatch = Some(batch.split(self.dispatch_units));
            }
        }
    }

    /// The dispatch units this message accounts for in its batch's permit.
    pub fn dispatch_units(&self) -> u64 {
        self.dispatch_units
    }
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
    /// takes none (what was taken is released) and returns `None`. The dispatch units join
    /// `batch`, the permit of the current read batch (started if there is none).
    pub fn try_acquire(
        &self,
        bytes: u64,
        batch: &mut Option<ThrottlePermit>,
    ) -> Option<ThrottleGuard> {
        let mut guard = ThrottleGuard::default();
        if let Some(t) = &self.policy_msgs {
            guard._policy_msgs = Some(t.try_acquire(1)?);
        }
        if let Some(t) = &self.policy_bytes {
            guard._policy_bytes = Some(t.try_acquire(bytes)?);
        }
        guard.dispatch_units = match batch {
            Some(permit) => permit.try_grow(bytes)?,
            None => {
                let permit = self.dispatch_bytes.try_acquire(bytes)?;
                let units = permit.units();
                *batch = Some(permit);
                units
            }
        };
        Some(guard)
    }

    /// Takes every throttle for a message of `bytes`, in Ceph's order (policy, then dispatch),
    /// waiting while any is exhausted. Call with the previous batch handed over (`batch` is
    /// `None`): the dispatch permit taken starts the next batch.
    pub async fn acquire(&self, bytes: u64, batch: &mut Option<ThrottlePermit>) -> ThrottleGuard {
        let mut guard = ThrottleGuard::default();
        if let Some(t) = &self.policy_msgs {
            guard._policy_msgs = Some(t.acquire(1).await);
        }
        if let Some(t) = &self.policy_bytes {
            guard._policy_bytes = Some(t.acquire(bytes).await);
        }
        let permit = self.dispatch_bytes.acquire(bytes).await;
        guard.dispatch_units = permit.units();
        match batch {
            // Not expected (the reader hands its batch over before it waits), but the units
            // are accounted in the batch either way.
            Some(b) => b.absorb(permit),
            None => *batch = Some(permit),
        }
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
        let mut batch = None;
        let g = t.try_acquire(60, &mut batch).expect("everything free");
        assert_eq!(t.dispatch_bytes.available(), 40);
        // The dispatch throttle is short: the policy permits taken first are given back.
        assert!(t.try_acquire(60, &mut batch).is_none());
        assert_eq!(t.policy_bytes.as_ref().unwrap().available(), 940);
        assert_eq!(t.policy_msgs.as_ref().unwrap().available(), 9);
        assert_eq!(batch.as_ref().map(ThrottlePermit::units), Some(60));
        drop(g);
        assert_eq!(t.policy_msgs.as_ref().unwrap().available(), 10);
        // The dispatch units are the batch's: released with it.
        assert_eq!(t.dispatch_bytes.available(), 40);
        drop(batch);
        assert_eq!(t.dispatch_bytes.available(), 100);
    }

    #[test]
    fn a_message_larger_than_a_throttle_takes_all_of_it() {
        let t = throttles(100, 1000, 10);
        let mut batch = None;
        let g = t
            .try_acquire(5000, &mut batch)
            .expect("one huge message passes alone");
        assert_eq!(t.dispatch_bytes.available(), 0);
        assert_eq!(t.policy_bytes.as_ref().unwrap().available(), 0);
        assert!(t.try_acquire(1, &mut batch).is_none());
        drop((g, batch));
        assert_eq!(t.dispatch_bytes.available(), 100);
    }

    #[test]
    fn a_batch_holds_its_messages_units_and_a_detached_message_takes_its_own() {
        let t = throttles(1000, 1000, 10);
        let mut batch = None;
        let mut guards: Vec<ThrottleGuard> = (0..3)
            .map(|_| t.try_acquire(100, &mut batch).unwrap())
            .collect();
        assert_eq!(batch.as_ref().unwrap().units(), 300);
        assert_eq!(t.dispatch_bytes.available(), 700);
        // One message is queued for later dispatch: its units leave the batch with it.
        let mut queued = guards.pop().unwrap();
        queued.detach_dispatch(&mut batch);
        assert_eq!(batch.as_ref().unwrap().units(), 200);
        // The batch is handled: the rest comes back, the queued message still holds 100.
        drop(guards);
        drop(batch);
        assert_eq!(t.dispatch_bytes.available(), 900);
        drop(queued);
        assert_eq!(t.dispatch_bytes.available(), 1000);
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

    #[tokio::test]
    async fn the_budget_changes_at_run_time_and_holders_keep_what_they_have() {
        let t = Throttle::new(100);
        let held = t.try_acquire(80).unwrap();
        // Shrink to 50: the 20 free units go at once, 30 more as the permit comes back.
        t.set_capacity(50);
        assert_eq!((t.capacity(), t.available()), (50, 0));
        assert!(t.try_acquire(1).is_none());
        drop(held);
        assert_eq!(
            t.available(),
            50,
            "the debt was paid from the returned units"
        );
        // Grow to 200 while a waiter waits: it is woken and served.
        let all = t.try_acquire(50).unwrap();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.acquire(120).await })
        };
        while t.inner.waiters.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        t.set_capacity(200);
        let got = waiter.await.unwrap();
        assert_eq!(got.units(), 120);
        drop((all, got));
        assert_eq!((t.capacity(), t.available()), (200, 200));
    }
}
