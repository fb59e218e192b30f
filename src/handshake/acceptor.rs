//! The accepting side of the handshake (spec §1.2, §2.6).
//!
//! The acceptor greets at once (banner, our address, the peer's address as seen), reads the
//! peer's banner, address and connect, and then stops at [`AcceptorEvent::Connect`]: whether to
//! open, replace, retry or refuse depends on sessions only the runtime knows. The runtime gathers
//! those facts into an [`AcceptContext`], asks the pure function [`decide`], and hands the verdict
//! back through [`Acceptor::respond`].

use std::cmp::Ordering;
use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::server_auth::{AuthOutcome, AuthStep, SocketAuth};
use super::{HandshakeError, MAX_AUTHORIZER_LEN};
use crate::auth::CryptoKey;
use crate::entity::{EntityAddr, EntityType, ENTITY_ADDR_LEN};
use crate::error::DecodeError;
use crate::features::RECONNECT_SEQ;
use crate::policy::Policy;
use crate::wire::connect::CONNECT_FLAG_LOSSY;
use crate::wire::{ConnectMsg, ConnectReply, Tag, BANNER, CONNECT_LEN};

/// A connect request, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The connect struct.
    pub connect: ConnectMsg,
    /// The authorizer blob (at most 4 KiB).
    pub authorizer: Bytes,
    /// The peer's address: what it claimed, with a blank IP filled from the socket.
    pub peer_addr: EntityAddr,
    /// The verdict on the authorizer (the runtime passes `auth.is_valid()` to [`decide`]).
    pub auth: AuthOutcome,
}

/// What the runtime knows about an existing session with the same peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingSession {
    /// Its connect_seq.
    pub connect_seq: u32,
    /// The peer global_seq it last saw.
    pub peer_global_seq: u32,
    /// What it is doing.
    pub state: ExistingState,
    /// It is lossy.
    pub lossy: bool,
    /// Its policy is a server policy.
    pub policy_server: bool,
    /// Some handshake of this session completed (the peer confirmed our open reply by sending
    /// its in_seq after SEQ, or we sent READY). False while the only open reply we sent may
    /// never have reached the peer.
    pub established: bool,
}

/// The state of an existing session, as the acceptor's rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingState {
    /// Dialling or handshaking (an outgoing attempt not yet open).
    Connecting,
    /// Open.
    Open,
    /// Idle and disconnected, session kept.
    Standby,
    /// Closed: nothing to preserve.
    Closed,
    /// Being replaced by another accepted socket right now.
    Replacing,
}

/// Everything [`decide`] needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct AcceptContext {
    /// Our policy for the peer's entity type.
    pub policy: Policy,
    /// The protocol version we expect from that type.
    pub protocol_version: u32,
    /// The authorizer checked out.
    pub authorizer_valid: bool,
    /// Our own address (for the race rule).
    pub my_addr: EntityAddr,
    /// The existing session with the peer's address, if any (ignored by `stateless_server`).
    pub existing: Option<ExistingSession>,
}

/// The acceptor's verdict on a connect (spec §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Protocol version mismatch.
    BadProtoVer,
    /// The peer lacks required features.
    Features,
    /// The authorizer was rejected.
    BadAuthorizer,
    /// Retry with a global_seq above this.
    RetryGlobal {
        /// The existing session's peer_global_seq.
        peer_global_seq: u32,
    },
    /// Retry with this connect_seq.
    RetrySession {
        /// The connect_seq to use.
        connect_seq: u32,
    },
    /// We have no session state for a cs > 0 connect.
    ResetSession,
    /// The peer lost a connection race; our outgoing connection carries the session.
    Wait,
    /// Open a session on this socket.
    Open {
        /// Take over the existing session (its queues and seqs) with this socket.
        replace: bool,
        /// The existing session's state is dropped first (lossy existing, or a restarted peer
        /// under resetcheck); tell the dispatcher of the reset.
        reset_existing: bool,
        /// The peer restarted (cs 0 against cs > 0): answer READY, not SEQ, and restart in_seq.
        peer_restarted: bool,
    },
}

