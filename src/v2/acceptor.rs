//! The accepting side of a msgr2 handshake (spec §2, §6): banner, HELLO (telling the client
//! its address as seen), authentication by the methods and modes our rules allow for the
//! peer's type (a cephx authorizer with its challenge, or none; we are no monitor, so
//! `AUTH_MODE_MON` is refused), AUTH_SIGNATURE both ways, then the client's CLIENT_IDENT or
//! SESSION_RECONNECT for the runtime to decide on, and our answer.

use std::sync::Arc;
use std::time::Duration;

use super::addr::{AddrType, AddrVec, TypedAddr};
use super::control::{Control, Ident, Reconnect, CON_MODE_CRC, CON_MODE_SECURE};
use super::crypto::{GcmStream, CONNECTION_SECRET_LEN};
use super::frame::{Frame, FrameLimits, FrameReader, FrameWriter};
use super::handshake_io::HandshakeIo;
use super::V2Error;
use crate::auth::cephx::{verify_authorizer, AuthorizerVerdict, CephxError};
use crate::auth::{AuthMethod, AuthName, CryptoKey};
use crate::entity::{EntityAddr, EntityType};
use crate::handshake::authorizer::{AuthNoneAuthorizer, CEPH_AUTH_CEPHX, CEPH_AUTH_NONE};
use crate::handshake::ServerAuth;
use bytes::{Bytes, BytesMut};

/// `-EOPNOTSUPP`: no method or mode in common.
const EOPNOTSUPP: i32 = -95;
/// `-EACCES`: the authorizer did not check out.
const EACCES: i32 = -13;
/// `CEPH_MSG_CONNECT_LOSSY`.
const FLAG_LOSSY: u64 = 1;
/// `MSG_ADDR2`.
const MSG_ADDR2: u64 = 1 << 59;

/// What the acceptor needs for one accepted socket.
#[derive(Debug)]
pub struct V2AcceptorParams {
    /// Our entity type.
    pub my_type: EntityType,
    /// Our addresses (the client must have dialled one of them).
    pub my_addrs: AddrVec,
    /// The number of our entity name.
    pub gid: i64,
    /// The client's socket address, as we see it.
    pub socket_peer: std::net::SocketAddr,
    /// Which methods each kind of peer may use, and the keys that open tickets.
    pub rules: Arc<ServerAuth>,
    /// Modes allowed from daemons (`ms_cluster_mode`), in our order of preference.
    pub cluster_modes: Vec<u32>,
    /// Modes allowed from clients (`ms_service_mode`).
    pub service_modes: Vec<u32>,
    /// The time of the accept, since the epoch (ticket expiry).
    pub now: Duration,
    /// A fresh random challenge for the socket's authorizer.
    pub challenge: u64,
    /// A fresh random secret for secure mode.
    pub connection_secret: [u8; CONNECTION_SECRET_LEN],
    /// Frame caps.
    pub limits: FrameLimits,
}

/// What the client presented after authenticating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentRequest {
    /// CLIENT_IDENT: a new session (or one the client lost).
    Fresh(Ident),
    /// SESSION_RECONNECT: resume the session with these cookies.
    Reconnect(Reconnect),
}

/// The client, authenticated, asking for a session.
#[derive(Debug, Clone)]
pub struct V2IdentEvent {
    /// The client's entity type (from its HELLO).
    pub peer_type: EntityType,
    /// Who it proved to be (cephx), if it did.
    pub name: Option<AuthName>,
    /// Its global id.
    pub global_id: u64,
    /// The method it authenticated with.
    pub method: AuthMethod,
    /// The connection mode.
    pub con_mode: u32,
    /// The session key (cephx).
    pub session_key: Option<CryptoKey>,
    /// What it asked for.
    pub request: IdentRequest,
}

/// The runtime's answer to an ident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentReply {
    /// SERVER_IDENT: the session is open.
    Open {
        /// Features both sides have (ours as supported go in the frame).
        features_supported: u64,
        /// What we require.
        features_required: u64,
        /// A fresh global_seq of ours.
        global_seq: u64,
        /// The session is lossy (our policy).
        lossy: bool,
        /// Our cookie for the session (0 when lossy).
        server_cookie: u64,
    },
    /// SESSION_RECONNECT_OK with our in_seq: the session resumes.
    ReconnectOk {
        /// Our in_seq.
        msg_seq: u64,
    },
    /// IDENT_MISSING_FEATURES.
    MissingFeatures(u64),
    /// SESSION_RETRY with the session's connect_seq.
    Retry(u64),
    /// SESSION_RETRY_GLOBAL with the session's peer global_seq.
    RetryGlobal(u64),
    /// SESSION_RESET (`full`: the client must drop everything).
    Reset {
        /// Full reset.
        full: bool,
    },
    /// WAIT: our own connection wins the race.
    Wait,
}

