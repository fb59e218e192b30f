//! The mon client's cephx exchange over MAuth / MAuthReply (spec §9.7, §9.9), as a state machine:
//! fed each reply with the time and a fresh random number, it returns the next MAuth or says it
//! is done. Three rounds: the method and our name (the mon answers a challenge), the proof of
//! key (the AUTH ticket), then the service tickets asked with the AUTH ticket. Afterwards
//! [`MonAuthClient::renew`] asks for tickets past their renewal time over the same session.

use std::time::Duration;

use bytes::Bytes;

use super::authorizer::ClientAuthorizer;
use super::tickets::{parse_ticket_reply, TicketStore};
use super::types::{
    finish, Authenticate, ServerChallenge, TicketBlob, CEPHX_GET_AUTH_SESSION_KEY,
    CEPHX_GET_PRINCIPAL_SESSION_KEY,
};
use super::CephxError;
use crate::auth::{proof_of_key, AuthName, CryptoKey};
use crate::denc::{Decode, Encode, Reader};
use crate::handshake::authorizer::CEPH_AUTH_CEPHX;
use crate::messages::{MAuth, MAuthReply};

/// The AUTH service bit: the ticket that asks for the others.
pub const AUTH_SERVICE: u32 = 0x20;

/// What to do after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonAuthStep {
    /// Send this to the mon and wait for its reply.
    Send(MAuth),
    /// Authenticated: every wanted ticket is held.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Nothing sent yet.
    Idle,
    /// Round 1 sent: waiting for the challenge.
    Hello,
    /// Round 2 sent: waiting for the AUTH ticket.
    Authenticate,
    /// Round 3 sent: waiting for service tickets.
    Principal,
    /// Every wanted ticket held; renewals may be in flight.
    Done,
    /// Refused or broken.
    Failed,
}

/// A mon client's cephx authentication, sans IO.
pub struct MonAuthClient {
    pub(super) name: AuthName,
    pub(super) key: CryptoKey,
    pub(super) want: u32,
    pub(super) global_id: u64,
    pub(super) state: State,
    pub(super) server_challenge: Option<u64>,
    pub(super) tickets: TicketStore,
}

impl std::fmt::Debug for MonAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonAuthClient")
            .field("name", &self.name.to_string())
            .field("want", &format_args!("{:#x}", self.want))
            .field("global_id", &self.global_id)
            .field("state", &self.state)
            .field("tickets", &self.tickets)
            .finish_non_exhaustive()
    }
}

impl MonAuthClient {
    /// Authentication as `name` with `key`, for the services in `want` (entity-type bits; the
    /// AUTH ticket is always asked for).
    pub fn new(name: AuthName, key: CryptoKey, want: u32) -> Self {
        MonAuthClient {
            name,
            key,
            want: want | AUTH_SERVICE,
            global_id: 0,
            state: State::Idle,
            server_challenge: None,
            tickets: TicketStore::default(),
        }
    }

    /// Round 1, for a new session with the mon: the methods we speak, our name, and the
    /// global id we had (0 the first time; a reconnect reclaims the old one with its ticket).
    pub fn start(&mut self) -> MAuth {
        self.state = State::Hello;
        self.server_challenge = None;
        let mut p = vec![1u8];
        vec![CEPH_AUTH_CEPHX].encode(&mut p);
        self.name.encode(&mut p);
        self.global_id.encode(&mut p);
        MAuth {
            protocol: 0,
            auth_payload: p.into(),
            monmap_epoch: 0,
        }
    }

    /// Feeds the mon's reply. `random` must be a fresh random number (a challenge or nonce).
    pub fn handle_reply(
        &mut self,
        reply: &MAuthReply,
        now: Duration,
        random: u64,
    ) -> Result<MonAuthStep, CephxError> {
        let step = self.step(reply, now, random);
        if step.is_err() {
            self.state = State::Failed;
        }
        step
    }

    fn step(
        &mut self,
        reply: &MAuthReply,
        now: Duration,
        random: u64,
    ) -> Result<MonAuthStep, CephxError> {
        if reply.result != 0 {
            return Err(CephxError::Refused {
                result: reply.result,
            });
        }
        if reply.protocol != CEPH_AUTH_CEPHX {
            return Err(CephxError::Method(reply.protocol));
        }
        let mut r = Reader::new(&reply.result_bl);
        match self.state {
            State::Hello => {
                let challenge = ServerChallenge::decode(&mut r)?.0;
                if reply.global_id == 0 {
                    return Err(CephxError::Malformed("global id 0"));
                }
                self.global_id = reply.global_id;
                self.server_challenge = Some(challenge);
                Ok(MonAuthStep::Send(self.authenticate(challenge, random)))
            }
            State::Authenticate => {
                // The connection secret and extra tickets follow (msgr2 uses them); the v1
                // client asks for its service tickets with the AUTH ticket instead, as Ceph's does.
                self.take_auth_ticket(&mut r, now)?;
                self.next_or_done(now, random)
            }
            State::Principal => {
                response_header(&mut r, CEPHX_GET_PRINCIPAL_SESSION_KEY)?;
                let auth_key = self
                    .tickets
                    .get(AUTH_SERVICE)
                    .map(|t| t.session_key.clone())
                    .ok_or(CephxError::Malformed(
                        "service tickets without an AUTH ticket",
                    ))?;
                for t in parse_ticket_reply(&mut r, &auth_key, None, now)? {
                    self.tickets.insert(t);
                }
                finish(&r, "ticket reply trailing bytes")?;
                let missing = self.tickets.needing(self.want, now);
                if missing != 0 {
                    // Ceph's client gives up too: asking again would get the same answer.
                    return Err(CephxError::MissingTickets(missing));
                }
                self.state = State::Done;
                Ok(MonAuthStep::Done)
            }
            State::Idle | State::Done | State::Failed => {
                Err(CephxError::Malformed("an MAuthReply nobody asked for"))
            }
        }
    }

