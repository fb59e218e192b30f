//! cephx (spec §9): the structures, tickets, authorizers, and the mon client's authentication
//! exchange as a state machine fed `MAuthReply`s ([`MonAuthClient`]).

mod authorizer;
mod client;
mod client_v2;
mod tickets;
pub mod types;

pub use authorizer::{
    self_made_ticket, verify_authorizer, AuthorizedPeer, AuthorizerVerdict, ClientAuthorizer,
    ServiceKeys,
};
pub use client::{MonAuthClient, MonAuthStep, AUTH_SERVICE};
pub use client_v2::{V2AuthDone, AUTH_MODE_MON};
pub use tickets::{parse_ticket_reply, Ticket, TicketStore};

use crate::auth::CryptoError;
use crate::error::DencError;

/// Why a cephx step failed. Every variant ends the authentication (or closes the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CephxError {
    /// A structure did not decode.
    #[error("malformed cephx structure: {0}")]
    Decode(#[from] DencError),
    /// A sealed part did not open (a wrong key, or damaged bytes).
    #[error("cephx decryption failed: {0}")]
    Crypto(#[from] CryptoError),
    /// A structure decoded but makes no sense.
    #[error("malformed cephx exchange: {0}")]
    Malformed(&'static str),
    /// The mon refused us.
    #[error("the monitor refused authentication: {}", errno_name(*.result))]
    Refused {
        /// The (negative) errno it answered.
        result: i32,
    },
    /// The mon offered no method we speak.
    #[error("the monitor chose auth method {0}, which we did not offer")]
    Method(u32),
    /// The service's authorizer reply did not carry our nonce plus one.
    #[error("the service's authorizer reply does not prove it read our authorizer")]
    ReplyMismatch,
    /// An authorizer for another service.
    #[error("an authorizer for service {0:#x}, not ours")]
    WrongService(u32),
    /// A ticket sealed with a secret we do not have.
    #[error("a ticket sealed with secret id {0}, which we do not have")]
    UnknownSecret(u64),
    /// The ticket was issued to another global id than the authorizer claims.
    #[error("the ticket's global id differs from the authorizer's")]
    GlobalIdMismatch,
    /// The ticket has expired.
    #[error("the ticket has expired")]
    Expired,
    /// The mon did not give every ticket asked for (a mask of the services missing).
    #[error("the monitor gave no ticket for services {0:#x}")]
    MissingTickets(u32),
    /// A dial must present cephx (auth_client_required) but holds no ticket for the service.
    #[error("no cephx ticket for service {0:#x}")]
    NoTicket(u32),
    /// The answer to our challenge was wrong (a replayed authorizer).
    #[error("the authorizer does not answer this connection's challenge")]
    ChallengeMismatch,
}

/// A readable name for the errnos a mon answers authentication with.
pub fn errno_name(result: i32) -> String {
    let name = match -result {
        1 => "EPERM (operation not permitted)",
        2 => "ENOENT (no such entity)",
        13 => "EACCES (key refused)",
        16 => "EBUSY (monitor not in quorum)",
        22 => "EINVAL (invalid request)",
        95 => "EOPNOTSUPP (no common auth method)",
        110 => "ETIMEDOUT",
        _ => return format!("error {result}"),
    };
    format!("{name}, {result}")
}
#[cfg(test)]
mod tests;
