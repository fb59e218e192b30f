//! A Pipe's msgr2 handshakes: dialling with the V2Connector over a new socket, and adopting a
//! socket the msgr2 accept task handed over (SERVER_IDENT). Either way the session then opens
//! on the machine with msgr2's framing, as a v1 handshake's would. A lossless session
//! resumes with SESSION_RECONNECT under its cookies (the machine keeps them).

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use bytes::BytesMut;
use msgr::framing::{SessionEncoder, V2Decoder};
use msgr::handshake::{Accepted, Established, HandshakeError};
use msgr::pipe::{Completion, V2Connect};
use msgr::v2::acceptor::{IdentReply, V2Acceptor};
use msgr::v2::addr::{AddrType, TypedAddr};
use msgr::v2::connector::{
    unbound_addrs, Resume, V2Connector, V2ConnectorEvent, V2ConnectorParams, V2Established,
};
use msgr::v2::{FrameLimits, FrameReader, FrameWriter, V2Error};
use msgr::{EntityAddr, EntityName};
use tokio::net::TcpStream;

use super::{now, HandedSocket, Pipe};
use crate::auth::wall_clock;
use crate::error::PipeError;
use crate::handshake_io::{next_event, write_output};
use crate::net::{self, SocketSlot};
use crate::shared::Shared;

/// A finished msgr2 dial.
pub(super) struct V2Outcome {
    stream: TcpStream,
    inbuf: BytesMut,
    est: V2Established,
    reader: FrameReader,
    writer: FrameWriter,
}

fn v2_error(e: V2Error) -> PipeError {
    PipeError::Handshake(HandshakeError::V2(Box::new(e)))
}

impl Pipe {
    /// The machine dials, and the peer speaks msgr2.
    pub(super) fn dial_v2(
        &mut self,
        attempt: u64,
        connect_seq: u32,
        in_seq: u64,
        ctx: &mut Context<Self>,
    ) {
        let peer = self.conn.peer_addr();
        let Some(sock) = peer.addr else {
            return self.machine.dial_impossible(attempt);
        };
        // A lossless session is resumed when the server gave it a cookie; else it begins (or
        // begins again) with a CLIENT_IDENT under its client cookie.
        let lossy = self.policy.lossy;
        let (client_cookie, server_cookie) = match self.machine.v2_cookies() {
            _ if lossy => (0, 0),
            Some(c) => c,
            None => (rand::random::<u64>().max(1), 0),
        };
        let resume = (server_cookie != 0).then_some(Resume {
            server_cookie,
            connect_seq: u64::from(connect_seq),
            in_seq,
        });
        let peer_type = self.conn.peer_type();
        let auth = match self.shared.auth.v2_client_auth(peer_type) {
            Ok(a) => a,
            Err(e) => {
                let e = PipeError::Handshake(HandshakeError::Cephx(e));
                return self.handshake_failed(attempt, e, ctx);
            }
        };
        let cfg = &self.shared.config;
        // Our bound addresses (v2 first), or, never bound, an ANY address for the IP to be
        // learned: the peer files our session under the first.
        let bound = self.shared.my_addrvec();
        let my_addrs = if bound.0.iter().all(|a| a.addr.is_blank_ip()) {
            unbound_addrs(self.shared.my_addr().nonce)
        } else {
            bound
        };
        let params = V2ConnectorParams {
            my_type: self.shared.name.ty,
            my_addrs,
            target: TypedAddr::v2(peer),
            check_peer_nonce: self.check_peer_nonce,
            peer_type,
            gid: self.shared.name.num,
            global_seq: u64::from(self.shared.next_global_seq(0)),
            features_supported: self.policy.features_supported,
            features_required: self.policy.features_required,
            lossy,
            client_cookie,
            modes: cfg.client_modes(self.shared.name.ty, peer_type),
            auth,
            learn_addr: cfg.ms_learn_addr_from_peer,
            resume,
            limits: FrameLimits {
                max_message: cfg.ms_max_message_bytes,
                ..FrameLimits::default()
            },
            now: wall_clock(),
        };
        let fut = connect_v2(sock, params, self.shared.clone());
        self.await_dial_v2(attempt, server_cookie, fut, ctx);
    }

