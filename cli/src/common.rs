//! Helpers shared by the subcommands.

use std::net::SocketAddr;

use msgr_actors::msgr::{EntityAddr, EntityType};
use msgr_actors::{Connection, Messenger};

/// A peer address as typed: `v1:IP:PORT/NONCE` (nonce checked), `IP:PORT` (any nonce), or
/// either with `v2:` for msgr2.
#[derive(Clone)]
pub struct PeerAddr {
    pub addr: EntityAddr,
    pub nonce_known: bool,
    pub v2: bool,
}

impl std::str::FromStr for PeerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
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
