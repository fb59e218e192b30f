//! `ceph_msg_header` (53 B) and `ceph_msg_footer` (21 B, or 13 B without MSG_AUTH), spec §3.1–3.2.

use super::connect::{le32, le64};
use super::crc::ceph_crc32c;
use crate::entity::{EntityName, EntityType};

/// Size of the message header.
pub const HEADER_LEN: usize = 53;
/// Bytes of the header covered by its crc.
pub const HEADER_CRC_SPAN: usize = 49;
/// Size of the footer when MSG_AUTH is negotiated.
pub const FOOTER_LEN: usize = 21;
/// Size of the footer without MSG_AUTH.
pub const FOOTER_OLD_LEN: usize = 13;

/// The message header as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Per-session sequence number.
    pub seq: u64,
    /// Transaction id.
    pub tid: u64,
    /// Message type.
    pub msg_type: u16,
    /// Send priority.
    pub priority: u16,
    /// Payload encoding version.
    pub version: u16,
    /// Length of the front section.
    pub front_len: u32,
    /// Length of the middle section.
    pub middle_len: u32,
    /// Length of the data section.
    pub data_len: u32,
    /// Data alignment hint.
    pub data_off: u16,
    /// The sender.
    pub src: EntityName,
    /// Oldest version that can decode the payload.
    pub compat_version: u16,
    /// CRC of bytes 0..49.
    pub crc: u32,
}

impl Header {
    /// Encodes the header; the crc field is computed, whatever `self.crc` holds.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.tid.to_le_bytes());
        b[16..18].copy_from_slice(&self.msg_type.to_le_bytes());
        b[18..20].copy_from_slice(&self.priority.to_le_bytes());
        b[20..22].copy_from_slice(&self.version.to_le_bytes());
        b[22..26].copy_from_slice(&self.front_len.to_le_bytes());
        b[26..30].copy_from_slice(&self.middle_len.to_le_bytes());
        b[30..34].copy_from_slice(&self.data_len.to_le_bytes());
        b[34..36].copy_from_slice(&self.data_off.to_le_bytes());
        b[36] = self.src.ty.0;
        b[37..45].copy_from_slice(&self.src.num.to_le_bytes());
        b[45..47].copy_from_slice(&self.compat_version.to_le_bytes());
        let crc = ceph_crc32c(0, &b[..HEADER_CRC_SPAN]);
        b[49..53].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header; returns it with the crc the peer sent, and the crc we computed.
    pub fn decode(b: &[u8; HEADER_LEN]) -> (Header, u32) {
        let h = Header {
            seq: le64(&b[0..8]),
            tid: le64(&b[8..16]),
            msg_type: u16::from_le_bytes([b[16], b[17]]),
            priority: u16::from_le_bytes([b[18], b[19]]),
            version: u16::from_le_bytes([b[20], b[21]]),
            front_len: le32(&b[22..26]),
            middle_len: le32(&b[26..30]),
            data_len: le32(&b[30..34]),
            data_off: u16::from_le_bytes([b[34], b[35]]),
            src: EntityName::new(EntityType(b[36]), le64(&b[37..45]) as i64),
            compat_version: u16::from_le_bytes([b[45], b[46]]),
            crc: le32(&b[49..53]),
        };
        (h, ceph_crc32c(0, &b[..HEADER_CRC_SPAN]))
    }
}

/// Footer flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FooterFlags(pub u8);

impl FooterFlags {
    /// The message is complete (must be set, or the receiver drops it as aborted).
    pub const COMPLETE: u8 = 1;
    /// data_crc is not valid; the receiver skips the data check.
    pub const NOCRC: u8 = 2;
    /// The signature field is valid (cephx signing; never with auth none).
    pub const SIGNED: u8 = 4;

    /// True when `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// The message footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footer {
    /// CRC of the front.
    pub front_crc: u32,
    /// CRC of the middle.
    pub middle_crc: u32,
    /// CRC of the data (0 with NOCRC).
    pub data_crc: u32,
    /// Signature; only present in the 21-byte form, 0 without cephx signing.
    pub sig: u64,
    /// Flags.
    pub flags: FooterFlags,
}

impl Footer {
    /// Footer size for a connection with or without MSG_AUTH.
    pub const fn wire_len(msg_auth: bool) -> usize {
        if msg_auth {
            FOOTER_LEN
        } else {
            FOOTER_OLD_LEN
        }
    }

    /// Encodes the 21-byte (MSG_AUTH) or 13-byte form into `out`; returns the length written.
    pub fn encode_into(&self, msg_auth: bool, out: &mut [u8; FOOTER_LEN]) -> usize {
        out[0..4].copy_from_slice(&self.front_crc.to_le_bytes());
        out[4..8].copy_from_slice(&self.middle_crc.to_le_bytes());
        out[8..12].copy_from_slice(&self.data_crc.to_le_bytes());
        if msg_auth {
            out[12..20].copy_from_slice(&self.sig.to_le_bytes());
            out[20] = self.flags.0;
        } else {
            out[12] = self.flags.0;
        }
        Self::wire_len(msg_auth)
    }

    /// Decodes the footer; `b` must hold `wire_len(msg_auth)` bytes.
    pub fn decode(b: &[u8], msg_auth: bool) -> Footer {
        let (sig, flags) = if msg_auth {
            (le64(&b[12..20]), b[20])
        } else {
            (0, b[12])
        };
        Footer {
            front_crc: le32(&b[0..4]),
            middle_crc: le32(&b[4..8]),
            data_crc: le32(&b[8..12]),
            sig,
            flags: FooterFlags(flags),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    #[test]
    fn mon_ping_reply_header_crc_verifies() {
        let b = hex(
            "01000000 00000000 00000000 00000000 0200 c400 0100 400d0000 00000000 00000000 0000
             01 0000000000000000 0000 0000 a6fcd8a4",
        );
        let arr: [u8; HEADER_LEN] = b.clone().try_into().unwrap();
        let (h, computed) = Header::decode(&arr);
        assert_eq!(computed, 0xA4D8_FCA6);
        assert_eq!(h.crc, computed);
        assert_eq!((h.seq, h.msg_type, h.priority, h.version), (1, 2, 196, 1));
        assert_eq!((h.front_len, h.compat_version), (3392, 0));
        assert_eq!(h.src.to_string(), "mon.0");
        assert_eq!(h.encode().to_vec(), b);
    }

    #[test]
    fn footer_forms() {
        let f = Footer {
            front_crc: 1,
            middle_crc: 2,
            data_crc: 3,
            sig: 0,
            flags: FooterFlags(FooterFlags::COMPLETE),
        };
        let mut out = [0u8; FOOTER_LEN];
        assert_eq!(f.encode_into(true, &mut out), 21);
        assert_eq!(Footer::decode(&out, true), f);
        assert_eq!(out[20], 1);
        let mut out = [0u8; FOOTER_LEN];
        assert_eq!(f.encode_into(false, &mut out), 13);
        assert_eq!(Footer::decode(&out[..13], false), f);
    }
}
