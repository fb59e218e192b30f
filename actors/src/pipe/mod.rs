//! `Pipe`: one peer session. It owns the session's sequencing state (`msgr::session::Session`)
//! and connection bookkeeping (connect_seq, peer global_seq), drives the handshakes, and owns the
//! PipeReader and PipeWriter of its current socket.
//!
//! The Pipe is an actix `Supervised` actor. A socket fault stops it; `restarting()` tears the
//! socket down and requeues every unacked message; `started()` then applies the policy's verdict
//! (spec §5): mark down (lossy), reconnect with backoff and replay (lossless client / peer),
//! stand by (server, standby policies). The actor's address, and so every `Connection` handle,
//! survives the restart.

mod handshake;
#[cfg(feature = "fault-injection")]
mod kill;
#[cfg(test)]
mod tests;

#[cfg(feature = "fault-injection")]
pub use kill::KillTarget;

pub(crate) use handshake::read_more;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::BytesMut;
use msgr::features::{self, MSGR_KEEPALIVE2};
use msgr::handshake::authorizer::verify_auth_none;
use msgr::handshake::connector::uses_msg_auth;
use msgr::handshake::{
    decide, AcceptContext, ConnectorParams, Decision, ExistingSession, ExistingState, ReplyContext,
};
use msgr::policy::{Backoff, FaultAction, FaultContext, ReconnectKind};
use msgr::session::{Receive, Session, SessionStats};
use msgr::wire::{
    encode_ack, encode_keepalive, encode_keepalive2, Frame, FrameDecoder, FrameEncoder, Timespec,
};
use msgr::{EntityAddr, EntityType, Message, Policy};
use rand::Rng;

use crate::connection::{Connection, Target};
use crate::counters::Counters;
use crate::dispatch::ConnEvent;
use crate::error::PipeError;
use crate::msgs::{
    Adopt, CloseAfterFlush, DecideAccept, Deliver, DispatchItem, DrainUntilClosed, GetInfo,
    InFrame, Incoming, MarkDown, SendKeepalive, SendMessage, SocketFault, StopReader, StopWriter,
    Unregister, Write,
};
use crate::net;
use crate::net::SocketSlot;
use crate::reader::{PipeReader, ReaderConfig};
use crate::shared::Shared;
use crate::throttle::{ReceiveThrottles, Throttle};
use crate::writer::PipeWriter;

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// A snapshot of a Pipe's state, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PipeInfo {
    /// State name: new, connecting, accepting, open, standby, backoff, closed.
    pub state: &'static str,
    /// The session's connect_seq.
    pub connect_seq: u32,
    /// Last seq received.
    pub in_seq: u64,
    /// Last seq sent.
    pub out_seq: u64,
    /// Highest seq the peer acked.
    pub acked: u64,
    /// Messages waiting to be written.
    pub pending: usize,
    /// Messages written and not yet acked.
    pub unacked: usize,
    /// The session is lossy.
    pub lossy: bool,
}

enum State {
    /// Created for an accepted socket; waiting for Adopt.
    New,
    Connecting(SpawnHandle),
    Accepting(SpawnHandle),
    /// An Open decision was made; waiting for the accept task to hand over the socket. The
    /// handle is the deadline for that hand-over (see [`Pipe::adopt_overdue`]).
    Replacing(SpawnHandle),
    Open {
        reader: Addr<PipeReader>,
        writer: Addr<PipeWriter>,
    },
    Standby,
    Backoff(SpawnHandle),
    Closed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::New => "new",
            State::Connecting(_) => "connecting",
            State::Accepting(_) => "accepting",
            State::Replacing(_) => "replacing",
            State::Open { .. } => "open",
            State::Standby => "standby",
            State::Backoff(_) => "backoff",
            State::Closed => "closed",
        }
    }
}

struct Fault {
    error: PipeError,
}

