//! Authentication as the runtime applies it: where dials get cephx tickets ([`TicketSource`]),
//! the keys that open tickets presented to us ([`AuthSetup`]), and the `auth_*_required`
//! lists resolved against what the messenger holds. Every verdict is `msgr`'s; this module
//! supplies the clock, randomness and keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use msgr::auth::cephx::{
    self_made_ticket, types, CephxError, ClientAuthorizer, MonAuthClient, ServiceKeys, Ticket,
};
use msgr::auth::{AuthMethod, AuthMethods, AuthName, CryptoKey};
use msgr::handshake::{Authorizer, ServerAuth, SocketAuth};
use msgr::v2::connector::ClientAuth;
use msgr::{Config, EntityType};
use rand::RngCore;

/// Gives dials the cephx tickets they present.
pub trait TicketSource: Send + Sync + 'static {
    /// A ticket for the service `service_id` (the peer's entity type bit) and our global id,
    /// or None when we hold none.
    fn ticket(&self, service_id: u32) -> Option<(Ticket, u64)>;
}

/// Tickets made with a service's own key, as Ceph's monitors make them for each other (the
/// ticket is sealed with the `mon.` key, secret id -1): whoever holds the key of `<type>.` can
/// open sessions to peers of that type that verify with the same key.
pub struct SharedServiceKey {
    /// Who we are, as the tickets say.
    pub name: AuthName,
    /// The service's type.
    pub service: EntityType,
    /// The service's key (`mon.` for monitors).
    pub key: CryptoKey,
    /// How long each ticket is good for.
    pub validity: Duration,
}

impl TicketSource for SharedServiceKey {
    fn ticket(&self, service_id: u32) -> Option<(Ticket, u64)> {
        if service_id != u32::from(self.service.0) {
            return None;
        }
        seal_ticket(&self.name, &self.key, service_id, self.validity)
    }
}

/// One key shared by every entity of a closed cluster (what Erlang calls a cookie): whoever
/// holds it makes tickets for any service and verifies those presented to it. No monitor is
/// needed, and the sessions still get cephx's mutual authentication, signatures and msgr2's
/// secure mode; but every holder can act as any other, so it suits a cluster of one owner,
/// not one shared with clients of others (those want a monitor's tickets: [`crate::MonAuth`]).
pub struct ClusterKey {
    /// Who we are, as the tickets say.
    pub name: AuthName,
    /// The cluster's key.
    pub key: CryptoKey,
    /// How long each ticket is good for.
    pub validity: Duration,
}

impl TicketSource for ClusterKey {
    fn ticket(&self, service_id: u32) -> Option<(Ticket, u64)> {
        seal_ticket(&self.name, &self.key, service_id, self.validity)
    }
}

/// A ticket for `service_id` naming `name`, with a fresh session key, sealed with `key`.
fn seal_ticket(
    name: &AuthName,
    key: &CryptoKey,
    service_id: u32,
    validity: Duration,
) -> Option<(Ticket, u64)> {
    let now = wall_clock();
    let mut secret = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let session_key = CryptoKey::new((now.as_secs() as u32, 0), &secret).ok()?;
    let info = types::ServiceTicketInfo {
        ticket: types::AuthTicket {
            name: name.clone(),
            global_id: 0,
            created: types::UTime::from_duration(now),
            expires: types::UTime::from_duration(now + validity),
            caps: types::CapsInfo {
                allow_all: true,
                caps: Default::default(),
            },
            flags: 0,
        },
        session_key,
    };
    Some((self_made_ticket(key, service_id, &info, now), 0))
}

/// What a messenger authenticates with: the keys that open tickets presented to it, and where
/// its dials get tickets. Which methods are demanded and offered is the `auth_*_required`
/// options' say (empty: cephx wherever keys or tickets are given here).
#[derive(Clone, Default)]
pub struct AuthSetup {
    /// Keys that open tickets sealed for us (a monitor's `mon.` key, a service's own key).
    pub service_keys: ServiceKeys,
    /// Where dials get tickets ([`crate::MonAuth`] after authenticating, or a
    /// [`SharedServiceKey`]).
    pub tickets: Option<Arc<dyn TicketSource>>,
    /// Who we are to monitors over msgr2, where authenticating is part of the handshake
    /// (`AUTH_MODE_MON`): a name and its key, and the tickets to ask for (entity-type bits).
    pub mon_identity: Option<(AuthName, CryptoKey, u32)>,
}

impl AuthSetup {
    /// Peers of our own type share `key` (`mon.` among monitors): we verify their tickets
    /// with it and make our own with it.
    pub fn shared_service_key(name: AuthName, key: CryptoKey) -> Self {
        let service = name.ty;
        let tickets = SharedServiceKey {
            name,
            service,
            key: key.clone(),
            validity: Duration::from_secs(3600),
        };
        Self::own_key_and(service, key, Arc::new(tickets))
    }

    /// Every entity of the cluster shares `key` ([`ClusterKey`]): we verify tickets sealed
    /// with it and make our own with it, for any peer.
    pub fn cluster_key(name: AuthName, key: CryptoKey) -> Self {
        let service = name.ty;
        let tickets = ClusterKey {
            name,
            key: key.clone(),
            validity: Duration::from_secs(3600),
        };
        Self::own_key_and(service, key, Arc::new(tickets))
    }

    /// Verifies tickets for `service` with `key`; dials get tickets from `tickets`.
    fn own_key_and(service: EntityType, key: CryptoKey, tickets: Arc<dyn TicketSource>) -> Self {
        AuthSetup {
            service_keys: ServiceKeys {
                service_id: u32::from(service.0),
                own: Some(key),
                rotating: Vec::new(),
            },
            tickets: Some(tickets),
            mon_identity: None,
        }
    }
}

