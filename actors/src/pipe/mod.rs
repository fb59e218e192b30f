//! `Pipe`: the actor of one peer session. It drives `msgr::pipe::Machine`, which owns the
//! session and decides every protocol question (when to dial, how to answer an accepted
//! connect, whether a late handshake still counts, what a fault leads to, when keepalives are
//! due); the actor holds what only a runtime can: the handshake futures, the PipeReader and
//! PipeWriter of the open socket, the timer, the counters and the actix addresses.
//!
//! The Pipe is an actix `Supervised` actor. A fault stops it; `restarting()` drops the socket's
//! actors and the futures; `started()` then feeds the fault to the machine, whose actions say
//! what follows (mark down, reconnect with backoff and replay, stand by, close). Supervision is
//! the mechanism; the machine is the decision. The actor's address, and so every `Connection`
//! handle, survives the restart.
//!
//! Files: this one (the actor, its actions and faults), `traffic.rs` (the open socket: sends,
//! input, flushes), `handover.rs` (dials and accept hand-overs), `handshake.rs` (the handshake
//! IO loops).

mod handover;
mod handshake;
#[cfg(feature = "fault-injection")]
mod kill;
mod msgr2;
#[cfg(test)]
mod tests;
mod traffic;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix::WeakAddr;
use bytes::BytesMut;
use msgr::pipe::{Action, Failure, FaultKind, Machine, PipeConfig, PipeEvent, PipeStats};
use msgr::{EntityAddr, EntityType, Message, Policy};

use crate::connection::{Connection, PipeLink, Target};
use crate::counters::Counters;
use crate::dispatcher::ConnEvent;
use crate::error::PipeError;
use crate::msgs::{
    AcceptRoute, Deliver, DispatchItem, GetInfo, PipeControl, SendMessage, StopReader, StopWriter,
    Unregister,
};
use crate::net::SocketSlot;
use crate::reader::PipeReader;
use crate::shared::Shared;
use crate::throttle::Throttle;
use crate::writer::PipeWriter;

/// A Connection reaches its Pipe through the Pipe's weak address (the Connection must not keep
/// a closed session's actor alive).
impl PipeLink for WeakAddr<Pipe> {
    fn send(&self, msg: SendMessage) -> bool {
        self.upgrade().map(|a| a.do_send(msg)).is_some()
    }

    fn control(&self, msg: PipeControl) -> bool {
        self.upgrade().map(|a| a.do_send(msg)).is_some()
    }

    fn info(&self) -> Option<Recipient<GetInfo>> {
        self.upgrade().map(Addr::recipient)
    }
}

/// The actors of the open socket.
struct Socket {
    reader: Addr<PipeReader>,
    writer: Addr<PipeWriter>,
}

/// A finished handshake's socket, waiting for the machine's `OpenSocket`.
struct HandedSocket {
    stream: tokio::net::TcpStream,
    inbuf: BytesMut,
    slot: Option<SocketSlot>,
}

/// The session actor for one peer.
pub struct Pipe {
    shared: Arc<Shared>,
    conn: Connection,
    /// The session and every decision about it.
    machine: Machine,
    /// Our policy for the peer (the connector sends it).
    policy: Policy,
    check_peer_nonce: bool,
    /// The dial or accept hand-over in flight.
    handshake: Option<SpawnHandle>,
    /// Set between a handshake's success and the machine's `OpenSocket`.
    handed: Option<HandedSocket>,
    /// The peer speaks msgr2 (dials run the msgr2 handshake).
    v2: bool,
    /// A msgr2 handshake's reader (its cipher state), for the socket `OpenSocket` opens.
    v2_reader: Option<msgr::framing::V2Decoder>,
    socket: Option<Socket>,
    /// The machine's earliest deadline, and the future that reports it.
    timer: Option<(Instant, SpawnHandle)>,
    /// Why the actor stopped, for `started()` after the restart.
    fault: Option<PipeError>,
    flush_scheduled: bool,
    stats_seen: PipeStats,
    policy_bytes: Option<Throttle>,
    policy_msgs: Option<Throttle>,
    /// Reused buffer for messages sent from this connection's own fast dispatch.
    absorbed: Vec<Message>,
}

