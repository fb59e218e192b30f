//! Helpers shared by the subcommands.

use std::net::SocketAddr;

use msgr_actors::msgr::{EntityAddr, EntityType};
use msgr_actors::{Connection, Messenger};

/// A peer address as typed: `v1:IP:PORT/NONCE` (nonce checked) or `IP:PORT` (any nonce).
#[derive(Clone)]
pub struct PeerAddr {
    pub addr: EntityAddr,
    pub nonce_known: bool,
}

impl std::str::FromStr for PeerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let addr: EntityAddr = s.parse().map_err(|e| format!("{e}"))?;
        if addr.addr.is_none() {
            return Err(format!("{s}: an IP and port are needed"));
        }
        Ok(PeerAddr {
            addr,
            nonce_known: s.contains('/'),
        })
    }
}

impl PeerAddr {
    pub fn socket(&self) -> SocketAddr {
        self.addr.addr.expect("checked at parse")
    }

    /// The connection to this peer from `m`.
    pub async fn connect(&self, m: &Messenger, ty: EntityType) -> Result<Connection, String> {
        let r = if self.nonce_known {
            m.get_connection(self.addr, ty).await
        } else {
            m.connect(self.socket(), ty).await
        };
        r.map_err(|e| e.to_string())
    }
}
