//! `Message`: a header plus three zero-copy sections, and the trait for typed payloads.

use bytes::{Bytes, BytesMut};

use crate::entity::EntityName;
use crate::error::DencError;

/// Ceph's message priorities (spec §3.6).
pub mod priority {
    /// Low priority.
    pub const LOW: u16 = 64;
    /// Default priority for clients.
    pub const DEFAULT: u16 = 127;
    /// High priority (the mon's default).
    pub const HIGH: u16 = 196;
    /// Highest priority.
    pub const HIGHEST: u16 = 255;
}

/// One msgr message: header fields and front / middle / data as shared `Bytes` (never copied).
///
/// Lengths and CRCs are not stored: the encoder derives them from the sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Sequence number; assigned by the session when the message is first sent.
    pub seq: u64,
    /// Transaction id.
    pub tid: u64,
    /// Message type (Ceph's `CEPH_MSG_*` / `MSG_*` numbers).
    pub msg_type: u16,
    /// Send priority; 0 means "the messenger's default".
    pub priority: u16,
    /// Payload encoding version.
    pub version: u16,
    /// Oldest decoder version that can read the payload.
    pub compat_version: u16,
    /// Data alignment hint.
    pub data_off: u16,
    /// The sender; filled in by the messenger when sent.
    pub src: EntityName,
    /// The front section: the encoded payload.
    pub front: Bytes,
    /// The middle section.
    pub middle: Bytes,
    /// The data section: bulk bytes.
    pub data: Bytes,
}

impl Default for EntityName {
    fn default() -> Self {
        EntityName::anonymous_client()
    }
}

impl Message {
    /// A message of `msg_type` with the given front and everything else empty or zero.
    pub fn new(msg_type: u16, front: Bytes) -> Self {
        Message {
            msg_type,
            front,
            ..Default::default()
        }
    }

    /// Builds a message from a typed payload; version and compat come from the payload type.
    pub fn from_payload<P: Payload>(payload: &P) -> Self {
        let front = encode_front(|out| payload.encode_payload(out));
        let mut msg = Message::new(P::TYPE, front);
        msg.version = P::VERSION;
        msg.compat_version = P::COMPAT_VERSION;
        msg.data = payload.data_section();
        msg
    }

    /// Decodes the typed payload, checking the type and that our version can read its compat version.
    pub fn decode_payload<P: Payload>(&self) -> Result<P, DencError> {
        if self.msg_type != P::TYPE {
            return Err(DencError::WrongType {
                expected: P::TYPE,
                got: self.msg_type,
            });
        }
        if P::VERSION != 0 && self.compat_version > P::VERSION {
            return Err(DencError::NewerCompat {
                msg_type: self.msg_type,
                compat: self.compat_version,
                ours: P::VERSION,
            });
        }
        P::decode_payload(self)
    }

    /// Total bytes of the three sections.
    pub fn payload_len(&self) -> u64 {
        (self.front.len() + self.middle.len() + self.data.len()) as u64
    }
}

/// Largest front-encoding buffer kept per thread between messages.
const MAX_SCRATCH: usize = 64 * 1024;

/// Size of the per-thread blocks small fronts are carved from. A held front keeps its whole
/// block alive, so this bounds the memory a queued message can pin beyond its own bytes.
const FRONT_BLOCK: usize = 2048;

/// Fronts larger than this get an allocation of their own rather than a piece of a block.
const MAX_CARVED_FRONT: usize = 512;

/// A thread's front-encoding state: the scratch a payload encodes into, and the block small
/// fronts are carved from.
struct FrontBuffers {
    scratch: Vec<u8>,
    block: BytesMut,
}

thread_local! {
    static FRONT_BUFFERS: std::cell::RefCell<FrontBuffers> =
        std::cell::RefCell::new(FrontBuffers { scratch: Vec::new(), block: BytesMut::new() });
}

/// Encodes a front section into a reused per-thread scratch buffer, then copies it out.
///
/// A small front (most are tens to hundreds of bytes) becomes a slice of a per-thread 2 KiB
/// block: no allocation of its own, one reference count on the block. The block is freed when
/// its last front is, and reused whole when every front carved from it is gone by the time it
/// fills. The cost: a long-lived small front keeps its whole block alive, so a message queued
/// for a long time (a session in standby, say) may hold up to 2 KiB beyond its own bytes. A
/// front over 512 bytes is copied out at its exact size.
fn encode_front(encode: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    FRONT_BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
        Ok(mut buffers) => {
            let FrontBuffers { scratch, block } = &mut *buffers;
            scratch.clear();
            encode(scratch);
            let front = if scratch.len() > MAX_CARVED_FRONT {
                Bytes::copy_from_slice(scratch)
            } else {
                if block.capacity() < scratch.len() && !block.try_reclaim(FRONT_BLOCK) {
                    *block = BytesMut::with_capacity(FRONT_BLOCK);
                }
                block.extend_from_slice(scratch);
                block.split().freeze()
            };
            if scratch.capacity() > MAX_SCRATCH {
                *scratch = Vec::new();
            }
            front
        }
        // A payload that builds another message while encoding: no sharing, fresh buffer.
        Err(_) => {
            let mut front = Vec::new();
            encode(&mut front);
            Bytes::from(front)
        }
    })
}

/// A typed message payload: its Ceph type number, versions, and how its sections are encoded.
pub trait Payload: Sized {
    /// The message type number.
    const TYPE: u16;
    /// The encoding version we write.
    const VERSION: u16;
    /// The oldest version that can decode what we write.
    const COMPAT_VERSION: u16;
    /// Appends the front section.
    fn encode_payload(&self, front: &mut Vec<u8>);
    /// The data section, for payloads that carry bulk bytes; shared, never copied.
    fn data_section(&self) -> Bytes {
        Bytes::new()
    }
    /// Decodes from a received message (front, and middle / data if the type uses them).
    fn decode_payload(msg: &Message) -> Result<Self, DencError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front_of(len: usize, fill: u8) -> Bytes {
        encode_front(|out| out.resize(len, fill))
    }

    #[test]
    fn carved_fronts_stay_intact_while_later_ones_are_encoded() {
        // Sizes that fill blocks unevenly, one larger than a carved front, and empty ones.
        let sizes = [
            0usize, 1, 30, 31, 200, 511, 512, 513, 1000, 2047, 2048, 4096, 17,
        ];
        let mut kept = vec![];
        for round in 0..300usize {
            let len = sizes[round % sizes.len()];
            let fill = (round % 251) as u8;
            let front = front_of(len, fill);
            assert_eq!(front.len(), len);
            // Every other front is dropped at once, so blocks are also reclaimed and reused.
            if round % 2 == 0 {
                kept.push((front, fill));
            }
        }
        for (front, fill) in &kept {
            assert!(front.iter().all(|b| b == fill), "a front was overwritten");
        }
    }

    #[test]
    fn a_block_whose_fronts_are_gone_is_reused() {
        let first = front_of(64, 1);
        let at = first.as_ptr();
        drop(first);
        // Fill the rest of the block with fronts that are dropped at once; the next front
        // then starts over at the beginning of the same block.
        for _ in 1..FRONT_BLOCK / 64 {
            drop(front_of(64, 2));
        }
        let again = front_of(64, 3);
        assert_eq!(again.as_ptr(), at);
        assert!(again.iter().all(|&b| b == 3));
    }
}
