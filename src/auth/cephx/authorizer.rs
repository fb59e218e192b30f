//! cephx authorizers (spec §9.8): what a client shows a service to open a session, the
//! service's challenge and reply, and the service's check.
//!
//! Bytes: `u8 1 ‖ u64 global_id ‖ u32 service_id ‖ CephXTicketBlob ‖
//! enc(CephXAuthorize, ticket session key)`.

use std::time::Duration;

use bytes::Bytes;

use super::tickets::Ticket;
use super::types::{
    finish, version, Authorize, AuthorizeChallenge, AuthorizeReply, ServiceTicketInfo, TicketBlob,
};
use super::CephxError;
use crate::auth::{decode_decrypt, encode_encrypt, AuthName, CryptoKey};
use crate::denc::{to_vec, Decode, Encode, Reader};

/// The client's side of one authorizer: built from a ticket, answers a challenge, checks the
/// service's reply.
#[derive(Clone)]
pub struct ClientAuthorizer {
    global_id: u64,
    service_id: u32,
    blob: TicketBlob,
    session_key: CryptoKey,
    nonce: u64,
    challenge: Option<u64>,
}

impl std::fmt::Debug for ClientAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthorizer")
            .field("global_id", &self.global_id)
            .field("service_id", &self.service_id)
            .field("challenged", &self.challenge.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientAuthorizer {
    /// An authorizer for the ticket's service, with a fresh random `nonce`.
    pub fn new(ticket: &Ticket, global_id: u64, nonce: u64) -> Self {
        ClientAuthorizer {
            global_id,
            service_id: ticket.service_id,
            blob: ticket.blob.clone(),
            session_key: ticket.session_key.clone(),
            nonce,
            challenge: None,
        }
    }

    /// The bytes to send, answering the challenge if one came.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(64 + self.blob.blob.len());
        out.push(1);
        self.global_id.encode(&mut out);
        self.service_id.encode(&mut out);
        self.blob.encode(&mut out);
        let sealed = Authorize {
            nonce: self.nonce,
            have_challenge: self.challenge.is_some(),
            server_challenge_plus_one: self.challenge.map_or(0, |c| c.wrapping_add(1)),
        };
        out.extend_from_slice(&encode_encrypt(&self.session_key, &to_vec(&sealed), true));
        out.into()
    }

    /// Reads the service's challenge (raw ciphertext of `CephXAuthorizeChallenge`); the next
    /// [`encode`](Self::encode) answers it. A second challenge is refused: Ceph's services
    /// challenge once per connection.
    pub fn answer_challenge(&mut self, sealed: &[u8]) -> Result<(), CephxError> {
        if self.challenge.is_some() {
            return Err(CephxError::Malformed("a second authorizer challenge"));
        }
        let plain = decode_decrypt(&self.session_key, sealed, false)?;
        let mut r = Reader::new(&plain);
        self.challenge = Some(AuthorizeChallenge::decode(&mut r)?.0);
        Ok(())
    }

    /// Checks the service's reply (`enc(CephXAuthorizeReply)`, blob form): it must carry our
    /// nonce plus one. Returns the connection secret (empty in msgr v1 and crc mode).
    pub fn verify_reply(&self, reply: &[u8]) -> Result<Bytes, CephxError> {
        let plain = decode_decrypt(&self.session_key, reply, true)?;
        let reply = AuthorizeReply::decode(&mut Reader::new(&plain))?;
        if reply.nonce_plus_one != self.nonce.wrapping_add(1) {
            return Err(CephxError::ReplyMismatch);
        }
        Ok(reply.connection_secret)
    }

    /// The session key the connection uses (signatures, msgr2 keys).
    pub fn session_key(&self) -> &CryptoKey {
        &self.session_key
    }
}

/// The secrets a service opens tickets with.
#[derive(Clone, Default)]
pub struct ServiceKeys {
    /// The service's entity type (MON 1, OSD 4, ...): tickets for other services are refused.
    pub service_id: u32,
    /// The key of `<type>.` (for a monitor, the `mon.` key) opening tickets with secret id -1.
    pub own: Option<CryptoKey>,
    /// Rotating secrets by id.
    pub rotating: Vec<(u64, CryptoKey)>,
}

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("service_id", &self.service_id)
            .field("own", &self.own.is_some())
            .field("rotating", &self.rotating.len())
            .finish()
    }
}

impl ServiceKeys {
    /// The key for `secret_id`.
    fn secret(&self, secret_id: u64) -> Option<&CryptoKey> {
        if secret_id == u64::MAX {
            return self.own.as_ref();
        }
        self.rotating
            .iter()
            .find(|(id, _)| *id == secret_id)
            .map(|(_, k)| k)
    }
}

