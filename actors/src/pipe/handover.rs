//! Handshakes as the machine asks for them: dialling, the answer to an accepted connect, the
//! hand-over of an accepted socket, and reporting each outcome back (under its attempt number,
//! so a late one is told apart).

use actix::prelude::*;
use bytes::BytesMut;
use msgr::handshake::{AcceptContext, Accepted, ConnectorParams, ReplyContext};
use msgr::pipe::{Adoption, Completion};

use super::handshake::{self, DialStep};
use super::{now, HandedSocket, Pipe};
use crate::error::PipeError;
use crate::msgs::{AcceptingSide, Adopt, DecideAccept, DecideAcceptV2};
use crate::net::{self, SocketSlot};

impl Pipe {
    /// The machine dials: the connector runs over a new socket in a spawned future.
    pub(super) fn dial(
        &mut self,
        attempt: u64,
        connect_seq: u32,
        in_seq: u64,
        ctx: &mut Context<Self>,
    ) {
        if self.v2 {
            return self.dial_v2(attempt, connect_seq, in_seq, ctx);
        }
        let peer = self.conn.peer_addr();
        let Some(sock) = peer.addr else {
            return self.machine.dial_impossible(attempt);
        };
        tracing::trace!(peer = %peer, cs = connect_seq, "dialling");
        let (authorizer, cephx) = match self.shared.auth.dial_auth(self.conn.peer_type()) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "cannot authenticate to the peer");
                let e = PipeError::Handshake(msgr::handshake::HandshakeError::Cephx(e));
                return self.handshake_failed(attempt, e, ctx);
            }
        };
        let cfg = &self.shared.config;
        let params = ConnectorParams {
            my_addr: self.shared.my_addr(),
            my_type: self.shared.name.ty,
            peer_addr: peer,
            check_peer_nonce: self.check_peer_nonce,
            policy: self.policy,
            global_seq: self.shared.next_global_seq(0),
            connect_seq,
            in_seq,
            protocol_version: self.shared.protocol_version(self.conn.peer_type(), true),
            authorizer,
            cephx,
            learn_addr: cfg.ms_learn_addr_from_peer,
        };
        let fut = handshake::connect(sock, params, self.shared.clone());
        self.await_dial(attempt, fut, ctx);
    }

    /// Waits for the dial numbered `attempt` to reach its next step.
    fn await_dial(
        &mut self,
        attempt: u64,
        fut: impl std::future::Future<Output = Result<DialStep, PipeError>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        let h = ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.on_connected(attempt, res, ctx)),
        );
        self.handshake = Some(h);
    }

    /// A handshake numbered `attempt` failed: it faults the session if it still counted.
    pub(super) fn handshake_failed(
        &mut self,
        attempt: u64,
        error: PipeError,
        ctx: &mut Context<Self>,
    ) {
        if self.machine.handshake_failed(attempt) {
            self.handshake = None;
            self.fault(error, ctx);
        } else {
            self.ignore_stale(attempt);
        }
    }

    fn ignore_stale(&self, attempt: u64) {
        tracing::warn!(peer = %self.conn.peer_addr(), state = %self.machine.state(), attempt, "ignoring a handshake that is no longer current");
    }

    /// Reports a finished handshake's outcome, with its socket ready for `OpenSocket`.
    pub(super) fn completed(
        &mut self,
        attempt: u64,
        socket: HandedSocket,
        outcome: Result<Completion, msgr::session::SessionError>,
        ctx: &mut Context<Self>,
    ) {
        self.handed = Some(socket);
        match outcome {
            Ok(Completion::Opened { .. }) => self.handshake = None,
            // Dropping the socket closes it.
            Ok(Completion::Stale) => self.ignore_stale(attempt),
            Err(e) => {
                self.handshake = None;
                self.fault(e.into(), ctx)
            }
        }
        self.drive(ctx);
        self.handed = None;
        self.v2_reader = None;
    }

    fn on_connected(
        &mut self,
        attempt: u64,
        res: Result<DialStep, PipeError>,
        ctx: &mut Context<Self>,
    ) {
        let out = match res {
            Ok(DialStep::Ready(out)) => *out,
            Ok(DialStep::SessionReset(dialling)) => {
                if !self.machine.peer_reset_session(attempt) {
                    return self.ignore_stale(attempt);
                }
                tracing::info!(peer = %self.conn.peer_addr(), "peer reset our session");
                self.drive(ctx);
                let fut = handshake::resume_connect(dialling, self.shared.clone());
                return self.await_dial(attempt, fut, ctx);
            }
            Err(e) => return self.handshake_failed(attempt, e, ctx),
        };
        // The machine says whether the dial still counts (a stale one changes nothing).
        let outcome = self.machine.dialled(now(), attempt, &out.est);
        if !matches!(outcome, Ok(Completion::Stale)) {
            self.shared.learn_addr(out.est.my_addr);
            self.conn.set_peer_addr(out.est.peer_addr);
        }
        let socket = HandedSocket {
            stream: out.stream,
            inbuf: out.inbuf,
            slot: None,
        };
        self.completed(attempt, socket, outcome, ctx);
    }

    fn on_accepted(
        &mut self,
        attempt: u64,
        res: Result<(tokio::net::TcpStream, BytesMut, Accepted), PipeError>,
        slot: Option<SocketSlot>,
        ctx: &mut Context<Self>,
    ) {
        let (stream, inbuf, acc) = match res {
            Ok(v) => v,
            Err(e) => return self.handshake_failed(attempt, e, ctx),
        };
        let outcome = self.machine.accepted(now(), attempt, &acc);
        if !matches!(outcome, Ok(Completion::Stale)) {
            self.conn.set_peer_addr(acc.peer_addr);
        }
        let socket = HandedSocket {
            stream,
            inbuf,
            slot,
        };
        self.completed(attempt, socket, outcome, ctx);
    }
}

