//! `PipeReader`: owns a socket's read half. Reads with read-ahead into one `BytesMut`, feeds the
//! frame decoder, takes the receive throttles before reading a message body, and hands decoded
//! frames to its Pipe in batches (one actor message per read, not per frame).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use msgr::framing::SessionDecoder;
use msgr::wire::Frame;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;

use crate::closing::ClosingGuard;
use crate::connection::Connection;
use crate::counters::Counters;
use crate::error::PipeError;
use crate::inject::Injector;
use crate::msgs::PipeInbox;
use crate::msgs::{DrainUntilClosed, InFrame, Incoming, SocketFault, StopReader};
use crate::read_buffer::ReadBuffer;
use crate::shared::Shared;
use crate::throttle::{ReceiveThrottles, ThrottleGuard, ThrottlePermit};

/// Largest batch of frames sent to the Pipe in one actor message.
const BATCH: usize = 256;

/// Reader timings and read-ahead.
#[derive(Clone)]
pub(crate) struct ReaderConfig {
    pub(crate) prefetch: usize,
    pub(crate) stall_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) injector: Injector,
}

/// The read half of one socket, for one socket generation of a Pipe.
pub struct PipeReader {
    io: Option<ReadState>,
    pipe: PipeInbox,
    gen: u64,
    /// Held while draining after a graceful close (see [`DrainUntilClosed`]).
    _closing: Option<ClosingGuard>,
}

struct ReadState {
    half: OwnedReadHalf,
    buf: ReadBuffer,
    decoder: SessionDecoder,
    throttles: ReceiveThrottles,
    cfg: ReaderConfig,
    conn: Connection,
    shared: Arc<Shared>,
    _slot: Option<crate::net::SocketSlot>,
}

impl PipeReader {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        half: OwnedReadHalf,
        buf: BytesMut,
        decoder: SessionDecoder,
        throttles: ReceiveThrottles,
        cfg: ReaderConfig,
        conn: Connection,
        shared: Arc<Shared>,
        slot: Option<crate::net::SocketSlot>,
        pipe: PipeInbox,
        gen: u64,
    ) -> Self {
        PipeReader {
            io: Some(ReadState {
                half,
                buf: ReadBuffer::new(buf, cfg.prefetch),
                decoder,
                throttles,
                cfg,
                conn,
                shared,
                _slot: slot,
            }),
            pipe,
            gen,
            _closing: None,
        }
    }
}

impl Actor for PipeReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let io = self.io.take().expect("reader started once");
        let pipe = self.pipe.clone();
        let gen = self.gen;
        let fut = async move {
            let err = read_loop(io, &pipe, gen).await;
            pipe.fault.do_send(SocketFault { gen, error: err });
        };
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.report_stop();
    }
}

impl PipeReader {
    /// However the reader ends, its Pipe hears of it; a fault it already reported, or one for a
    /// socket the Pipe has replaced, is ignored there by generation.
    fn report_stop(&self) {
        self.pipe.fault.do_send(SocketFault {
            gen: self.gen,
            error: PipeError::ActorKilled,
        });
    }
}

/// Longest a reader drains after a graceful close.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl Handler<DrainUntilClosed> for PipeReader {
    type Result = ();
    fn handle(&mut self, DrainUntilClosed(closing): DrainUntilClosed, ctx: &mut Context<Self>) {
        self._closing = Some(closing);
        ctx.run_later(DRAIN_LIMIT, |_, ctx| ctx.stop());
    }
}

