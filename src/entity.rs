//! Who is talking: entity types, names and the legacy 136-byte address (spec §1.3, §3.5).

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::error::DecodeError;

/// A Ceph entity type (`CEPH_ENTITY_TYPE_*`), as carried in connect `host_type` and header `src.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityType(pub u8);

impl EntityType {
    /// A monitor.
    pub const MON: EntityType = EntityType(0x01);
    /// A metadata server.
    pub const MDS: EntityType = EntityType(0x02);
    /// An object storage daemon.
    pub const OSD: EntityType = EntityType(0x04);
    /// A client.
    pub const CLIENT: EntityType = EntityType(0x08);
    /// A manager daemon.
    pub const MGR: EntityType = EntityType(0x10);
    /// The auth service.
    pub const AUTH: EntityType = EntityType(0x20);
    /// Any type (wildcard).
    pub const ANY: EntityType = EntityType(0xff);

    /// Ceph's lower-case name for the type (`osd`, `mon`, ...), or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MON => "mon",
            Self::MDS => "mds",
            Self::OSD => "osd",
            Self::CLIENT => "client",
            Self::MGR => "mgr",
            Self::AUTH => "auth",
            Self::ANY => "any",
            _ => "unknown",
        }
    }

    /// Parses Ceph's type name (`osd`, `mon`, ...).
    pub fn from_name(name: &str) -> Option<EntityType> {
        Some(match name {
            "mon" => Self::MON,
            "mds" => Self::MDS,
            "osd" => Self::OSD,
            "client" => Self::CLIENT,
            "mgr" => Self::MGR,
            "auth" => Self::AUTH,
            "any" => Self::ANY,
            _ => return None,
        })
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An entity name: type plus number (`osd.3`); number -1 means "not yet assigned" (`client.?`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName {
    /// The entity's type.
    pub ty: EntityType,
    /// The entity's number; -1 when not yet assigned.
    pub num: i64,
}

impl EntityName {
    /// The number Ceph uses for an entity whose id is not assigned yet.
    pub const NEW: i64 = -1;

    /// Builds a name from a type and a number.
    pub const fn new(ty: EntityType, num: i64) -> Self {
        EntityName { ty, num }
    }

    /// A client whose id is not yet assigned (`client.?`).
    pub const fn anonymous_client() -> Self {
        EntityName::new(EntityType::CLIENT, Self::NEW)
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num < 0 {
            write!(f, "{}.?", self.ty)
        } else {
            write!(f, "{}.{}", self.ty, self.num)
        }
    }
}

/// Why a textual entity name or address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {what} from {input:?}")]
pub struct ParseError {
    /// What was being parsed ("entity name", "entity address").
    pub what: &'static str,
    /// The offending text.
    pub input: String,
}

impl FromStr for EntityName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            what: "entity name",
            input: s.to_string(),
        };
        let (ty, num) = s.split_once('.').ok_or_else(err)?;
        let ty = EntityType::from_name(ty).ok_or_else(err)?;
        let num = if num == "?" {
            EntityName::NEW
        } else {
            num.parse::<i64>().map_err(|_| err())?
        };
        Ok(EntityName { ty, num })
    }
}

/// Size of the legacy `entity_addr_t` on the wire.
pub const ENTITY_ADDR_LEN: usize = 136;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A legacy (msgr v1) entity address: socket address plus the per-process nonce.
///
/// `addr == None` is the blank address (family AF_UNSPEC), which a client sends before it has
/// learned its own IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntityAddr {
    /// Per-process instance nonce; 0 for monitors.
    pub nonce: u32,
    /// The socket address, or `None` for a blank address.
    pub addr: Option<SocketAddr>,
}

impl EntityAddr {
    /// An address with a socket address and a nonce.
    pub const fn new(addr: SocketAddr, nonce: u32) -> Self {
        EntityAddr {
            nonce,
            addr: Some(addr),
        }
    }

    /// The blank address (AF_UNSPEC) with a nonce.
    pub const fn blank(nonce: u32) -> Self {
        EntityAddr { nonce, addr: None }
    }

    /// True when the address has no IP, or the unspecified IP (0.0.0.0 / ::).
    pub fn is_blank_ip(&self) -> bool {
        match self.addr {
            None => true,
            Some(a) => a.ip().is_unspecified(),
        }
    }

