//! Ceph's `--name` / `-n` and `--keyring` / `-k` flags, and the keyring they point at.

use std::path::PathBuf;

use msgr_actors::msgr::auth::{AuthName, CryptoKey, Keyring};

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