/// The runtime's clock (tokio's, so that a paused test clock holds for the machine too).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Pipe {
    /// Starts a Pipe on `shard`. `dial_first`: an outgoing connection, dialled at once.
    pub(crate) fn start(
        shared: Arc<Shared>,
        shard: usize,
        peer_addr: EntityAddr,
        peer_type: EntityType,
        check_peer_nonce: bool,
        dial_first: bool,
        v2: bool,
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
            Pipe::new(sh, pipe_conn, policy, check_peer_nonce, dial_first, v2)
        });
        if let Target::Pipe(cell) = &conn.inner.target {
            let _ = cell.set(Box::new(addr.downgrade()));
        }
        (addr, conn)
    }

    /// Where an accept task takes a connect this Pipe is to decide on.
    pub(crate) fn accept_route(addr: &Addr<Pipe>) -> AcceptRoute {
        AcceptRoute {
            decide: addr.clone().recipient(),
            decide_v2: addr.clone().recipient(),
            adopt: addr.clone().recipient(),
        }
    }

    fn new(
        shared: Arc<Shared>,
        conn: Connection,
        policy: Policy,
        check_peer_nonce: bool,
        dial_first: bool,
        v2: bool,
    ) -> Self {
        let cfg = &shared.config;
        let peer = conn.peer_addr();
        let (initial_backoff, max_backoff) = shared.runtime.backoff_limits();
        let machine = Machine::new(PipeConfig {
            policy,
            dialable: !policy.server && !peer.is_blank_ip() && peer.port() != 0,
            dial_first,
            initial_backoff,
            max_backoff,
            ready_timeout: cfg.ms_connection_ready_timeout,
            keepalive_interval: cfg.ms_keepalive_interval,
            default_priority: (shared.name.ty == EntityType::MON)
                .then_some(msgr::message::priority::HIGH),
            crc_data: cfg.ms_crc_data,
            seed: rand::random(),
            sign_messages: cfg.cephx_sign_messages,
        });
        Pipe {
            check_peer_nonce,
            policy_bytes: policy.throttle_bytes.map(Throttle::new),
            policy_msgs: policy.throttle_messages.map(Throttle::new),
            shared,
            conn,
            machine,
            policy,
            handshake: None,
            handed: None,
            v2,
            v2_reader: None,
            socket: None,
            timer: None,
            fault: None,
            flush_scheduled: false,
            stats_seen: PipeStats::default(),
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

    /// Moves the machine's counters into the perf counters.
    fn sync_stats(&mut self) {
        let s = self.machine.stats();
        let old = self.stats_seen;
        if s == old {
            return;
        }
        let (n, o) = (s.session, old.session);
        self.count(|c| &c.replayed, n.replayed - o.replayed);
        self.count(
            |c| &c.skipped_after_seq,
            n.skipped_after_seq - o.skipped_after_seq,
        );
        self.count(|c| &c.duplicates, n.duplicates - o.duplicates);
        self.count(|c| &c.dropped, n.dropped_by_reset - o.dropped_by_reset);
        let lost = n.lost_to_false_acks - o.lost_to_false_acks;
        if lost > 0 {
            tracing::error!(
                peer = %self.conn.peer_addr(),
                conn = self.conn.id(),
                lost,
                "the peer lacks messages it acked: a false (corrupted) ACK released them"
            );
        }
        self.count(|c| &c.lost_to_false_acks, lost);
        self.count(|c| &c.reconnects, s.reconnects - old.reconnects);
        self.count(|c| &c.session_resets, s.session_resets - old.session_resets);
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

    /// Stops the actor for `error`; supervision restarts it and `started()` hands the fault
    /// to the machine.
    fn fault(&mut self, error: PipeError, ctx: &mut Context<Self>) {
        self.fault = Some(error);
        ctx.stop();
    }

    /// Carries out what the machine asks for, then follows its timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Dial {
                    attempt,
                    connect_seq,
                    in_seq,
                } => self.dial(attempt, connect_seq, in_seq, ctx),
                Action::CancelHandshake => {
                    if let Some(h) = self.handshake.take() {
                        ctx.cancel_future(h);
                    }
                }
                Action::OpenSocket {
                    gen,
                    features,
                    verifier,
                } => self.open_socket(gen, features, verifier, ctx),
                Action::DropSocket { graceful } => self.drop_socket(graceful),
                Action::Event(ev) => self.event(match ev {
                    PipeEvent::Connect => ConnEvent::Connect,
                    PipeEvent::Accept => ConnEvent::Accept,
                    PipeEvent::Reset => ConnEvent::Reset,
                    PipeEvent::RemoteReset => ConnEvent::RemoteReset,
                    PipeEvent::Refused => ConnEvent::Refused,
                }),
                Action::Closed => {
                    self.conn.inner.closed.store(true, Ordering::Release);
                    self.conn.inner.connected.store(false, Ordering::Release);
                    self.shared
                        .routes()
                        .unregister
                        .do_send(Unregister { id: self.conn.id() });
                }
                Action::Fail(Failure::AdoptOverdue) => {
                    tracing::info!(peer = %self.conn.peer_addr(), "the accepted socket never arrived");
                    self.fault(PipeError::HandshakeTimeout, ctx);
                }
                Action::Fail(Failure::Framing(e)) => {
                    self.fault(PipeError::Decode(msgr::DecodeError::V2(Box::new(e))), ctx);
                }
            }
        }
        self.sync_stats();
        self.follow_timer(ctx);
    }

    /// Keeps one actix timer on the machine's earliest deadline.
    fn follow_timer(&mut self, ctx: &mut Context<Self>) {
        let wanted = self.machine.poll_timeout();
        if wanted == self.timer.as_ref().map(|t| t.0) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = wanted {
            let h = ctx.run_later(at.saturating_duration_since(now()), |act, ctx| {
                act.timer = None;
                act.machine.handle_timeout(now());
                act.drive(ctx);
                if act.machine.wants_transmit() {
                    act.schedule_flush(ctx);
                }
            });
            self.timer = Some((at, h));
        }
    }

    /// Stops the open socket's actors.
    fn drop_socket(&mut self, graceful: bool) {
        if let Some(Socket { reader, writer }) = self.socket.take() {
            if graceful {
                // The writer finishes what it has, then closes; the reader reads on until the
                // peer closes too. Neither is ours to stop any more.
                writer.do_send(crate::msgs::CloseAfterFlush(self.shared.closing.start()));
                reader.do_send(crate::msgs::DrainUntilClosed(self.shared.closing.start()));
            } else {
                reader.do_send(StopReader);
                writer.do_send(StopWriter);
            }
        }
        self.conn.inner.connected.store(false, Ordering::Release);
    }

    /// After a restart: the machine hears of the fault.
    fn after_fault(&mut self, ctx: &mut Context<Self>) {
        let Some(error) = self.fault.take() else {
            tracing::debug!(peer = %self.conn.peer_addr(), "restarted without a fault");
            self.machine.fault(now(), FaultKind::Other);
            return self.drive(ctx);
        };
        let error = Arc::new(error);
        for c in self.counters() {
            c.fault(error.kind());
        }
        tracing::info!(peer = %self.conn.peer_addr(), conn = self.conn.id(), error = %error, "connection fault");
        *self.conn.inner.last_error.lock().expect("last_error lock") = Some(error.clone());
        let kind = match &*error {
            PipeError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                FaultKind::Refused
            }
            PipeError::Wait => FaultKind::Wait,
            PipeError::Idle => FaultKind::Idle,
            _ => FaultKind::Other,
        };
        let (initial, max) = self.shared.runtime.backoff_limits();
        self.machine.set_backoff_limits(initial, max);
        self.machine.fault(now(), kind);
        self.drive(ctx);
    }
}

impl Actor for Pipe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.machine.start() {
            return self.drive(ctx);
        }
        self.after_fault(ctx);
    }
}

impl Supervised for Pipe {
    /// Drops what ran on the failed socket. Nothing is cancelled here: a restart drops every
    /// spawned future anyway, and it also restarts the context's handle numbering, so a
    /// cancel issued now would hit whatever future is spawned next under the same number.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.handshake = None;
        self.timer = None;
        self.handed = None;
        self.drop_socket(false);
    }
}
