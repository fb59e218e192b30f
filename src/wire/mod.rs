//! Everything that crosses the wire, byte for byte (spec §1–§4).
//!
//! * [`crc`]: Ceph's seed-0, non-inverted CRC-32C.
//! * [`connect`]: the 33-byte connect and 26-byte connect reply of the handshake.
//! * [`header`]: the 53-byte message header and the 13 / 21-byte footer.
//! * [`encoder`] and [`decoder`]: message-phase frames to and from bytes.

pub mod connect;
pub mod crc;
pub mod decoder;
pub mod encoder;
pub mod header;

pub use connect::{ConnectMsg, ConnectReply, CONNECT_LEN, CONNECT_REPLY_LEN};
pub use crc::ceph_crc32c;
pub use decoder::{Frame, FrameDecoder};
pub use encoder::{encode_ack, encode_keepalive, encode_keepalive2, FrameChunks, FrameEncoder};
pub use header::{Footer, FooterFlags, Header, FOOTER_LEN, FOOTER_OLD_LEN, HEADER_LEN};

/// The msgr v1 banner: 9 ASCII bytes, no newline.
pub const BANNER: &[u8; 9] = b"ceph v027";

/// A tag byte. The connect-reply tags and the message-phase tags share one namespace (spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// Connect reply: session open.
    Ready = 1,
    /// Connect reply: the server has no session for you; reset and reconnect with cs 0.
    ResetSession = 2,
    /// Connect reply: you lost a connection race; wait.
    Wait = 3,
    /// Connect reply: retry with the reply's connect_seq.
    RetrySession = 4,
    /// Connect reply: retry with a global_seq above the reply's.
    RetryGlobal = 5,
    /// Message phase: the peer is closing.
    Close = 6,
    /// Message phase: a message follows.
    Msg = 7,
    /// Message phase: a u64 ack follows.
    Ack = 8,
    /// Message phase: keepalive, no payload.
    Keepalive = 9,
    /// Connect reply: protocol version mismatch.
    BadProtoVer = 10,
    /// Connect reply: authorizer rejected.
    BadAuthorizer = 11,
    /// Connect reply: required features missing.
    Features = 12,
    /// Connect reply: ready, plus the 8-byte in_seq exchange.
    Seq = 13,
    /// Message phase: keepalive with a timestamp.
    Keepalive2 = 14,
    /// Message phase: echo of a KEEPALIVE2 timestamp.
    Keepalive2Ack = 15,
    /// Connect reply: cephx challenge (not used with auth none).
    ChallengeAuthorizer = 16,
}

impl Tag {
    /// Maps a byte to a tag; `None` for bytes outside 1..=16.
    pub fn from_u8(b: u8) -> Option<Tag> {
        use Tag::*;
        Some(match b {
            1 => Ready,
            2 => ResetSession,
            3 => Wait,
            4 => RetrySession,
            5 => RetryGlobal,
            6 => Close,
            7 => Msg,
            8 => Ack,
            9 => Keepalive,
            10 => BadProtoVer,
            11 => BadAuthorizer,
            12 => Features,
            13 => Seq,
            14 => Keepalive2,
            15 => Keepalive2Ack,
            16 => ChallengeAuthorizer,
            _ => return None,
        })
    }
}

/// `ceph_timespec`: the 8-byte timestamp of KEEPALIVE2 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timespec {
    /// Seconds.
    pub sec: u32,
    /// Nanoseconds.
    pub nsec: u32,
}

impl Timespec {
    /// Little-endian wire form.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.sec.to_le_bytes());
        b[4..].copy_from_slice(&self.nsec.to_le_bytes());
        b
    }

    /// Parses the wire form.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Timespec {
            sec: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            nsec: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_reject_outside_range() {
        for b in 1..=16u8 {
            assert_eq!(Tag::from_u8(b).unwrap() as u8, b);
        }
        assert_eq!(Tag::from_u8(0), None);
        assert_eq!(Tag::from_u8(17), None);
    }
}