    fn await_dial_v2(
        &mut self,
        attempt: u64,
        server_cookie: u64,
        fut: impl std::future::Future<Output = Result<V2DialStep, PipeError>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        let h = ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.on_connected_v2(attempt, server_cookie, res, ctx)),
        );
        self.handshake = Some(h);
    }

    fn on_connected_v2(
        &mut self,
        attempt: u64,
        server_cookie: u64,
        res: Result<V2DialStep, PipeError>,
        ctx: &mut Context<Self>,
    ) {
        let out = match res {
            Ok(V2DialStep::Ready(out)) => *out,
            Ok(V2DialStep::SessionReset(dialling)) => {
                // A full SESSION_RESET: the session starts over now, before the dial goes on
                // (as v1's RESETSESSION), so nothing of the old one is replayed to the new.
                if !self.machine.peer_reset_session(attempt) {
                    return;
                }
                tracing::info!(peer = %self.conn.peer_addr(), "peer reset our msgr2 session");
                self.drive(ctx);
                let fut = resume_connect_v2(dialling, self.shared.clone());
                return self.await_dial_v2(attempt, 0, fut, ctx);
            }
            Err(e) => return self.handshake_failed(attempt, e, ctx),
        };
        let peer = self.conn.peer_addr();
        let v2 = &out.est;
        // The server's nonce, from the msgr2 address it lists for the socket we dialled.
        let nonce = v2
            .peer_addrs
            .0
            .iter()
            .find(|a| a.ty == AddrType::Msgr2 && a.addr.addr == peer.addr)
            .map_or(peer.nonce, |a| a.addr.nonce);
        let my_addr = v2
            .my_addrs
            .0
            .first()
            .map_or(self.shared.my_addr(), |a| EntityAddr {
                nonce: self.shared.my_addr().nonce,
                addr: a.addr.addr,
            });
        let fresh = v2.peer_acked_seq.is_none();
        let est = Established {
            peer_addr: EntityAddr {
                nonce,
                addr: peer.addr,
            },
            my_addr,
            features: v2.features,
            // The server counts a fresh session's connect_seq from 1, a resumed one from
            // what the last SESSION_RECONNECT carried.
            connect_seq: if fresh {
                1
            } else {
                (v2.connect_seq as u32).wrapping_add(1)
            },
            peer_global_seq: v2.peer_global_seq as u32,
            global_seq: 0,
            lossy: v2.lossy,
            peer_acked_seq: v2.peer_acked_seq,
            // msgr2 has no per-message signatures: the frames carry their own integrity.
            session_key: None,
        };
        let src = EntityName::new(self.conn.peer_type(), v2.peer_gid);
        self.v2_reader = Some(V2Decoder::new(out.reader, src));
        let framing = SessionEncoder::V2(Box::new(out.writer));
        let cookies = (
            v2.client_cookie,
            if fresh {
                v2.server_cookie
            } else {
                server_cookie
            },
        );
        let outcome = self
            .machine
            .dialled_as(now(), attempt, &est, Some(framing), fresh);
        if let Ok(Completion::Opened { .. }) = outcome {
            if !self.policy.lossy {
                self.machine.v2_opened(cookies);
            }
        }
        if !matches!(outcome, Ok(Completion::Stale)) {
            if self.shared.my_addr().is_blank_ip() && !my_addr.is_blank_ip() {
                self.shared.learn_addr(my_addr);
            }
            self.conn.set_peer_addr(est.peer_addr);
        }
        let socket = HandedSocket {
            stream: out.stream,
            inbuf: out.inbuf,
            slot: None,
        };
        self.completed(attempt, socket, outcome, ctx);
    }
}

/// A msgr2 dial under way, paused for the session to hear of a full reset.
pub(super) struct V2Dialling {
    stream: TcpStream,
    conn: V2Connector,
    inbuf: BytesMut,
    deadline: tokio::time::Instant,
}

/// Where a msgr2 dial stands when it hands control back to the Pipe.
pub(super) enum V2DialStep {
    /// READY.
    Ready(Box<V2Outcome>),
    /// A full SESSION_RESET: the session must reset, then the dial goes on.
    SessionReset(Box<V2Dialling>),
}

/// Dials `peer` and runs the msgr2 connector within `ms_connection_ready_timeout`.
async fn connect_v2(
    peer: SocketAddr,
    params: V2ConnectorParams,
    shared: Arc<Shared>,
) -> Result<V2DialStep, PipeError> {
    let deadline = tokio::time::Instant::now() + shared.config.ms_connection_ready_timeout;
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(peer))
        .await
        .map_err(|_| PipeError::HandshakeTimeout)??;
    net::tune(&stream, &shared.config)?;
    let d = V2Dialling {
        stream,
        conn: V2Connector::new(params),
        inbuf: BytesMut::with_capacity(1024),
        deadline,
    };
    resume_connect_v2(Box::new(d), shared).await
}

