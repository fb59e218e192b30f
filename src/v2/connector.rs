//! The dialling side of a msgr2 handshake (spec §2, §6): banner, HELLO, authentication (to a
//! monitor with cephx, with a cephx authorizer, or none), the switch to the negotiated mode,
//! AUTH_SIGNATURE both ways, then CLIENT_IDENT or SESSION_RECONNECT. Fed the server's bytes,
//! it produces ours; at READY it hands over the frame codec with its cipher state.

use super::addr::{AddrType, AddrVec, TypedAddr};
use super::control::{Control, Ident, Reconnect, CON_MODE_CRC, CON_MODE_SECURE};
use super::crypto::GcmStream;
use super::frame::{Frame, FrameLimits, FrameReader, FrameWriter};
use super::handshake_io::HandshakeIo;
use super::V2Error;
use crate::auth::cephx::{ClientAuthorizer, MonAuthClient};
use crate::auth::{AuthName, CryptoKey};
use crate::denc::Encode;
use crate::entity::EntityType;
use crate::handshake::authorizer::{CEPH_AUTH_CEPHX, CEPH_AUTH_NONE};
use bytes::{Bytes, BytesMut};

/// `MSG_ADDR2`: always required in msgr2 idents.
const MSG_ADDR2: u64 = 1 << 59;
/// `CEPH_MSG_CONNECT_LOSSY`.
const FLAG_LOSSY: u64 = 1;

/// How the dialling side authenticates.
#[derive(Debug)]
pub enum ClientAuth {
    /// To a monitor with cephx (`AUTH_MODE_MON`): tickets come back in AUTH_DONE.
    Mon {
        /// The exchange's state (keeps the tickets afterwards).
        client: Box<MonAuthClient>,
        /// A fresh random client challenge.
        client_challenge: u64,
    },
    /// To a service, with a cephx authorizer from a ticket.
    Authorizer(ClientAuthorizer),
    /// auth none: our name and global id.
    None {
        /// Who we are.
        name: AuthName,
        /// Our global id (0 if none).
        global_id: u64,
    },
}

/// A session to resume: what SESSION_RECONNECT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The server's cookie from its SERVER_IDENT.
    pub server_cookie: u64,
    /// The connect_seq to send: the session's, advanced for this attempt (a RETRY moves it on).
    pub connect_seq: u64,
    /// Our in_seq.
    pub in_seq: u64,
}

/// What the connector needs to dial.
#[derive(Debug)]
pub struct V2ConnectorParams {
    /// Our entity type.
    pub my_type: EntityType,
    /// Our addresses (a client that never bound: one `Any` address, blank IP, its nonce).
    pub my_addrs: AddrVec,
    /// The msgr2 address we dial.
    pub target: TypedAddr,
    /// The peer's nonce is known (else any nonce in its ident is accepted).
    pub check_peer_nonce: bool,
    /// The entity type we expect to reach.
    pub peer_type: EntityType,
    /// The number of our entity name (-1 when we have none).
    pub gid: i64,
    /// A fresh messenger global_seq.
    pub global_seq: u64,
    /// Our features.
    pub features_supported: u64,
    /// Features we require of the peer.
    pub features_required: u64,
    /// Our policy toward the peer is lossy.
    pub lossy: bool,
    /// The session's client cookie (0 for lossy sessions).
    pub client_cookie: u64,
    /// Connection modes we accept, in order of preference.
    pub modes: Vec<u32>,
    /// How we authenticate.
    pub auth: ClientAuth,
    /// Learn our IP from the server's HELLO when ours is blank.
    pub learn_addr: bool,
    /// A session to resume (lossless sessions with a server cookie).
    pub resume: Option<Resume>,
    /// Frame caps.
    pub limits: FrameLimits,
    /// The time of the dial, since the epoch (tickets' renewal times are counted from it).
    pub now: std::time::Duration,
}