impl Decision {
    fn open(replace: bool, reset_existing: bool, peer_restarted: bool) -> Self {
        Decision::Open {
            replace,
            reset_existing,
            peer_restarted,
        }
    }
}

/// Ceph's acceptor rules (spec §2.6 steps 2–8), as a pure function.
pub fn decide(req: &ConnectRequest, ctx: &AcceptContext) -> Decision {
    let c = &req.connect;
    let policy = &ctx.policy;
    if c.protocol_version != ctx.protocol_version {
        return Decision::BadProtoVer;
    }
    if policy.features_required & !c.features != 0 {
        return Decision::Features;
    }
    if !ctx.authorizer_valid {
        return Decision::BadAuthorizer;
    }
    if policy.skips_session_lookup() {
        return Decision::open(false, false, false);
    }
    let Some(ex) = ctx.existing else {
        return if c.connect_seq > 0 {
            Decision::ResetSession
        } else {
            Decision::open(false, false, false)
        };
    };
    match ex.state {
        ExistingState::Closed => return Decision::open(false, false, false),
        ExistingState::Replacing => {
            return Decision::RetryGlobal {
                peer_global_seq: ex.peer_global_seq,
            }
        }
        _ => {}
    }
    if c.global_seq < ex.peer_global_seq {
        return Decision::RetryGlobal {
            peer_global_seq: ex.peer_global_seq,
        };
    }
    if ex.lossy {
        return Decision::open(true, true, false);
    }
    if c.connect_seq == 0 && ex.connect_seq > 0 {
        if !ex.established {
            // Our first open reply never reached the peer, so it still (rightly) dials with
            // cs 0. Nothing was exchanged on that session: resume it rather than treating
            // this as a restarted peer and dropping what we have queued for it.
            return Decision::open(true, false, false);
        }
        return Decision::open(true, policy.resetcheck, true);
    }
    if c.connect_seq < ex.connect_seq {
        return Decision::RetrySession {
            connect_seq: ex.connect_seq + 1,
        };
    }
    if c.connect_seq == ex.connect_seq {
        if matches!(ex.state, ExistingState::Open | ExistingState::Standby) {
            if policy.resetcheck && ex.connect_seq == 0 {
                return Decision::open(true, false, false);
            }
            return Decision::RetrySession {
                connect_seq: ex.connect_seq + 1,
            };
        }
        // Both sides are dialling at once: a race (spec §2.8).
        let incoming_wins =
            req.peer_addr.race_cmp(&ctx.my_addr) == Ordering::Less || ex.policy_server;
        return if incoming_wins {
            Decision::open(true, false, false)
        } else {
            Decision::Wait
        };
    }
    // connect_seq > existing: a normal reconnect, unless we never had a session to resume.
    if policy.resetcheck && ex.connect_seq == 0 {
        return Decision::ResetSession;
    }
    Decision::open(true, false, false)
}

/// The runtime's side of an open: values only it has.
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext {
    /// Our policy for the peer's type.
    pub policy: Policy,
    /// The protocol version we expect.
    pub protocol_version: u32,
    /// A fresh messenger global_seq.
    pub server_global_seq: u32,
    /// The in_seq of the session this socket will carry (sent after SEQ).
    pub in_seq: u64,
}

/// The accepted session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The peer's address.
    pub peer_addr: EntityAddr,
    /// The peer's entity type.
    pub peer_type: EntityType,
    /// Features both sides have.
    pub features: u64,
    /// The session's connect_seq now.
    pub connect_seq: u32,
    /// The peer's global_seq.
    pub peer_global_seq: u32,
    /// The session is lossy (our policy's decision).
    pub lossy: bool,
    /// From SEQ: the last of our messages the peer has. None after READY.
    pub peer_acked_seq: Option<u64>,
    /// READY was sent because the peer restarted or lacks RECONNECT_SEQ: in_seq restarts and
    /// requeued messages are dropped.
    pub restart_in_seq: bool,
    /// The session key of the peer's cephx authorizer (signs messages).
    pub session_key: Option<CryptoKey>,
}