impl Handler<DecideAccept> for Pipe {
    type Result = MessageResult<DecideAccept>;
    fn handle(&mut self, DecideAccept(req): DecideAccept, ctx: &mut Context<Self>) -> Self::Result {
        let peer_type = req.connect.host_type;
        let ctx_facts = AcceptContext {
            policy: self.shared.policy_for(peer_type),
            protocol_version: self.shared.protocol_version(peer_type, false),
            authorizer_valid: req.auth.is_valid(),
            my_addr: self.shared.my_addr(),
            existing: None,
        };
        let decision = self.machine.decide_accept(now(), &req, ctx_facts);
        self.drive(ctx);
        tracing::debug!(peer = %req.peer_addr, gs = req.connect.global_seq, cs = req.connect.connect_seq, ?decision, "accept decision");
        MessageResult((decision, self.machine.generation()))
    }
}

impl Handler<DecideAcceptV2> for Pipe {
    type Result = MessageResult<DecideAcceptV2>;
    fn handle(&mut self, m: DecideAcceptV2, ctx: &mut Context<Self>) -> Self::Result {
        let DecideAcceptV2(req, v2) = m;
        let peer_type = req.connect.host_type;
        let ctx_facts = AcceptContext {
            policy: self.shared.policy_for(peer_type),
            protocol_version: self.shared.protocol_version(peer_type, false),
            authorizer_valid: true,
            my_addr: self
                .shared
                .my_addr_v2()
                .unwrap_or_else(|| self.shared.my_addr()),
            existing: None,
        };
        let decision = self.machine.decide_accept_v2(now(), &req, ctx_facts, v2);
        self.drive(ctx);
        tracing::debug!(peer = %req.peer_addr, gs = req.connect.global_seq, cs = req.connect.connect_seq, ?v2, ?decision, "msgr2 accept decision");
        MessageResult((decision, self.machine.generation()))
    }
}

impl Handler<Adopt> for Pipe {
    type Result = ();
    fn handle(&mut self, a: Adopt, ctx: &mut Context<Self>) {
        let (attempt, in_seq) = match self.machine.adopt(&a.req, a.decision, a.decided_at) {
            Adoption::Finish { attempt, in_seq } => (attempt, in_seq),
            // Dropping the socket closes it.
            Adoption::Refused => return,
            Adoption::Outgrown => {
                tracing::debug!(peer = %self.conn.peer_addr(), "dropping an accepted socket the session has outgrown");
                return;
            }
        };
        // What the session was doing goes first (its socket, dial or backoff).
        self.drive(ctx);
        let stream = match net::attach(a.stream) {
            Ok(s) => s,
            Err(e) => return self.fault(e.into(), ctx),
        };
        let peer_type = a.req.connect.host_type;
        let acceptor = match a.acceptor {
            AcceptingSide::V1(acc) => *acc,
            AcceptingSide::V2 {
                acceptor,
                peer_gid,
                v2,
                reconnect_msg_seq,
            } => {
                let handover = super::msgr2::V2Handover {
                    acceptor: *acceptor,
                    peer_gid,
                    v2,
                    reconnect_msg_seq,
                    in_seq,
                    req: a.req,
                    inbuf: a.inbuf,
                    slot: a.slot,
                };
                return self.finish_accept_v2(attempt, stream, handover, ctx);
            }
        };
        let reply = ReplyContext {
            policy: self.shared.policy_for(peer_type),
            protocol_version: self.shared.protocol_version(peer_type, false),
            server_global_seq: self.shared.next_global_seq(0),
            in_seq,
        };
        let slot = a.slot;
        let fut = handshake::finish_accept(
            stream,
            acceptor,
            a.inbuf,
            a.decision,
            reply,
            self.shared.clone(),
        );
        let h = ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.on_accepted(attempt, res, slot, ctx)),
        );
        self.handshake = Some(h);
    }
}
