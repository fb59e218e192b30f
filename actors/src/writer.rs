//! `PipeWriter`: owns a socket's write half. Everything queued while a write is in progress goes
//! out in the next single vectored write, so a burst of messages costs one syscall, not one each.

use std::io::IoSlice;
use std::sync::Arc;

use actix::prelude::*;
use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::closing::ClosingGuard;
use crate::connection::Connection;
use crate::counters::Counters;
use crate::error::PipeError;
use crate::inject::Injector;
use crate::msgs::PipeInbox;
use crate::msgs::{CloseAfterFlush, SocketFault, StopWriter, Write};
use crate::shared::Shared;

/// The write half of one socket, for one socket generation of a Pipe.
pub struct PipeWriter {
    half: Option<OwnedWriteHalf>,
    queue: Vec<Bytes>,
    writing: bool,
    /// Set by `CloseAfterFlush`: close once everything is written. Held until this writer is
    /// dropped, so the close counts as in progress until then.
    close_after: Option<ClosingGuard>,
    pipe: PipeInbox,
    gen: u64,
    injector: Injector,
    conn: Connection,
    shared: Arc<Shared>,
}

/// Most slices handed to one writev (Linux IOV_MAX is 1024).
const MAX_IOV: usize = 1024;

impl PipeWriter {
    pub(crate) fn new(
        half: OwnedWriteHalf,
        pipe: PipeInbox,
        gen: u64,
        injector: Injector,
        conn: Connection,
        shared: Arc<Shared>,
    ) -> Self {
        PipeWriter {
            half: Some(half),
            queue: Vec::new(),
            writing: false,
            close_after: None,
            pipe,
            gen,
            injector,
            conn,
            shared,
        }
    }

    /// Sends FIN after everything was written, then stops.
    fn shutdown_and_stop(&mut self, ctx: &mut Context<Self>) {
        let Some(mut half) = self.half.take() else {
            return;
        };
        let fut = async move {
            let _ = half.shutdown().await;
        };
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    /// Writes what the socket takes right now, without waiting; the rest stays queued.
    fn write_now(&mut self) -> Result<usize, PipeError> {
        let Some(half) = self.half.as_ref() else {
            return Ok(0);
        };
        let mut total = 0;
        while !self.queue.is_empty() {
            if self.injector.socket_should_fail() {
                return Err(PipeError::Injected);
            }
            let res = with_io_slices(&self.queue, |slices| half.try_write_vectored(slices));
            let n = match res {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            total += n;
            let done = consume(&mut self.queue, n);
            self.queue.drain(..done);
        }
        Ok(total)
    }

    fn start_write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() {
            return;
        }
        // Most writes complete at once: no future, no wake-up. Only a full socket buffer
        // falls back to the awaited write below.
        match self.write_now() {
            Ok(n) => {
                Counters::add(&self.conn.inner.counters.bytes_out, n as u64);
                Counters::add(
                    &self.shared.counters.shard(self.conn.inner.shard).bytes_out,
                    n as u64,
                );
            }
            Err(e) => {
                self.pipe.fault.do_send(SocketFault {
                    gen: self.gen,
                    error: e,
                });
                ctx.stop();
                return;
            }
        }
        if self.queue.is_empty() {
            if self.close_after.is_some() {
                self.shutdown_and_stop(ctx);
            }
            return;
        }
        let Some(mut half) = self.half.take() else {
            return;
        };
        let chunks = std::mem::take(&mut self.queue);
        let injector = self.injector.clone();
        self.writing = true;
        let fut = async move {
            let res = write_all_vectored(&mut half, chunks, &injector).await;
            (half, res)
        };
        ctx.spawn(fut.into_actor(self).map(|(half, res), act, ctx| {
            act.writing = false;
            match res {
                Ok(n) => {
                    Counters::add(&act.conn.inner.counters.bytes_out, n as u64);
                    Counters::add(
                        &act.shared.counters.shard(act.conn.inner.shard).bytes_out,
                        n as u64,
                    );
                    act.half = Some(half);
                    if !act.queue.is_empty() {
                        act.start_write(ctx);
                    } else if act.close_after.is_some() {
                        act.shutdown_and_stop(ctx);
                    }
                }
                Err(e) => {
                    act.pipe.fault.do_send(SocketFault {
                        gen: act.gen,
                        error: e,
                    });
                    ctx.stop();
                }
            }
        }));
    }
}

impl Actor for PipeWriter {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Ignored by the Pipe when it stopped us itself (the socket is no longer current).
        if self.close_after.is_none() {
            self.pipe.fault.do_send(SocketFault {
                gen: self.gen,
                error: PipeError::ActorKilled,
            });
        }
    }
}

impl Handler<Write> for PipeWriter {
    type Result = ();
    fn handle(&mut self, Write(mut chunks): Write, ctx: &mut Context<Self>) {
        if self.queue.is_empty() {
            // Usually nothing is left from the last write: take the batch as it is.
            std::mem::swap(&mut self.queue, &mut chunks);
        } else {
            self.queue.append(&mut chunks);
        }
        crate::recycle::recycle(chunks);
        self.start_write(ctx);
    }
}

impl Handler<CloseAfterFlush> for PipeWriter {
    type Result = ();
    fn handle(&mut self, CloseAfterFlush(closing): CloseAfterFlush, ctx: &mut Context<Self>) {
        self.close_after = Some(closing);
        if !self.writing && self.queue.is_empty() {
            self.shutdown_and_stop(ctx);
        }
    }
}

impl Handler<StopWriter> for PipeWriter {
    type Result = ();
    fn handle(&mut self, _: StopWriter, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Writes every chunk, as few writev calls as the kernel allows. Returns bytes written.
async fn write_all_vectored(
    half: &mut OwnedWriteHalf,
    mut chunks: Vec<Bytes>,
    injector: &Injector,
) -> Result<usize, PipeError> {
    let mut total = 0;
    let mut first = 0;
    while first < chunks.len() {
        if injector.socket_should_fail() {
            return Err(PipeError::Injected);
        }
        let end = (first + MAX_IOV).min(chunks.len());
        let n = {
            let slices: Vec<IoSlice<'_>> =
                chunks[first..end].iter().map(|c| IoSlice::new(c)).collect();
            half.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        total += n;
        first += consume(&mut chunks[first..], n);
    }
    Ok(total)
}

/// Chunks described on the stack for one writev when there are few (the common case: a
/// handful of messages), otherwise in a Vec; at most [`MAX_IOV`] either way.
fn with_io_slices<R>(chunks: &[Bytes], write: impl FnOnce(&[IoSlice<'_>]) -> R) -> R {
    const ON_STACK: usize = 64;
    let chunks = &chunks[..chunks.len().min(MAX_IOV)];
    if chunks.len() <= ON_STACK {
        let mut slices = [IoSlice::new(&[]); ON_STACK];
        for (slot, c) in slices.iter_mut().zip(chunks) {
            *slot = IoSlice::new(c);
        }
        write(&slices[..chunks.len()])
    } else {
        let slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        write(&slices)
    }
}

/// Marks `n` written bytes off the front of `chunks`: advances a partly written chunk and
/// returns how many chunks were written whole.
fn consume(chunks: &mut [Bytes], mut n: usize) -> usize {
    let mut done = 0;
    while n > 0 {
        let c = &mut chunks[done];
        if n >= c.len() {
            n -= c.len();
            done += 1;
        } else {
            c.advance(n);
            n = 0;
        }
    }
    done
}