/// Events for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptorEvent {
    /// A connect arrived: [`decide`], then [`Acceptor::respond`].
    Connect(ConnectRequest),
    /// The session is open; leftover input belongs to the message phase.
    Ready(Accepted),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    ClientHello,
    Connect,
    ConnectAuthorizer(ConnectMsg),
    AwaitDecision(ConnectRequest),
    AwaitSeq(Accepted),
    Done,
}

/// The acceptor state machine for one accepted socket.
#[derive(Debug)]
pub struct Acceptor {
    state: State,
    out: BytesMut,
    socket_peer: SocketAddr,
    peer_addr: EntityAddr,
    auth: SocketAuth,
}

const CLIENT_HELLO_LEN: usize = BANNER.len() + ENTITY_ADDR_LEN;

impl Acceptor {
    /// Starts on a freshly accepted socket; the greeting is ready to write at once.
    pub fn new(my_addr: EntityAddr, socket_peer: SocketAddr) -> Self {
        let mut out = BytesMut::with_capacity(BANNER.len() + 2 * ENTITY_ADDR_LEN);
        out.put_slice(BANNER);
        out.put_slice(&my_addr.encode_legacy());
        out.put_slice(&EntityAddr::new(socket_peer, 0).encode_legacy());
        Acceptor {
            state: State::ClientHello,
            out,
            socket_peer,
            peer_addr: EntityAddr::blank(0),
            auth: SocketAuth::default(),
        }
    }

