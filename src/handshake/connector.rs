//! The dialling side of the handshake (spec §1.2 steps 1–5, §2.7).
//!
//! Fed the bytes the server sends, it produces the bytes to write: our banner at once, then our
//! address and connect once the server's banner and addresses check out, then again after every
//! RETRY_* or RESETSESSION, then our in_seq after SEQ. It ends in [`ConnectorEvent::Ready`] or an
//! error; RETRY_GLOBAL needs a fresh messenger-wide global_seq, which the runtime supplies.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::authorizer::{Authorizer, CEPH_AUTH_CEPHX};
use super::{HandshakeError, MAX_AUTHORIZER_LEN};
use crate::auth::cephx::ClientAuthorizer;
use crate::auth::CryptoKey;
use crate::entity::{EntityAddr, EntityType, ENTITY_ADDR_LEN};
use crate::error::DecodeError;
use crate::features;
use crate::policy::Policy;
use crate::wire::connect::CONNECT_FLAG_LOSSY;
use crate::wire::{ConnectMsg, ConnectReply, Tag, BANNER, CONNECT_REPLY_LEN};

/// What the connector needs to know to dial.
#[derive(Debug, Clone)]
pub struct ConnectorParams {
    /// Our address (blank IP allowed: it is learned from the server when `learn_addr`).
    pub my_addr: EntityAddr,
    /// Our entity type.
    pub my_type: EntityType,
    /// The address we dialled.
    pub peer_addr: EntityAddr,
    /// When false, any nonce the server claims is accepted (we dialled a bare IP:port).
    pub check_peer_nonce: bool,
    /// Our policy toward this peer type.
    pub policy: Policy,
    /// Fresh global_seq for this attempt.
    pub global_seq: u32,
    /// The session's connect_seq (0 for a new session).
    pub connect_seq: u32,
    /// The session's in_seq, sent after SEQ.
    pub in_seq: u64,
    /// Protocol version to send (see [`super::protocol_version`]).
    pub protocol_version: u32,
    /// Authorizer to send, if any (auth none).
    pub authorizer: Option<Authorizer>,
    /// A cephx authorizer to send instead (spec §9.8): it answers the server's challenge, and
    /// the server's reply must prove it read it.
    pub cephx: Option<ClientAuthorizer>,
    /// Learn our IP from the address the server saw.
    pub learn_addr: bool,
}

/// The handshake's outcome: what the session now is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The server's address, with its real nonce.
    pub peer_addr: EntityAddr,
    /// Our address, possibly learned.
    pub my_addr: EntityAddr,
    /// Features both sides have.
    pub features: u64,
    /// The session's connect_seq after this connect.
    pub connect_seq: u32,
    /// The server's global_seq.
    pub peer_global_seq: u32,
    /// The global_seq we used in the connect that succeeded.
    pub global_seq: u32,
    /// The server decided the session is lossy.
    pub lossy: bool,
    /// From SEQ: the last of our messages the server has (drop requeued up to it). None after READY.
    pub peer_acked_seq: Option<u64>,
    /// The session key of the cephx authorizer the server accepted (signs messages).
    pub session_key: Option<CryptoKey>,
}

/// Something the runtime must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorEvent {
    /// The session is open; leftover input bytes belong to the message phase.
    Ready(Established),
    /// RETRY_GLOBAL: call [`Connector::retry_global`] with a messenger global_seq above `peer_global_seq`.
    NeedGlobalSeq {
        /// The value to exceed.
        peer_global_seq: u32,
    },
    /// RESETSESSION: the server lost our session. Reset the session (drop queued and unacked,
    /// in_seq 0) and tell the dispatcher (remote reset); the connector already re-sent connect with cs 0.
    SessionReset,
    /// WAIT: we lost a connection race; fault and retry after `ms_max_backoff`.
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for banner + server addr + our addr as seen (281 bytes).
    ServerHello,
    /// Waiting for a connect reply.
    Reply,
    /// Reply read; waiting for its authorizer bytes.
    ReplyAuthorizer(ConnectReply),
    /// SEQ read with its authorizer; waiting for the server's u64 in_seq.
    SeqAck(ConnectReply),
    /// Waiting for the runtime's new global_seq.
    AwaitGlobalSeq,
    /// Finished (ready, waiting, or failed).
    Done,
}

/// The connector state machine.
#[derive(Debug)]
pub struct Connector {
    p: ConnectorParams,
    state: State,
    out: BytesMut,
    peer_addr: EntityAddr,
}

const SERVER_HELLO_LEN: usize = BANNER.len() + 2 * ENTITY_ADDR_LEN;