/// Events for the runtime.
#[derive(Debug, Clone)]
pub enum V2AcceptorEvent {
    /// Decide on the ident, then [`V2Acceptor::respond`].
    Ident(Box<V2IdentEvent>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Banner,
    Hello,
    AuthRequest,
    /// A challenge went out; the authorizer comes back with its answer.
    AuthMore,
    Signature,
    Ident,
    AwaitDecision,
    Done,
}

/// The accepting side's msgr2 state machine.
#[derive(Debug)]
pub struct V2Acceptor {
    p: V2AcceptorParams,
    state: State,
    io: HandshakeIo,
    peer_type: EntityType,
    modes: Vec<u32>,
    issued: Option<u64>,
    authed: Option<V2IdentEvent>,
}

impl V2Acceptor {
    /// Starts on an accepted socket; our banner is ready at once.
    pub fn new(p: V2AcceptorParams) -> Self {
        V2Acceptor {
            io: HandshakeIo::new(p.limits),
            p,
            state: State::Banner,
            peer_type: EntityType::CLIENT,
            modes: Vec::new(),
            issued: None,
            authed: None,
        }
    }

    /// Bytes to write, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.io.take_output()
    }

    /// The frame codec, for the message phase.
    pub fn into_codec(self) -> (FrameReader, FrameWriter) {
        self.io.into_codec()
    }

    fn send(&mut self, c: &Control) -> Result<(), V2Error> {
        self.io.send(c)
    }

