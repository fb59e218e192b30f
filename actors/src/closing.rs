//! Sockets a messenger is still closing gracefully: a Pipe that is marked down hands its
//! writer the rest of its queue and leaves the registry at once, while the writer goes on
//! writing. `Messenger::shutdown` waits for those writers too, not only for the registry to
//! empty; otherwise stopping the shard threads would cut off what they were still writing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The count of graceful closes in progress, and a wake-up for when it reaches zero.
#[derive(Debug, Default)]
pub(crate) struct ClosingSockets {
    in_progress: AtomicUsize,
    all_done: Notify,
}

/// One graceful close in progress; dropping it (when the writer is done, or when its message
/// is dropped undelivered) ends it.
#[derive(Debug)]
pub(crate) struct ClosingGuard(Arc<ClosingSockets>);

impl ClosingSockets {
    /// Counts a graceful close until the guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> ClosingGuard {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        ClosingGuard(self.clone())
    }

    /// Resolves once no graceful close is in progress.
    pub(crate) async fn all_done(&self) {
        loop {
            let done = self.all_done.notified();
            tokio::pin!(done);
            // Registered before the check, so a close ending in between still wakes us.
            done.as_mut().enable();
            if self.in_progress.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        if self.0.in_progress.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_done_waits_for_every_guard() {
        let closing = Arc::new(ClosingSockets::default());
        closing.all_done().await;
        let (a, b) = (closing.start(), closing.start());
        let waiter = {
            let closing = closing.clone();
            tokio::spawn(async move { closing.all_done().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
    }
}
