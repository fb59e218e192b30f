//! Remote actors: typed `tell` and `ask` between actix actors in different processes, over the
//! messenger's sessions.
//!
//! An [`ActorNode`] is a [`crate::Dispatcher`] that keeps actors registered under names. A peer
//! reaches one through a [`RemoteRecipient`] made from a [`crate::Connection`] and the name.
//! Messages are the application's types ([`RemoteMessage`]), encoded with `postcard` (serde's
//! compact format with a documented, stable wire form) into an [`msgr::messages::Envelope`] that
//! names the actor and the type, so the receiver checks both before decoding.
//!
//! What the session gives, the actors get: on a lossless session every tell arrives exactly
//! once and in order per sender, and every ask gets exactly one answer, across socket faults and
//! reconnects. When the peer's session is reset (it restarted), every ask pending on it fails at
//! once with [`AskError::PeerReset`]. Asks in flight per peer are bounded
//! ([`NodeOptions::max_asks_in_flight`]): a caller past the bound waits (within its timeout), so
//! a peer that never answers cannot grow our memory. [`ActorNode::on_peer_reset`] tells which
//! tells may be lost at a reset (those after the last answered ask); [`ActorNode::watch`] tells
//! when a remote actor stops or its peer resets.

mod node;
mod recipient;
mod watch;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use node::{ActorNode, NodeOptions, NodeStats};
pub use recipient::RemoteRecipient;
pub use watch::{DownReason, PeerReset, RemoteDown};

/// A message type actors on other nodes can be sent.
pub trait RemoteMessage: Serialize + DeserializeOwned + Send + 'static {
    /// The name peers know the type by: part of the wire contract, the same in every build
    /// (e.g. `"counter.Add/1"`); a receiver whose actor takes another type refuses the message.
    const TYPE_NAME: &'static str;
    /// What an ask of it answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Why an ask failed. Each ask ends in exactly one reply or one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// No answer within the ask's timeout (waiting for a slot among the asks in flight
    /// included).
    #[error("no answer within the timeout")]
    Timeout,
    /// The peer's session was reset (it restarted, or a lossy session failed): the ask and its
    /// answer may be lost.
    #[error("the peer's session was reset")]
    PeerReset,
    /// Our connection to the peer closed (marked down, or the messenger shut down).
    #[error("the connection is closed")]
    ConnectionClosed,
    /// The peer has no actor under that name.
    #[error("no actor named {0:?} on the peer")]
    UnknownName(String),
    /// The peer's actor takes another message type.
    #[error("the peer's actor does not take {0}")]
    TypeMismatch(&'static str),
    /// The peer could not decode the request, or we could not decode the reply.
    #[error("a body did not decode: {0}")]
    BadBody(String),
    /// The peer's actor stopped before answering.
    #[error("the peer's actor stopped")]
    ActorStopped,
    /// The peer serves as many of our asks as it allows at once
    /// ([`NodeOptions::max_asks_served`]); this one was refused unseen.
    #[error("the peer is serving as many of our asks as it allows")]
    Busy,
}

/// Why a tell could not be sent (delivery itself is confirmed by nothing; refusals by the peer
/// are counted in [`NodeStats::tells_refused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TellError {
    /// Our connection to the peer is closed.
    #[error("the connection is closed")]
    ConnectionClosed,
    /// The message did not encode.
    #[error("the message did not encode: {0}")]
    Encode(String),
}