impl Connector {
    /// Starts a handshake; the banner is ready to write at once.
    pub fn new(params: ConnectorParams) -> Self {
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(BANNER);
        let peer_addr = params.peer_addr;
        Connector {
            p: params,
            state: State::ServerHello,
            out,
            peer_addr,
        }
    }

    /// Bytes to write to the socket, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The global_seq of the current attempt.
    pub fn global_seq(&self) -> u32 {
        self.p.global_seq
    }

    /// The connect_seq of the current attempt.
    pub fn connect_seq(&self) -> u32 {
        self.p.connect_seq
    }

    /// Bytes the next step needs in the input buffer.
    pub fn wanted(&self) -> usize {
        match self.state {
            State::ServerHello => SERVER_HELLO_LEN,
            State::Reply => CONNECT_REPLY_LEN,
            State::ReplyAuthorizer(r) => r.authorizer_len as usize,
            State::SeqAck(_) => 8,
            State::AwaitGlobalSeq | State::Done => 0,
        }
    }

    /// Answers [`ConnectorEvent::NeedGlobalSeq`]: resend connect with `global_seq`.
    pub fn retry_global(&mut self, global_seq: u32) -> Result<(), HandshakeError> {
        if self.state != State::AwaitGlobalSeq {
            return Err(HandshakeError::OutOfOrder(
                "retry_global without RETRY_GLOBAL",
            ));
        }
        self.p.global_seq = global_seq;
        self.send_connect();
        self.state = State::Reply;
        Ok(())
    }

    fn send_connect(&mut self) {
        let (auth_proto, auth_blob) = match (&self.p.cephx, &self.p.authorizer) {
            (Some(c), _) => (CEPH_AUTH_CEPHX, c.encode()),
            (None, Some(a)) => (a.protocol, a.blob.clone()),
            (None, None) => (0, Bytes::new()),
        };
        let msg = ConnectMsg {
            features: self.p.policy.features_supported,
            host_type: self.p.my_type,
            global_seq: self.p.global_seq,
            connect_seq: self.p.connect_seq,
            protocol_version: self.p.protocol_version,
            authorizer_protocol: auth_proto,
            authorizer_len: auth_blob.len() as u32,
            flags: if self.p.policy.lossy {
                CONNECT_FLAG_LOSSY
            } else {
                0
            },
        };
        self.out.put_slice(&msg.encode());
        self.out.put_slice(&auth_blob);
    }

