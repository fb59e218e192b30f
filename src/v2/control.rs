//! msgr2 control frames (spec §5, §6): tags and payloads, each a single segment.

use bytes::Bytes;

use super::addr::{AddrVec, TypedAddr};
use super::V2Error;
use crate::denc::{Decode, Encode, Reader};
use crate::entity::EntityType;
use crate::error::DencError;

/// Frame tags (Pacific's `enum class Tag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Tag {
    Hello = 1,
    AuthRequest = 2,
    AuthBadMethod = 3,
    AuthReplyMore = 4,
    AuthRequestMore = 5,
    AuthDone = 6,
    AuthSignature = 7,
    ClientIdent = 8,
    ServerIdent = 9,
    IdentMissingFeatures = 10,
    SessionReconnect = 11,
    SessionReset = 12,
    SessionRetry = 13,
    SessionRetryGlobal = 14,
    SessionReconnectOk = 15,
    Wait = 16,
    Message = 17,
    Keepalive2 = 18,
    Keepalive2Ack = 19,
    Ack = 20,
}

impl Tag {
    /// The tag's name, as Ceph spells it.
    pub fn name(self) -> &'static str {
        tag_name(self as u8)
    }
}

/// `CEPH_CON_MODE_CRC`.
pub const CON_MODE_CRC: u32 = 1;
/// `CEPH_CON_MODE_SECURE`.
pub const CON_MODE_SECURE: u32 = 2;

/// `CLIENT_IDENT` / `SERVER_IDENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The sender's addresses.
    pub addrs: AddrVec,
    /// CLIENT_IDENT only: the address it dialled.
    pub target_addr: Option<TypedAddr>,
    /// The number of the sender's entity name (-1 when unknown).
    pub gid: i64,
    /// The sender's messenger-wide global_seq.
    pub global_seq: u64,
    /// Feature bits supported.
    pub features_supported: u64,
    /// Feature bits required.
    pub features_required: u64,
    /// `CEPH_MSG_CONNECT_LOSSY` (1) when the sender's policy is lossy.
    pub flags: u64,
    /// The session's cookie (0 for lossy sessions).
    pub cookie: u64,
}

/// `SESSION_RECONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// The client's addresses.
    pub addrs: AddrVec,
    /// The session's client cookie.
    pub client_cookie: u64,
    /// The session's server cookie.
    pub server_cookie: u64,
    /// A fresh global_seq.
    pub global_seq: u64,
    /// The session's connect_seq plus one.
    pub connect_seq: u64,
    /// The client's in_seq.
    pub msg_seq: u64,
}

/// A control frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Control {
    Hello {
        entity_type: EntityType,
        peer_addr: TypedAddr,
    },
    AuthRequest {
        method: u32,
        modes: Vec<u32>,
        payload: Bytes,
    },
    AuthBadMethod {
        method: u32,
        result: i32,
        allowed_methods: Vec<u32>,
        allowed_modes: Vec<u32>,
    },
    AuthReplyMore {
        payload: Bytes,
    },
    AuthRequestMore {
        payload: Bytes,
    },
    AuthDone {
        global_id: u64,
        con_mode: u32,
        payload: Bytes,
    },
    AuthSignature {
        hmac: [u8; 32],
    },
    ClientIdent(Ident),
    ServerIdent(Ident),
    IdentMissingFeatures {
        missing: u64,
    },
    SessionReconnect(Reconnect),
    SessionReset {
        full: bool,
    },
    SessionRetry {
        connect_seq: u64,
    },
    SessionRetryGlobal {
        global_seq: u64,
    },
    SessionReconnectOk {
        msg_seq: u64,
    },
    Wait,
    Keepalive2 {
        sec: u32,
        nsec: u32,
    },
    Keepalive2Ack {
        sec: u32,
        nsec: u32,
    },
    Ack {
        seq: u64,
    },
}

/// Most entries in a method or mode list.
const MAX_LIST: u32 = 16;

fn list(r: &mut Reader<'_>) -> Result<Vec<u32>, DencError> {
    let n = u32::decode(r)?;
    if n > MAX_LIST {
        return Err(DencError::Invalid {
            what: "method or mode list length",
            value: u64::from(n),
        });
    }
    (0..n).map(|_| u32::decode(r)).collect()
}