/// The open session, as the handshake left it.
#[derive(Debug, Clone)]
pub struct V2Established {
    /// The server's addresses.
    pub peer_addrs: AddrVec,
    /// The number of the server's entity name.
    pub peer_gid: i64,
    /// The server's global_seq.
    pub peer_global_seq: u64,
    /// Features both sides have.
    pub features: u64,
    /// The server made the session lossy.
    pub lossy: bool,
    /// The server's cookie (0: lossy).
    pub server_cookie: u64,
    /// Our addresses (the IP possibly learned).
    pub my_addrs: AddrVec,
    /// Our global id (assigned by a monitor, else as given).
    pub global_id: u64,
    /// The connection mode.
    pub con_mode: u32,
    /// The session key (cephx).
    pub session_key: Option<CryptoKey>,
    /// RECONNECT_OK: the last of our messages the server has. None for a fresh session.
    pub peer_acked_seq: Option<u64>,
    /// The connect_seq the last SESSION_RECONNECT carried (0 after a CLIENT_IDENT).
    pub connect_seq: u64,
    /// The client cookie the session has now (a full reset picks another).
    pub client_cookie: u64,
}

/// Something the runtime must act on.
#[derive(Debug, Clone)]
pub enum V2ConnectorEvent {
    /// READY: take the codec with [`V2Connector::into_codec`].
    Ready(Box<V2Established>),
    /// SESSION_RETRY_GLOBAL: call [`V2Connector::retry_global`] with a global_seq above this.
    NeedGlobalSeq {
        /// The value to exceed.
        peer_global_seq: u64,
    },
    /// SESSION_RESET: the server has no session for us; the connector already sent a fresh
    /// CLIENT_IDENT. `full`: drop everything queued (a remote reset).
    SessionReset {
        /// Full reset.
        full: bool,
    },
    /// WAIT: the server's own connection wins the race; back off.
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Banner,
    Hello,
    Auth,
    Signature,
    Ident,
    AwaitGlobalSeq,
    Done,
}

/// The dialling side's msgr2 state machine.
#[derive(Debug)]
pub struct V2Connector {
    p: V2ConnectorParams,
    state: State,
    io: HandshakeIo,
    session_key: Option<CryptoKey>,
    global_id: u64,
    con_mode: u32,
}

impl V2Connector {
    /// Starts a handshake; our banner is ready to write at once.
    pub fn new(p: V2ConnectorParams) -> Self {
        V2Connector {
            io: HandshakeIo::new(p.limits),
            p,
            state: State::Banner,
            session_key: None,
            global_id: 0,
            con_mode: CON_MODE_CRC,
        }
    }

