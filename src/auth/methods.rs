//! Ceph's `auth_*_required` lists (spec §10): which authentication methods a messenger demands
//! from peers and offers when dialling, in order of preference.

use std::fmt;

use crate::handshake::authorizer::{CEPH_AUTH_CEPHX, CEPH_AUTH_NONE};

/// One authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// cephx: tickets, authorizers and (v1) message signatures.
    Cephx,
    /// none: the peer is taken at its word.
    None,
}

impl AuthMethod {
    /// Ceph's protocol number (`CEPH_AUTH_CEPHX` 2, `CEPH_AUTH_NONE` 1).
    pub fn protocol(self) -> u32 {
        match self {
            AuthMethod::Cephx => CEPH_AUTH_CEPHX,
            AuthMethod::None => CEPH_AUTH_NONE,
        }
    }
}

/// A list of methods, as Ceph writes them: `cephx`, `none`, `cephx, none` (commas, spaces or
/// semicolons between). Empty means "decided by the messenger": cephx when it has keys,
/// otherwise none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthMethods(Vec<AuthMethod>);

impl AuthMethods {
    /// Parses a list; unknown names are an error (Ceph ignores them, which can silently leave
    /// nothing allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for word in text.split([',', ' ', ';', '\t']).filter(|w| !w.is_empty()) {
            let m = match word {
                "cephx" => AuthMethod::Cephx,
                "none" => AuthMethod::None,
                other => return Err(format!("unknown auth method {other:?}")),
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(AuthMethods(out))
    }

    /// The list, or `fallback` when it was left empty.
    pub fn or(self, fallback: &[AuthMethod]) -> Self {
        if self.0.is_empty() {
            AuthMethods(fallback.to_vec())
        } else {
            self
        }
    }

    /// Whether `m` is in the list.
    pub fn allows(&self, m: AuthMethod) -> bool {
        self.0.contains(&m)
    }

    /// The methods, in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = AuthMethod> + '_ {
        self.0.iter().copied()
    }

    /// True when the list was left empty.
    pub fn is_auto(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AuthMethods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .0
            .iter()
            .map(|m| match m {
                AuthMethod::Cephx => "cephx",
                AuthMethod::None => "none",
            })
            .collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cephs_spellings_parse_and_unknown_names_do_not() {
        let m = AuthMethods::parse("cephx, none").unwrap();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [AuthMethod::Cephx, AuthMethod::None]
        );
        assert_eq!(m.to_string(), "cephx, none");
        assert!(AuthMethods::parse("").unwrap().is_auto());
        assert!(AuthMethods::parse("none;cephx")
            .unwrap()
            .allows(AuthMethod::Cephx));
        assert!(AuthMethods::parse("kerberos").is_err());
        let auto = AuthMethods::default().or(&[AuthMethod::None]);
        assert!(auto.allows(AuthMethod::None) && !auto.allows(AuthMethod::Cephx));
    }
}