impl Handler<StopReader> for PipeReader {
    type Result = ();
    fn handle(&mut self, _: StopReader, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Reads until the socket fails; returns why.
async fn read_loop(mut s: ReadState, pipe: &PipeInbox, gen: u64) -> PipeError {
    let mut guard: Option<ThrottleGuard> = None;
    let mut batch = Batch::default();
    let mut timer = ReadTimer::new();
    loop {
        // Decode everything buffered.
        loop {
            if guard.is_none() {
                if let Some(bytes) = s.decoder.pending_payload() {
                    let g = match s.throttles.try_acquire(bytes, &mut batch.dispatch) {
                        Some(g) => g,
                        None => {
                            // Hand over what we have before waiting: the dispatcher may need
                            // it to release the very throttle we are about to wait on.
                            batch.flush(None, pipe, gen);
                            Counters::add(&s.conn.inner.counters.throttle_waits, 1);
                            Counters::add(
                                &s.shared.counters.shard(s.conn.inner.shard).throttle_waits,
                                1,
                            );
                            s.throttles.acquire(bytes, &mut batch.dispatch).await
                        }
                    };
                    guard = Some(g);
                    s.decoder.admit_body();
                }
            }
            match s.decoder.decode(s.buf.bytes()) {
                Ok(Some(Frame::Message(m))) => {
                    batch
                        .frames
                        .push(InFrame::Message(m, guard.take().unwrap_or_default()));
                }
                Ok(Some(f)) => batch.frames.push(InFrame::Other(f)),
                // Stopped at the body gate: take the throttles, then decode the body.
                Ok(None) if guard.is_none() && s.decoder.pending_payload().is_some() => continue,
                Ok(None) => break,
                Err(e) => {
                    batch.flush(guard.as_ref(), pipe, gen);
                    return e.into();
                }
            }
            if batch.frames.len() >= BATCH {
                batch.flush(guard.as_ref(), pipe, gen);
            }
        }
        if batch.flush(guard.as_ref(), pipe, gen) && s.buf.more_waiting() {
            // The socket likely has more: let the Pipe take this batch before reading on, so
            // it dispatches while the bytes are in cache and frees the buffer they sit in
            // (else the reader runs many reads ahead and every read needs a new buffer).
            tokio::task::yield_now().await;
        }

        // Read more: at least what the decoder needs, with read-ahead; never past the cap.
        let need = s.decoder.wanted().saturating_sub(s.buf.bytes().len());
        let mid_frame = !s.buf.bytes().is_empty() || !s.decoder.between_frames();
        let limit = if mid_frame {
            s.cfg.stall_timeout
        } else {
            s.cfg.idle_timeout
        };
        let into = s.buf.prepare(need);
        let read = loop {
            let deadline = timer.arm(limit);
            tokio::select! {
                biased;
                r = s.half.read_buf(&mut *into) => break r,
                _ = timer.fired() => {
                    if Instant::now() >= deadline {
                        return if mid_frame { PipeError::Stalled } else { PipeError::Idle };
                    }
                    // Fired for an older deadline; progress since moved it on.
                }
            }
        };
        match read {
            Err(e) => return e.into(),
            Ok(0) => return std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into(),
            Ok(n) => {
                timer.progress();
                Counters::add(&s.conn.inner.counters.bytes_in, n as u64);
                Counters::add(
                    &s.shared.counters.shard(s.conn.inner.shard).bytes_in,
                    n as u64,
                );
                s.buf.did_read(n);
            }
        }
        if s.cfg.injector.socket_should_fail() {
            return PipeError::Injected;
        }
    }
}

/// The stall and idle timeouts on one timer that a read does not touch: a read only notes the
/// time of progress. The timer is moved earlier when it would fire too late (switching to the
/// shorter limit), and when it fires before the real deadline it is pushed back. A timeout per
/// read would register and cancel a timer entry every read, thousands of times a second per
/// busy connection.
struct ReadTimer {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    last_progress: Instant,
}

impl ReadTimer {
    fn new() -> Self {
        let now = Instant::now();
        ReadTimer {
            timer: Box::pin(tokio::time::sleep_until(now + FAR_FUTURE)),
            last_progress: now,
        }
    }

    /// Bytes arrived.
    fn progress(&mut self) {
        self.last_progress = Instant::now();
        crate::busy_poll::note_read(self.last_progress);
    }

    /// Makes sure the timer fires no later than `limit` after the last progress; returns that
    /// deadline.
    fn arm(&mut self, limit: Duration) -> Instant {
        let deadline = self.last_progress + limit.min(FAR_FUTURE);
        if deadline < self.timer.deadline() || self.timer.is_elapsed() {
            self.timer.as_mut().reset(deadline);
        }
        deadline
    }

    /// Resolves when the timer fires.
    async fn fired(&mut self) {
        (&mut self.timer).await
    }
}

/// A deadline beyond any configured timeout (tokio's timer wheel spans about two years).
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The frames decoded since the last hand-over, and the dispatch-throttle permit that holds
/// their units.
#[derive(Default)]
struct Batch {
    frames: Vec<InFrame>,
    dispatch: Option<ThrottlePermit>,
}

impl Batch {
    /// Hands the frames and their permit to the Pipe; false if there was nothing to hand.
    /// `pending`: the guard of a message whose header was admitted but whose body is not
    /// decoded yet; its dispatch units stay here, for the next batch.
    fn flush(&mut self, pending: Option<&ThrottleGuard>, pipe: &PipeInbox, gen: u64) -> bool {
        if self.frames.is_empty() {
            return false;
        }
        let carried = match (self.dispatch.as_mut(), pending) {
            (Some(permit), Some(g)) => Some(permit.split(g.dispatch_units())),
            _ => None,
        };
        // The next batch is likely about as large: room for that many.
        let next = crate::recycle::batch(self.frames.len());
        pipe.incoming.do_send(Incoming {
            gen,
            frames: std::mem::replace(&mut self.frames, next),
            dispatch: std::mem::replace(&mut self.dispatch, carried),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(300);

    /// Polls the timer once at the current (paused) time: did it fire?
    async fn fired_now(t: &mut ReadTimer) -> bool {
        tokio::select! {
            biased;
            _ = t.fired() => true,
            _ = std::future::ready(()) => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn read_timer_fires_at_the_limit_without_progress() {
        let mut t = ReadTimer::new();
        let deadline = t.arm(LIMIT);
        tokio::time::advance(LIMIT - Duration::from_millis(1)).await;
        assert!(!fired_now(&mut t).await);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(fired_now(&mut t).await);
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn read_timer_fires_early_after_progress_and_is_pushed_back() {
        let mut t = ReadTimer::new();
        t.arm(LIMIT);
        tokio::time::advance(Duration::from_millis(200)).await;
        t.progress();
        let deadline = t.arm(LIMIT);
        // The timer was not moved by the read: it fires at the old deadline, which is not
        // the real one, so the caller re-arms and waits on.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(fired_now(&mut t).await);
        assert!(Instant::now() < deadline);
        assert_eq!(t.arm(LIMIT), deadline);
        assert!(!fired_now(&mut t).await);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(fired_now(&mut t).await);
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn read_timer_moves_earlier_for_a_shorter_limit() {
        let mut t = ReadTimer::new();
        t.arm(Duration::from_secs(900));
        let deadline = t.arm(LIMIT);
        tokio::time::advance(LIMIT).await;
        assert!(fired_now(&mut t).await);
        assert!(Instant::now() >= deadline);
    }
}
