//! Why a msgr2 frame or handshake step failed. Every variant faults the connection.

/// A msgr2 protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum V2Error {
    /// The peer did not open with `ceph v2\n` (`ceph v027` is a v1 peer).
    #[error("bad msgr2 banner {0:02x?}")]
    BadBanner(Vec<u8>),
    /// The banner's payload length is not one we read (Pacific sends 16).
    #[error("msgr2 banner payload of {0} bytes")]
    BannerLength(u16),
    /// The peer requires msgr2 features we lack, or lacks ones we require.
    #[error(
        "msgr2 feature mismatch: peer supports {peer_supported:#x}, requires {peer_required:#x}"
    )]
    BannerFeatures {
        /// What the peer supports.
        peer_supported: u64,
        /// What it requires.
        peer_required: u64,
    },
    /// The preamble's CRC does not match its bytes.
    #[error("bad msgr2 preamble crc: computed {computed:#010x}, peer sent {sent:#010x}")]
    PreambleCrc {
        /// What we computed.
        computed: u32,
        /// What the peer sent.
        sent: u32,
    },
    /// A preamble with 0 or more than 4 segments, an empty last segment, or a reserved byte set.
    #[error("malformed msgr2 preamble: {0}")]
    Preamble(&'static str),
    /// A segment longer than we accept.
    #[error("msgr2 segment {index} of {len} bytes exceeds the cap of {cap} bytes")]
    SegmentTooLarge {
        /// Which segment.
        index: usize,
        /// Its declared length.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// A segment's CRC does not match.
    #[error("bad crc of msgr2 segment {index}: computed {computed:#010x}, peer sent {sent:#010x}")]
    SegmentCrc {
        /// Which segment.
        index: usize,
        /// What we computed.
        computed: u32,
        /// What the peer sent.
        sent: u32,
    },
    /// The epilogue's late status is neither complete nor aborted.
    #[error("msgr2 epilogue late status {0:#04x}")]
    LateStatus(u8),
    /// AES-GCM authentication failed: the bytes were changed, or the keys differ.
    #[error("msgr2 secure frame failed its GCM tag check")]
    Gcm,
    /// The sender used up its nonces (2^64 frames); the connection must be re-established.
    #[error("msgr2 secure mode out of nonces")]
    OutOfNonces,
    /// A tag we do not know, or one that is not valid at this point of the exchange.
    #[error("unexpected msgr2 frame tag {0}")]
    UnexpectedTag(u8),
    /// A control frame's payload did not decode.
    #[error("malformed msgr2 {frame} payload: {error}")]
    Payload {
        /// The frame.
        frame: &'static str,
        /// Why.
        error: crate::error::DencError,
    },
    /// A cephx step failed (our key, the peer's proof, a ticket).
    #[error("cephx: {0}")]
    Cephx(#[from] crate::auth::cephx::CephxError),
    /// AUTH_BAD_METHOD: the server refused our method or modes.
    #[error("the peer refused auth method {method}: {} (it allows methods {allowed_methods:?}, modes {allowed_modes:?})", crate::auth::cephx::errno_name(*.result))]
    BadMethod {
        /// The method we asked for.
        method: u32,
        /// Its errno.
        result: i32,
        /// Methods it allows.
        allowed_methods: Vec<u32>,
        /// Modes it allows.
        allowed_modes: Vec<u32>,
    },
    /// The peer's AUTH_SIGNATURE does not match what we sent it.
    #[error("the peer's AUTH_SIGNATURE does not match the bytes we sent")]
    AuthSignature,
    /// The server chose a connection mode we did not offer.
    #[error("the peer chose connection mode {0}, which we did not offer")]
    Mode(u32),
    /// The peer is not who we dialled (type, or address in its ident).
    #[error("peer mismatch: {0}")]
    WrongPeer(String),
    /// IDENT_MISSING_FEATURES, or the peer lacks features we require.
    #[error("feature mismatch: required bits {0:#x} are missing")]
    MissingFeatures(u64),
    /// Something msgr2 does not do yet here.
    #[error("not supported over msgr2 yet: {0}")]
    Unsupported(&'static str),
    /// A frame that does not belong at this point of the handshake.
    #[error("unexpected {0} frame during the handshake")]
    OutOfOrder(&'static str),
}