    /// The port, or 0 for a blank address.
    pub fn port(&self) -> u16 {
        self.addr.map_or(0, |a| a.port())
    }

    /// Encodes the legacy 136-byte form (spec §1.3): type 0, nonce, big-endian family and port.
    pub fn encode_legacy(&self) -> [u8; ENTITY_ADDR_LEN] {
        let mut out = [0u8; ENTITY_ADDR_LEN];
        out[4..8].copy_from_slice(&self.nonce.to_le_bytes());
        out[8..36].copy_from_slice(&self.sockaddr_bytes());
        out
    }

    /// Decodes the legacy 136-byte form. Byte 0 (the type marker) must be 0, as Ceph requires.
    pub fn decode_legacy(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() < ENTITY_ADDR_LEN {
            return Err(DecodeError::Truncated {
                what: "entity_addr",
                need: ENTITY_ADDR_LEN,
                have: buf.len(),
            });
        }
        if buf[0] != 0 {
            return Err(DecodeError::BadAddrMarker(buf[0]));
        }
        let nonce = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let family = u16::from_be_bytes([buf[8], buf[9]]);
        let port = u16::from_be_bytes([buf[10], buf[11]]);
        let addr = match family {
            AF_INET => {
                let ip = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                Some(SocketAddr::new(IpAddr::V4(ip), port))
            }
            AF_INET6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&buf[16..32]);
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
            }
            // Ceph treats any other family (AF_UNSPEC, or a mis-encoded one) as a blank address.
            _ => None,
        };
        Ok(EntityAddr { nonce, addr })
    }

    /// The 28 bytes of the in-memory sockaddr union: family (host order), port BE, address.
    fn sockaddr_bytes(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        match self.addr {
            None => {}
            Some(SocketAddr::V4(a)) => {
                out[0..2].copy_from_slice(&AF_INET.to_be_bytes());
                out[2..4].copy_from_slice(&a.port().to_be_bytes());
                out[4..8].copy_from_slice(&a.ip().octets());
            }
            Some(SocketAddr::V6(a)) => {
                out[0..2].copy_from_slice(&AF_INET6.to_be_bytes());
                out[2..4].copy_from_slice(&a.port().to_be_bytes());
                out[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                out[8..24].copy_from_slice(&a.ip().octets());
                out[24..28].copy_from_slice(&a.scope_id().to_le_bytes());
            }
        }
        out
    }

    /// The byte string Ceph's race rule compares with `memcmp` (spec §2.8): the in-memory
    /// `entity_addr_t` on x86: u32 type LE (1 = LEGACY, 0 for blank), u32 nonce LE, then the
    /// sockaddr union with the family in host (little-endian) order.
    pub fn race_key(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        let ty: u32 = if self.addr.is_some() { 1 } else { 0 };
        out[0..4].copy_from_slice(&ty.to_le_bytes());
        out[4..8].copy_from_slice(&self.nonce.to_le_bytes());
        let mut sa = self.sockaddr_bytes();
        sa.swap(0, 1); // family: wire is BE, memory is host order (LE)
        out[8..36].copy_from_slice(&sa);
        out
    }

    /// Orders two addresses the way Ceph's connection race rule does (spec §2.8).
    pub fn race_cmp(&self, other: &EntityAddr) -> Ordering {
        self.race_key().cmp(&other.race_key())
    }

    /// Same IP, port and nonce: Ceph's legacy address equality.
    pub fn same_legacy(&self, other: &EntityAddr) -> bool {
        self.encode_legacy() == other.encode_legacy()
    }
}

impl fmt::Display for EntityAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            None => write!(f, "v1:-/{}", self.nonce),
            Some(a) => write!(f, "v1:{}/{}", a, self.nonce),
        }
    }
}

