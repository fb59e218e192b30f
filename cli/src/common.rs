//! Helpers shared by the subcommands.

use std::net::SocketAddr;

use msgr_actors::msgr::{EntityAddr, EntityType};
use msgr_actors::{Connection, Messenger};

/// A peer address as typed: `v1:IP:PORT/NONCE` (nonce checked), `IP:PORT` (any nonce),
/// either with `v2:` for msgr2, or a daemon's address vector `[v2:IP:PORT,v1:IP:PORT]`
/// (msgr2 preferred, as Ceph's clients do).
#[derive(Clone)]
pub struct PeerAddr {
    pub addr: EntityAddr,
    pub nonce_known: bool,
    pub v2: bool,
}

impl std::str::FromStr for PeerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with('[') {
            let addrs: msgr_actors::msgr::v2::AddrVec = s.parse().map_err(|e| format!("{e}"))?;
            let best = addrs
                .preferred()
                .ok_or_else(|| format!("{s}: no v2 or v1 address to dial"))?;
            return Ok(PeerAddr {
                addr: best.addr,
                nonce_known: s.contains('/'),
                v2: best.ty == msgr_actors::msgr::v2::AddrType::Msgr2,
            });
        }
        let (v2, rest) = match s.strip_prefix("v2:") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let addr: EntityAddr = rest.parse().map_err(|e| format!("{e}"))?;
        if addr.addr.is_none() {
            return Err(format!("{s}: an IP and port are needed"));
        }
        Ok(PeerAddr {
            addr,
            nonce_known: s.contains('/'),
            v2,
        })
    }
}

/// Addresses to listen on, as Ceph writes them: `IP:PORT` or `v1:IP:PORT` (msgr v1),
/// `v2:IP:PORT` (msgr2), or both as `[v2:IP:PORT,v1:IP:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddrs {
    pub v1: Option<SocketAddr>,
    pub v2: Option<SocketAddr>,
}

impl std::str::FromStr for BindAddrs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        let mut b = BindAddrs { v1: None, v2: None };
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (slot, text) = match part.split_once(':') {
                Some(("v2", rest)) => (&mut b.v2, rest),
                Some(("v1", rest)) => (&mut b.v1, rest),
                _ => (&mut b.v1, part),
            };
            let text = text.split_once('/').map_or(text, |(a, _)| a);
            let addr: SocketAddr = text.parse().map_err(|e| format!("{part}: {e}"))?;
            if slot.replace(addr).is_some() {
                return Err(format!("{s}: two addresses of one kind"));
            }
        }
        if b.v1.is_none() && b.v2.is_none() {
            return Err(format!("{s}: no address"));
        }
        Ok(b)
    }
}

impl std::fmt::Display for PeerAddr {
    /// As typed: `v2:` for msgr2, else the v1 address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.v2 {
            let text = self.addr.to_string();
            write!(f, "v2:{}", text.trim_start_matches("v1:"))
        } else {
            write!(f, "{}", self.addr)
        }
    }
}

impl PeerAddr {
    pub fn socket(&self) -> SocketAddr {
        self.addr.addr.expect("checked at parse")
    }

    /// The connection to this peer from `m`.
    pub async fn connect(&self, m: &Messenger, ty: EntityType) -> Result<Connection, String> {
        let r = match (self.v2, self.nonce_known) {
            (false, true) => m.get_connection(self.addr, ty).await,
            (false, false) => m.connect(self.socket(), ty).await,
            (true, true) => m.get_connection_v2(self.addr, ty).await,
            (true, false) => m.connect_v2(self.socket(), ty).await,
        };
        r.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_address_vector_dials_msgr2_first() {
        let p: PeerAddr = "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]".parse().unwrap();
        assert!(p.v2 && !p.nonce_known);
        assert_eq!(p.socket().port(), 3300);
        let p: PeerAddr = "[v1:127.0.0.1:6789/0]".parse().unwrap();
        assert!(!p.v2 && p.nonce_known);
        assert!("[any:127.0.0.1:1]".parse::<PeerAddr>().is_err());
    }

    #[test]
    fn bind_addresses_in_cephs_forms() {
        let both: BindAddrs = "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]".parse().unwrap();
        assert_eq!(both.v2, Some("127.0.0.1:3300".parse().unwrap()));
        assert_eq!(both.v1, Some("127.0.0.1:6789".parse().unwrap()));
        let plain: BindAddrs = "127.0.0.1:6789".parse().unwrap();
        assert_eq!((plain.v1.is_some(), plain.v2.is_some()), (true, false));
        let v2: BindAddrs = "v2:127.0.0.1:3300/0".parse().unwrap();
        assert_eq!((v2.v1, v2.v2.map(|a| a.port())), (None, Some(3300)));
        for bad in ["", "[]", "v2:nope", "[v1:127.0.0.1:1,v1:127.0.0.1:2]"] {
            assert!(bad.parse::<BindAddrs>().is_err(), "{bad}");
        }
        let peer: PeerAddr = "v2:127.0.0.1:3300".parse().unwrap();
        assert!(peer.v2 && !peer.nonce_known);
        assert_eq!(peer.to_string(), "v2:127.0.0.1:3300/0");
    }
}
