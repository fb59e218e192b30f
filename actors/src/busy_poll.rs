//! Busy polling (`ms_busy_poll_us`): after socket activity, a shard thread keeps asking the OS
//! for readiness (epoll with a zero timeout) instead of sleeping, for a bounded window.
//!
//! Why: on these VMs a thread asleep in epoll takes tens of microseconds to wake when its socket
//! becomes readable. A request/reply exchange between threads pays that on every hop; a thread
//! that is still polling sees the bytes within a microsecond or two. The price is CPU: a shard
//! thread stays busy for the window after its last read. Off (0) by default.
//!
//! One spinner task per shard thread does it: while reads happened within the window it yields
//! (tokio then polls the OS without blocking before running it again); otherwise it sleeps until
//! the next read wakes it.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// The spinner of one thread, shared with that thread's readers.
struct Spinner {
    window: Cell<Duration>,
    last_read: Cell<Instant>,
    /// Set while the spinner sleeps: the next read wakes it.
    asleep: RefCell<Option<Waker>>,
}

thread_local! {
    static SPINNER: RefCell<Option<Rc<Spinner>>> = const { RefCell::new(None) };
}

/// Starts this thread's spinner with `window`, or widens a running one (messengers sharing
/// threads may ask for different windows; the widest wins). Call on a shard thread.
pub(crate) fn start_on_this_thread(window: Duration) {
    if window.is_zero() {
        return;
    }
    let spinner = SPINNER.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(running) = s.as_ref() {
            running.window.set(running.window.get().max(window));
            return None;
        }
        let spinner = Rc::new(Spinner {
            window: Cell::new(window),
            last_read: Cell::new(Instant::now()),
            asleep: RefCell::new(None),
        });
        *s = Some(spinner.clone());
        Some(spinner)
    });
    if let Some(spinner) = spinner {
        tokio::task::spawn_local(spin(spinner));
    }
}

/// A reader got bytes at `now`: keep (or start) polling on this thread.
pub(crate) fn note_read(now: Instant) {
    SPINNER.with(|s| {
        if let Some(spinner) = s.borrow().as_ref() {
            spinner.last_read.set(now);
            if let Some(waker) = spinner.asleep.borrow_mut().take() {
                waker.wake();
            }
        }
    });
}

async fn spin(spinner: Rc<Spinner>) {
    loop {
        if spinner.last_read.get().elapsed() < spinner.window.get() {
            // Back of the queue; with nothing else to run, tokio polls the OS without
            // blocking and then runs us again.
            tokio::task::yield_now().await;
            continue;
        }
        let quiet_since = spinner.last_read.get();
        poll_fn(|cx| {
            if spinner.last_read.get() != quiet_since {
                return Poll::Ready(());
            }
            *spinner.asleep.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spinner_sleeps_when_quiet_and_wakes_on_a_read() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                start_on_this_thread(Duration::from_micros(50));
                tokio::task::yield_now().await;
                tokio::time::advance(Duration::from_millis(1)).await;
                // Quiet for longer than the window: the spinner is asleep.
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                let asleep =
                    SPINNER.with(|s| s.borrow().as_ref().unwrap().asleep.borrow().is_some());
                assert!(asleep);
                note_read(Instant::now());
                let asleep =
                    SPINNER.with(|s| s.borrow().as_ref().unwrap().asleep.borrow().is_some());
                assert!(!asleep, "a read wakes the spinner");
                // A second start only widens the window.
                start_on_this_thread(Duration::from_micros(80));
                let window = SPINNER.with(|s| s.borrow().as_ref().unwrap().window.get());
                assert_eq!(window, Duration::from_micros(80));
            })
            .await;
    }
}