/// The session actor for one peer.
pub struct Pipe {
    shared: Arc<Shared>,
    conn: Connection,
    policy: Policy,
    session: Session,
    /// We know the peer's listening address and may dial it.
    dialable: bool,
    check_peer_nonce: bool,
    /// Dial on the first start (outgoing connections) or wait for a socket (accepted ones).
    dial_first: bool,
    connect_seq: u32,
    peer_global_seq: u32,
    /// A handshake of this session completed at least once.
    established: bool,
    /// The session was open on the last socket: the next dial uses connect_seq + 1.
    bump_connect_seq: bool,
    ever_opened: bool,
    state: State,
    backoff: Backoff,
    /// Socket generation: messages from the reader / writer of an older socket are ignored.
    gen: u64,
    /// Numbers dials and accept hand-overs: only the newest one's result may open a socket.
    handshake_attempt: u64,
    /// The socket generation current when the last Open decision was made.
    open_decided_at_gen: u64,
    socket_was_open: bool,
    socket_accepted: bool,
    fault: Option<Fault>,
    closing: bool,
    started_once: bool,
    encoder: Option<FrameEncoder>,
    features: u64,
    keepalive_due: bool,
    keepalive2_acks: Vec<Timespec>,
    flush_scheduled: bool,
    stats_seen: SessionStats,
    policy_bytes: Option<Throttle>,
    policy_msgs: Option<Throttle>,
    /// Reused buffer for messages sent from this connection's own fast dispatch.
    absorbed: Vec<Message>,
}

/// Messages encoded per flush before yielding to the mailbox.
const FLUSH_BATCH: usize = 512;

impl Pipe {
    /// Starts a Pipe on `shard`. `dial_first`: an outgoing connection, dialled at once.
    pub(crate) fn start(
        shared: Arc<Shared>,
        shard: usize,
        peer_addr: EntityAddr,
        peer_type: EntityType,
        check_peer_nonce: bool,
        dial_first: bool,
    ) -> (Addr<Pipe>, Connection) {
        Counters::add(&shared.counters.shard(shard).connections_created, 1);
        let id = shared.next_conn_id();
        let conn = Connection::new(
            id,
            shard,
            peer_type,
            peer_addr,
            Target::Pipe(Default::default()),
        );
        let policy = shared.policy_for(peer_type);
        let pipe_conn = conn.clone();
        let sh = shared.clone();
        let addr = Supervisor::start_in_arbiter(&shared.shards[shard], move |_ctx| {
            Pipe::new(sh, pipe_conn, policy, check_peer_nonce, dial_first)
        });
        if let Target::Pipe(cell) = &conn.inner.target {
            let _ = cell.set(addr.downgrade());
        }
        (addr, conn)
    }

    fn new(
        shared: Arc<Shared>,
        conn: Connection,
        policy: Policy,
        check_peer_nonce: bool,
        dial_first: bool,
    ) -> Self {
        let cfg = &shared.config;
        let peer = conn.peer_addr();
        let mut session = Session::new(policy.lossy);
        if shared.name.ty == EntityType::MON {
            session.set_default_priority(msgr::message::priority::HIGH);
        }
        Pipe {
            dialable: !policy.server && !peer.is_blank_ip() && peer.port() != 0,
            check_peer_nonce,
            dial_first,
            backoff: Backoff::new(cfg.ms_initial_backoff, cfg.ms_max_backoff),
            policy_bytes: policy.throttle_bytes.map(Throttle::new),
            policy_msgs: policy.throttle_messages.map(Throttle::new),
            shared,
            conn,
            policy,
            session,
            connect_seq: 0,
            peer_global_seq: 0,
            established: false,
            bump_connect_seq: false,
            ever_opened: false,
            state: State::New,
            gen: 0,
            handshake_attempt: 0,
            open_decided_at_gen: 0,
            socket_was_open: false,
            socket_accepted: false,
            fault: None,
            closing: false,
            started_once: false,
            encoder: None,
            features: 0,
            keepalive_due: false,
            keepalive2_acks: Vec::new(),
            flush_scheduled: false,
            stats_seen: SessionStats::default(),
            absorbed: Vec::new(),
        }
    }

    fn counters(&self) -> [&Counters; 2] {
        [
            &self.conn.inner.counters,
            self.shared.counters.shard(self.conn.inner.shard),
        ]
    }

    fn count(&self, f: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64, n: u64) {
        if n > 0 {
            for c in self.counters() {
                Counters::add(f(c), n);
            }
        }
    }

