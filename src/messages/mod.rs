//! Typed payloads of real Ceph messages that msgr speaks.

pub mod auth;
pub mod bench;
pub mod monmap;
pub mod ping;
pub mod remote;

pub use auth::{MAuth, MAuthReply};
pub use bench::{BenchReply, BenchRequest, BenchStamp};
pub use monmap::{MMonGetMap, MMonMap, MonMapSummary};
pub use ping::{MPing, MonPingReply};
pub use remote::{Envelope, EnvelopeKind, Refusal};

/// `CEPH_MSG_PING`.
pub const CEPH_MSG_PING: u16 = 2;
/// `CEPH_MSG_MON_MAP`.
pub const CEPH_MSG_MON_MAP: u16 = 4;
/// `CEPH_MSG_MON_GET_MAP`.
pub const CEPH_MSG_MON_GET_MAP: u16 = 5;
/// `CEPH_MSG_AUTH`.
pub const CEPH_MSG_AUTH: u16 = 17;
/// `CEPH_MSG_AUTH_REPLY`.
pub const CEPH_MSG_AUTH_REPLY: u16 = 18;
/// `MSG_MON_PROBE`.
pub const MSG_MON_PROBE: u16 = 67;

/// First message type of msgr's private range (0xE000..=0xEFFF), chosen clear of every type
/// Ceph defines, for msgr's own tools, examples and tests.
pub const MSGR_PRIVATE_BASE: u16 = 0xE000;
/// `msgr bench` request.
pub const BENCH_REQUEST: u16 = MSGR_PRIVATE_BASE;
/// `msgr bench` reply.
pub const BENCH_REPLY: u16 = MSGR_PRIVATE_BASE + 1;
/// A remote actor message ([`Envelope`]).
pub const REMOTE_ENVELOPE: u16 = MSGR_PRIVATE_BASE + 0x10;
