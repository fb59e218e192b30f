//! Addresses as msgr2 writes them (spec §1.3, §1.4): `entity_addr_t` in its new form (marker 1,
//! versioned, with an address type and a sockaddr whose family is little-endian) and
//! `entity_addrvec_t` (marker 2, a count, the addresses).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::denc::{Decode, Encode, Reader};
use crate::entity::EntityAddr;
use crate::error::DencError;

/// `entity_addr_t::type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `TYPE_NONE`.
    None,
    /// `TYPE_LEGACY`: a msgr v1 address.
    Legacy,
    /// `TYPE_MSGR2`: a msgr2 address.
    Msgr2,
    /// `TYPE_ANY`: a client's own address when it never bound.
    Any,
}

impl AddrType {
    fn code(self) -> u32 {
        match self {
            AddrType::None => 0,
            AddrType::Legacy => 1,
            AddrType::Msgr2 => 2,
            AddrType::Any => 3,
        }
    }

    fn from_code(c: u32) -> Result<Self, DencError> {
        Ok(match c {
            0 => AddrType::None,
            1 => AddrType::Legacy,
            2 => AddrType::Msgr2,
            3 => AddrType::Any,
            _ => {
                return Err(DencError::Invalid {
                    what: "entity_addr_t type",
                    value: u64::from(c),
                })
            }
        })
    }
}

/// An address with its type: what msgr2 frames carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypedAddr {
    /// The protocol the address speaks.
    pub ty: AddrType,
    /// The socket address and nonce.
    pub addr: EntityAddr,
}

impl TypedAddr {
    /// A msgr2 address.
    pub fn v2(addr: EntityAddr) -> Self {
        TypedAddr {
            ty: AddrType::Msgr2,
            addr,
        }
    }
}

impl std::fmt::Display for TypedAddr {
    /// Ceph's form: `v2:127.0.0.1:3300/0`, `v1:...`, `any:...`, `none:...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.ty {
            AddrType::None => "none",
            AddrType::Legacy => "v1",
            AddrType::Msgr2 => "v2",
            AddrType::Any => "any",
        };
        let v1_form = self.addr.to_string();
        write!(f, "{kind}:{}", v1_form.trim_start_matches("v1:"))
    }
}

impl std::str::FromStr for TypedAddr {
    type Err = crate::entity::ParseError;
    /// `v2:IP:PORT[/NONCE]`, `v1:IP:PORT[/NONCE]`, `any:...`, or a bare `IP:PORT[/NONCE]`
    /// (v1, as Ceph reads it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ty, rest) = match s.split_once(':') {
            Some(("v2", rest)) => (AddrType::Msgr2, rest),
            Some(("v1", rest)) => (AddrType::Legacy, rest),
            Some(("any", rest)) => (AddrType::Any, rest),
            _ => (AddrType::Legacy, s),
        };
        Ok(TypedAddr {
            ty,
            addr: rest.parse()?,
        })
    }
}

impl std::fmt::Display for AddrVec {
    /// Ceph's form: `[v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str("]")
    }
}

impl std::str::FromStr for AddrVec {
    type Err = crate::entity::ParseError;
    /// `[ADDR,ADDR,...]` or one address alone (each as [`TypedAddr`] reads it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        let addrs = inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<TypedAddr>, _>>()?;
        if addrs.is_empty() || addrs.len() > MAX_ADDRS as usize {
            return Err(crate::entity::ParseError {
                what: "entity_addrvec_t",
                input: s.to_string(),
            });
        }
        Ok(AddrVec(addrs))
    }
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Longest sockaddr we read (Linux's `sockaddr_storage` is 128).
const MAX_SOCKADDR: u32 = 128;

impl Encode for TypedAddr {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1); // marker: the new form
        crate::denc::encode_versioned(out, 1, 1, |b| {
            self.ty.code().encode(b);
            self.addr.nonce.encode(b);
            let mut sa = Vec::with_capacity(28);
            match self.addr.addr {
                Some(SocketAddr::V4(a)) => {
                    sa.extend_from_slice(&AF_INET.to_le_bytes());
                    sa.extend_from_slice(&a.port().to_be_bytes());
                    sa.extend_from_slice(&a.ip().octets());
                    sa.extend_from_slice(&[0; 8]);
                }
                Some(SocketAddr::V6(a)) => {
                    sa.extend_from_slice(&AF_INET6.to_le_bytes());
                    sa.extend_from_slice(&a.port().to_be_bytes());
                    sa.extend_from_slice(&a.flowinfo().to_be_bytes());
                    sa.extend_from_slice(&a.ip().octets());
                    sa.extend_from_slice(&a.scope_id().to_le_bytes());
                }
                // A blank address is an AF_UNSPEC sockaddr of 28 zero bytes.
                None => sa.resize(28, 0),
            }
            (sa.len() as u32).encode(b);
            b.extend_from_slice(&sa);
        });
    }
}