/// Runs a msgr2 dial's connector on, within its deadline.
async fn resume_connect_v2(
    d: Box<V2Dialling>,
    shared: Arc<Shared>,
) -> Result<V2DialStep, PipeError> {
    let deadline = d.deadline;
    let mut d = *d;
    tokio::time::timeout_at(deadline, async move {
        loop {
            match next_event(&mut d.stream, &mut d.conn, &mut d.inbuf).await? {
                V2ConnectorEvent::Ready(est) => {
                    let (reader, writer) = d.conn.into_codec();
                    return Ok(V2DialStep::Ready(Box::new(V2Outcome {
                        stream: d.stream,
                        inbuf: d.inbuf,
                        est: *est,
                        reader,
                        writer,
                    })));
                }
                V2ConnectorEvent::NeedGlobalSeq { peer_global_seq } => {
                    let gs = shared.next_global_seq(peer_global_seq as u32);
                    d.conn.retry_global(u64::from(gs)).map_err(v2_error)?;
                }
                V2ConnectorEvent::Wait => return Err(PipeError::Wait),
                V2ConnectorEvent::SessionReset { full: true } => {
                    return Ok(V2DialStep::SessionReset(Box::new(d)));
                }
                // The server never finished the session (no server cookie): the connector
                // already began a fresh one; what is queued goes out again on it.
                V2ConnectorEvent::SessionReset { full: false } => {}
            }
        }
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)?
}

/// An accepted msgr2 socket's handshake, as the accept task handed it over.
pub(super) struct V2Handover {
    pub(super) acceptor: V2Acceptor,
    pub(super) peer_gid: i64,
    /// The ident's cookies and kind.
    pub(super) v2: V2Connect,
    /// A SESSION_RECONNECT's msg_seq (the client's in_seq).
    pub(super) reconnect_msg_seq: Option<u64>,
    /// Our in_seq, for SESSION_RECONNECT_OK.
    pub(super) in_seq: u64,
    pub(super) req: msgr::handshake::ConnectRequest,
    pub(super) inbuf: BytesMut,
    pub(super) slot: Option<SocketSlot>,
}

/// What finishing a msgr2 accept leaves.
pub(super) struct V2Accepted {
    stream: TcpStream,
    inbuf: BytesMut,
    reader: FrameReader,
    writer: FrameWriter,
}

impl Pipe {
    /// The session adopts an accepted msgr2 socket: SERVER_IDENT goes out, and the session
    /// opens with msgr2's framing. A fresh ident is a fresh session (in_seq restarts).
    pub(super) fn finish_accept_v2(
        &mut self,
        attempt: u64,
        mut stream: TcpStream,
        a: V2Handover,
        ctx: &mut Context<Self>,
    ) {
        let (mut acceptor, peer_gid) = (a.acceptor, a.peer_gid);
        let peer_type = a.req.connect.host_type;
        let policy = self.shared.policy_for(peer_type);
        let features = policy.features_supported & a.req.connect.features;
        // A resumed session keeps its cookies and seqs; a fresh ident starts the peer's side
        // anew under a new server cookie.
        let (reply, cookies, fresh) = match (a.reconnect_msg_seq, self.machine.v2_cookies()) {
            (Some(_), Some(cookies)) => (
                IdentReply::ReconnectOk { msg_seq: a.in_seq },
                cookies,
                false,
            ),
            _ => {
                let server_cookie = if policy.lossy {
                    0
                } else {
                    rand::random::<u64>().max(1)
                };
                let reply = IdentReply::Open {
                    features_supported: policy.features_supported,
                    features_required: policy.features_required,
                    global_seq: u64::from(self.shared.next_global_seq(0)),
                    lossy: policy.lossy,
                    server_cookie,
                };
                (reply, (a.v2.client_cookie, server_cookie), true)
            }
        };
        let acc = Accepted {
            peer_addr: a.req.peer_addr,
            peer_type,
            features,
            connect_seq: a.req.connect.connect_seq.wrapping_add(1),
            peer_global_seq: a.req.connect.global_seq,
            lossy: policy.lossy,
            peer_acked_seq: if fresh { None } else { a.reconnect_msg_seq },
            restart_in_seq: fresh,
            session_key: None,
        };
        let slot = a.slot;
        let inbuf = a.inbuf;
        let deadline = self.shared.config.ms_connection_ready_timeout;
        let fut = async move {
            acceptor.respond(reply).map_err(v2_error)?;
            tokio::time::timeout(deadline, write_output(&mut stream, &mut acceptor))
                .await
                .map_err(|_| PipeError::HandshakeTimeout)??;
            let (reader, writer) = acceptor.into_codec();
            Ok(V2Accepted {
                stream,
                inbuf,
                reader,
                writer,
            })
        };
        let src = EntityName::new(peer_type, peer_gid);
        let h = ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.on_accepted_v2(attempt, res, (acc, cookies, fresh), src, slot, ctx)
        }));
        self.handshake = Some(h);
    }

    fn on_accepted_v2(
        &mut self,
        attempt: u64,
        res: Result<V2Accepted, PipeError>,
        (acc, cookies, fresh): (Accepted, (u64, u64), bool),
        src: EntityName,
        slot: Option<SocketSlot>,
        ctx: &mut Context<Self>,
    ) {
        let out = match res {
            Ok(out) => out,
            Err(e) => return self.handshake_failed(attempt, e, ctx),
        };
        self.v2_reader = Some(V2Decoder::new(out.reader, src));
        let framing = SessionEncoder::V2(Box::new(out.writer));
        let outcome = self
            .machine
            .accepted_as(now(), attempt, &acc, Some(framing), fresh);
        if let Ok(Completion::Opened { .. }) = outcome {
            self.machine.v2_opened(cookies);
        }
        if !matches!(outcome, Ok(Completion::Stale)) {
            self.conn.set_peer_addr(acc.peer_addr);
        }
        let socket = HandedSocket {
            stream: out.stream,
            inbuf: out.inbuf,
            slot,
        };
        self.completed(attempt, socket, outcome, ctx);
    }
}
