//! The open socket's traffic: starting its reader and writer, user sends, frames in, and
//! flushes out (what goes out, and in which order, is the machine's `poll_transmit`).

use msgr::auth::MessageSigner;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use msgr::framing::SessionDecoder;
use msgr::handshake::connector::uses_msg_auth;
use msgr::pipe::Queued;
use msgr::session::Receive;
use msgr::wire::{Frame, FrameDecoder, Timespec};
use msgr::Message;

use super::{HandedSocket, Pipe, Socket};
use crate::error::PipeError;
use crate::msgs::{
    Deliver, DispatchItem, GetInfo, InFrame, Incoming, MarkDown, PipeControl, PipeInbox, PipeInfo,
    SendMessage, SocketFault, Write,
};
use crate::reader::{PipeReader, ReaderConfig};
use crate::throttle::ReceiveThrottles;
use crate::writer::PipeWriter;

/// Pipe → Pipe: flush what is queued (scheduled so that sends in one turn share a write).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Flush;

/// Messages encoded per flush before yielding to the mailbox.
const FLUSH_BATCH: usize = 512;

fn wall_clock() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as u32,
        nsec: d.subsec_nanos(),
    }
}

impl Pipe {
    /// The machine opened a socket: the handshake's socket gets a reader and a writer.
    pub(super) fn open_socket(
        &mut self,
        gen: u64,
        features: u64,
        verifier: Option<MessageSigner>,
        ctx: &mut Context<Self>,
    ) {
        let Some(HandedSocket {
            stream,
            inbuf,
            slot,
        }) = self.handed.take()
        else {
            debug_assert!(false, "OpenSocket without a handed socket");
            return;
        };
        let cfg = &self.shared.config;
        let (r, w) = stream.into_split();
        let me = ctx.address();
        let me = PipeInbox {
            incoming: me.clone().recipient(),
            fault: me.recipient(),
        };
        let throttles = ReceiveThrottles {
            dispatch_bytes: self.shared.dispatch_throttle.clone(),
            policy_bytes: self.policy_bytes.clone(),
            policy_msgs: self.policy_msgs.clone(),
        };
        let rcfg = ReaderConfig {
            prefetch: cfg.ms_tcp_prefetch_max_size,
            stall_timeout: cfg.ms_stall_timeout,
            idle_timeout: cfg.ms_connection_idle_timeout,
            injector: self.shared.injector.clone(),
        };
        let decoder = match self.v2_reader.take() {
            Some(d) => SessionDecoder::V2(Box::new(d)),
            None => SessionDecoder::V1(
                FrameDecoder::new(uses_msg_auth(features), cfg.decoder_limits())
                    .with_body_gate()
                    .with_verifier(verifier),
            ),
        };
        let reader = PipeReader::new(
            r,
            inbuf,
            decoder,
            throttles,
            rcfg,
            self.conn.clone(),
            self.shared.clone(),
            slot,
            me.clone(),
            gen,
        )
        .start();
        let writer = PipeWriter::new(
            w,
            me,
            gen,
            self.shared.injector.clone(),
            self.conn.clone(),
            self.shared.clone(),
        )
        .start();
        self.socket = Some(Socket { reader, writer });
        self.conn.inner.features.store(features, Ordering::Relaxed);
        self.conn.inner.connected.store(true, Ordering::Release);
        self.flush(ctx);
    }

    pub(super) fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }

    /// Hands the writer one batch: queued messages, a due ACK and keepalives.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(Socket { writer, .. }) = &self.socket else {
            return;
        };
        // Sized up front: a message is at most three chunks, plus one for control frames
        // (nothing to allocate for a flush with nothing queued, such as a scheduled Flush that
        // an earlier direct flush already served).
        let mut chunks = match self.machine.session().pending_len().min(FLUSH_BATCH) {
            0 => Vec::new(),
            n => crate::recycle::batch(n * 3 + 1),
        };
        let done = self
            .machine
            .poll_transmit(FLUSH_BATCH, wall_clock, &mut chunks);
        if !chunks.is_empty() {
            writer.do_send(Write(chunks));
        }
        self.count(|c| &c.msgs_out, done.msgs);
        self.count(|c| &c.acks_out, done.acks);
        self.count(|c| &c.keepalives_out, done.keepalives);
        self.sync_stats();
        if self.machine.session().has_pending() {
            self.schedule_flush(ctx);
        }
    }

    /// Queues `msg` on the session; true when it now waits for a flush of the open socket,
    /// which the caller does or schedules.
    fn enqueue(&mut self, mut msg: Message, ctx: &mut Context<Self>) -> bool {
        msg.src = self.shared.name;
        match self.machine.send(msg) {
            Queued::Transmit => true,
            Queued::Held => {
                self.drive(ctx);
                false
            }
            Queued::Dropped => {
                self.count(|c| &c.dropped, 1);
                false
            }
        }
    }
}

impl Handler<SendMessage> for Pipe {
    type Result = ();
    fn handle(&mut self, SendMessage(msg): SendMessage, ctx: &mut Context<Self>) {
        self.conn.inner.in_mailbox.fetch_sub(1, Ordering::AcqRel);
        if self.enqueue(msg, ctx) {
            self.schedule_flush(ctx);
        }
    }
}

impl Handler<PipeControl> for Pipe {
    type Result = ();
    fn handle(&mut self, msg: PipeControl, ctx: &mut Context<Self>) {
        match msg {
            PipeControl::Keepalive => {
                self.machine.send_keepalive();
                self.schedule_flush(ctx);
            }
            PipeControl::MarkDown { graceful } => self.mark_down(graceful, ctx),
            #[cfg(feature = "fault-injection")]
            PipeControl::Kill(target) => self.kill(target, ctx),
        }
    }
}

