//! Remote actor messaging (msgr's private type range): one envelope for a tell, an ask and
//! an ask's answer. The body is the application's, encoded by the caller; the envelope names
//! the target actor and the body's type so that the receiver can check both before decoding.

use bytes::Bytes;

use super::REMOTE_ENVELOPE;
use crate::denc::{Decode, Encode, Reader};
use crate::error::DencError;
use crate::message::{Message, Payload};

/// Longest actor or type name an envelope may carry.
pub const MAX_NAME_LEN: usize = 256;

/// What an envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// One way: no answer.
    Tell,
    /// A request: exactly one [`EnvelopeKind::Reply`] or [`EnvelopeKind::Refusal`] answers it.
    Ask,
    /// An ask's reply; the body is the reply value.
    Reply,
    /// An ask (or tell) that could not be delivered; the body is a [`Refusal`].
    Refusal,
    /// Tell me when the named actor stops (no body).
    Watch,
    /// The named actor stopped, or there is none (body: a [`Refusal`] code, `ActorStopped` or
    /// `UnknownName`).
    Down,
}

impl EnvelopeKind {
    fn code(self) -> u8 {
        match self {
            EnvelopeKind::Tell => 1,
            EnvelopeKind::Ask => 2,
            EnvelopeKind::Reply => 3,
            EnvelopeKind::Refusal => 4,
            EnvelopeKind::Watch => 5,
            EnvelopeKind::Down => 6,
        }
    }

    fn from_code(c: u8) -> Result<Self, DencError> {
        Ok(match c {
            1 => EnvelopeKind::Tell,
            2 => EnvelopeKind::Ask,
            3 => EnvelopeKind::Reply,
            4 => EnvelopeKind::Refusal,
            5 => EnvelopeKind::Watch,
            6 => EnvelopeKind::Down,
            _ => {
                return Err(DencError::Invalid {
                    what: "remote envelope kind",
                    value: u64::from(c),
                })
            }
        })
    }
}

/// Why a receiver could not deliver an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No actor is registered under the name.
    UnknownName,
    /// The actor takes another message type (the envelope's `type_name` says which it got).
    TypeMismatch,
    /// The body did not decode as the named type.
    BadBody,
    /// The actor stopped before answering.
    ActorStopped,
    /// Too many asks from this connection are being served already.
    Busy,
}

impl Refusal {
    /// The one-byte code a refusal's body carries.
    pub fn code(self) -> u8 {
        match self {
            Refusal::UnknownName => 1,
            Refusal::TypeMismatch => 2,
            Refusal::BadBody => 3,
            Refusal::ActorStopped => 4,
            Refusal::Busy => 5,
        }
    }

    /// Reads a refusal's body.
    pub fn from_body(body: &[u8]) -> Result<Self, DencError> {
        Ok(match body.first().copied() {
            Some(1) => Refusal::UnknownName,
            Some(2) => Refusal::TypeMismatch,
            Some(3) => Refusal::BadBody,
            Some(4) => Refusal::ActorStopped,
            Some(5) => Refusal::Busy,
            other => {
                return Err(DencError::Invalid {
                    what: "remote refusal",
                    value: u64::from(other.unwrap_or(0)),
                })
            }
        })
    }
}

/// A remote actor message: the front holds the kind, the call id, the names; the body rides in
/// the data section (shared, never copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Tell, ask, reply or refusal.
    pub kind: EnvelopeKind,
    /// The ask this is or answers (0 for a tell).
    pub call: u64,
    /// The target actor's registered name (an answer repeats the ask's).
    pub name: String,
    /// The body's type name, as the sender declares it (stable across builds).
    pub type_name: String,
    /// The encoded value.
    pub body: Bytes,
}

impl Payload for Envelope {
    const TYPE: u16 = REMOTE_ENVELOPE;
    const VERSION: u16 = 1;
    const COMPAT_VERSION: u16 = 1;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        self.kind.code().encode(front);
        self.call.encode(front);
        self.name.encode(front);
        self.type_name.encode(front);
    }
    fn data_section(&self) -> Bytes {
        self.body.clone()
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        let mut r = Reader::new(&msg.front);
        let kind = EnvelopeKind::from_code(u8::decode(&mut r)?)?;
        let call = u64::decode(&mut r)?;
        let name = String::decode(&mut r)?;
        let type_name = String::decode(&mut r)?;
        if name.len() > MAX_NAME_LEN || type_name.len() > MAX_NAME_LEN {
            return Err(DencError::Invalid {
                what: "remote envelope name length",
                value: name.len().max(type_name.len()) as u64,
            });
        }
        Ok(Envelope {
            kind,
            call,
            name,
            type_name,
            body: msg.data.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_bad_kinds_and_long_names_are_refused() {
        let e = Envelope {
            kind: EnvelopeKind::Ask,
            call: 7,
            name: "counter".into(),
            type_name: "app.Add".into(),
            body: Bytes::from_static(b"\x05"),
        };
        let m = Message::from_payload(&e);
        assert_eq!(m.decode_payload::<Envelope>().unwrap(), e);
        let mut bad = m.clone();
        let mut front = bad.front.to_vec();
        front[0] = 9;
        bad.front = front.into();
        assert!(bad.decode_payload::<Envelope>().is_err());
        let long = Envelope {
            name: "x".repeat(MAX_NAME_LEN + 1),
            ..e
        };
        assert!(Message::from_payload(&long)
            .decode_payload::<Envelope>()
            .is_err());
        assert_eq!(
            Refusal::from_body(&[Refusal::TypeMismatch.code()]).unwrap(),
            Refusal::TypeMismatch
        );
        assert!(Refusal::from_body(&[]).is_err());
    }
}