    /// Consumes handshake bytes from the front of `buf`. `Ok(None)` means "need more input".
    pub fn handle_input(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<ConnectorEvent>, HandshakeError> {
        loop {
            match self.state {
                State::ServerHello => {
                    if buf.len() < SERVER_HELLO_LEN {
                        return Ok(None);
                    }
                    let hello = buf.split_to(SERVER_HELLO_LEN);
                    self.handle_server_hello(&hello)?;
                    self.state = State::Reply;
                }
                State::Reply => {
                    if buf.len() < CONNECT_REPLY_LEN {
                        return Ok(None);
                    }
                    let reply = ConnectReply::decode(&buf.split_to(CONNECT_REPLY_LEN))?;
                    if reply.authorizer_len >= MAX_AUTHORIZER_LEN {
                        self.state = State::Done;
                        return Err(HandshakeError::AuthorizerTooLong(reply.authorizer_len));
                    }
                    self.state = State::ReplyAuthorizer(reply);
                }
                State::ReplyAuthorizer(reply) => {
                    if buf.len() < reply.authorizer_len as usize {
                        return Ok(None);
                    }
                    let auth = buf.split_to(reply.authorizer_len as usize).freeze();
                    self.state = State::Reply;
                    if let Some(ev) = self.handle_reply(reply, &auth)? {
                        return Ok(Some(ev));
                    }
                }
                State::SeqAck(reply) => {
                    if buf.len() < 8 {
                        return Ok(None);
                    }
                    let acked = buf.get_u64_le();
                    self.out.put_u64_le(self.p.in_seq);
                    return self.ready(reply, Some(acked)).map(Some);
                }
                State::AwaitGlobalSeq | State::Done => return Ok(None),
            }
        }
    }

    fn handle_server_hello(&mut self, hello: &[u8]) -> Result<(), HandshakeError> {
        if &hello[..BANNER.len()] != BANNER {
            self.state = State::Done;
            return Err(DecodeError::BadBanner(hello[..BANNER.len()].to_vec()).into());
        }
        let claimed = EntityAddr::decode_legacy(&hello[9..9 + ENTITY_ADDR_LEN])?;
        let seen = EntityAddr::decode_legacy(&hello[9 + ENTITY_ADDR_LEN..])?;
        let dialled = self.p.peer_addr;
        let same_sock = claimed.addr == dialled.addr
            || (claimed.is_blank_ip() && claimed.port() == dialled.port());
        let same_nonce = !self.p.check_peer_nonce || claimed.nonce == dialled.nonce;
        if !same_sock || !same_nonce {
            self.state = State::Done;
            return Err(HandshakeError::WrongPeer {
                dialled: dialled.to_string(),
                claimed: claimed.to_string(),
            });
        }
        self.peer_addr = EntityAddr {
            nonce: claimed.nonce,
            addr: dialled.addr,
        };
        if self.p.learn_addr && self.p.my_addr.is_blank_ip() {
            if let Some(seen) = seen.addr {
                let port = self.p.my_addr.port();
                self.p.my_addr.addr = Some(std::net::SocketAddr::new(seen.ip(), port));
            }
        }
        self.out.put_slice(&self.p.my_addr.encode_legacy());
        self.send_connect();
        Ok(())
    }

    fn handle_reply(
        &mut self,
        reply: ConnectReply,
        auth: &[u8],
    ) -> Result<Option<ConnectorEvent>, HandshakeError> {
        let fail = |s: &mut Self, e| {
            s.state = State::Done;
            Err(e)
        };
        match reply.tag() {
            Some(Tag::Features) => {
                let missing = reply.features & !self.p.policy.features_supported;
                fail(self, HandshakeError::MissingFeatures { missing })
            }
            Some(Tag::BadProtoVer) => fail(
                self,
                HandshakeError::BadProtocolVersion {
                    ours: self.p.protocol_version,
                    theirs: reply.protocol_version,
                },
            ),
            Some(Tag::BadAuthorizer) => fail(self, HandshakeError::BadAuthorizer),
            Some(Tag::ChallengeAuthorizer) => {
                let Some(cephx) = self.p.cephx.as_mut() else {
                    return fail(self, HandshakeError::ChallengeUnsupported);
                };
                if let Err(e) = cephx.answer_challenge(auth) {
                    return fail(self, HandshakeError::Cephx(e));
                }
                // The same connect again, now answering the challenge.
                self.send_connect();
                Ok(None)
            }
            Some(Tag::ResetSession) => {
                self.p.connect_seq = 0;
                self.p.in_seq = 0;
                self.send_connect();
                Ok(Some(ConnectorEvent::SessionReset))
            }
            Some(Tag::RetryGlobal) => {
                self.state = State::AwaitGlobalSeq;
                Ok(Some(ConnectorEvent::NeedGlobalSeq {
                    peer_global_seq: reply.global_seq,
                }))
            }
            Some(Tag::RetrySession) => {
                self.p.connect_seq = reply.connect_seq;
                self.send_connect();
                Ok(None)
            }
            Some(Tag::Wait) => {
                self.state = State::Done;
                Ok(Some(ConnectorEvent::Wait))
            }
            Some(Tag::Seq) => {
                self.check_reply_authorizer(auth)?;
                self.state = State::SeqAck(reply);
                Ok(None)
            }
            Some(Tag::Ready) => {
                self.check_reply_authorizer(auth)?;
                self.ready(reply, None).map(Some)
            }
            _ => fail(self, HandshakeError::UnexpectedTag(reply.tag)),
        }
    }

    /// An open reply must prove the server read our cephx authorizer (nonce + 1).
    fn check_reply_authorizer(&mut self, auth: &[u8]) -> Result<(), HandshakeError> {
        if let Some(cephx) = &self.p.cephx {
            if let Err(e) = cephx.verify_reply(auth) {
                self.state = State::Done;
                return Err(HandshakeError::Cephx(e));
            }
        }
        Ok(())
    }

    fn ready(
        &mut self,
        reply: ConnectReply,
        acked: Option<u64>,
    ) -> Result<ConnectorEvent, HandshakeError> {
        self.state = State::Done;
        let missing = self.p.policy.features_required & !reply.features;
        if missing != 0 {
            return Err(HandshakeError::MissingFeatures { missing });
        }
        let expected = self.p.connect_seq.wrapping_add(1);
        if reply.connect_seq != expected {
            return Err(HandshakeError::ConnectSeqMismatch {
                expected,
                got: reply.connect_seq,
            });
        }
        Ok(ConnectorEvent::Ready(Established {
            peer_addr: self.peer_addr,
            my_addr: self.p.my_addr,
            features: reply.features & self.p.policy.features_supported,
            connect_seq: reply.connect_seq,
            peer_global_seq: reply.global_seq,
            global_seq: self.p.global_seq,
            lossy: reply.flags & CONNECT_FLAG_LOSSY != 0,
            peer_acked_seq: acked,
            session_key: self.p.cephx.as_ref().map(|c| c.session_key().clone()),
        }))
    }
}

/// True when the negotiated features call for 21-byte footers.
pub fn uses_msg_auth(features: u64) -> bool {
    features::has_all(features, features::MSG_AUTH)
}