    /// Moves the session's own counters into the perf counters.
    fn sync_stats(&mut self) {
        let s = self.session.stats();
        let old = self.stats_seen;
        self.count(|c| &c.replayed, s.replayed - old.replayed);
        self.count(
            |c| &c.skipped_after_seq,
            s.skipped_after_seq - old.skipped_after_seq,
        );
        self.count(|c| &c.duplicates, s.duplicates - old.duplicates);
        self.count(|c| &c.dropped, s.dropped_by_reset - old.dropped_by_reset);
        self.count(
            |c| &c.lost_to_false_acks,
            s.lost_to_false_acks - old.lost_to_false_acks,
        );
        self.stats_seen = s;
    }

    fn event(&self, ev: ConnEvent) {
        self.shared
            .dispatch_queue(self.conn.inner.shard)
            .do_send(Deliver {
                conn: self.conn.clone(),
                items: vec![DispatchItem::Event(ev)],
            });
    }

    fn fault(&mut self, error: PipeError, ctx: &mut Context<Self>) {
        self.fault = Some(Fault { error });
        ctx.stop();
    }

    /// Drops the current socket: stops its reader and writer and, from a handler, cancels any
    /// handshake in progress.
    ///
    /// From `restarting()` nothing is cancelled: a restart drops every spawned future anyway,
    /// and it also restarts the context's handle numbering, so a cancel issued there would hit
    /// whatever future is spawned next under the same number.
    fn teardown_socket(&mut self, ctx: &mut Context<Self>, cancel_handles: bool) {
        match std::mem::replace(&mut self.state, State::Standby) {
            State::Open { reader, writer } => {
                reader.do_send(StopReader);
                writer.do_send(StopWriter);
            }
            State::Connecting(h)
            | State::Accepting(h)
            | State::Backoff(h)
            | State::Replacing(h) => {
                if cancel_handles {
                    ctx.cancel_future(h);
                }
            }
            other => self.state = other,
        }
        self.encoder = None;
        self.session.requeue_sent();
        self.conn
            .inner
            .connected
            .store(false, std::sync::atomic::Ordering::Release);
        self.sync_stats();
    }

    /// RESETSESSION or a restarted peer: the session starts over.
    fn reset_session(&mut self) {
        // With MSG_AUTH, Ceph randomizes out_seq after a reset (spec §2.7).
        let out_seq = if features::has_all(self.features, features::MSG_AUTH) {
            rand::thread_rng().gen_range(0..0x7fff_ffffu64)
        } else {
            0
        };
        self.session.reset(out_seq);
        self.connect_seq = 0;
        self.established = false;
        self.bump_connect_seq = false;
        self.count(|c| &c.session_resets, 1);
        self.sync_stats();
    }