impl FromStr for EntityAddr {
    type Err = ParseError;
    /// Parses `v1:127.0.0.1:6789/0`, `v1:[::1]:6800/7`, and the same without `v1:` or `/NONCE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            what: "entity address",
            input: s.to_string(),
        };
        let rest = s.strip_prefix("v1:").unwrap_or(s);
        if rest.starts_with("v2:") || rest.starts_with("any:") {
            return Err(err());
        }
        let (sock, nonce) = match rest.rsplit_once('/') {
            Some((sock, nonce)) => (sock, nonce.parse::<u32>().map_err(|_| err())?),
            None => (rest, 0),
        };
        if sock == "-" {
            return Ok(EntityAddr::blank(nonce));
        }
        let addr = SocketAddr::from_str(sock).map_err(|_| err())?;
        Ok(EntityAddr::new(addr, nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn client_addr_vector_from_spec() {
        let a: EntityAddr = "v1:127.0.0.1:0/4660".parse().unwrap();
        let enc = a.encode_legacy();
        let mut want = hex("00000000 34120000 0002 0000 7f000001");
        want.resize(136, 0);
        assert_eq!(enc.to_vec(), want);
        assert_eq!(EntityAddr::decode_legacy(&enc).unwrap(), a);
    }

    #[test]
    fn mon_addr_vector_from_spec() {
        let a: EntityAddr = "v1:127.0.0.1:6789/0".parse().unwrap();
        let enc = a.encode_legacy();
        assert_eq!(&enc[..16], &hex("00000000 00000000 0002 1a85 7f000001")[..]);
        assert!(enc[16..].iter().all(|&b| b == 0));
        assert_eq!(a.to_string(), "v1:127.0.0.1:6789/0");
    }

    #[test]
    fn decode_rejects_nonzero_marker_but_ignores_type_bytes_1_to_3() {
        let mut enc = EntityAddr::blank(0).encode_legacy();
        enc[0] = 1;
        assert_eq!(
            EntityAddr::decode_legacy(&enc),
            Err(DecodeError::BadAddrMarker(1))
        );
        enc[0] = 0;
        enc[1] = 1; // 0x00000100: accepted by Ceph
        assert!(EntityAddr::decode_legacy(&enc).is_ok());
    }

    #[test]
    fn all_zero_addr_is_blank() {
        let a = EntityAddr::decode_legacy(&[0u8; 136]).unwrap();
        assert_eq!(a, EntityAddr::blank(0));
        assert!(a.is_blank_ip());
    }

    #[test]
    fn little_endian_family_decodes_as_blank() {
        let mut enc = "127.0.0.1:6789"
            .parse::<EntityAddr>()
            .unwrap()
            .encode_legacy();
        enc.swap(8, 9);
        assert_eq!(EntityAddr::decode_legacy(&enc).unwrap().addr, None);
    }

    #[test]
    fn ipv6_round_trip_and_text() {
        let a: EntityAddr = "v1:[::1]:6800/7".parse().unwrap();
        assert_eq!(EntityAddr::decode_legacy(&a.encode_legacy()).unwrap(), a);
        assert_eq!(a.to_string(), "v1:[::1]:6800/7");
        assert_eq!(&a.encode_legacy()[8..10], &[0, 10]);
    }

    #[test]
    fn entity_names_display_and_parse() {
        assert_eq!(EntityName::new(EntityType::OSD, 3).to_string(), "osd.3");
        assert_eq!(EntityName::anonymous_client().to_string(), "client.?");
        assert_eq!("mon.0".parse::<EntityName>().unwrap().ty, EntityType::MON);
        assert_eq!(
            "client.?".parse::<EntityName>().unwrap(),
            EntityName::anonymous_client()
        );
        assert!("bogus.1".parse::<EntityName>().is_err());
        assert!("v2:1.2.3.4:5".parse::<EntityAddr>().is_err());
    }

    #[test]
    fn race_order_compares_type_then_nonce_little_endian_then_sockaddr() {
        let a: EntityAddr = "127.0.0.1:7000/256".parse().unwrap(); // nonce LE bytes 00 01
        let b: EntityAddr = "127.0.0.1:6000/1".parse().unwrap(); // nonce LE bytes 01 00
                                                                 // memcmp of LE nonce: 00 01 .. < 01 00 .., though 256 > 1 numerically.
        assert_eq!(a.race_cmp(&b), Ordering::Less);
        let c: EntityAddr = "127.0.0.1:6000/5".parse().unwrap();
        let d: EntityAddr = "127.0.0.1:6001/5".parse().unwrap();
        assert_eq!(c.race_cmp(&d), Ordering::Less);
        // Blank (type 0) sorts before any legacy address.
        assert_eq!(EntityAddr::blank(9).race_cmp(&c), Ordering::Less);
    }
}