impl Decode for TypedAddr {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let marker = u8::decode(r)?;
        match marker {
            0 => {
                // The legacy 136-byte form (marker included).
                let rest = r.take("legacy entity_addr_t", crate::entity::ENTITY_ADDR_LEN - 1)?;
                let mut whole = [0u8; crate::entity::ENTITY_ADDR_LEN];
                whole[1..].copy_from_slice(rest);
                let addr = EntityAddr::decode_legacy(&whole).map_err(|_| DencError::Invalid {
                    what: "legacy entity_addr_t",
                    value: 0,
                })?;
                Ok(TypedAddr {
                    ty: AddrType::Legacy,
                    addr,
                })
            }
            1 => r.versioned("entity_addr_t", 1, |_, b| {
                let ty = AddrType::from_code(u32::decode(b)?)?;
                let nonce = u32::decode(b)?;
                let elen = u32::decode(b)?;
                if elen > MAX_SOCKADDR {
                    return Err(DencError::Invalid {
                        what: "sockaddr length",
                        value: u64::from(elen),
                    });
                }
                let sa = b.take("sockaddr", elen as usize)?;
                Ok(TypedAddr {
                    ty,
                    addr: EntityAddr {
                        nonce,
                        addr: sockaddr(sa),
                    },
                })
            }),
            m => Err(DencError::Invalid {
                what: "entity_addr_t marker",
                value: u64::from(m),
            }),
        }
    }
}

fn sockaddr(sa: &[u8]) -> Option<SocketAddr> {
    if sa.len() < 2 {
        return None;
    }
    let family = u16::from_le_bytes([sa[0], sa[1]]);
    match family {
        AF_INET if sa.len() >= 8 => {
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let ip = Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        AF_INET6 if sa.len() >= 24 => {
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let mut o = [0u8; 16];
            o.copy_from_slice(&sa[8..24]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

/// `entity_addrvec_t`: a daemon's addresses (a monitor lists v2 first, then v1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrVec(pub Vec<TypedAddr>);

/// Most addresses we read in one vector.
const MAX_ADDRS: u32 = 16;

impl AddrVec {
    /// The address to dial: the msgr2 one when there is one (as Ceph's clients prefer it),
    /// else the v1 one.
    pub fn preferred(&self) -> Option<TypedAddr> {
        self.v2()
            .or_else(|| self.0.iter().copied().find(|a| a.ty == AddrType::Legacy))
    }

    /// Whether `a` (type, nonce and socket address) is one of ours.
    pub fn contains(&self, a: &TypedAddr) -> bool {
        self.0.iter().any(|x| x == a)
    }

    /// The msgr2 address, if any.
    pub fn v2(&self) -> Option<TypedAddr> {
        self.0.iter().copied().find(|a| a.ty == AddrType::Msgr2)
    }
}

impl Encode for AddrVec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(2);
        (self.0.len() as u32).encode(out);
        for a in &self.0 {
            a.encode(out);
        }
    }
}

impl Decode for AddrVec {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let mut peek = r.clone();
        match u8::decode(&mut peek)? {
            0 | 1 => Ok(AddrVec(vec![TypedAddr::decode(r)?])),
            2 => {
                u8::decode(r)?;
                let n = u32::decode(r)?;
                if n > MAX_ADDRS {
                    return Err(DencError::Invalid {
                        what: "entity_addrvec_t count",
                        value: u64::from(n),
                    });
                }
                (0..n)
                    .map(|_| TypedAddr::decode(r))
                    .collect::<Result<_, _>>()
                    .map(AddrVec)
            }
            m => Err(DencError::Invalid {
                what: "entity_addrvec_t marker",
                value: u64::from(m),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denc::to_vec;
    use crate::wire::hex;

    #[test]
    fn the_mons_v2_address_and_addrvec_from_the_spec() {
        let mon =
            hex("01 01 01 1c000000 02000000 00000000 10000000 0200 33f4 7f000001 0000000000000000");
        let a = TypedAddr::decode(&mut Reader::new(&mon)).unwrap();
        assert_eq!(a.ty, AddrType::Msgr2);
        assert_eq!(a.addr.addr, Some("127.0.0.1:13300".parse().unwrap()));
        assert_eq!(to_vec(&a), mon);
        let vec = hex(
            "02 02000000 0101011c000000020000000000000010000000020033f47f0000010000000000000000 \
             0101011c000000010000000000000010000000020041957f0000010000000000000000",
        );
        let v = AddrVec::decode(&mut Reader::new(&vec)).unwrap();
        assert_eq!(v.0.len(), 2);
        assert_eq!(v.0[1].ty, AddrType::Legacy);
        assert_eq!(v.v2(), Some(a));
        assert_eq!(to_vec(&v), vec);
    }

    #[test]
    fn addrvecs_in_cephs_text_form_and_the_preferred_address() {
        let v: AddrVec = "[v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0]".parse().unwrap();
        assert_eq!(v.to_string(), "[v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0]");
        let best = v.preferred().unwrap();
        assert_eq!((best.ty, best.addr.port()), (AddrType::Msgr2, 3300));
        let v1_only: AddrVec = "127.0.0.1:6789".parse().unwrap();
        assert_eq!(v1_only.preferred().unwrap().ty, AddrType::Legacy);
        let any: AddrVec = "any:127.0.0.1:0/5".parse().unwrap();
        assert_eq!(
            any.preferred(),
            None,
            "a client's ANY address is not dialled"
        );
        for bad in [
            "",
            "[]",
            "[v2:nowhere]",
            "v3:127.0.0.1:1",
            "[v2:127.0.0.1:1,]x",
        ] {
            assert!(bad.parse::<AddrVec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_markers_types_and_lengths_are_refused() {
        for bad in [
            hex("03"),
            hex("01 01 01 0c000000 07000000 00000000 00000000"),
            hex("01 01 01 10000000 02000000 00000000 ffffffff 0000"),
            hex("02 ffffffff"),
        ] {
            assert!(
                AddrVec::decode(&mut Reader::new(&bad)).is_err(),
                "{bad:02x?}"
            );
        }
    }
}