    /// Checks authorizers with `auth` (without it: auth none from everyone).
    pub fn with_auth(mut self, auth: SocketAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Bytes to write, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Bytes the next step needs in the input buffer (0 while waiting for the runtime).
    pub fn wanted(&self) -> usize {
        match &self.state {
            State::ClientHello => CLIENT_HELLO_LEN,
            State::Connect => CONNECT_LEN,
            State::ConnectAuthorizer(c) => c.authorizer_len as usize,
            State::AwaitSeq(_) => 8,
            State::AwaitDecision(_) | State::Done => 0,
        }
    }

    /// The peer's address, once its hello was read.
    pub fn peer_addr(&self) -> EntityAddr {
        self.peer_addr
    }

    /// Consumes handshake bytes from the front of `buf`. `Ok(None)` means "need more input".
    pub fn handle_input(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<AcceptorEvent>, HandshakeError> {
        loop {
            match &self.state {
                State::ClientHello => {
                    if buf.len() < CLIENT_HELLO_LEN {
                        return Ok(None);
                    }
                    let hello = buf.split_to(CLIENT_HELLO_LEN);
                    if &hello[..BANNER.len()] != BANNER {
                        self.state = State::Done;
                        return Err(DecodeError::BadBanner(hello[..BANNER.len()].to_vec()).into());
                    }
                    let mut claimed = EntityAddr::decode_legacy(&hello[BANNER.len()..])?;
                    if claimed.is_blank_ip() {
                        let port = claimed.port();
                        claimed.addr = Some(SocketAddr::new(self.socket_peer.ip(), port));
                    }
                    self.peer_addr = claimed;
                    self.state = State::Connect;
                }
                State::Connect => {
                    if buf.len() < CONNECT_LEN {
                        return Ok(None);
                    }
                    let connect = ConnectMsg::decode(&buf.split_to(CONNECT_LEN))?;
                    if connect.authorizer_len > MAX_AUTHORIZER_LEN {
                        self.state = State::Done;
                        return Err(HandshakeError::AuthorizerTooLong(connect.authorizer_len));
                    }
                    self.state = State::ConnectAuthorizer(connect);
                }
                State::ConnectAuthorizer(connect) => {
                    let connect = *connect;
                    if buf.len() < connect.authorizer_len as usize {
                        return Ok(None);
                    }
                    let authorizer = buf.split_to(connect.authorizer_len as usize).freeze();
                    let step = self.auth.check(
                        connect.host_type,
                        connect.authorizer_protocol,
                        &authorizer,
                    );
                    let auth = match step {
                        AuthStep::Done(outcome) => outcome,
                        AuthStep::Challenge(sealed) => {
                            self.challenge(&connect, &sealed);
                            self.state = State::Connect;
                            continue;
                        }
                    };
                    let req = ConnectRequest {
                        connect,
                        authorizer,
                        peer_addr: self.peer_addr,
                        auth,
                    };
                    self.state = State::AwaitDecision(req.clone());
                    return Ok(Some(AcceptorEvent::Connect(req)));
                }
                State::AwaitSeq(accepted) => {
                    if buf.len() < 8 {
                        return Ok(None);
                    }
                    let mut accepted = accepted.clone();
                    accepted.peer_acked_seq = Some(buf.get_u64_le());
                    self.state = State::Done;
                    return Ok(Some(AcceptorEvent::Ready(accepted)));
                }
                State::AwaitDecision(_) | State::Done => return Ok(None),
            }
        }
    }

    /// CHALLENGE_AUTHORIZER: the peer resends its connect with the challenge answered.
    fn challenge(&mut self, c: &ConnectMsg, sealed: &[u8]) {
        let reply = ConnectReply {
            tag: Tag::ChallengeAuthorizer as u8,
            features: c.features,
            global_seq: 0,
            connect_seq: c.connect_seq,
            protocol_version: c.protocol_version,
            authorizer_len: sealed.len() as u32,
            flags: 0,
        };
        self.out.put_slice(&reply.encode());
        self.out.put_slice(sealed);
    }

    /// Writes the reply for `decision`. Refusals and retries go back to waiting for another
    /// connect on this socket. An open writes READY (returning [`AcceptorEvent::Ready`] at once)
    /// or SEQ plus our in_seq (the Ready event follows once the peer's in_seq is read).
    pub fn respond(
        &mut self,
        decision: Decision,
        ctx: &ReplyContext,
    ) -> Result<Option<AcceptorEvent>, HandshakeError> {
        let State::AwaitDecision(req) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(HandshakeError::OutOfOrder(
                "respond without a pending connect",
            ));
        };
        let c = req.connect;
        let policy = &ctx.policy;
        let mut reply = ConnectReply {
            tag: 0,
            features: (c.features & policy.features_supported) | policy.features_required,
            global_seq: ctx.server_global_seq,
            connect_seq: c.connect_seq,
            protocol_version: ctx.protocol_version,
            authorizer_len: 0,
            flags: 0,
        };
        let tag = match decision {
            Decision::BadProtoVer => Tag::BadProtoVer,
            Decision::Features => Tag::Features,
            Decision::BadAuthorizer => Tag::BadAuthorizer,
            Decision::ResetSession => Tag::ResetSession,
            Decision::Wait => Tag::Wait,
            Decision::RetryGlobal { peer_global_seq } => {
                reply.global_seq = peer_global_seq;
                Tag::RetryGlobal
            }
            Decision::RetrySession { connect_seq } => {
                reply.connect_seq = connect_seq;
                Tag::RetrySession
            }
            Decision::Open { peer_restarted, .. } => {
                let seq = c.features & RECONNECT_SEQ != 0 && !peer_restarted;
                reply.tag = if seq { Tag::Seq } else { Tag::Ready } as u8;
                reply.features = policy.features_supported;
                reply.connect_seq = c.connect_seq.wrapping_add(1);
                reply.flags = if policy.lossy { CONNECT_FLAG_LOSSY } else { 0 };
                reply.authorizer_len = req.auth.reply.len() as u32;
                self.out.put_slice(&reply.encode());
                self.out.put_slice(&req.auth.reply);
                let accepted = Accepted {
                    peer_addr: req.peer_addr,
                    peer_type: c.host_type,
                    features: policy.features_supported & c.features,
                    connect_seq: reply.connect_seq,
                    peer_global_seq: c.global_seq,
                    lossy: policy.lossy,
                    peer_acked_seq: None,
                    restart_in_seq: !seq,
                    session_key: req.auth.session_key.clone(),
                };
                if seq {
                    self.out.put_u64_le(ctx.in_seq);
                    self.state = State::AwaitSeq(accepted);
                    return Ok(None);
                }
                return Ok(Some(AcceptorEvent::Ready(accepted)));
            }
        };
        reply.tag = tag as u8;
        self.out.put_slice(&reply.encode());
        self.state = State::Connect;
        Ok(None)
    }
}