    /// Bytes to write, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.io.take_output()
    }

    /// The frame codec, in the negotiated mode, for the message phase.
    pub fn into_codec(self) -> (FrameReader, FrameWriter) {
        self.io.into_codec()
    }

    /// The mon authentication's state (its tickets), when we authenticated to a monitor.
    pub fn mon_auth(&self) -> Option<&MonAuthClient> {
        match &self.p.auth {
            ClientAuth::Mon { client, .. } => Some(client),
            _ => None,
        }
    }

    /// Answers [`V2ConnectorEvent::NeedGlobalSeq`].
    pub fn retry_global(&mut self, global_seq: u64) -> Result<(), V2Error> {
        if self.state != State::AwaitGlobalSeq {
            return Err(V2Error::OutOfOrder("retry_global"));
        }
        self.p.global_seq = global_seq;
        self.state = State::Ident;
        self.send_ident()
    }

    fn send(&mut self, c: &Control) -> Result<(), V2Error> {
        self.io.send(c)
    }

    /// Consumes the server's bytes from the front of `buf`. `Ok(None)`: more are needed.
    pub fn handle_input(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<V2ConnectorEvent>, V2Error> {
        let r = self.step(buf);
        if r.is_err() {
            self.state = State::Done;
        }
        r
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<V2ConnectorEvent>, V2Error> {
        loop {
            match self.state {
                State::Done | State::AwaitGlobalSeq => return Ok(None),
                State::Banner => {
                    if !self.io.read_banner(buf)? {
                        return Ok(None);
                    }
                    let hello = Control::Hello {
                        entity_type: self.p.my_type,
                        peer_addr: self.p.target,
                    };
                    self.send(&hello)?;
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

    fn handle_frame(&mut self, f: Frame) -> Result<Option<V2ConnectorEvent>, V2Error> {
        let c = Control::decode(f.tag, &f.segments[0])?;
        match (self.state, c) {
            (
                State::Hello,
                Control::Hello {
                    entity_type,
                    peer_addr,
                },
            ) => {
                if entity_type != self.p.peer_type {
                    return Err(V2Error::WrongPeer(format!(
                        "we dialled a {}, a {} answered",
                        self.p.peer_type, entity_type
                    )));
                }
                self.learn(peer_addr);
                let req = self.auth_request()?;
                self.send(&req)?;
                self.state = State::Auth;
                Ok(None)
            }
            (State::Auth, Control::AuthReplyMore { payload }) => {
                let more = match &mut self.p.auth {
                    ClientAuth::Mon {
                        client,
                        client_challenge,
                    } => client.v2_reply_more(&payload, *client_challenge)?,
                    ClientAuth::Authorizer(a) => {
                        a.answer_challenge(&payload)?;
                        a.encode()
                    }
                    ClientAuth::None { .. } => return Err(V2Error::OutOfOrder("AUTH_REPLY_MORE")),
                };
                self.send(&Control::AuthRequestMore { payload: more })?;
                Ok(None)
            }
            (
                State::Auth,
                Control::AuthBadMethod {
                    method,
                    result,
                    allowed_methods,
                    allowed_modes,
                },
            ) => Err(V2Error::BadMethod {
                method,
                result,
                allowed_methods,
                allowed_modes,
            }),
            (
                State::Auth,
                Control::AuthDone {
                    global_id,
                    con_mode,
                    payload,
                },
            ) => {
                self.auth_done(global_id, con_mode, &payload)?;
                Ok(None)
            }
            (State::Signature, Control::AuthSignature { hmac }) => {
                self.io.check_signature(hmac)?;
                self.state = State::Ident;
                self.send_ident()?;
                Ok(None)
            }
            (State::Ident, Control::ServerIdent(id)) => self.server_ident(id).map(Some),
            (State::Ident, Control::IdentMissingFeatures { missing }) => {
                Err(V2Error::MissingFeatures(missing))
            }
            (State::Ident, Control::SessionReconnectOk { msg_seq }) => {
                let r = self.p.resume.expect("a reconnect was sent");
                Ok(Some(self.ready(
                    self.p.target_addrs(),
                    -1,
                    0,
                    self.p.features_supported,
                    false,
                    r.server_cookie,
                    Some(msg_seq),
                )))
            }
            (State::Ident, Control::SessionRetry { connect_seq }) => {
                if let Some(r) = &mut self.p.resume {
                    r.connect_seq = connect_seq + 1;
                }
                self.send_ident()?;
                Ok(None)
            }
            (State::Ident, Control::SessionRetryGlobal { global_seq }) => {
                self.state = State::AwaitGlobalSeq;
                Ok(Some(V2ConnectorEvent::NeedGlobalSeq {
                    peer_global_seq: global_seq,
                }))
            }
            (State::Ident, Control::SessionReset { full }) => {
                self.p.resume = None;
                if full {
                    self.p.client_cookie = self.p.client_cookie.wrapping_add(1).max(1);
                }
                self.send_ident()?;
                Ok(Some(V2ConnectorEvent::SessionReset { full }))
            }
            (State::Ident, Control::Wait) => {
                self.state = State::Done;
                Ok(Some(V2ConnectorEvent::Wait))
            }
            (_, c) => Err(V2Error::OutOfOrder(c.tag().name())),
        }
    }

    fn learn(&mut self, seen: TypedAddr) {
        if !self.p.learn_addr {
            return;
        }
        for a in &mut self.p.my_addrs.0 {
            if a.addr.is_blank_ip() {
                if let Some(ip) = seen.addr.addr.map(|s| s.ip()) {
                    let port = a.addr.port();
                    a.addr.addr = Some(std::net::SocketAddr::new(ip, port));
                }
            }
        }
    }

    fn auth_request(&mut self) -> Result<Control, V2Error> {
        let secure_ok = |m: &u32| *m == CON_MODE_CRC || *m == CON_MODE_SECURE;
        let modes: Vec<u32> = self.p.modes.iter().copied().filter(secure_ok).collect();
        Ok(match &mut self.p.auth {
            ClientAuth::Mon { client, .. } => Control::AuthRequest {
                method: CEPH_AUTH_CEPHX,
                modes,
                payload: client.v2_request(),
            },
            ClientAuth::Authorizer(a) => Control::AuthRequest {
                method: CEPH_AUTH_CEPHX,
                modes,
                payload: a.encode(),
            },
            ClientAuth::None { name, global_id } => {
                // Mode 10 (to a mon) or an AuthNone authorizer: both are a name and a gid.
                let mut p = vec![if self.p.peer_type == EntityType::MON {
                    10
                } else {
                    1
                }];
                name.encode(&mut p);
                global_id.encode(&mut p);
                Control::AuthRequest {
                    method: CEPH_AUTH_NONE,
                    // With auth none only crc is possible.
                    modes: vec![CON_MODE_CRC],
                    payload: p.into(),
                }
            }
        })
    }

    fn auth_done(&mut self, global_id: u64, con_mode: u32, payload: &[u8]) -> Result<(), V2Error> {
        if !self.p.modes.contains(&con_mode) {
            return Err(V2Error::Mode(con_mode));
        }
        let (session_key, secret) = match &mut self.p.auth {
            ClientAuth::Mon { client, .. } => {
                let done = client.v2_done(global_id, payload, self.p.now)?;
                (Some(done.session_key), done.connection_secret.to_vec())
            }
            ClientAuth::Authorizer(a) => {
                let secret = a.verify_reply(payload)?;
                (Some(a.session_key().clone()), secret.to_vec())
            }
            ClientAuth::None { .. } => (None, Vec::new()),
        };
        self.global_id = global_id;
        self.con_mode = con_mode;
        self.session_key = session_key;
        let secure = if con_mode == CON_MODE_SECURE {
            Some(GcmStream::pair(&secret, true)?)
        } else {
            None
        };
        // The capture ends with AUTH_DONE: we sign what we received, the server what we sent.
        self.io.finish_auth(self.session_key.as_ref(), secure)?;
        self.state = State::Signature;
        Ok(())
    }

    fn send_ident(&mut self) -> Result<(), V2Error> {
        let c = match self.p.resume {
            Some(r) => Control::SessionReconnect(Reconnect {
                addrs: self.p.my_addrs.clone(),
                client_cookie: self.p.client_cookie,
                server_cookie: r.server_cookie,
                global_seq: self.p.global_seq,
                connect_seq: r.connect_seq,
                msg_seq: r.in_seq,
            }),
            None => Control::ClientIdent(Ident {
                addrs: self.p.my_addrs.clone(),
                target_addr: Some(self.p.target),
                gid: self.p.gid,
                global_seq: self.p.global_seq,
                features_supported: self.p.features_supported,
                features_required: self.p.features_required | MSG_ADDR2,
                flags: if self.p.lossy { FLAG_LOSSY } else { 0 },
                cookie: self.p.client_cookie,
            }),
        };
        self.send(&c)
    }

    fn server_ident(&mut self, id: Ident) -> Result<V2ConnectorEvent, V2Error> {
        let t = self.p.target;
        let found = id.addrs.0.iter().any(|a| {
            a.ty == t.ty
                && a.addr.addr == t.addr.addr
                && (!self.p.check_peer_nonce || a.addr.nonce == t.addr.nonce)
        });
        if !found {
            return Err(V2Error::WrongPeer(format!(
                "we dialled {:?}, the server's addresses are {:?}",
                t.addr, id.addrs
            )));
        }
        let missing = self.p.features_required & !id.features_supported;
        if missing != 0 {
            return Err(V2Error::MissingFeatures(missing));
        }
        Ok(self.ready(
            id.addrs,
            id.gid,
            id.global_seq,
            id.features_supported & self.p.features_supported,
            id.flags & FLAG_LOSSY != 0,
            id.cookie,
            None,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn ready(
        &mut self,
        peer_addrs: AddrVec,
        peer_gid: i64,
        peer_global_seq: u64,
        features: u64,
        lossy: bool,
        server_cookie: u64,
        peer_acked_seq: Option<u64>,
    ) -> V2ConnectorEvent {
        self.state = State::Done;
        V2ConnectorEvent::Ready(Box::new(V2Established {
            peer_addrs,
            peer_gid,
            peer_global_seq,
            features,
            lossy,
            server_cookie,
            my_addrs: self.p.my_addrs.clone(),
            global_id: self.global_id,
            con_mode: self.con_mode,
            session_key: self.session_key.clone(),
            peer_acked_seq,
            connect_seq: self.p.resume.map_or(0, |r| r.connect_seq),
            client_cookie: self.p.client_cookie,
        }))
    }
}

impl V2ConnectorParams {
    fn target_addrs(&self) -> AddrVec {
        AddrVec(vec![self.target])
    }
}

/// A client's own address before it binds: type ANY, its nonce, blank IP.
pub fn unbound_addrs(nonce: u32) -> AddrVec {
    AddrVec(vec![TypedAddr {
        ty: AddrType::Any,
        addr: crate::entity::EntityAddr::blank(nonce),
    }])
}
