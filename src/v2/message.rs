//! The MESSAGE frame (spec §7.1): `ceph_msg_header2` (41 bytes) in segment 0, then front,
//! middle and data. No CRCs and no signature: the frame's own CRCs or GCM tag protect it.

use bytes::{Buf, BufMut, Bytes};

use super::V2Error;
use crate::entity::EntityName;
use crate::error::DencError;
use crate::message::Message;

/// `ceph_msg_header2`'s length.
pub const HEADER2_LEN: usize = 41;
/// Footer flags Ceph writes in header2: COMPLETE | NOCRC.
const FLAGS: u8 = 3;

/// Segment 0 of a MESSAGE frame for `msg`, with `ack_seq` (our in_seq) piggy-backed.
pub fn encode_header2(msg: &Message, ack_seq: u64) -> [u8; HEADER2_LEN] {
    let mut h = [0u8; HEADER2_LEN];
    let mut b = &mut h[..];
    b.put_u64_le(msg.seq);
    b.put_u64_le(msg.tid);
    b.put_u16_le(msg.msg_type);
    b.put_u16_le(msg.priority);
    b.put_u16_le(msg.version);
    b.put_u32_le(0); // data_pre_padding_len
    b.put_u16_le(msg.data_off);
    b.put_u64_le(ack_seq);
    b.put_u8(FLAGS);
    b.put_u16_le(msg.compat_version);
    b.put_u16_le(0);
    h
}

/// A received MESSAGE: the message (its `src` is the peer's name, which header2 does not
/// carry) and the peer's piggy-backed ack.
pub fn decode_message(segments: &[Bytes], src: EntityName) -> Result<(Message, u64), V2Error> {
    let bad = |error| V2Error::Payload {
        frame: "MESSAGE",
        error,
    };
    let head = segments.first().ok_or(bad(DencError::Truncated {
        what: "ceph_msg_header2",
        need: HEADER2_LEN,
        have: 0,
    }))?;
    if head.len() != HEADER2_LEN {
        return Err(bad(DencError::Invalid {
            what: "ceph_msg_header2 length",
            value: head.len() as u64,
        }));
    }
    let mut h = &head[..];
    let seq = h.get_u64_le();
    let tid = h.get_u64_le();
    let msg_type = h.get_u16_le();
    let priority = h.get_u16_le();
    let version = h.get_u16_le();
    let _pre_padding = h.get_u32_le();
    let data_off = h.get_u16_le();
    let ack_seq = h.get_u64_le();
    let _flags = h.get_u8();
    let compat_version = h.get_u16_le();
    let section = |i: usize| segments.get(i).cloned().unwrap_or_default();
    let msg = Message {
        seq,
        tid,
        msg_type,
        priority,
        version,
        compat_version,
        data_off,
        src,
        front: section(1),
        middle: section(2),
        data: section(3),
    };
    Ok((msg, ack_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    #[test]
    fn the_clients_mmongetmap_header_from_the_spec() {
        let mut m = Message::new(5, Bytes::new());
        m.seq = 1;
        m.priority = 127;
        m.version = 1;
        m.compat_version = 1;
        let h = encode_header2(&m, 0);
        assert_eq!(
            h.to_vec(),
            hex(
                "0100000000000000 0000000000000000 0500 7f00 0100 00000000 0000 0000000000000000 \
                 03 0100 0000"
            )
        );
        let src = EntityName::anonymous_client();
        let (back, ack) = decode_message(&[Bytes::copy_from_slice(&h)], src).unwrap();
        assert_eq!((back.seq, back.msg_type, ack), (1, 5, 0));
        assert!(decode_message(&[Bytes::from_static(b"short")], src).is_err());
    }
}
