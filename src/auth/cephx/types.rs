//! The cephx structures (spec §9.3), each with its Ceph encoding. Decoding checks every version
//! byte and length; a structure from a newer peer than we know is an error, not a guess.

use bytes::Bytes;

use crate::auth::{AuthName, CryptoKey};
use crate::denc::{Decode, Encode, Reader};
use crate::entity::EntityType;
use crate::error::DencError;

/// `CEPHX_GET_AUTH_SESSION_KEY`: the first ticket, proving the client's key.
pub const CEPHX_GET_AUTH_SESSION_KEY: u16 = 0x0100;
/// `CEPHX_GET_PRINCIPAL_SESSION_KEY`: service tickets, asked with the AUTH ticket.
pub const CEPHX_GET_PRINCIPAL_SESSION_KEY: u16 = 0x0200;
/// `CEPHX_GET_ROTATING_KEY`: a daemon's rotating service secrets.
pub const CEPHX_GET_ROTATING_KEY: u16 = 0x0400;

/// Ceph's `utime_t`: seconds and nanoseconds since the epoch (or a span, for validities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct UTime {
    /// Seconds.
    pub sec: u32,
    /// Nanoseconds.
    pub nsec: u32,
}

impl UTime {
    /// From a span since the epoch (seconds past 2106 saturate).
    pub fn from_duration(d: std::time::Duration) -> Self {
        UTime {
            sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            nsec: d.subsec_nanos(),
        }
    }

    /// As a span since the epoch.
    pub fn to_duration(self) -> std::time::Duration {
        std::time::Duration::new(u64::from(self.sec), self.nsec.min(999_999_999))
    }
}

impl Encode for UTime {
    fn encode(&self, out: &mut Vec<u8>) {
        self.sec.encode(out);
        self.nsec.encode(out);
    }
}

impl Decode for UTime {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        Ok(UTime {
            sec: u32::decode(r)?,
            nsec: u32::decode(r)?,
        })
    }
}

/// Reads a struct version byte and refuses one newer than `newest` or older than `oldest`.
pub(crate) fn version(
    r: &mut Reader<'_>,
    what: &'static str,
    oldest: u8,
    newest: u8,
) -> Result<u8, DencError> {
    let v = u8::decode(r)?;
    if v < oldest || v > newest {
        return Err(DencError::Invalid {
            what,
            value: u64::from(v),
        });
    }
    Ok(v)
}

/// Fails unless the reader is exhausted (a structure that must fill its buffer).
pub(crate) fn finish(r: &Reader<'_>, what: &'static str) -> Result<(), DencError> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(DencError::Invalid {
            what,
            value: n as u64,
        }),
    }
}

/// Encodes a [`CryptoKey`] as it travels inside tickets (spec §1.5).
pub(crate) fn encode_key(key: &CryptoKey, out: &mut Vec<u8>) {
    out.extend_from_slice(&key.encode());
}

/// Reads a [`CryptoKey`] from the middle of a structure.
pub(crate) fn decode_key(r: &mut Reader<'_>) -> Result<CryptoKey, DencError> {
    let head = r.take("CryptoKey", 12)?;
    let len = u16::from_le_bytes([head[10], head[11]]) as usize;
    let secret = r.take("CryptoKey secret", len)?;
    let mut whole = zeroize::Zeroizing::new(Vec::with_capacity(12 + len));
    whole.extend_from_slice(head);
    whole.extend_from_slice(secret);
    CryptoKey::decode(&whole).map_err(|_| DencError::Invalid {
        what: "CryptoKey",
        value: len as u64,
    })
}

impl Encode for AuthName {
    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(self.ty.0).encode(out);
        self.id.encode(out);
    }
}

impl Decode for AuthName {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let ty = u32::decode(r)?;
        let ty = u8::try_from(ty).map_err(|_| DencError::Invalid {
            what: "EntityName type",
            value: u64::from(ty),
        })?;
        Ok(AuthName {
            ty: EntityType(ty),
            id: String::decode(r)?,
        })
    }
}

/// `CephXServerChallenge`: the mon's random challenge, first reply of an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerChallenge(pub u64);

impl Encode for ServerChallenge {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        self.0.encode(out);
    }
}

impl Decode for ServerChallenge {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        version(r, "CephXServerChallenge version", 1, 1)?;
        Ok(ServerChallenge(u64::decode(r)?))
    }
}

/// `CephXTicketBlob`: a ticket as its holder sees it: which service secret sealed it, and the
/// sealed bytes (a [`ServiceTicketInfo`] only the service can open).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketBlob {
    /// The id of the service secret that sealed it (`u64::MAX`: the service's own key).
    pub secret_id: u64,
    /// The sealed `CephXServiceTicketInfo` (raw ciphertext).
    pub blob: Bytes,
}

