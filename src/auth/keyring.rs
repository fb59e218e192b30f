//! Ceph keyring files (spec §9.1), as `ceph-authtool` writes them:
//! ```text
//! [client.admin]
//!     key = AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==
//!     caps mon = "allow *"
//! ```
//! Parsed from text; reading the file is the caller's (this crate does no IO).

use std::fmt;
use std::str::FromStr;

use super::{CryptoKey, KeyError};
use crate::entity::EntityType;

/// The name an entity authenticates as (Ceph's string `EntityName`, spec §1.2): a type and a
/// string id, `client.admin`, `osd.0`, or `mon.` (the monitors' shared key, empty id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthName {
    /// The entity type.
    pub ty: EntityType,
    /// The id after the dot (may be empty).
    pub id: String,
}

impl From<crate::EntityName> for AuthName {
    /// `osd.3` for OSD 3; an entity without a number (-1) gets an empty id.
    fn from(name: crate::EntityName) -> Self {
        let id = if name.num < 0 {
            String::new()
        } else {
            name.num.to_string()
        };
        AuthName { ty: name.ty, id }
    }
}

impl FromStr for AuthName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ty, id) = s.split_once('.').ok_or(())?;
        let ty = EntityType::from_name(ty).ok_or(())?;
        Ok(AuthName {
            ty,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for AuthName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ty, self.id)
    }
}

/// Why a keyring could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A `key = ` (or other setting) line before any `[entity]` section.
    #[error("line {0}: a setting outside any [entity] section")]
    NoSection(usize),
    /// A section header that is not an entity name (`type.id`).
    #[error("line {line}: [{name}] is not an entity name")]
    BadSection {
        /// Where.
        line: usize,
        /// What it said.
        name: String,
    },
    /// A line that is neither a section, a `name = value` setting, a comment nor blank.
    #[error("line {0}: not a keyring line")]
    Syntax(usize),
    /// A key that does not decode.
    #[error("line {line}: {source}")]
    Key {
        /// Where.
        line: usize,
        /// Why.
        source: KeyError,
    },
}

/// The keys of a keyring, by entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<(AuthName, CryptoKey)>,
}

impl Keyring {
    /// Parses a keyring's text. Caps and other settings are read past (only the key matters on
    /// the wire); a section without a key has no entry.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        let mut section: Option<AuthName> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                let parsed = name
                    .parse::<AuthName>()
                    .map_err(|_| KeyringError::BadSection {
                        line: line_no,
                        name: name.to_string(),
                    })?;
                section = Some(parsed);
                continue;
            }
            let (setting, value) = line.split_once('=').ok_or(KeyringError::Syntax(line_no))?;
            let entity = section.clone().ok_or(KeyringError::NoSection(line_no))?;
            if setting.trim() == "key" {
                let key = CryptoKey::from_base64(value).map_err(|source| KeyringError::Key {
                    line: line_no,
                    source,
                })?;
                keys.retain(|(e, _)| *e != entity);
                keys.push((entity, key));
            }
        }
        Ok(Keyring { keys })
    }

    /// The key of `entity`.
    pub fn get(&self, entity: &AuthName) -> Option<&CryptoKey> {
        self.keys.iter().find(|(e, _)| e == entity).map(|(_, k)| k)
    }

    /// The entities with a key, in file order.
    pub fn entities(&self) -> impl Iterator<Item = &AuthName> {
        self.keys.iter().map(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# written by ceph-authtool
[mon.]
\tkey = AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==
\tcaps mon = \"allow *\"
[client.admin]
    key = AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==
    caps mds = \"allow *\"
    caps mon = \"allow *\"
";

    #[test]
    fn keys_are_found_by_entity_and_caps_are_read_past() {
        let k = Keyring::parse(TEXT).unwrap();
        let names: Vec<String> = k.entities().map(|e| e.to_string()).collect();
        assert_eq!(names, ["mon.", "client.admin"]);
        let admin = AuthName {
            ty: EntityType::CLIENT,
            id: "admin".into(),
        };
        assert_eq!(
            k.get(&admin).expect("client.admin's key").aes_key()[0],
            0xe9
        );
        assert!(k.get(&"osd.0".parse().unwrap()).is_none());
    }

    #[test]
    fn bad_keyrings_name_the_line() {
        assert_eq!(
            Keyring::parse("key = AQ==\n"),
            Err(KeyringError::NoSection(1))
        );
        assert_eq!(
            Keyring::parse("[client.admin]\nnonsense\n"),
            Err(KeyringError::Syntax(2))
        );
        assert!(matches!(
            Keyring::parse("[client.admin]\nkey = !!\n"),
            Err(KeyringError::Key {
                line: 2,
                source: KeyError::Base64
            })
        ));
    }
}