    fn authenticate(&mut self, server_challenge: u64, client_challenge: u64) -> MAuth {
        let payload = self.authenticate_payload(server_challenge, client_challenge);
        self.cephx(payload)
    }

    /// `CEPHX_GET_AUTH_SESSION_KEY` with the proof of key (and the AUTH ticket held, if any).
    pub(super) fn authenticate_payload(
        &mut self,
        server_challenge: u64,
        client_challenge: u64,
    ) -> Bytes {
        let old_ticket = match self.tickets.get(AUTH_SERVICE) {
            Some(t) => t.blob.clone(),
            None => TicketBlob::default(),
        };
        let req = Authenticate {
            client_challenge,
            key: proof_of_key(&self.key, server_challenge, client_challenge),
            old_ticket,
            other_keys: self.want,
        };
        let mut p = Vec::with_capacity(64);
        CEPHX_GET_AUTH_SESSION_KEY.encode(&mut p);
        req.encode(&mut p);
        self.state = State::Authenticate;
        p.into()
    }

    /// Reads the answer to `CEPHX_GET_AUTH_SESSION_KEY` up to its tickets (under our key, or
    /// the old AUTH session key when renewing), keeps the AUTH ticket and returns its session
    /// key. What follows (the connection secret, extra tickets) is left in `r`.
    pub(super) fn take_auth_ticket(
        &mut self,
        r: &mut Reader<'_>,
        now: Duration,
    ) -> Result<CryptoKey, CephxError> {
        response_header(r, CEPHX_GET_AUTH_SESSION_KEY)?;
        let old = self
            .tickets
            .get(AUTH_SERVICE)
            .map(|t| t.session_key.clone());
        let auth = parse_ticket_reply(r, &self.key, old.as_ref(), now)?
            .into_iter()
            .find(|t| t.service_id == AUTH_SERVICE)
            .ok_or(CephxError::Malformed("no AUTH ticket in the reply"))?;
        let session_key = auth.session_key.clone();
        self.tickets.insert(auth);
        Ok(session_key)
    }

    /// After the AUTH ticket: ask for what is missing, or finish.
    fn next_or_done(&mut self, now: Duration, nonce: u64) -> Result<MonAuthStep, CephxError> {
        let need = self.tickets.needing(self.want, now) & !AUTH_SERVICE;
        if need == 0 {
            self.state = State::Done;
            return Ok(MonAuthStep::Done);
        }
        Ok(MonAuthStep::Send(self.principal(need, nonce)?))
    }

    fn principal(&mut self, need: u32, nonce: u64) -> Result<MAuth, CephxError> {
        let auth = self
            .tickets
            .get(AUTH_SERVICE)
            .ok_or(CephxError::Malformed("no AUTH ticket"))?;
        let authorizer = ClientAuthorizer::new(auth, self.global_id, nonce).encode();
        let mut p = Vec::with_capacity(authorizer.len() + 16);
        CEPHX_GET_PRINCIPAL_SESSION_KEY.encode(&mut p);
        p.extend_from_slice(&authorizer);
        p.push(1); // CephXServiceTicketRequest v1
        need.encode(&mut p);
        self.state = State::Principal;
        Ok(self.cephx(p.into()))
    }

    fn cephx(&self, payload: Bytes) -> MAuth {
        MAuth {
            protocol: CEPH_AUTH_CEPHX,
            auth_payload: payload,
            monmap_epoch: 0,
        }
    }

    /// While authenticated: the MAuth that renews tickets past their renewal time at `now`
    /// (the AUTH ticket with a new proof against the session's challenge, else the service
    /// tickets), or None when nothing needs renewing.
    pub fn renew(&mut self, now: Duration, random: u64) -> Option<MAuth> {
        if self.state != State::Done {
            return None;
        }
        let need = self.tickets.needing(self.want, now);
        if need & AUTH_SERVICE != 0 {
            let challenge = self.server_challenge?;
            return Some(self.authenticate(challenge, random));
        }
        if need != 0 {
            return self.principal(need, random).ok();
        }
        None
    }

    /// The earliest time a ticket needs renewing.
    pub fn next_renewal(&self) -> Option<Duration> {
        self.tickets.next_renewal(self.want)
    }

    /// Our global id (0 before the mon assigned one).
    pub fn global_id(&self) -> u64 {
        self.global_id
    }

    /// All wanted tickets are held.
    pub fn is_authenticated(&self) -> bool {
        self.state == State::Done
    }

    /// The tickets held.
    pub fn tickets(&self) -> &TicketStore {
        &self.tickets
    }

    /// The name we authenticate as.
    pub fn name(&self) -> &AuthName {
        &self.name
    }
}

fn response_header(r: &mut Reader<'_>, expected: u16) -> Result<(), CephxError> {
    let ty = u16::decode(r)?;
    let status = i32::decode(r)?;
    if ty != expected {
        return Err(CephxError::Malformed("a reply to another request"));
    }
    if status != 0 {
        return Err(CephxError::Refused { result: status });
    }
    Ok(())
}
