//! The mon client's cephx exchange over msgr2 (spec §9.6): the same state as over MAuth, in
//! AUTH_REQUEST / AUTH_REPLY_MORE / AUTH_REQUEST_MORE / AUTH_DONE frames (`AUTH_MODE_MON`).
//! AUTH_DONE brings the AUTH ticket, the connection secret and every other wanted ticket at
//! once, so there is no third round.

use std::time::Duration;

use bytes::Bytes;

use super::client::{MonAuthClient, State};
use super::tickets::parse_ticket_reply;
use super::types::{finish, ServerChallenge};
use super::CephxError;
use crate::auth::{decode_decrypt, CryptoKey};
use crate::denc::{Decode, Encode, Reader};

/// `AUTH_MODE_MON`: authenticating to a monitor to get tickets.
pub const AUTH_MODE_MON: u8 = 10;

/// What a finished msgr2 authentication gives the connection.
#[derive(Clone)]
pub struct V2AuthDone {
    /// The AUTH ticket's session key: keys AUTH_SIGNATURE.
    pub session_key: CryptoKey,
    /// The secure mode's secret (empty in crc mode).
    pub connection_secret: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for V2AuthDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2AuthDone")
            .field("connection_secret_len", &self.connection_secret.len())
            .finish_non_exhaustive()
    }
}

impl MonAuthClient {
    /// The AUTH_REQUEST payload: the mode, our name, the global id we had (0 the first time).
    pub fn v2_request(&mut self) -> Bytes {
        self.state = State::Hello;
        self.server_challenge = None;
        let mut p = vec![AUTH_MODE_MON];
        self.name.encode(&mut p);
        self.global_id.encode(&mut p);
        p.into()
    }

    /// Answers AUTH_REPLY_MORE (the mon's challenge) with the AUTH_REQUEST_MORE payload; the
    /// client challenge must be a fresh random number.
    pub fn v2_reply_more(
        &mut self,
        payload: &[u8],
        client_challenge: u64,
    ) -> Result<Bytes, CephxError> {
        if self.state != State::Hello {
            self.state = State::Failed;
            return Err(CephxError::Malformed("AUTH_REPLY_MORE out of turn"));
        }
        let mut r = Reader::new(payload);
        let challenge = match ServerChallenge::decode(&mut r) {
            Ok(c) => c.0,
            Err(e) => {
                self.state = State::Failed;
                return Err(e.into());
            }
        };
        self.server_challenge = Some(challenge);
        Ok(self.authenticate_payload(challenge, client_challenge))
    }

    /// Reads AUTH_DONE's payload: the AUTH ticket (under our key), the connection secret
    /// (under the new session key) and the other tickets (under it too).
    pub fn v2_done(
        &mut self,
        global_id: u64,
        payload: &[u8],
        now: Duration,
    ) -> Result<V2AuthDone, CephxError> {
        let done = self.v2_done_inner(global_id, payload, now);
        if done.is_err() {
            self.state = State::Failed;
        }
        done
    }

    fn v2_done_inner(
        &mut self,
        global_id: u64,
        payload: &[u8],
        now: Duration,
    ) -> Result<V2AuthDone, CephxError> {
        if self.state != State::Authenticate {
            return Err(CephxError::Malformed("AUTH_DONE out of turn"));
        }
        if global_id == 0 {
            return Err(CephxError::Malformed("global id 0"));
        }
        let mut r = Reader::new(payload);
        let session_key = self.take_auth_ticket(&mut r, now)?;
        let cbl = Bytes::decode(&mut r)?;
        let secret_plain = decode_decrypt(&session_key, &cbl, true)?;
        let mut s = Reader::new(&secret_plain);
        let secret = Bytes::decode(&mut s)?;
        let extra = Bytes::decode(&mut r)?;
        finish(&r, "AUTH_DONE trailing bytes")?;
        if !extra.is_empty() {
            let mut e = Reader::new(&extra);
            for t in parse_ticket_reply(&mut e, &session_key, None, now)? {
                self.tickets.insert(t);
            }
        }
        let missing = self.tickets.needing(self.want, now);
        if missing != 0 {
            return Err(CephxError::MissingTickets(missing));
        }
        self.global_id = global_id;
        self.state = State::Done;
        Ok(V2AuthDone {
            session_key,
            connection_secret: zeroize::Zeroizing::new(secret.to_vec()),
        })
    }
}