    /// Consumes the client's bytes. `Ok(None)`: more are needed (or a decision is awaited).
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<Option<V2AcceptorEvent>, V2Error> {
        let r = self.step(buf);
        if r.is_err() {
            self.state = State::Done;
        }
        r
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<V2AcceptorEvent>, V2Error> {
        loop {
            match self.state {
                State::Done | State::AwaitDecision => return Ok(None),
                State::Banner => {
                    if !self.io.read_banner(buf)? {
                        return Ok(None);
                    }
                    let seen = TypedAddr {
                        ty: AddrType::Msgr2,
                        addr: EntityAddr::new(self.p.socket_peer, 0),
                    };
                    self.send(&Control::Hello {
                        entity_type: self.p.my_type,
                        peer_addr: seen,
                    })?;
                    self.state = State::Hello;
                }
                _ => {
                    let Some(frame) = self.io.read_frame(buf)? else {
                        return Ok(None);
                    };
                    if let Some(ev) = self.handle_frame(frame)? {
                        return Ok(Some(ev));
                    }
                }
            }
        }
    }

    fn handle_frame(&mut self, f: Frame) -> Result<Option<V2AcceptorEvent>, V2Error> {
        let c = Control::decode(f.tag, &f.segments[0])?;
        match (self.state, c) {
            (State::Hello, Control::Hello { entity_type, .. }) => {
                self.peer_type = entity_type;
                self.state = State::AuthRequest;
                Ok(None)
            }
            (
                State::AuthRequest,
                Control::AuthRequest {
                    method,
                    modes,
                    payload,
                },
            ) => {
                self.auth_request(method, &modes, &payload)?;
                Ok(None)
            }
            (State::AuthMore, Control::AuthRequestMore { payload }) => {
                self.check_authorizer(&payload)?;
                Ok(None)
            }
            (State::Signature, Control::AuthSignature { hmac }) => {
                self.io.check_signature(hmac)?;
                self.state = State::Ident;
                Ok(None)
            }
            (State::Ident, Control::ClientIdent(id)) => self.ident(IdentRequest::Fresh(id)),
            (State::Ident, Control::SessionReconnect(r)) => self.ident(IdentRequest::Reconnect(r)),
            (_, c) => Err(V2Error::OutOfOrder(c.tag().name())),
        }
    }

    fn bad_method(&mut self, method: u32, result: i32) -> Result<(), V2Error> {
        let allowed = self.p.rules.allowed_for(self.peer_type);
        let allowed_methods = allowed.iter().map(AuthMethod::protocol).collect();
        let allowed_modes = self.allowed_modes().to_vec();
        self.send(&Control::AuthBadMethod {
            method,
            result,
            allowed_methods,
            allowed_modes,
        })?;
        self.state = State::AuthRequest;
        Ok(())
    }

    fn allowed_modes(&self) -> &[u32] {
        match self.peer_type {
            EntityType::MON | EntityType::OSD | EntityType::MDS | EntityType::MGR => {
                &self.p.cluster_modes
            }
            _ => &self.p.service_modes,
        }
    }

    fn auth_request(&mut self, method: u32, modes: &[u32], payload: &[u8]) -> Result<(), V2Error> {
        let allowed = self.p.rules.allowed_for(self.peer_type).clone();
        let m = match method {
            CEPH_AUTH_CEPHX => AuthMethod::Cephx,
            CEPH_AUTH_NONE => AuthMethod::None,
            _ => return self.bad_method(method, EOPNOTSUPP),
        };
        // The first of the client's modes that we allow; none: crc only.
        let ours = self.allowed_modes().to_vec();
        let offered: Vec<u32> = if m == AuthMethod::None {
            modes
                .iter()
                .copied()
                .filter(|&x| x == CON_MODE_CRC)
                .collect()
        } else {
            modes.to_vec()
        };
        let Some(mode) = offered.into_iter().find(|x| ours.contains(x)) else {
            return self.bad_method(method, EOPNOTSUPP);
        };
        if !allowed.allows(m) {
            return self.bad_method(method, EOPNOTSUPP);
        }
        self.modes = vec![mode];
        match m {
            AuthMethod::None => {
                // An AuthNone authorizer (mode 1) or a mon-mode request (10): a name and a gid.
                let Some((name, gid)) = none_identity(payload) else {
                    return self.bad_method(method, EACCES);
                };
                let name = Some(name);
                self.authed = Some(V2IdentEvent {
                    peer_type: self.peer_type,
                    name,
                    global_id: gid,
                    method: AuthMethod::None,
                    con_mode: CON_MODE_CRC,
                    session_key: None,
                    request: IdentRequest::Fresh(empty_ident()),
                });
                self.done(gid, CON_MODE_CRC, Bytes::new(), None)
            }
            AuthMethod::Cephx => {
                if payload.first() != Some(&1) {
                    // AUTH_MODE_MON and friends: we hand out no tickets.
                    return self.bad_method(method, EOPNOTSUPP);
                }
                self.check_authorizer(payload)
            }
        }
    }

    fn check_authorizer(&mut self, payload: &[u8]) -> Result<(), V2Error> {
        let mode = self.modes.first().copied().unwrap_or(CON_MODE_CRC);
        let secret = if mode == CON_MODE_SECURE {
            Bytes::copy_from_slice(&self.p.connection_secret)
        } else {
            Bytes::new()
        };
        let verdict = verify_authorizer(
            payload,
            &self.p.rules.keys,
            self.issued,
            self.p.challenge,
            self.p.now,
            secret,
        );
        match verdict {
            Ok(AuthorizerVerdict::Challenge { challenge, sealed }) if self.issued.is_none() => {
                self.issued = Some(challenge);
                self.send(&Control::AuthReplyMore { payload: sealed })?;
                self.state = State::AuthMore;
                Ok(())
            }
            Ok(AuthorizerVerdict::Challenge { .. }) => {
                Err(V2Error::Cephx(CephxError::ChallengeMismatch))
            }
            Ok(AuthorizerVerdict::Authorized(peer)) => {
                self.authed = Some(V2IdentEvent {
                    peer_type: self.peer_type,
                    name: Some(peer.name.clone()),
                    global_id: peer.global_id,
                    method: AuthMethod::Cephx,
                    con_mode: mode,
                    session_key: Some(peer.session_key.clone()),
                    request: IdentRequest::Fresh(empty_ident()),
                });
                self.done(peer.global_id, mode, peer.reply, Some(peer.session_key))
            }
            // Refused: say why, and close (as Ceph does after the MORE stage).
            Err(e) => {
                self.send(&Control::AuthBadMethod {
                    method: CEPH_AUTH_CEPHX,
                    result: EACCES,
                    allowed_methods: vec![CEPH_AUTH_CEPHX],
                    allowed_modes: self.allowed_modes().to_vec(),
                })?;
                Err(V2Error::Cephx(e))
            }
        }
    }

    /// AUTH_DONE, the switch to the mode, our AUTH_SIGNATURE.
    fn done(
        &mut self,
        global_id: u64,
        mode: u32,
        payload: Bytes,
        key: Option<CryptoKey>,
    ) -> Result<(), V2Error> {
        self.send(&Control::AuthDone {
            global_id,
            con_mode: mode,
            payload,
        })?;
        let secure = if mode == CON_MODE_SECURE {
            Some(GcmStream::pair(&self.p.connection_secret, false)?)
        } else {
            None
        };
        self.io.finish_auth(key.as_ref(), secure)?;
        self.state = State::Signature;
        Ok(())
    }

    fn ident(&mut self, request: IdentRequest) -> Result<Option<V2AcceptorEvent>, V2Error> {
        let addrs = match &request {
            IdentRequest::Fresh(id) => {
                // The client must have dialled one of our addresses.
                let target = id.target_addr.ok_or(V2Error::OutOfOrder("CLIENT_IDENT"))?;
                let ours = self.p.my_addrs.0.iter().any(|a| {
                    a.ty == target.ty
                        && a.addr.port() == target.addr.port()
                        && (a.addr.is_blank_ip() || a.addr.addr == target.addr.addr)
                });
                if !ours {
                    return Err(V2Error::WrongPeer(format!(
                        "the client dialled {target:?}, we are {:?}",
                        self.p.my_addrs
                    )));
                }
                &id.addrs
            }
            IdentRequest::Reconnect(r) => &r.addrs,
        };
        if addrs.0.is_empty() {
            return Err(V2Error::WrongPeer("a client without addresses".into()));
        }
        let mut ev = self.authed.clone().expect("authenticated before the ident");
        ev.request = request;
        self.state = State::AwaitDecision;
        Ok(Some(V2AcceptorEvent::Ident(Box::new(ev))))
    }

    /// Answers the ident. `Open` and `ReconnectOk` finish the handshake (take the codec);
    /// the others wait for the client's next ident on this socket (WAIT: it closes).
    pub fn respond(&mut self, reply: IdentReply) -> Result<(), V2Error> {
        if self.state != State::AwaitDecision {
            return Err(V2Error::OutOfOrder("respond"));
        }
        let c = match reply {
            IdentReply::Open {
                features_supported,
                features_required,
                global_seq,
                lossy,
                server_cookie,
            } => {
                self.state = State::Done;
                Control::ServerIdent(Ident {
                    addrs: self.p.my_addrs.clone(),
                    target_addr: None,
                    gid: self.p.gid,
                    global_seq,
                    features_supported,
                    features_required: features_required | MSG_ADDR2,
                    flags: if lossy { FLAG_LOSSY } else { 0 },
                    cookie: server_cookie,
                })
            }
            IdentReply::ReconnectOk { msg_seq } => {
                self.state = State::Done;
                Control::SessionReconnectOk { msg_seq }
            }
            IdentReply::MissingFeatures(missing) => {
                self.state = State::Ident;
                Control::IdentMissingFeatures { missing }
            }
            IdentReply::Retry(connect_seq) => {
                self.state = State::Ident;
                Control::SessionRetry { connect_seq }
            }
            IdentReply::RetryGlobal(global_seq) => {
                self.state = State::Ident;
                Control::SessionRetryGlobal { global_seq }
            }
            IdentReply::Reset { full } => {
                self.state = State::Ident;
                Control::SessionReset { full }
            }
            IdentReply::Wait => {
                self.state = State::Done;
                Control::Wait
            }
        };
        self.send(&c)
    }
}

/// Who an auth-none client says it is: an AuthNone authorizer (mode 1) or a mon-mode request
/// (mode 10): a name and a global id either way.
fn none_identity(payload: &[u8]) -> Option<(AuthName, u64)> {
    use crate::denc::{Decode, Reader};
    match payload.split_first()? {
        (1, _) => {
            let a = AuthNoneAuthorizer::decode(payload).ok()?;
            let name = AuthName {
                ty: a.entity_type,
                id: a.id,
            };
            Some((name, a.global_id))
        }
        (10, rest) => {
            let mut r = Reader::new(rest);
            let name = AuthName::decode(&mut r).ok()?;
            let gid = u64::decode(&mut r).ok()?;
            (r.remaining() == 0).then_some((name, gid))
        }
        _ => None,
    }
}

fn empty_ident() -> Ident {
    Ident {
        addrs: AddrVec::default(),
        target_addr: None,
        gid: -1,
        global_seq: 0,
        features_supported: 0,
        features_required: 0,
        flags: 0,
        cookie: 0,
    }
}