/// The runtime's resolved authentication: shared by every actor of a messenger.
pub(crate) struct RuntimeAuth {
    /// Checks incoming authorizers.
    pub(crate) server: Arc<ServerAuth>,
    /// Methods we offer when dialling, in order.
    pub(crate) client: AuthMethods,
    /// Where dials get tickets.
    tickets: Option<Arc<dyn TicketSource>>,
    /// Who we are to monitors over msgr2.
    mon_identity: Option<(AuthName, CryptoKey, u32)>,
    /// The auth-none authorizer sent when none is what we offer.
    none_authorizer: Option<Authorizer>,
}

/// Why an authentication setup cannot work.
fn unusable(what: &str) -> msgr::config::ConfigError {
    msgr::config::ConfigError::Invalid(what.to_string())
}

impl RuntimeAuth {
    /// Resolves the options against the keys and tickets there are.
    pub(crate) fn resolve(
        config: &Config,
        setup: AuthSetup,
        none_authorizer: Option<Authorizer>,
    ) -> Result<Self, msgr::config::ConfigError> {
        let parse = |v: &str| AuthMethods::parse(v).map_err(|e| unusable(&e));
        let keys = &setup.service_keys;
        let has_keys = keys.own.is_some() || !keys.rotating.is_empty();
        let serve_default: &[AuthMethod] = if has_keys {
            &[AuthMethod::Cephx]
        } else {
            &[AuthMethod::None]
        };
        let dial_default: &[AuthMethod] = if setup.tickets.is_some() || setup.mon_identity.is_some()
        {
            &[AuthMethod::Cephx, AuthMethod::None]
        } else {
            &[AuthMethod::None]
        };
        let cluster = parse(&config.auth_cluster_required)?.or(serve_default);
        let service = parse(&config.auth_service_required)?.or(serve_default);
        let client = parse(&config.auth_client_required)?.or(dial_default);
        if !has_keys && (cluster.allows(AuthMethod::Cephx) || service.allows(AuthMethod::Cephx)) {
            return Err(unusable(
                "auth_cluster_required / auth_service_required allow cephx, but the messenger has no service key to verify tickets with",
            ));
        }
        if setup.tickets.is_none()
            && setup.mon_identity.is_none()
            && client.iter().eq([AuthMethod::Cephx])
        {
            return Err(unusable(
                "auth_client_required is cephx only, but the messenger has no ticket source",
            ));
        }
        Ok(RuntimeAuth {
            server: Arc::new(ServerAuth {
                cluster,
                service,
                keys: setup.service_keys,
            }),
            client,
            tickets: setup.tickets,
            mon_identity: setup.mon_identity,
            none_authorizer,
        })
    }

    /// The checks for a socket accepted now.
    pub(crate) fn socket_auth(&self) -> SocketAuth {
        SocketAuth::new(
            self.server.clone(),
            wall_clock(),
            rand::rngs::OsRng.next_u64(),
        )
    }

    /// What a dial to a `peer_type` presents: the first method in `auth_client_required` we
    /// can use (cephx needs a ticket for the peer's service).
    pub(crate) fn dial_auth(
        &self,
        peer_type: EntityType,
    ) -> Result<(Option<Authorizer>, Option<ClientAuthorizer>), CephxError> {
        let service = u32::from(peer_type.0);
        for method in self.client.iter() {
            match method {
                AuthMethod::Cephx => {
                    let found = self.tickets.as_ref().and_then(|t| t.ticket(service));
                    if let Some((ticket, global_id)) = found {
                        let nonce = rand::rngs::OsRng.next_u64();
                        let cephx = ClientAuthorizer::new(&ticket, global_id, nonce);
                        return Ok((None, Some(cephx)));
                    }
                }
                AuthMethod::None => return Ok((self.none_authorizer.clone(), None)),
            }
        }
        Err(CephxError::NoTicket(service))
    }
}

impl RuntimeAuth {
    /// How a msgr2 dial to a `peer_type` authenticates: to a monitor with our identity
    /// (tickets come back in the handshake), else with a ticket's authorizer, else none, in
    /// the order `auth_client_required` gives.
    pub(crate) fn v2_client_auth(&self, peer_type: EntityType) -> Result<ClientAuth, CephxError> {
        for method in self.client.iter() {
            match method {
                AuthMethod::Cephx => {
                    if let (EntityType::MON, Some((name, key, want))) =
                        (peer_type, &self.mon_identity)
                    {
                        let client = MonAuthClient::new(name.clone(), key.clone(), *want);
                        return Ok(ClientAuth::Mon {
                            client: Box::new(client),
                            client_challenge: rand::rngs::OsRng.next_u64(),
                        });
                    }
                    if let (_, Some(cephx)) = self.dial_auth(peer_type)? {
                        return Ok(ClientAuth::Authorizer(cephx));
                    }
                }
                AuthMethod::None => {
                    let name = match &self.mon_identity {
                        Some((n, _, _)) => n.clone(),
                        None => AuthName {
                            ty: EntityType::CLIENT,
                            id: "admin".into(),
                        },
                    };
                    return Ok(ClientAuth::None { name, global_id: 0 });
                }
            }
        }
        Err(CephxError::NoTicket(u32::from(peer_type.0)))
    }
}

/// The wall clock, as a span since the epoch (what ticket times are measured in).
pub(crate) fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
