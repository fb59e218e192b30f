//! Ceph's `--name` / `-n` and `--keyring` / `-k` flags, and the keyring they point at.

use std::path::PathBuf;

use std::sync::Arc;
use std::time::Duration;

use msgr_actors::msgr::auth::cephx::ServiceKeys;
use msgr_actors::msgr::auth::{AuthName, CryptoKey, Keyring};
use msgr_actors::msgr::EntityType;
use msgr_actors::{AuthSetup, SharedServiceKey};

#[derive(clap::Args, Clone, Default)]
pub struct AuthArgs {
    /// The entity to authenticate as with cephx (`client.admin`, `mon.`); with `--keyring`
    /// alone, `client.admin`.
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
    /// The keyring holding the entity's key (as `ceph-authtool` writes it). With `--name`
    /// alone, Ceph's default paths are searched (/etc/ceph/ceph.NAME.keyring, ...).
    #[arg(short = 'k', long = "keyring")]
    pub keyring: Option<PathBuf>,
}

/// A name and its key, read from the keyring.
pub struct Identity {
    pub name: AuthName,
    pub key: CryptoKey,
}

impl AuthArgs {
    /// The key that seals tickets for `service` peers: `[<type>.]` in the keyring (`mon.`,
    /// `osd.`), else the `--name` entity's own key. None without `--keyring` / `--name`.
    fn service_key(&self, service: EntityType) -> Result<Option<(AuthName, CryptoKey)>, String> {
        let Some(path) = &self.keyring else {
            return Ok(self.identity()?.map(|id| (id.name, id.key)));
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ring = Keyring::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let shared = AuthName {
            ty: service,
            id: String::new(),
        };
        let name = match &self.name {
            None => None,
            Some(n) => Some(
                n.parse::<AuthName>()
                    .map_err(|_| format!("--name {n:?} is not an entity name (type.id)"))?,
            ),
        };
        if let Some(key) = ring.get(&shared) {
            return Ok(Some((name.unwrap_or(shared), key.clone())));
        }
        let name =
            name.ok_or_else(|| format!("{}: no key for {shared} (and no --name)", path.display()))?;
        match ring.get(&name) {
            Some(key) => Ok(Some((name, key.clone()))),
            None => Err(format!("{}: no key for {shared} or {name}", path.display())),
        }
    }

    /// A server of type `me`: verify cephx tickets sealed with its service key.
    pub fn server_setup(&self, me: EntityType) -> Result<AuthSetup, String> {
        Ok(match self.service_key(me)? {
            None => AuthSetup::default(),
            Some((_, key)) => AuthSetup {
                service_keys: ServiceKeys {
                    service_id: u32::from(me.0),
                    own: Some(key),
                    rotating: Vec::new(),
                },
                tickets: None,
                mon_identity: None,
            },
        })
    }

    /// A client of `peer` servers: present tickets sealed with their service key.
    pub fn client_setup(&self, peer: EntityType) -> Result<AuthSetup, String> {
        Ok(match self.service_key(peer)? {
            None => AuthSetup::default(),
            Some((name, key)) => AuthSetup {
                tickets: Some(Arc::new(SharedServiceKey {
                    name,
                    service: peer,
                    key,
                    validity: Duration::from_secs(3600),
                })),
                ..AuthSetup::default()
            },
        })
    }

    /// The identity asked for, or None when neither flag was given (auth none).
    pub fn identity(&self) -> Result<Option<Identity>, String> {
        if self.name.is_none() && self.keyring.is_none() {
            return Ok(None);
        }
        let text = self.name.as_deref().unwrap_or("client.admin");
        let name: AuthName = text
            .parse()
            .map_err(|_| format!("--name {text:?} is not an entity name (type.id)"))?;
        let paths = match &self.keyring {
            Some(p) => vec![p.clone()],
            None => vec![
                format!("/etc/ceph/ceph.{name}.keyring").into(),
                "/etc/ceph/ceph.keyring".into(),
                "/etc/ceph/keyring".into(),
            ],
        };
        let mut tried = Vec::new();
        for path in &paths {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    tried.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let ring = Keyring::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            return match ring.get(&name) {
                Some(key) => Ok(Some(Identity {
                    name,
                    key: key.clone(),
                })),
                None => Err(format!("{}: no key for {name}", path.display())),
            };
        }
        Err(format!("no keyring for {name}: {}", tried.join("; ")))
    }
}
