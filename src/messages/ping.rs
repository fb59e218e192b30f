//! MPing (type 2) and a monitor's answer to it (spec §3.4, §6).

use bytes::Bytes;

use super::CEPH_MSG_PING;
use crate::denc::{Decode, Reader};
use crate::error::DencError;
use crate::message::{Message, Payload};

/// MPing: an empty liveness probe. A ceph-mon answers it even before authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MPing;

impl Payload for MPing {
    const TYPE: u16 = CEPH_MSG_PING;
    const VERSION: u16 = 1;
    // Ceph fills compat_version with version when it is 0, so a sent MPing says compat 1.
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, _front: &mut Vec<u8>) {}
    fn decode_payload(_msg: &Message) -> Result<Self, DencError> {
        Ok(MPing)
    }
}

/// A mon's reply to MPing: the same type 2, with the front holding one Ceph string of JSON
/// (`{"health": ..., "mon_status": ...}`), version 1, compat 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonPingReply {
    /// The JSON document, as the mon formatted it.
    pub json: String,
}

impl Payload for MonPingReply {
    const TYPE: u16 = CEPH_MSG_PING;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 0;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        crate::denc::Encode::encode(&self.json, front);
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        let json = String::decode(&mut Reader::new(&msg.front))?;
        Ok(MonPingReply { json })
    }
}

impl MonPingReply {
    /// Wraps a JSON document.
    pub fn new(json: impl Into<String>) -> Self {
        MonPingReply { json: json.into() }
    }

    /// The front as a mon would send it.
    pub fn front(&self) -> Bytes {
        crate::denc::to_vec(&self.json).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mping_is_empty_version_1_compat_1() {
        let m = Message::from_payload(&MPing);
        assert_eq!((m.msg_type, m.version, m.compat_version), (2, 1, 1));
        assert!(m.front.is_empty());
        assert_eq!(m.decode_payload::<MPing>().unwrap(), MPing);
    }

    #[test]
    fn mon_reply_is_a_u32_length_json_string() {
        let mut m = Message::new(2, Bytes::from_static(b"\x0d\x00\x00\x00{\"health\":{}}"));
        m.version = 1;
        let r = m.decode_payload::<MonPingReply>().unwrap();
        assert_eq!(r.json, "{\"health\":{}}");
        assert_eq!(r.front(), m.front);
        let truncated = Message::new(2, Bytes::from_static(b"\xff\x00\x00\x00{}"));
        assert!(truncated.decode_payload::<MonPingReply>().is_err());
        assert!(Message::new(5, Bytes::new())
            .decode_payload::<MPing>()
            .is_err());
    }
}