impl Control {
    /// The frame's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Control::Hello { .. } => Tag::Hello,
            Control::AuthRequest { .. } => Tag::AuthRequest,
            Control::AuthBadMethod { .. } => Tag::AuthBadMethod,
            Control::AuthReplyMore { .. } => Tag::AuthReplyMore,
            Control::AuthRequestMore { .. } => Tag::AuthRequestMore,
            Control::AuthDone { .. } => Tag::AuthDone,
            Control::AuthSignature { .. } => Tag::AuthSignature,
            Control::ClientIdent(_) => Tag::ClientIdent,
            Control::ServerIdent(_) => Tag::ServerIdent,
            Control::IdentMissingFeatures { .. } => Tag::IdentMissingFeatures,
            Control::SessionReconnect(_) => Tag::SessionReconnect,
            Control::SessionReset { .. } => Tag::SessionReset,
            Control::SessionRetry { .. } => Tag::SessionRetry,
            Control::SessionRetryGlobal { .. } => Tag::SessionRetryGlobal,
            Control::SessionReconnectOk { .. } => Tag::SessionReconnectOk,
            Control::Wait => Tag::Wait,
            Control::Keepalive2 { .. } => Tag::Keepalive2,
            Control::Keepalive2Ack { .. } => Tag::Keepalive2Ack,
            Control::Ack { .. } => Tag::Ack,
        }
    }

    /// The payload (the frame's one segment).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(64);
        match self {
            Control::Hello {
                entity_type,
                peer_addr,
            } => {
                o.push(entity_type.0);
                peer_addr.encode(&mut o);
            }
            Control::AuthRequest {
                method,
                modes,
                payload,
            } => {
                method.encode(&mut o);
                modes.encode(&mut o);
                payload.encode(&mut o);
            }
            Control::AuthBadMethod {
                method,
                result,
                allowed_methods,
                allowed_modes,
            } => {
                method.encode(&mut o);
                result.encode(&mut o);
                allowed_methods.encode(&mut o);
                allowed_modes.encode(&mut o);
            }
            Control::AuthReplyMore { payload } | Control::AuthRequestMore { payload } => {
                payload.encode(&mut o)
            }
            Control::AuthDone {
                global_id,
                con_mode,
                payload,
            } => {
                global_id.encode(&mut o);
                con_mode.encode(&mut o);
                payload.encode(&mut o);
            }
            Control::AuthSignature { hmac } => o.extend_from_slice(hmac),
            Control::ClientIdent(i) | Control::ServerIdent(i) => {
                i.addrs.encode(&mut o);
                if let Some(t) = &i.target_addr {
                    t.encode(&mut o);
                }
                i.gid.encode(&mut o);
                i.global_seq.encode(&mut o);
                i.features_supported.encode(&mut o);
                i.features_required.encode(&mut o);
                i.flags.encode(&mut o);
                i.cookie.encode(&mut o);
            }
            Control::IdentMissingFeatures { missing } => missing.encode(&mut o),
            Control::SessionReconnect(r) => {
                r.addrs.encode(&mut o);
                r.client_cookie.encode(&mut o);
                r.server_cookie.encode(&mut o);
                r.global_seq.encode(&mut o);
                r.connect_seq.encode(&mut o);
                r.msg_seq.encode(&mut o);
            }
            Control::SessionReset { full } => full.encode(&mut o),
            Control::SessionRetry { connect_seq } => connect_seq.encode(&mut o),
            Control::SessionRetryGlobal { global_seq } => global_seq.encode(&mut o),
            Control::SessionReconnectOk { msg_seq } => msg_seq.encode(&mut o),
            Control::Wait => {}
            Control::Keepalive2 { sec, nsec } | Control::Keepalive2Ack { sec, nsec } => {
                sec.encode(&mut o);
                nsec.encode(&mut o);
            }
            Control::Ack { seq } => seq.encode(&mut o),
        }
        o
    }

    /// Decodes the payload of a frame of `tag` (MESSAGE is not a control frame).
    pub fn decode(tag: u8, payload: &[u8]) -> Result<Control, V2Error> {
        if tag == 0 || tag == Tag::Message as u8 || tag > Tag::Ack as u8 {
            return Err(V2Error::UnexpectedTag(tag));
        }
        let name = tag_name(tag);
        let mut r = Reader::new(payload);
        let c =
            decode_body(tag, &mut r).map_err(|error| V2Error::Payload { frame: name, error })?;
        Ok(c)
    }
}