impl Handler<Flush> for Pipe {
    type Result = ();
    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.flush(ctx);
    }
}

impl Handler<MarkDown> for Pipe {
    type Result = ();
    fn handle(&mut self, MarkDown { graceful }: MarkDown, ctx: &mut Context<Self>) {
        self.mark_down(graceful, ctx);
    }
}

impl Pipe {
    fn mark_down(&mut self, graceful: bool, ctx: &mut Context<Self>) {
        if self.machine.is_closed() {
            return;
        }
        if graceful {
            // Everything queued goes to the writer (a flush takes at most FLUSH_BATCH).
            loop {
                self.flush(ctx);
                if !(self.socket.is_some() && self.machine.session().has_pending()) {
                    break;
                }
            }
        }
        self.machine.mark_down(graceful);
        self.drive(ctx);
    }
}

impl Handler<Incoming> for Pipe {
    type Result = ();
    fn handle(
        &mut self,
        Incoming {
            gen,
            mut frames,
            mut dispatch,
        }: Incoming,
        ctx: &mut Context<Self>,
    ) {
        if !self.machine.is_current_socket(gen) {
            return;
        }
        let mut items = Vec::new();
        let mut accepted = 0;
        // Why this socket must end after the frames handled so far (the rest is not accepted,
        // so the peer replays it).
        let mut ended: Option<PipeError> = None;
        for f in frames.drain(..) {
            match f {
                InFrame::Message(m, mut guard) => {
                    let in_seq = self.machine.session().in_seq();
                    match self.machine.receive(m.seq) {
                        Receive::Duplicate => {
                            tracing::debug!(seq = m.seq, in_seq, "dropping duplicate message");
                            continue;
                        }
                        // Ceph accepts a gap too ("missed message?"). From in_seq 0 it is
                        // normal (a session restarted on our side continues the peer's seqs,
                        // which start at random after a reset with MSG_AUTH); later, the peer
                        // skipped seqs, which is worth a warning.
                        Receive::Accept { gap: true } if in_seq > 0 => tracing::warn!(
                            peer = %self.conn.peer_addr(),
                            conn = self.conn.id(),
                            seq = m.seq,
                            in_seq,
                            lossy = self.machine.session().is_lossy(),
                            "missed message? seqs were skipped"
                        ),
                        Receive::Accept { .. } => {}
                    }
                    accepted += 1;
                    if self.conn.peer_name() != m.src {
                        self.conn.set_peer_name(m.src);
                    }
                    let fast = self
                        .shared
                        .dispatchers
                        .iter()
                        .find(|d| d.ms_can_fast_dispatch(&m));
                    match fast {
                        Some(d) => {
                            let conn = &self.conn;
                            let mut sent = std::mem::take(&mut self.absorbed);
                            crate::connection::absorbing_sends(conn.id(), &mut sent, || {
                                d.ms_fast_dispatch(conn, m)
                            });
                            // Flushed at the end of this batch: no Flush to schedule.
                            for msg in sent.drain(..) {
                                self.enqueue(msg, ctx);
                            }
                            self.absorbed = sent;
                        }
                        None => {
                            // Dispatched after this batch is handled: its units go with it.
                            guard.detach_dispatch(&mut dispatch);
                            items.push(DispatchItem::message(m, guard))
                        }
                    }
                }
                InFrame::Other(Frame::Ack(seq)) => {
                    self.count(|c| &c.acks_in, 1);
                    if let Err(e) = self.machine.handle_ack(seq) {
                        ended = Some(e.into());
                        break;
                    }
                }
                InFrame::Other(Frame::Keepalive) | InFrame::Other(Frame::Keepalive2Ack(_)) => {
                    self.count(|c| &c.keepalives_in, 1);
                }
                InFrame::Other(Frame::Keepalive2(ts)) => {
                    self.count(|c| &c.keepalives_in, 1);
                    self.machine.handle_keepalive2(ts);
                }
                InFrame::Other(Frame::Close) => {
                    ended = Some(PipeError::PeerClosed);
                    break;
                }
                InFrame::Other(Frame::Message(_)) => unreachable!("the reader wraps messages"),
            }
        }
        crate::recycle::recycle(frames);
        self.count(|c| &c.msgs_in, accepted);
        self.sync_stats();
        if !items.is_empty() {
            self.shared
                .dispatch_queue(self.conn.inner.shard)
                .do_send(Deliver {
                    conn: self.conn.clone(),
                    items,
                });
        }
        if let Some(error) = ended {
            return self.fault(error, ctx);
        }
        if self.machine.wants_transmit() {
            // One read's replies and its ACK go out together, now: the batch is already as
            // large as it will get (a scheduled Flush would only add an actor hop).
            self.flush(ctx);
        }
    }
}

impl Handler<SocketFault> for Pipe {
    type Result = ();
    fn handle(&mut self, SocketFault { gen, error }: SocketFault, ctx: &mut Context<Self>) {
        if self.machine.is_current_socket(gen) {
            self.fault(error, ctx);
        }
    }
}

impl Handler<GetInfo> for Pipe {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Context<Self>) -> Self::Result {
        let s = self.machine.session();
        MessageResult(PipeInfo {
            state: self.machine.state().as_str(),
            connect_seq: self.machine.connect_seq(),
            in_seq: s.in_seq(),
            out_seq: s.out_seq(),
            acked: s.peer_acked(),
            pending: s.pending_len(),
            unacked: s.unacked_len(),
            lossy: s.is_lossy(),
            wire: self.machine.wire(),
        })
    }
}
