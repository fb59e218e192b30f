//! The handshake's fixed structs: `ceph_msg_connect` (33 B) and `ceph_msg_connect_reply` (26 B), spec §2.1–2.2.

use super::Tag;
use crate::entity::EntityType;
use crate::error::DecodeError;

/// Size of `ceph_msg_connect`.
pub const CONNECT_LEN: usize = 33;
/// Size of `ceph_msg_connect_reply`.
pub const CONNECT_REPLY_LEN: usize = 26;
/// Connect / reply flag: the connection is lossy.
pub const CONNECT_FLAG_LOSSY: u8 = 1;

/// `ceph_msg_connect`: what the connector asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectMsg {
    /// Feature bits the connector supports.
    pub features: u64,
    /// The connector's entity type.
    pub host_type: EntityType,
    /// The connector's global_seq for this attempt.
    pub global_seq: u32,
    /// The connector's connect_seq (0 for a new session).
    pub connect_seq: u32,
    /// The protocol version the connector expects (spec §2.4).
    pub protocol_version: u32,
    /// 0 none, 1 AuthNone, 2 cephx.
    pub authorizer_protocol: u32,
    /// Length of the authorizer blob that follows.
    pub authorizer_len: u32,
    /// Bit 0: the connector considers itself lossy (informational).
    pub flags: u8,
}

impl ConnectMsg {
    /// Wire form.
    pub fn encode(&self) -> [u8; CONNECT_LEN] {
        let mut b = [0u8; CONNECT_LEN];
        b[0..8].copy_from_slice(&self.features.to_le_bytes());
        b[8..12].copy_from_slice(&(self.host_type.0 as u32).to_le_bytes());
        b[12..16].copy_from_slice(&self.global_seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.connect_seq.to_le_bytes());
        b[20..24].copy_from_slice(&self.protocol_version.to_le_bytes());
        b[24..28].copy_from_slice(&self.authorizer_protocol.to_le_bytes());
        b[28..32].copy_from_slice(&self.authorizer_len.to_le_bytes());
        b[32] = self.flags;
        b
    }

    /// Parses the wire form.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        check_len("ceph_msg_connect", b, CONNECT_LEN)?;
        Ok(ConnectMsg {
            features: le64(&b[0..8]),
            // host_type is a u32 on the wire; entity types fit in its low byte.
            host_type: EntityType(le32(&b[8..12]) as u8),
            global_seq: le32(&b[12..16]),
            connect_seq: le32(&b[16..20]),
            protocol_version: le32(&b[20..24]),
            authorizer_protocol: le32(&b[24..28]),
            authorizer_len: le32(&b[28..32]),
            flags: b[32],
        })
    }
}

/// `ceph_msg_connect_reply`: the acceptor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectReply {
    /// The reply tag (READY, SEQ, RETRY_*, ...), kept as a raw byte so unknown tags can be reported.
    pub tag: u8,
    /// The acceptor's feature bits (see spec §2.6 step 9 for which).
    pub features: u64,
    /// The acceptor's global_seq (or the value to exceed, for RETRY_GLOBAL).
    pub global_seq: u32,
    /// The session's connect_seq (or the value to retry with, for RETRY_SESSION).
    pub connect_seq: u32,
    /// The protocol version the acceptor expects.
    pub protocol_version: u32,
    /// Length of the authorizer reply that follows.
    pub authorizer_len: u32,
    /// Bit 0: the acceptor decided the connection is lossy.
    pub flags: u8,
}

impl ConnectReply {
    /// The reply's tag, if it is a known one.
    pub fn tag(&self) -> Option<Tag> {
        Tag::from_u8(self.tag)
    }

    /// Wire form.
    pub fn encode(&self) -> [u8; CONNECT_REPLY_LEN] {
        let mut b = [0u8; CONNECT_REPLY_LEN];
        b[0] = self.tag;
        b[1..9].copy_from_slice(&self.features.to_le_bytes());
        b[9..13].copy_from_slice(&self.global_seq.to_le_bytes());
        b[13..17].copy_from_slice(&self.connect_seq.to_le_bytes());
        b[17..21].copy_from_slice(&self.protocol_version.to_le_bytes());
        b[21..25].copy_from_slice(&self.authorizer_len.to_le_bytes());
        b[25] = self.flags;
        b
    }

    /// Parses the wire form.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        check_len("ceph_msg_connect_reply", b, CONNECT_REPLY_LEN)?;
        Ok(ConnectReply {
            tag: b[0],
            features: le64(&b[1..9]),
            global_seq: le32(&b[9..13]),
            connect_seq: le32(&b[13..17]),
            protocol_version: le32(&b[17..21]),
            authorizer_len: le32(&b[21..25]),
            flags: b[25],
        })
    }
}

fn check_len(what: &'static str, b: &[u8], need: usize) -> Result<(), DecodeError> {
    if b.len() < need {
        return Err(DecodeError::Truncated {
            what,
            need,
            have: b.len(),
        });
    }
    Ok(())
}

pub(crate) fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::CEPH_FEATURES_ALL;
    use crate::wire::hex;

    #[test]
    fn observed_seq_reply_from_a_mon() {
        let bytes = hex("0d fffffdffbdcf013f 01000000 01000000 0f000000 00000000 01");
        let r = ConnectReply::decode(&bytes).unwrap();
        assert_eq!(r.tag(), Some(Tag::Seq));
        assert_eq!(r.features, CEPH_FEATURES_ALL);
        assert_eq!(
            (r.global_seq, r.connect_seq, r.protocol_version),
            (1, 1, 15)
        );
        assert_eq!((r.authorizer_len, r.flags), (0, 1));
        assert_eq!(r.encode().to_vec(), bytes);
    }

    #[test]
    fn client_connect_as_ceph_ping_sends_it() {
        let c = ConnectMsg {
            features: CEPH_FEATURES_ALL,
            host_type: EntityType::CLIENT,
            global_seq: 1,
            connect_seq: 0,
            protocol_version: 15,
            authorizer_protocol: 0,
            authorizer_len: 0,
            flags: 1,
        };
        let b = c.encode();
        assert_eq!(
            b.to_vec(),
            hex("fffffdffbdcf013f 08000000 01000000 00000000 0f000000 00000000 00000000 01")
        );
        assert_eq!(ConnectMsg::decode(&b).unwrap(), c);
        assert!(ConnectMsg::decode(&b[..32]).is_err());
    }
}
