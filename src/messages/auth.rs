//! MAuth (type 17) and MAuthReply (type 18): the mon client's authentication exchange over
//! msgr v1 (spec §9.7).

use bytes::Bytes;

use super::{CEPH_MSG_AUTH, CEPH_MSG_AUTH_REPLY};
use crate::denc::{Decode, Encode, Reader};
use crate::error::DencError;
use crate::message::{Message, Payload};

/// Largest auth payload we accept in a reply (a reply with every service's ticket is < 1 KiB).
const MAX_AUTH_PAYLOAD: usize = 64 * 1024;

/// MAuth: one step of authentication, client to mon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MAuth {
    /// 0 for the first step (the payload lists the methods we speak), then the chosen method.
    pub protocol: u32,
    /// The step's payload.
    pub auth_payload: Bytes,
    /// The monmap epoch we have (0: none).
    pub monmap_epoch: u32,
}

impl Payload for MAuth {
    const TYPE: u16 = CEPH_MSG_AUTH;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        // PaxosServiceMessage: version, deprecated session mon (-1) and its tid.
        0u64.encode(front);
        (-1i16).encode(front);
        0u64.encode(front);
        self.protocol.encode(front);
        self.auth_payload.encode(front);
        self.monmap_epoch.encode(front);
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        let mut r = Reader::new(&msg.front);
        r.take("PaxosServiceMessage header", 18)?;
        let protocol = u32::decode(&mut r)?;
        let auth_payload = Bytes::decode(&mut r)?;
        Ok(MAuth {
            protocol,
            auth_payload,
            monmap_epoch: u32::decode(&mut r)?,
        })
    }
}

/// MAuthReply: the mon's answer to one MAuth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MAuthReply {
    /// The method the mon chose.
    pub protocol: u32,
    /// 0, or a negative errno (-13: key refused).
    pub result: i32,
    /// Our global id.
    pub global_id: u64,
    /// The step's payload.
    pub result_bl: Bytes,
    /// A message for humans (empty in every reply observed).
    pub result_msg: String,
}

impl Payload for MAuthReply {
    const TYPE: u16 = CEPH_MSG_AUTH_REPLY;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        self.protocol.encode(front);
        self.result.encode(front);
        self.global_id.encode(front);
        self.result_bl.encode(front);
        self.result_msg.encode(front);
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        let mut r = Reader::new(&msg.front);
        let protocol = u32::decode(&mut r)?;
        let result = i32::decode(&mut r)?;
        let global_id = u64::decode(&mut r)?;
        let result_bl = Bytes::decode(&mut r)?;
        if result_bl.len() > MAX_AUTH_PAYLOAD {
            return Err(DencError::Invalid {
                what: "MAuthReply payload length",
                value: result_bl.len() as u64,
            });
        }
        Ok(MAuthReply {
            protocol,
            result,
            global_id,
            result_bl,
            result_msg: String::decode(&mut r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    /// Spec Appendix A.3: the first MAuth and its reply, as a live mon exchanged them.
    #[test]
    fn round_one_of_a3_byte_for_byte() {
        let m = MAuth {
            protocol: 0,
            auth_payload: hex("01 01000000 02000000 08000000 05000000 61646d696e 0000000000000000")
                .into(),
            monmap_epoch: 0,
        };
        let msg = Message::from_payload(&m);
        assert_eq!(
            msg.front.to_vec(),
            hex(
                "0000000000000000ffff0000000000000000 00000000 1e000000 01 01000000 02000000 \
                 08000000 05000000 61646d696e 0000000000000000 00000000"
            )
        );
        assert_eq!(MAuth::decode_payload(&msg).unwrap(), m);
        let reply = Message::new(
            CEPH_MSG_AUTH_REPLY,
            hex("02000000 00000000 0210000000000000 09000000 01 95cfd48b28b5be33 00000000").into(),
        );
        let r = MAuthReply::decode_payload(&reply).unwrap();
        assert_eq!((r.protocol, r.result, r.global_id), (2, 0, 4098));
        assert_eq!(r.result_bl.to_vec(), hex("01 95cfd48b28b5be33"));
    }
}