    fn start_connect(&mut self, ctx: &mut Context<Self>) {
        let peer = self.conn.peer_addr();
        let Some(sock) = peer.addr else {
            self.state = State::Standby;
            return;
        };
        tracing::trace!(peer = %peer, cs = self.connect_seq, "dialling");
        if self.bump_connect_seq {
            self.connect_seq += 1;
            self.bump_connect_seq = false;
        }
        let cfg = &self.shared.config;
        let params = ConnectorParams {
            my_addr: self.shared.my_addr(),
            my_type: self.shared.name.ty,
            peer_addr: peer,
            check_peer_nonce: self.check_peer_nonce,
            policy: self.policy,
            global_seq: self.shared.next_global_seq(0),
            connect_seq: self.connect_seq,
            in_seq: self.session.in_seq(),
            protocol_version: self.shared.protocol_version(self.conn.peer_type(), true),
            authorizer: self.shared.authorizer.clone(),
            learn_addr: cfg.ms_learn_addr_from_peer,
        };
        let fut = handshake::connect(sock, params, self.shared.clone());
        let attempt = self.next_handshake_attempt();
        let h = ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.on_connected(attempt, res, ctx)),
        );
        self.state = State::Connecting(h);
    }

    fn schedule_connect(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        tracing::debug!(peer = %self.conn.peer_addr(), ?delay, "reconnecting after backoff");
        let h = ctx.run_later(delay, |act, ctx| {
            // Only a current backoff dials (see handshake_is_current on late cancels).
            if matches!(act.state, State::Backoff(_)) {
                act.start_connect(ctx);
            }
        });
        self.state = State::Backoff(h);
    }

    fn next_handshake_attempt(&mut self) -> u64 {
        self.handshake_attempt += 1;
        self.handshake_attempt
    }

    /// Whether the dial or accept numbered `attempt` (`what`: "a dial", "an accept") is the one
    /// the session still waits for.
    ///
    /// Every change away from a handshake cancels it, but actix only reaps a cancelled future
    /// after polling it once more: one that completed in the same turn as its cancel still
    /// reports (seen in the cluster sim). It must not open a second socket for the session; its
    /// socket just closes. The newest attempt is current while the session is Connecting or
    /// Accepting (each new attempt is numbered, so those states belong to it).
    fn handshake_is_current(&self, attempt: u64, what: &str) -> bool {
        let current = attempt == self.handshake_attempt
            && matches!(self.state, State::Connecting(_) | State::Accepting(_));
        if !current {
            tracing::warn!(peer = %self.conn.peer_addr(), state = self.state.name(), "ignoring {what} that is no longer current");
        }
        current
    }

    fn on_connected(
        &mut self,
        attempt: u64,
        res: Result<handshake::ConnectOutcome, PipeError>,
        ctx: &mut Context<Self>,
    ) {
        if !self.handshake_is_current(attempt, "a dial") {
            return;
        }
        let out = match res {
            Ok(out) => out,
            Err(e) => return self.fault(e, ctx),
        };
        if out.session_reset {
            tracing::info!(peer = %self.conn.peer_addr(), "peer reset our session");
            self.reset_session();
            self.event(ConnEvent::RemoteReset);
        }
        let est = out.est;
        self.shared.learn_addr(est.my_addr);
        self.conn.set_peer_addr(est.peer_addr);
        self.connect_seq = est.connect_seq;
        self.peer_global_seq = est.peer_global_seq;
        self.session.set_lossy(est.lossy);
        let restart = est.peer_acked_seq.is_none();
        self.open_socket(
            out.stream,
            out.inbuf,
            est.features,
            est.peer_acked_seq,
            restart,
            false,
            None,
            ctx,
        );
        self.event(ConnEvent::Connect);
    }

    #[allow(clippy::too_many_arguments)]
    fn open_socket(
        &mut self,
        stream: tokio::net::TcpStream,
        inbuf: BytesMut,
        features: u64,
        peer_acked: Option<u64>,
        restart_in_seq: bool,
        accepted: bool,
        slot: Option<SocketSlot>,
        ctx: &mut Context<Self>,
    ) {
        match peer_acked.map(|acked| self.session.skip_acked_by_peer(acked)) {
            Some(Ok(0)) => {}
            Some(Ok(lost)) => tracing::error!(
                peer = %self.conn.peer_addr(),
                conn = self.conn.id(),
                lost,
                "the peer lacks messages it acked: a false (corrupted) ACK released them"
            ),
            // The claim cannot be true: this socket is not to be trusted. Dropping it makes a
            // fault like any other; the replay waits for the next socket.
            Some(Err(e)) => {
                drop(stream);
                return self.fault(e.into(), ctx);
            }
            None if restart_in_seq => self.session.discard_requeued_and_restart_in_seq(),
            None => {}
        }
        self.session.note_in_seq_told_to_peer();
        self.gen += 1;
        self.features = features;
        let cfg = &self.shared.config;
        let msg_auth = uses_msg_auth(features);
        let (r, w) = stream.into_split();
        let me = ctx.address();
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
        let decoder = FrameDecoder::new(msg_auth, cfg.decoder_limits()).with_body_gate();
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
            self.gen,
        )
        .start();
        let writer = PipeWriter::new(
            w,
            me,
            self.gen,
            self.shared.injector.clone(),
            self.conn.clone(),
            self.shared.clone(),
        )
        .start();
        self.encoder = Some(FrameEncoder::new(msg_auth, cfg.ms_crc_data));
        if self.ever_opened {
            self.count(|c| &c.reconnects, 1);
        }
        self.ever_opened = true;
        self.established = true;
        self.bump_connect_seq = true;
        self.socket_was_open = true;
        self.socket_accepted = accepted;
        self.backoff.reset();
        self.state = State::Open { reader, writer };
        self.conn
            .inner
            .features
            .store(features, std::sync::atomic::Ordering::Relaxed);
        self.conn
            .inner
            .connected
            .store(true, std::sync::atomic::Ordering::Release);
        self.sync_stats();
        self.flush(ctx);
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }

    /// Numbers and encodes queued messages and hands them, with a due ACK and keepalives, to
    /// the writer as one batch.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let (State::Open { writer, .. }, Some(enc)) = (&self.state, self.encoder.as_mut()) else {
            return;
        };
        // Sized up front: a message is at most three chunks, plus one for control frames
        // (nothing to allocate for a flush with nothing queued, such as a scheduled Flush that
        // an earlier direct flush already served).
        let pending = self.session.pending_len().min(FLUSH_BATCH);
        let mut chunks = match pending {
            0 => Vec::new(),
            n => crate::recycle::batch(n * 3 + 1),
        };
        let mut sent = 0u64;
        while sent < FLUSH_BATCH as u64 {
            // Encoded by reference: the session keeps the message itself until it is acked.
            let more = self
                .session
                .send_next(|m| enc.append_message(m, &mut chunks));
            if !more {
                break;
            }
            sent += 1;
        }
        // Control frames of this flush go inline, after the messages.
        let mut acks = 0;
        if let Some(seq) = self.session.take_ack() {
            enc.append_control(&encode_ack(seq));
            acks = 1;
        }
        let mut keepalives = 0;
        if std::mem::take(&mut self.keepalive_due) {
            keepalives = 1;
            if self.features & MSGR_KEEPALIVE2 != 0 {
                enc.append_control(&encode_keepalive2(now(), false));
            } else {
                enc.append_control(&encode_keepalive());
            }
        }
        for ts in self.keepalive2_acks.drain(..) {
            keepalives += 1;
            enc.append_control(&encode_keepalive2(ts, true));
        }
        enc.finish_batch(&mut chunks);
        if !chunks.is_empty() {
            writer.do_send(Write(chunks));
        }
        self.count(|c| &c.msgs_out, sent);
        self.count(|c| &c.acks_out, acks);
        self.count(|c| &c.keepalives_out, keepalives);
        self.sync_stats();
        if self.session.has_pending() {
            self.schedule_flush(ctx);
        }
    }

    /// The facts an acceptor decision needs about this session.
    fn existing_facts(&self) -> Option<ExistingSession> {
        let state = match self.state {
            State::New if !self.established => return None,
            State::New | State::Standby => ExistingState::Standby,
            State::Connecting(_) | State::Backoff(_) => ExistingState::Connecting,
            State::Accepting(_) | State::Replacing(_) => ExistingState::Replacing,
            State::Open { .. } => ExistingState::Open,
            State::Closed => ExistingState::Closed,
        };
        Some(ExistingSession {
            connect_seq: self.connect_seq,
            peer_global_seq: self.peer_global_seq,
            state,
            lossy: self.policy.lossy,
            policy_server: self.policy.server,
            established: self.established,
        })
    }

    /// After a stop: apply the policy's verdict on the fault (spec §5).
    fn after_stop(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return self.close(ctx);
        }
        let Some(Fault { error }) = self.fault.take() else {
            self.state = State::Standby;
            return;
        };
        let error = Arc::new(error);
        let kind = error.kind();
        for c in self.counters() {
            c.fault(kind);
        }
        tracing::info!(peer = %self.conn.peer_addr(), conn = self.conn.id(), error = %error, "connection fault");
        *self.conn.inner.last_error.lock().expect("last_error lock") = Some(error.clone());
        if matches!(&*error, PipeError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            self.event(ConnEvent::Refused);
        }
        let has_queued = self.session.has_outstanding();
        let action = self.policy.on_fault(FaultContext {
            was_open: self.socket_was_open,
            accepted: self.socket_accepted,
            has_queued,
            in_wait: matches!(*error, PipeError::Wait),
            idle: matches!(*error, PipeError::Idle),
            session_established: self.established,
            peer_undialable: !self.dialable,
        });
        self.socket_was_open = false;
        self.socket_accepted = false;
        match action {
            FaultAction::MarkDown => {
                self.session.reset(0);
                self.sync_stats();
                self.event(ConnEvent::Reset);
                self.close(ctx);
            }
            FaultAction::Close => self.close(ctx),
            FaultAction::Standby => self.state = State::Standby,
            FaultAction::Reconnect(ReconnectKind::Immediate) => {
                self.backoff.reset();
                self.start_connect(ctx);
            }
            FaultAction::Reconnect(ReconnectKind::Backoff) => {
                let (initial, max) = self.shared.runtime.backoff_limits();
                self.backoff.set_limits(initial, max);
                let d = self.backoff.next_delay();
                self.schedule_connect(d, ctx);
            }
            FaultAction::Reconnect(ReconnectKind::AfterWait) => {
                let (initial, max) = self.shared.runtime.backoff_limits();
                self.backoff.set_limits(initial, max);
                let d = self.backoff.max();
                self.schedule_connect(d, ctx);
            }
        }
    }

    /// The session is over: drop what is queued, leave the registry.
    fn close(&mut self, _ctx: &mut Context<Self>) {
        self.session.reset(0);
        self.sync_stats();
        self.state = State::Closed;
        self.conn
            .inner
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.conn
            .inner
            .connected
            .store(false, std::sync::atomic::Ordering::Release);
        self.shared
            .registry()
            .do_send(Unregister { id: self.conn.id() });
    }

    /// An Open decision was made long ago and its socket never came: the accept task gave up
    /// (its handshake timed out around the decision, say). Waiting on would refuse the peer's
    /// every later connect (RETRY_GLOBAL against a session being replaced) and keep ours from
    /// dialling, for good; so this is a handshake timeout, and the policy decides what follows.
    fn adopt_overdue(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Replacing(_)) {
            tracing::info!(peer = %self.conn.peer_addr(), "the accepted socket never arrived");
            // A half-done accept: a Pipe made for it with nothing to keep closes.
            self.socket_accepted = true;
            self.fault(PipeError::HandshakeTimeout, ctx);
        }
    }

    fn on_accepted(
        &mut self,
        attempt: u64,
        res: Result<(tokio::net::TcpStream, BytesMut, msgr::handshake::Accepted), PipeError>,
        slot: Option<SocketSlot>,
        ctx: &mut Context<Self>,
    ) {
        if !self.handshake_is_current(attempt, "an accept") {
            return;
        }
        let (stream, inbuf, acc) = match res {
            Ok(v) => v,
            Err(e) => {
                self.socket_accepted = true;
                return self.fault(e, ctx);
            }
        };
        self.conn.set_peer_addr(acc.peer_addr);
        self.connect_seq = acc.connect_seq;
        self.peer_global_seq = acc.peer_global_seq;
        self.session.set_lossy(acc.lossy);
        self.open_socket(
            stream,
            inbuf,
            acc.features,
            acc.peer_acked_seq,
            acc.restart_in_seq,
            true,
            slot,
            ctx,
        );
        self.event(ConnEvent::Accept);
    }
}

fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as u32,
        nsec: d.subsec_nanos(),
    }
}

impl Actor for Pipe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.closing {
            return self.close(ctx);
        }
        let interval = self.shared.config.ms_keepalive_interval;
        if !self.policy.lossy && !interval.is_zero() {
            ctx.run_interval(interval, |act, ctx| {
                if matches!(act.state, State::Open { .. }) {
                    act.keepalive_due = true;
                    act.schedule_flush(ctx);
                }
            });
        }
        if !self.started_once {
            self.started_once = true;
            if self.dial_first {
                self.start_connect(ctx);
            }
            return;
        }
        self.after_stop(ctx);
    }
}

impl Supervised for Pipe {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.teardown_socket(ctx, false);
    }
}

impl Handler<SendMessage> for Pipe {
    type Result = ();
    fn handle(&mut self, SendMessage(msg): SendMessage, ctx: &mut Context<Self>) {
        self.conn
            .inner
            .in_mailbox
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.queue_message(msg, ctx);
    }
}

impl Pipe {
    fn queue_message(&mut self, msg: Message, ctx: &mut Context<Self>) {
        if self.enqueue(msg, ctx) {
            self.schedule_flush(ctx);
        }
    }

    /// Queues `msg` on the session (or drops it, closing); true when it now waits for a
    /// flush of the open socket, which the caller does or schedules.
    fn enqueue(&mut self, mut msg: Message, ctx: &mut Context<Self>) -> bool {
        if self.closing || matches!(self.state, State::Closed) {
            self.count(|c| &c.dropped, 1);
            return false;
        }
        msg.src = self.shared.name;
        self.session.enqueue(msg);
        match self.state {
            State::Open { .. } => return true,
            State::Standby if self.dialable => self.start_connect(ctx),
            _ => {}
        }
        false
    }
}