/// A peer that proved itself.
#[derive(Clone)]
pub struct AuthorizedPeer {
    /// Who it is.
    pub name: AuthName,
    /// Its global id.
    pub global_id: u64,
    /// The connection's session key (the ticket's).
    pub session_key: CryptoKey,
    /// The reply to send: `enc(CephXAuthorizeReply)`, blob form.
    pub reply: Bytes,
}

impl std::fmt::Debug for AuthorizedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedPeer")
            .field("name", &self.name.to_string())
            .field("global_id", &self.global_id)
            .finish_non_exhaustive()
    }
}

/// The service's verdict on one authorizer.
#[derive(Debug, Clone)]
pub enum AuthorizerVerdict {
    /// Send this challenge (raw ciphertext) and wait for the authorizer again.
    Challenge {
        /// The challenge to remember for the connection.
        challenge: u64,
        /// The bytes to send.
        sealed: Bytes,
    },
    /// The peer is who it says.
    Authorized(AuthorizedPeer),
}

/// Checks an authorizer, as a service. `issued` is the challenge this connection already sent
/// (None at first); `fresh_challenge` is a random value to challenge with; `now` rejects expired
/// tickets (stricter than Ceph, which does not look at the expiry). The connection secret goes
/// into the reply (empty for msgr v1 and crc mode).
pub fn verify_authorizer(
    bytes: &[u8],
    keys: &ServiceKeys,
    issued: Option<u64>,
    fresh_challenge: u64,
    now: Duration,
    connection_secret: Bytes,
) -> Result<AuthorizerVerdict, CephxError> {
    let mut r = Reader::new(bytes);
    version(&mut r, "authorizer version", 1, 1)?;
    let global_id = u64::decode(&mut r)?;
    let service_id = u32::decode(&mut r)?;
    let blob = TicketBlob::decode(&mut r)?;
    let sealed = Bytes::decode(&mut r)?;
    finish(&r, "authorizer trailing bytes")?;
    if service_id != keys.service_id {
        return Err(CephxError::WrongService(service_id));
    }
    let secret = keys
        .secret(blob.secret_id)
        .ok_or(CephxError::UnknownSecret(blob.secret_id))?;
    let plain = decode_decrypt(secret, &blob.blob, false)?;
    let info = ServiceTicketInfo::decode(&mut Reader::new(&plain))?;
    if info.ticket.global_id != global_id {
        return Err(CephxError::GlobalIdMismatch);
    }
    if info.ticket.expires.to_duration() <= now {
        return Err(CephxError::Expired);
    }
    let plain = decode_decrypt(&info.session_key, &sealed, false)?;
    let auth = Authorize::decode(&mut Reader::new(&plain))?;
    match issued {
        Some(c) if auth.have_challenge => {
            if auth.server_challenge_plus_one != c.wrapping_add(1) {
                return Err(CephxError::ChallengeMismatch);
            }
        }
        // No challenge yet on this connection (an answer to someone else's is a replay), or
        // the peer ignored ours: challenge (again).
        _ => {
            let c = AuthorizeChallenge(fresh_challenge);
            let sealed = encode_encrypt(&info.session_key, &to_vec(&c), false);
            return Ok(AuthorizerVerdict::Challenge {
                challenge: fresh_challenge,
                sealed: sealed.into(),
            });
        }
    }
    let reply = AuthorizeReply {
        nonce_plus_one: auth.nonce.wrapping_add(1),
        connection_secret,
    };
    Ok(AuthorizerVerdict::Authorized(AuthorizedPeer {
        name: info.ticket.name,
        global_id,
        reply: encode_encrypt(&info.session_key, &to_vec(&reply), true).into(),
        session_key: info.session_key,
    }))
}

/// Makes a ticket sealed with a service's own key (secret id -1), as monitors do for each
/// other (spec Appendix A.5): the caller picks the session key and times.
pub fn self_made_ticket(
    service_key: &CryptoKey,
    service_id: u32,
    info: &ServiceTicketInfo,
    now: Duration,
) -> Ticket {
    let sealed = encode_encrypt(service_key, &to_vec(info), false);
    let expires = info.ticket.expires.to_duration();
    Ticket {
        service_id,
        session_key: info.session_key.clone(),
        blob: TicketBlob {
            secret_id: u64::MAX,
            blob: sealed.into(),
        },
        expires,
        renew_after: now.max(expires.saturating_sub(expires.saturating_sub(now) / 4)),
    }
}
