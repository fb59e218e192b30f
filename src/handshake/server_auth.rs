//! How an accepting socket checks the authorizer in a connect (spec §9.8, §10): which methods
//! each kind of peer may use (`auth_cluster_required` for daemons, `auth_service_required`
//! for clients), the cephx check with its challenge, and the verdict the session rules use.

use std::time::Duration;

use bytes::Bytes;

use super::authorizer::{verify_auth_none, CEPH_AUTH_CEPHX, CEPH_AUTH_NONE};
use crate::auth::cephx::{verify_authorizer, AuthorizerVerdict, CephxError, ServiceKeys};
use crate::auth::{AuthMethod, AuthMethods, AuthName, CryptoKey};
use crate::entity::EntityType;

/// A messenger's rules for incoming authorizers.
#[derive(Debug, Clone)]
pub struct ServerAuth {
    /// Methods accepted from mon, osd, mds and mgr peers.
    pub cluster: AuthMethods,
    /// Methods accepted from everyone else.
    pub service: AuthMethods,
    /// The secrets cephx tickets for us are sealed with.
    pub keys: ServiceKeys,
}

impl Default for ServerAuth {
    /// auth none from everyone (msgr's behaviour without keys).
    fn default() -> Self {
        let none = AuthMethods::default().or(&[AuthMethod::None]);
        ServerAuth {
            cluster: none.clone(),
            service: none,
            keys: ServiceKeys::default(),
        }
    }
}

impl ServerAuth {
    /// The methods a peer of type `ty` may use.
    pub fn allowed_for(&self, ty: EntityType) -> &AuthMethods {
        match ty {
            EntityType::MON | EntityType::OSD | EntityType::MDS | EntityType::MGR => &self.cluster,
            _ => &self.service,
        }
    }
}

/// Why an authorizer was refused (the peer gets BADAUTHORIZER).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRefusal {
    /// The method is not among those allowed for the peer's type (a downgrade to none where
    /// cephx is required, or cephx where only none is).
    #[error("auth method {protocol} is not allowed for a {peer_type} peer")]
    MethodNotAllowed {
        /// The authorizer's protocol (0: none sent).
        protocol: u32,
        /// The peer's type.
        peer_type: EntityType,
    },
    /// An AuthNone authorizer that does not decode.
    #[error("malformed AuthNone authorizer")]
    MalformedNone,
    /// The cephx authorizer failed its check.
    #[error("cephx authorizer refused: {0}")]
    Cephx(#[from] CephxError),
}

/// The verdict on one socket's authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthOutcome {
    /// Why it was refused; None when it was accepted.
    pub refusal: Option<AuthRefusal>,
    /// The method the peer proved itself with.
    pub method: Option<AuthMethod>,
    /// Who cephx says the peer is.
    pub name: Option<AuthName>,
    /// The session key (cephx): signs the session's messages.
    pub session_key: Option<CryptoKey>,
    /// The authorizer reply to send with the open reply.
    pub reply: Bytes,
}

impl AuthOutcome {
    /// Whether the authorizer checked out.
    pub fn is_valid(&self) -> bool {
        self.refusal.is_none()
    }

    fn refused(r: AuthRefusal) -> Self {
        AuthOutcome {
            refusal: Some(r),
            ..AuthOutcome::default()
        }
    }
}

/// What the acceptor does with a connect's authorizer.
#[derive(Debug, Clone)]
pub(crate) enum AuthStep {
    /// Send CHALLENGE_AUTHORIZER with these bytes and read the next connect.
    Challenge(Bytes),
    /// Decided.
    Done(AuthOutcome),
}

/// One accepted socket's authorizer checks: the rules, the time of the accept (for ticket
/// expiry), and the challenge it issues (one random value per socket).
#[derive(Debug, Clone)]
pub struct SocketAuth {
    rules: std::sync::Arc<ServerAuth>,
    now: Duration,
    challenge: u64,
    issued: Option<u64>,
}

impl Default for SocketAuth {
    fn default() -> Self {
        SocketAuth::new(
            std::sync::Arc::new(ServerAuth::default()),
            Duration::ZERO,
            0,
        )
    }
}

impl SocketAuth {
    /// Checks for one socket accepted at `now` (since the epoch), challenging with `challenge`
    /// (a fresh random number).
    pub fn new(rules: std::sync::Arc<ServerAuth>, now: Duration, challenge: u64) -> Self {
        SocketAuth {
            rules,
            now,
            challenge,
            issued: None,
        }
    }

    pub(crate) fn check(&mut self, peer_type: EntityType, protocol: u32, blob: &[u8]) -> AuthStep {
        let allowed = self.rules.allowed_for(peer_type);
        let method = match protocol {
            0 | CEPH_AUTH_NONE => AuthMethod::None,
            CEPH_AUTH_CEPHX => AuthMethod::Cephx,
            _ => {
                return AuthStep::Done(AuthOutcome::refused(AuthRefusal::MethodNotAllowed {
                    protocol,
                    peer_type,
                }))
            }
        };
        if !allowed.allows(method) {
            return AuthStep::Done(AuthOutcome::refused(AuthRefusal::MethodNotAllowed {
                protocol,
                peer_type,
            }));
        }
        if method == AuthMethod::None {
            if !verify_auth_none(protocol, blob) {
                return AuthStep::Done(AuthOutcome::refused(AuthRefusal::MalformedNone));
            }
            return AuthStep::Done(AuthOutcome {
                method: Some(AuthMethod::None),
                ..AuthOutcome::default()
            });
        }
        let verdict = verify_authorizer(
            blob,
            &self.rules.keys,
            self.issued,
            self.challenge,
            self.now,
            Bytes::new(),
        );
        match verdict {
            Err(e) => AuthStep::Done(AuthOutcome::refused(e.into())),
            // One challenge per socket: a peer that does not answer it is refused.
            Ok(AuthorizerVerdict::Challenge { .. }) if self.issued.is_some() => {
                AuthStep::Done(AuthOutcome::refused(CephxError::ChallengeMismatch.into()))
            }
            Ok(AuthorizerVerdict::Challenge { challenge, sealed }) => {
                self.issued = Some(challenge);
                AuthStep::Challenge(sealed)
            }
            Ok(AuthorizerVerdict::Authorized(peer)) => AuthStep::Done(AuthOutcome {
                refusal: None,
                method: Some(AuthMethod::Cephx),
                name: Some(peer.name),
                session_key: Some(peer.session_key),
                reply: peer.reply,
            }),
        }
    }
}
