//! The msgr v1 handshake (spec §1.2, §2): banner and address exchange, connect and reply, the SEQ
//! exchange. [`Connector`] is the dialling side, [`Acceptor`] the accepting side; both are fed
//! bytes and hand back bytes to write and events. The acceptor's session-lookup rules are the pure
//! function [`decide`], fed the facts about an existing session that the runtime holds.

pub mod acceptor;
pub mod authorizer;
pub mod connector;
#[cfg(test)]
mod pair_tests;
pub mod server_auth;

pub use acceptor::{
    decide, AcceptContext, Accepted, Acceptor, AcceptorEvent, ConnectRequest, Decision,
    ExistingSession, ExistingState, ReplyContext,
};
pub use authorizer::{AuthNoneAuthorizer, Authorizer};
pub use connector::{Connector, ConnectorEvent, ConnectorParams, Established};
pub use server_auth::{AuthOutcome, AuthRefusal, ServerAuth, SocketAuth};

use crate::entity::EntityType;
use crate::error::DecodeError;
use crate::wire::Tag;

/// `CEPH_MONC_PROTOCOL`: clients and daemons talking to a mon.
pub const CEPH_MONC_PROTOCOL: u32 = 15;
/// `CEPH_OSDC_PROTOCOL`: clients talking to an OSD.
pub const CEPH_OSDC_PROTOCOL: u32 = 24;
/// `CEPH_MDSC_PROTOCOL`: clients talking to an MDS.
pub const CEPH_MDSC_PROTOCOL: u32 = 32;
/// `CEPH_MON_PROTOCOL`: mon to mon.
pub const CEPH_MON_PROTOCOL: u32 = 13;
/// `CEPH_OSD_PROTOCOL`: OSD to OSD.
pub const CEPH_OSD_PROTOCOL: u32 = 10;
/// `CEPH_MDS_PROTOCOL`: MDS to MDS (current source; the Pacific value is unverified).
pub const CEPH_MDS_PROTOCOL: u32 = 36;

/// Ceph's `get_proto_version` (spec §2.4): same type → the cluster protocol of that type;
/// otherwise keyed on the peer's type when connecting, on our own type when accepting.
pub fn protocol_version(my_type: EntityType, peer_type: EntityType, connecting: bool) -> u32 {
    if my_type == peer_type {
        return match my_type {
            EntityType::MON => CEPH_MON_PROTOCOL,
            EntityType::OSD => CEPH_OSD_PROTOCOL,
            EntityType::MDS => CEPH_MDS_PROTOCOL,
            _ => 0,
        };
    }
    match if connecting { peer_type } else { my_type } {
        EntityType::OSD => CEPH_OSDC_PROTOCOL,
        EntityType::MDS => CEPH_MDSC_PROTOCOL,
        EntityType::MON => CEPH_MONC_PROTOCOL,
        _ => 0,
    }
}

/// Largest authorizer (or authorizer reply) we accept; Ceph clients assert replies stay below 4096.
pub const MAX_AUTHORIZER_LEN: u32 = 4096;

/// Why a handshake failed. Every variant closes the socket; see each for what the policy does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The bytes were malformed (bad banner, bad address marker, ...).
    #[error("malformed handshake: {0}")]
    Decode(#[from] DecodeError),
    /// The server claims an address other than the one we dialled.
    #[error("peer claims to be {claimed}, we dialled {dialled}")]
    WrongPeer {
        /// Address we dialled.
        dialled: String,
        /// Address it claimed.
        claimed: String,
    },
    /// BADPROTOVER: the two sides expect different protocol versions.
    #[error("peer answered BADPROTOVER: we sent protocol {ours}, it expects {theirs}")]
    BadProtocolVersion {
        /// Ours.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// FEATURES: we lack features the peer requires, or it lacks ones we require.
    #[error("feature mismatch (FEATURES): required bits {missing:#x} are missing")]
    MissingFeatures {
        /// The required bits that are absent.
        missing: u64,
    },
    /// BADAUTHORIZER: the peer rejected our authorizer.
    #[error("peer answered BADAUTHORIZER: it rejected our authorizer")]
    BadAuthorizer,
    /// CHALLENGE_AUTHORIZER: cephx is not supported.
    #[error("peer answered CHALLENGE_AUTHORIZER: cephx is not supported")]
    ChallengeUnsupported,
    /// An authorizer longer than we accept.
    #[error("authorizer of {0} bytes exceeds the {MAX_AUTHORIZER_LEN}-byte limit")]
    AuthorizerTooLong(u32),
    /// The reply's connect_seq is not ours + 1.
    #[error("peer replied connect_seq {got}, expected {expected}")]
    ConnectSeqMismatch {
        /// What we expected.
        expected: u32,
        /// What came.
        got: u32,
    },
    /// A reply tag that makes no sense here.
    #[error("unexpected reply tag {0}")]
    UnexpectedTag(u8),
    /// A cephx step failed: the server's challenge or reply did not open with our ticket's
    /// session key, or our service could not verify the peer's authorizer.
    #[error("cephx: {0}")]
    Cephx(#[from] crate::auth::cephx::CephxError),
    /// A msgr2 handshake step failed.
    #[error("msgr2: {0}")]
    V2(Box<crate::v2::V2Error>),
    /// The runtime called a method the state machine was not ready for.
    #[error("handshake used out of order: {0}")]
    OutOfOrder(&'static str),
}

impl HandshakeError {
    /// The reply tag that carried this refusal, when the peer refused us.
    pub fn refusal_tag(&self) -> Option<Tag> {
        match self {
            HandshakeError::BadProtocolVersion { .. } => Some(Tag::BadProtoVer),
            HandshakeError::MissingFeatures { .. } => Some(Tag::Features),
            HandshakeError::BadAuthorizer => Some(Tag::BadAuthorizer),
            HandshakeError::ChallengeUnsupported => Some(Tag::ChallengeAuthorizer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_versions_match_what_the_mon_expects() {
        let (c, o, m, mon) = (
            EntityType::CLIENT,
            EntityType::OSD,
            EntityType::MGR,
            EntityType::MON,
        );
        assert_eq!(protocol_version(c, mon, true), 15);
        assert_eq!(protocol_version(o, mon, true), 15);
        assert_eq!(protocol_version(m, mon, true), 15);
        assert_eq!(protocol_version(mon, mon, true), 13);
        assert_eq!(protocol_version(mon, c, false), 15);
        assert_eq!(protocol_version(mon, mon, false), 13);
        assert_eq!(protocol_version(c, o, true), 24);
        assert_eq!(protocol_version(o, c, false), 24);
        assert_eq!(protocol_version(o, o, true), 10);
        assert_eq!(protocol_version(c, m, true), 0);
        assert_eq!(protocol_version(c, c, true), 0);
    }
}