impl Handler<SendKeepalive> for Pipe {
    type Result = ();
    fn handle(&mut self, _: SendKeepalive, ctx: &mut Context<Self>) {
        self.keepalive_due = true;
        self.schedule_flush(ctx);
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
        if self.closing || matches!(self.state, State::Closed) {
            return;
        }
        if graceful {
            // Everything queued goes to the writer (a flush takes at most FLUSH_BATCH).
            loop {
                self.flush(ctx);
                if !(matches!(self.state, State::Open { .. }) && self.session.has_pending()) {
                    break;
                }
            }
            if let State::Open { reader, writer } =
                std::mem::replace(&mut self.state, State::Standby)
            {
                // The writer finishes what it has, then closes; the reader reads on until the
                // peer closes too. Neither is ours to stop any more.
                writer.do_send(CloseAfterFlush(self.shared.closing.start()));
                reader.do_send(DrainUntilClosed(self.shared.closing.start()));
            }
        }
        self.closing = true;
        ctx.stop();
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
        if gen != self.gen || !matches!(self.state, State::Open { .. }) {
            return;
        }
        let mut items = Vec::new();
        let mut accepted = 0;
        let mut need_flush = false;
        // Why this socket must end after the frames handled so far (the rest is not accepted,
        // so the peer replays it).
        let mut ended: Option<PipeError> = None;
        for f in frames.drain(..) {
            match f {
                InFrame::Message(m, mut guard) => {
                    let in_seq = self.session.in_seq();
                    match self.session.receive(m.seq) {
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
                            lossy = self.session.is_lossy(),
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
                    if let Err(e) = self.session.handle_ack(seq) {
                        ended = Some(e.into());
                        break;
                    }
                }
                InFrame::Other(Frame::Keepalive) | InFrame::Other(Frame::Keepalive2Ack(_)) => {
                    self.count(|c| &c.keepalives_in, 1);
                }
                InFrame::Other(Frame::Keepalive2(ts)) => {
                    self.count(|c| &c.keepalives_in, 1);
                    self.keepalive2_acks.push(ts);
                    need_flush = true;
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
        if need_flush || self.session.has_pending() || (accepted > 0 && !self.session.is_lossy()) {
            // One read's replies and its ACK go out together, now: the batch is already as
            // large as it will get (a scheduled Flush would only add an actor hop).
            self.flush(ctx);
        }
    }
}

impl Handler<SocketFault> for Pipe {
    type Result = ();
    fn handle(&mut self, SocketFault { gen, error }: SocketFault, ctx: &mut Context<Self>) {
        if gen == self.gen && matches!(self.state, State::Open { .. }) && !self.closing {
            self.fault(error, ctx);
        }
    }
}

impl Handler<DecideAccept> for Pipe {
    type Result = MessageResult<DecideAccept>;
    fn handle(&mut self, DecideAccept(req): DecideAccept, ctx: &mut Context<Self>) -> Self::Result {
        let peer_type = req.connect.host_type;
        let policy = self.shared.policy_for(peer_type);
        let existing = if self.closing {
            Some(ExistingSession {
                connect_seq: self.connect_seq,
                peer_global_seq: self.peer_global_seq,
                state: ExistingState::Closed,
                lossy: policy.lossy,
                policy_server: policy.server,
                established: false,
            })
        } else {
            self.existing_facts()
        };
        let decision = decide(
            &req,
            &AcceptContext {
                policy,
                protocol_version: self.shared.protocol_version(peer_type, false),
                authorizer_valid: verify_auth_none(
                    req.connect.authorizer_protocol,
                    &req.authorizer,
                ),
                my_addr: self.shared.my_addr(),
                existing,
            },
        );
        match decision {
            Decision::Open { .. } => {
                self.open_decided_at_gen = self.gen;
                if let State::Connecting(h) | State::Backoff(h) = self.state {
                    // Our own dial loses to the accepted socket (a replace).
                    ctx.cancel_future(h);
                }
                // A closing Pipe answers "closed" (the peer may open a new session) but waits
                // for nothing: its Adopt will be refused.
                if !self.closing && !matches!(self.state, State::Open { .. } | State::Closed) {
                    let deadline = self.shared.config.ms_connection_ready_timeout;
                    let h = ctx.run_later(deadline, |act, ctx| act.adopt_overdue(ctx));
                    self.state = State::Replacing(h);
                }
            }
            _ if matches!(self.state, State::New) && !self.established => {
                // A pipe made for this accept that will not open: nothing to keep.
                self.closing = true;
                ctx.stop();
            }
            _ => {}
        }
        tracing::debug!(peer = %req.peer_addr, gs = req.connect.global_seq, cs = req.connect.connect_seq, ?decision, "accept decision");
        MessageResult(decision)
    }
}

impl Handler<Adopt> for Pipe {
    type Result = ();
    fn handle(&mut self, a: Adopt, ctx: &mut Context<Self>) {
        let Decision::Open { reset_existing, .. } = a.decision else {
            return;
        };
        if self.closing || matches!(self.state, State::Closed) {
            return;
        }
        if matches!(self.state, State::Open { .. }) && self.gen != self.open_decided_at_gen {
            // Since the decision the session reconnected on a socket of its own, which the
            // peer accepted, and so gave up the dial this socket comes from: it is stale, and
            // adopting it would only tear down the live one. Dropping it closes it.
            tracing::debug!(peer = %self.conn.peer_addr(), "dropping an accepted socket the session has outgrown");
            return;
        }
        // Whatever this session is doing now goes: the decision was made against its state
        // then, and since then it may have faulted and started to dial again. A dial left
        // running would open a second socket for the session, and the second open would
        // strand the first socket's unacked messages (the peer would see a gap).
        self.teardown_socket(ctx, true);
        if reset_existing && self.established {
            self.reset_session();
            if self.policy.lossy {
                self.event(ConnEvent::Reset);
            } else {
                self.event(ConnEvent::RemoteReset);
            }
        }
        // The session is registered once the open reply goes out: the peer may consider it
        // open before we read its in_seq, and a later cs 0 from it is then not a restart.
        self.connect_seq = a.req.connect.connect_seq.wrapping_add(1);
        self.peer_global_seq = a.req.connect.global_seq;
        self.bump_connect_seq = false;
        let stream = match net::attach(a.stream) {
            Ok(s) => s,
            Err(e) => return self.fault(e.into(), ctx),
        };
        let peer_type = a.req.connect.host_type;
        let reply = ReplyContext {
            policy: self.shared.policy_for(peer_type),
            protocol_version: self.shared.protocol_version(peer_type, false),
            server_global_seq: self.shared.next_global_seq(0),
            in_seq: self.session.in_seq(),
        };
        let slot = a.slot;
        let fut = handshake::finish_accept(
            stream,
            a.acceptor,
            a.inbuf,
            a.decision,
            reply,
            self.shared.clone(),
        );
        let attempt = self.next_handshake_attempt();
        let h = ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.on_accepted(attempt, res, slot, ctx)),
        );
        self.state = State::Accepting(h);
    }
}

impl Handler<GetInfo> for Pipe {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Context<Self>) -> Self::Result {
        MessageResult(PipeInfo {
            state: self.state.name(),
            connect_seq: self.connect_seq,
            in_seq: self.session.in_seq(),
            out_seq: self.session.out_seq(),
            acked: self.session.peer_acked(),
            pending: self.session.pending_len(),
            unacked: self.session.unacked_len(),
            lossy: self.session.is_lossy(),
        })
    }
}