fn tag_name(tag: u8) -> &'static str {
    const NAMES: [&str; 21] = [
        "?",
        "HELLO",
        "AUTH_REQUEST",
        "AUTH_BAD_METHOD",
        "AUTH_REPLY_MORE",
        "AUTH_REQUEST_MORE",
        "AUTH_DONE",
        "AUTH_SIGNATURE",
        "CLIENT_IDENT",
        "SERVER_IDENT",
        "IDENT_MISSING_FEATURES",
        "SESSION_RECONNECT",
        "SESSION_RESET",
        "SESSION_RETRY",
        "SESSION_RETRY_GLOBAL",
        "SESSION_RECONNECT_OK",
        "WAIT",
        "MESSAGE",
        "KEEPALIVE2",
        "KEEPALIVE2_ACK",
        "ACK",
    ];
    NAMES.get(tag as usize).copied().unwrap_or("?")
}

fn ident(r: &mut Reader<'_>, client: bool) -> Result<Ident, DencError> {
    Ok(Ident {
        addrs: AddrVec::decode(r)?,
        target_addr: if client {
            Some(TypedAddr::decode(r)?)
        } else {
            None
        },
        gid: i64::decode(r)?,
        global_seq: u64::decode(r)?,
        features_supported: u64::decode(r)?,
        features_required: u64::decode(r)?,
        flags: u64::decode(r)?,
        cookie: u64::decode(r)?,
    })
}

fn decode_body(tag: u8, r: &mut Reader<'_>) -> Result<Control, DencError> {
    Ok(match tag {
        1 => Control::Hello {
            entity_type: EntityType(u8::decode(r)?),
            peer_addr: TypedAddr::decode(r)?,
        },
        2 => Control::AuthRequest {
            method: u32::decode(r)?,
            modes: list(r)?,
            payload: Bytes::decode(r)?,
        },
        3 => Control::AuthBadMethod {
            method: u32::decode(r)?,
            result: i32::decode(r)?,
            allowed_methods: list(r)?,
            allowed_modes: list(r)?,
        },
        4 => Control::AuthReplyMore {
            payload: Bytes::decode(r)?,
        },
        5 => Control::AuthRequestMore {
            payload: Bytes::decode(r)?,
        },
        6 => Control::AuthDone {
            global_id: u64::decode(r)?,
            con_mode: u32::decode(r)?,
            payload: Bytes::decode(r)?,
        },
        7 => {
            let mut hmac = [0u8; 32];
            hmac.copy_from_slice(r.take("AUTH_SIGNATURE", 32)?);
            Control::AuthSignature { hmac }
        }
        8 => Control::ClientIdent(ident(r, true)?),
        9 => Control::ServerIdent(ident(r, false)?),
        10 => Control::IdentMissingFeatures {
            missing: u64::decode(r)?,
        },
        11 => Control::SessionReconnect(Reconnect {
            addrs: AddrVec::decode(r)?,
            client_cookie: u64::decode(r)?,
            server_cookie: u64::decode(r)?,
            global_seq: u64::decode(r)?,
            connect_seq: u64::decode(r)?,
            msg_seq: u64::decode(r)?,
        }),
        12 => Control::SessionReset {
            full: bool::decode(r)?,
        },
        13 => Control::SessionRetry {
            connect_seq: u64::decode(r)?,
        },
        14 => Control::SessionRetryGlobal {
            global_seq: u64::decode(r)?,
        },
        15 => Control::SessionReconnectOk {
            msg_seq: u64::decode(r)?,
        },
        16 => Control::Wait,
        18 => Control::Keepalive2 {
            sec: u32::decode(r)?,
            nsec: u32::decode(r)?,
        },
        19 => Control::Keepalive2Ack {
            sec: u32::decode(r)?,
            nsec: u32::decode(r)?,
        },
        20 => Control::Ack {
            seq: u64::decode(r)?,
        },
        t => {
            return Err(DencError::Invalid {
                what: "control frame tag",
                value: u64::from(t),
            })
        }
    })
}
