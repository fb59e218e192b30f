//! `Message`: a header plus three zero-copy sections, and the trait for typed payloads.

use bytes::Bytes;

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

thread_local! {
    static FRONT_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes a front section into a reused per-thread buffer, then copies it out at its exact
/// size: one allocation per message instead of a growing Vec's several, and a `Bytes` that
/// needs no shared header (`Bytes::from(Vec)` allocates one when capacity exceeds length).
fn encode_front(encode: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    FRONT_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            encode(&mut scratch);
            let front = Bytes::copy_from_slice(&scratch);
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
