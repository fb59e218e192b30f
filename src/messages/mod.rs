//! Typed payloads of real Ceph messages that msgr speaks.

pub mod ping;

pub use ping::{MPing, MonPingReply};

/// `CEPH_MSG_PING`.
pub const CEPH_MSG_PING: u16 = 2;
/// `CEPH_MSG_MON_MAP`.
pub const CEPH_MSG_MON_MAP: u16 = 4;
/// `CEPH_MSG_MON_GET_MAP`.
pub const CEPH_MSG_MON_GET_MAP: u16 = 5;
/// `CEPH_MSG_AUTH`.
pub const CEPH_MSG_AUTH: u16 = 17;
/// `MSG_MON_PROBE`.
pub const MSG_MON_PROBE: u16 = 67;
