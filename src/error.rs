//! Typed errors for everything decoded from the network. No input panics; every failure is one of these.

/// A message section, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The message header.
    Header,
    /// The front (the payload proper).
    Front,
    /// The middle section.
    Middle,
    /// The data section (bulk payload).
    Data,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Front => "front",
            Section::Middle => "middle",
            Section::Data => "data",
        })
    }
}

/// Bytes from the peer that cannot be a valid msgr v1 stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A fixed-size structure was cut short (only for whole-buffer decodes, never in the streaming decoder).
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The peer did not open with `ceph v027`.
    #[error("bad banner {0:02x?}")]
    BadBanner(Vec<u8>),
    /// Byte 0 of a legacy entity address must be 0.
    #[error("entity address marker byte is {0}, expected 0")]
    BadAddrMarker(u8),
    /// A tag byte that is not valid at this point of the stream.
    #[error("unknown or unexpected tag {0}")]
    UnknownTag(u8),
    /// A CRC did not match.
    #[error("bad {section} crc: computed {computed:#010x}, peer sent {sent:#010x}")]
    BadCrc {
        /// Which section failed.
        section: Section,
        /// What we computed.
        computed: u32,
        /// What the peer sent.
        sent: u32,
    },
    /// One section is longer than the configured cap allows.
    #[error("{section} of {len} bytes exceeds the cap of {cap} bytes")]
    SectionTooLarge {
        /// The section.
        section: Section,
        /// Its declared length.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// The sections together are longer than the configured message cap.
    #[error("message of {total} bytes exceeds the cap of {cap} bytes")]
    MessageTooLarge {
        /// Sum of the declared section lengths.
        total: u64,
        /// The cap.
        cap: u64,
    },
    /// The message's signature is not the one its session key gives (a forged or damaged
    /// message on a signed session): it is not delivered, and the socket is faulted.
    #[error("message seq {seq}: signature check failed")]
    BadSignature {
        /// Sequence number of the message.
        seq: u64,
    },
    /// A msgr2 frame failed its checks (CRC, GCM tag, caps, an unexpected tag).
    #[error("msgr2: {0}")]
    V2(Box<crate::v2::V2Error>),
    /// The footer lacks the COMPLETE flag: the sender aborted the message.
    #[error("message seq {seq} aborted by sender (footer without COMPLETE)")]
    Aborted {
        /// Sequence number of the aborted message.
        seq: u64,
    },
}

/// A Ceph-encoded payload (denc) that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DencError {
    /// The buffer ended before the value did.
    #[error("truncated {what}: need {need} more bytes, have {have}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A versioned struct needs a newer decoder than ours.
    #[error("{what}: encoded with compat version {compat}, we decode up to {ours}")]
    Incompatible {
        /// The struct.
        what: &'static str,
        /// The encoder's compat version.
        compat: u8,
        /// Our version.
        ours: u8,
    },
    /// A string was not UTF-8.
    #[error("string is not valid UTF-8")]
    BadUtf8,
    /// A value that is out of range for its type (a bool that is not 0/1, an unknown enum).
    #[error("invalid value {value} for {what}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The bad value.
        value: u64,
    },
    /// A message of another type was handed to a typed decoder.
    #[error("message type {got} is not {expected}")]
    WrongType {
        /// The expected type.
        expected: u16,
        /// The message's type.
        got: u16,
    },
    /// The message's compat_version is newer than what our decoder supports.
    #[error("message type {msg_type} compat version {compat} is newer than our version {ours}")]
    NewerCompat {
        /// Message type.
        msg_type: u16,
        /// The sender's compat_version.
        compat: u16,
        /// Our version for that type.
        ours: u16,
    },
}