impl Encode for TicketBlob {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        self.secret_id.encode(out);
        self.blob.encode(out);
    }
}

impl Decode for TicketBlob {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        version(r, "CephXTicketBlob version", 1, 1)?;
        Ok(TicketBlob {
            secret_id: u64::decode(r)?,
            blob: Bytes::decode(r)?,
        })
    }
}

/// `CephXAuthenticate` (version 3): the client's proof of key and the tickets it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The client's random challenge.
    pub client_challenge: u64,
    /// The proof of key ([`crate::auth::proof_of_key`]).
    pub key: u64,
    /// The AUTH ticket held from before (empty for a new global_id).
    pub old_ticket: TicketBlob,
    /// The services wanted, as a mask of entity types.
    pub other_keys: u32,
}

impl Encode for Authenticate {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(3);
        self.client_challenge.encode(out);
        self.key.encode(out);
        self.old_ticket.encode(out);
        self.other_keys.encode(out);
    }
}

impl Decode for Authenticate {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let v = version(r, "CephXAuthenticate version", 1, 3)?;
        Ok(Authenticate {
            client_challenge: u64::decode(r)?,
            key: u64::decode(r)?,
            old_ticket: TicketBlob::decode(r)?,
            other_keys: if v >= 2 { u32::decode(r)? } else { 0 },
        })
    }
}

/// `CephXServiceTicket` ("msg_a"): the session key of a ticket and how long it is good for,
/// sealed for the ticket's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTicket {
    /// The key both ends of a session with the service use.
    pub session_key: CryptoKey,
    /// How long the ticket is valid, from its receipt.
    pub validity: UTime,
}

impl Encode for ServiceTicket {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        encode_key(&self.session_key, out);
        self.validity.encode(out);
    }
}

impl Decode for ServiceTicket {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        version(r, "CephXServiceTicket version", 1, 1)?;
        Ok(ServiceTicket {
            session_key: decode_key(r)?,
            validity: UTime::decode(r)?,
        })
    }
}

/// `AuthCapsInfo`: what the ticket's holder may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapsInfo {
    /// Everything is allowed.
    pub allow_all: bool,
    /// The encoded capabilities.
    pub caps: Bytes,
}

/// `AuthTicket`: who holds the ticket, for how long, with what rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTicket {
    /// The holder.
    pub name: AuthName,
    /// The holder's global id.
    pub global_id: u64,
    /// When it was made.
    pub created: UTime,
    /// When it stops being good.
    pub expires: UTime,
    /// The holder's capabilities.
    pub caps: CapsInfo,
    /// Flags (unused by Ceph today).
    pub flags: u32,
}

impl Encode for AuthTicket {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(2);
        self.name.encode(out);
        self.global_id.encode(out);
        u64::MAX.encode(out); // auid, retired: always -1
        self.created.encode(out);
        self.expires.encode(out);
        out.push(1);
        self.caps.allow_all.encode(out);
        self.caps.caps.encode(out);
        self.flags.encode(out);
    }
}

impl Decode for AuthTicket {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let v = version(r, "AuthTicket version", 1, 2)?;
        let name = AuthName::decode(r)?;
        let global_id = u64::decode(r)?;
        if v >= 2 {
            u64::decode(r)?;
        }
        let created = UTime::decode(r)?;
        let expires = UTime::decode(r)?;
        version(r, "AuthCapsInfo version", 1, 1)?;
        let caps = CapsInfo {
            allow_all: bool::decode(r)?,
            caps: Bytes::decode(r)?,
        };
        Ok(AuthTicket {
            name,
            global_id,
            created,
            expires,
            caps,
            flags: u32::decode(r)?,
        })
    }
}

/// `CephXServiceTicketInfo`: what a ticket blob holds, readable only by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTicketInfo {
    /// The ticket.
    pub ticket: AuthTicket,
    /// The session key the holder was given with it.
    pub session_key: CryptoKey,
}

impl Encode for ServiceTicketInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        self.ticket.encode(out);
        encode_key(&self.session_key, out);
    }
}

impl Decode for ServiceTicketInfo {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        version(r, "CephXServiceTicketInfo version", 1, 1)?;
        Ok(ServiceTicketInfo {
            ticket: AuthTicket::decode(r)?,
            session_key: decode_key(r)?,
        })
    }
}

/// `CephXAuthorize` (version 2): the sealed part of an authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorize {
    /// The client's random nonce; the service answers with nonce + 1.
    pub nonce: u64,
    /// The service's challenge is answered.
    pub have_challenge: bool,
    /// The service's challenge plus one.
    pub server_challenge_plus_one: u64,
}

