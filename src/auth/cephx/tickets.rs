//! The tickets a client holds (spec §9.5): parsing a ticket reply, and knowing which tickets
//! are missing, expiring or good.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::types::{finish, version, ServiceTicket, TicketBlob};
use super::CephxError;
use crate::auth::{decode_decrypt, CryptoKey};
use crate::denc::{to_vec, Decode, Reader};

/// Most tickets one reply may carry (one per service type bit).
const MAX_TICKETS_PER_REPLY: u32 = 32;

/// A ticket for one service, as its holder keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The service (an entity type bit: MON 1, OSD 4, MGR 0x10, AUTH 0x20).
    pub service_id: u32,
    /// The session key for talking to the service with this ticket.
    pub session_key: CryptoKey,
    /// The sealed ticket, presented to the service as is.
    pub blob: TicketBlob,
    /// When it stops being good (the holder's clock at receipt plus the validity).
    pub expires: Duration,
    /// When to ask for a new one (three quarters of the way).
    pub renew_after: Duration,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("service_id", &format_args!("{:#x}", self.service_id))
            .field("secret_id", &self.blob.secret_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// The ticket blob's encoding, as an authorizer or `old_ticket` carries it.
    pub fn encoded_blob(&self) -> Bytes {
        to_vec(&self.blob).into()
    }
}

/// Parses a ticket reply (`u8 1 ‖ u32 n ‖ n × ticket`). Each ticket's secret part is sealed
/// with `key` (the client's secret for the AUTH ticket, the AUTH session key for the others);
/// a ticket blob sealed again (`ticket_enc`, a global_id reclaim) opens with `old_session_key`.
pub fn parse_ticket_reply(
    r: &mut Reader<'_>,
    key: &CryptoKey,
    old_session_key: Option<&CryptoKey>,
    now: Duration,
) -> Result<Vec<Ticket>, CephxError> {
    version(r, "ticket reply version", 1, 1)?;
    let n = u32::decode(r)?;
    if n > MAX_TICKETS_PER_REPLY {
        return Err(CephxError::Malformed("more tickets than services"));
    }
    let mut tickets = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let service_id = u32::decode(r)?;
        version(r, "service ticket version", 1, 1)?;
        let sealed = Bytes::decode(r)?;
        let plain = decode_decrypt(key, &sealed, false)?;
        let mut inner = Reader::new(&plain);
        let msg_a = ServiceTicket::decode(&mut inner)?;
        let ticket_enc = bool::decode(r)?;
        let blob_bytes = Bytes::decode(r)?;
        let blob = if ticket_enc {
            let old = old_session_key.ok_or(CephxError::Malformed(
                "a ticket sealed under an old session key we do not have",
            ))?;
            let opened = decode_decrypt(old, &blob_bytes, false)?;
            let mut o = Reader::new(&opened);
            let inner = Bytes::decode(&mut o)?;
            finish(&o, "sealed ticket trailing bytes")?;
            decode_blob(&inner)?
        } else {
            decode_blob(&blob_bytes)?
        };
        let validity = msg_a.validity.to_duration();
        let expires = now.saturating_add(validity);
        tickets.push(Ticket {
            service_id,
            session_key: msg_a.session_key,
            blob,
            expires,
            renew_after: expires.saturating_sub(validity / 4),
        });
    }
    Ok(tickets)
}

fn decode_blob(bytes: &[u8]) -> Result<TicketBlob, CephxError> {
    let mut r = Reader::new(bytes);
    let blob = TicketBlob::decode(&mut r)?;
    finish(&r, "ticket blob trailing bytes")?;
    Ok(blob)
}

/// The tickets a client holds, one per service.
#[derive(Debug, Clone, Default)]
pub struct TicketStore {
    tickets: BTreeMap<u32, Ticket>,
}

impl TicketStore {
    /// Keeps `t`, replacing any older ticket for its service.
    pub fn insert(&mut self, t: Ticket) {
        self.tickets.insert(t.service_id, t);
    }

    /// The ticket for `service_id`, good or not.
    pub fn get(&self, service_id: u32) -> Option<&Ticket> {
        self.tickets.get(&service_id)
    }

    /// The ticket for `service_id` if it has not expired at `now`.
    pub fn valid(&self, service_id: u32, now: Duration) -> Option<&Ticket> {
        self.get(service_id).filter(|t| t.expires > now)
    }

    /// The services of `want` with no ticket, or one past its renewal time at `now`.
    pub fn needing(&self, want: u32, now: Duration) -> u32 {
        (0..32)
            .map(|b| 1u32 << b)
            .filter(|bit| want & bit != 0)
            .filter(|bit| self.get(*bit).map_or(true, |t| t.renew_after <= now))
            .fold(0, |acc, bit| acc | bit)
    }

    /// The earliest renewal time among the tickets of `want`.
    pub fn next_renewal(&self, want: u32) -> Option<Duration> {
        self.tickets
            .values()
            .filter(|t| want & t.service_id != 0)
            .map(|t| t.renew_after)
            .min()
    }

    /// Every ticket held.
    pub fn iter(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }
}
