//! The `msgr bench` protocol, in msgr's private type range: a stamped request with a data
//! section, and a reply that echoes the stamp.

use bytes::Bytes;

use super::{BENCH_REPLY, BENCH_REQUEST};
use crate::denc::{encode_versioned, Decode, Encode, Reader};
use crate::error::DencError;
use crate::message::{Message, Payload};

/// Identifies one bench message and lets both sides check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BenchStamp {
    /// Which connection of the run sent it.
    pub conn: u32,
    /// Its index on that connection (0, 1, 2, ...).
    pub index: u64,
    /// Sender's clock when sent, in nanoseconds since the run started.
    pub sent_ns: u64,
    /// Ceph CRC-32C of the data section, for the receiver to check end to end; 0 asks for no
    /// check (`msgr bench` without `--verify`: the wire's own CRCs still cover the data).
    pub data_crc: u32,
}

impl Encode for BenchStamp {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(out, 1, 1, |o| {
            self.conn.encode(o);
            self.index.encode(o);
            self.sent_ns.encode(o);
            self.data_crc.encode(o);
        });
    }
}

impl Decode for BenchStamp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        r.versioned("BenchStamp", 1, |_, r| {
            Ok(BenchStamp {
                conn: u32::decode(r)?,
                index: u64::decode(r)?,
                sent_ns: u64::decode(r)?,
                data_crc: u32::decode(r)?,
            })
        })
    }
}

/// A bench request: the stamp in the front, the payload in the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchRequest {
    /// The stamp.
    pub stamp: BenchStamp,
    /// The data (shared, not copied).
    pub data: Bytes,
}

impl Payload for BenchRequest {
    const TYPE: u16 = BENCH_REQUEST;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        self.stamp.encode(front);
    }
    fn data_section(&self) -> Bytes {
        self.data.clone()
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        Ok(BenchRequest {
            stamp: BenchStamp::decode(&mut Reader::new(&msg.front))?,
            data: msg.data.clone(),
        })
    }
}

impl BenchRequest {
    /// True when the data matches the stamp's CRC, or the stamp asks for no check (0).
    pub fn data_intact(&self) -> bool {
        self.stamp.data_crc == 0 || crate::wire::ceph_crc32c(0, &self.data) == self.stamp.data_crc
    }
}

/// A bench reply: the request's stamp, and whether the server found the data intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchReply {
    /// The request's stamp.
    pub stamp: BenchStamp,
    /// The server's data check passed.
    pub intact: bool,
}

impl Payload for BenchReply {
    const TYPE: u16 = BENCH_REPLY;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        self.stamp.encode(front);
        self.intact.encode(front);
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        let mut r = Reader::new(&msg.front);
        Ok(BenchReply {
            stamp: BenchStamp::decode(&mut r)?,
            intact: bool::decode(&mut r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_round_trip() {
        let data = Bytes::from(vec![3u8; 100]);
        let stamp = BenchStamp {
            conn: 2,
            index: 77,
            sent_ns: 123,
            data_crc: crate::wire::ceph_crc32c(0, &data),
        };
        let req = BenchRequest { stamp, data };
        let msg = Message::from_payload(&req);
        let back = msg.decode_payload::<BenchRequest>().unwrap();
        assert!(back.data_intact());
        assert_eq!(back, req);
        let reply = Message::from_payload(&BenchReply {
            stamp,
            intact: true,
        });
        assert_eq!(reply.decode_payload::<BenchReply>().unwrap().stamp, stamp);
    }
}