impl Encode for Authorize {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(2);
        self.nonce.encode(out);
        self.have_challenge.encode(out);
        self.server_challenge_plus_one.encode(out);
    }
}

impl Decode for Authorize {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let v = version(r, "CephXAuthorize version", 1, 2)?;
        let nonce = u64::decode(r)?;
        if v < 2 {
            return Ok(Authorize {
                nonce,
                have_challenge: false,
                server_challenge_plus_one: 0,
            });
        }
        Ok(Authorize {
            nonce,
            have_challenge: bool::decode(r)?,
            server_challenge_plus_one: u64::decode(r)?,
        })
    }
}

/// `CephXAuthorizeChallenge`: a service's challenge to an authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizeChallenge(pub u64);

impl Encode for AuthorizeChallenge {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        self.0.encode(out);
    }
}

impl Decode for AuthorizeChallenge {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        version(r, "CephXAuthorizeChallenge version", 1, 1)?;
        Ok(AuthorizeChallenge(u64::decode(r)?))
    }
}

/// `CephXAuthorizeReply`: the service proves it opened the authorizer (nonce + 1), and in
/// msgr2 hands over the connection secret (kept out of `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizeReply {
    /// The authorizer's nonce plus one.
    pub nonce_plus_one: u64,
    /// The msgr2 connection secret (empty: version 1, as v1 and crc mode send).
    pub connection_secret: Bytes,
}

impl std::fmt::Debug for AuthorizeReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeReply")
            .field("nonce_plus_one", &self.nonce_plus_one)
            .field("connection_secret_len", &self.connection_secret.len())
            .finish()
    }
}

impl Encode for AuthorizeReply {
    fn encode(&self, out: &mut Vec<u8>) {
        if self.connection_secret.is_empty() {
            out.push(1);
            self.nonce_plus_one.encode(out);
        } else {
            out.push(2);
            self.nonce_plus_one.encode(out);
            self.connection_secret.encode(out);
        }
    }
}

impl Decode for AuthorizeReply {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let v = version(r, "CephXAuthorizeReply version", 1, 2)?;
        Ok(AuthorizeReply {
            nonce_plus_one: u64::decode(r)?,
            connection_secret: if v >= 2 {
                Bytes::decode(r)?
            } else {
                Bytes::new()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denc::to_vec;
    use crate::wire::hex;

    /// Spec Appendix A.5: the CephXServiceTicketInfo a live mon accepted, byte for byte.
    #[test]
    fn the_a5_ticket_info_encodes_and_decodes_exactly() {
        let plain = hex(
            "01 02 01000000 00000000 0000000000000000 ffffffffffffffff 00f15365 00000000 \
             10ff5365 00000000 01 00 00000000 00000000 0100 00f15365 00000000 1000 \
             000102030405060708090a0b0c0d0e0f",
        );
        let info = ServiceTicketInfo::decode(&mut Reader::new(&plain)).unwrap();
        assert_eq!(info.ticket.name.to_string(), "mon.");
        assert_eq!(info.ticket.created.sec, 1_700_000_000);
        assert_eq!(info.ticket.expires.sec, 1_700_003_600);
        assert_eq!(
            info.session_key.secret(),
            &hex("000102030405060708090a0b0c0d0e0f")
        );
        assert_eq!(to_vec(&info), plain);
    }

    #[test]
    fn the_empty_old_ticket_of_a3_round_2() {
        let a = Authenticate {
            client_challenge: 0xccf3_ce83_012a_1d95,
            key: 0xbef8_0a17_f9f7_87e3,
            old_ticket: TicketBlob::default(),
            other_keys: 0x35,
        };
        let bytes = to_vec(&a);
        assert_eq!(
            bytes,
            hex("03 951d2a0183cef3cc e387f7f9170af8be 01 0000000000000000 00000000 35000000")
        );
        assert_eq!(Authenticate::decode(&mut Reader::new(&bytes)).unwrap(), a);
    }

    #[test]
    fn versions_we_do_not_know_are_refused() {
        for bad in [[0u8, 0, 0, 0, 0, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0, 0, 0, 0]] {
            assert!(ServerChallenge::decode(&mut Reader::new(&bad)).is_err());
            assert!(AuthorizeReply::decode(&mut Reader::new(&bad)).is_err());
        }
        // A key whose length runs past the buffer is truncated, not over-read.
        let short = hex("0100 00000000 00000000 ff00 0102");
        let mut r = Reader::new(&short);
        assert!(decode_key(&mut r).is_err());
    }
}
