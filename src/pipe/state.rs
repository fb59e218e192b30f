//! The machine's states, and the small records that outlive a socket.

use crate::auth::MessageSigner;
use crate::framing::SessionEncoder;
use crate::handshake::connector::uses_msg_auth;
use crate::wire::{FrameEncoder, Timespec};

/// Where a session stands.
#[derive(Debug)]
pub(super) enum State {
    /// Made for an accepted socket: waiting for the accept to be decided and adopted.
    New,
    /// Dialling; the attempt's outcome is awaited.
    Connecting {
        /// The attempt it waits for.
        attempt: u64,
    },
    /// An adopted socket's open reply and SEQ exchange are running.
    Accepting {
        /// The attempt it waits for.
        attempt: u64,
    },
    /// An Open decision was made; waiting for the accept task to hand the socket over (until
    /// the adopt deadline).
    Replacing,
    /// A socket carries the session.
    Open(Open),
    /// No socket; the session is kept until there is something to send or the peer returns.
    Standby,
    /// Waiting out the backoff before the next dial.
    Backoff,
    /// The session is over.
    Closed,
}

/// What exists only while a socket is open.
#[derive(Debug)]
pub(super) struct Open {
    /// Its generation.
    pub(super) gen: u64,
    /// The negotiated features.
    pub(super) features: u64,
    /// Frames the session's messages and control frames for this socket.
    pub(super) encoder: SessionEncoder,
    /// KEEPALIVE2 stamps to echo.
    pub(super) keepalive2_acks: Vec<Timespec>,
}

impl Open {
    pub(super) fn new(
        gen: u64,
        features: u64,
        crc_data: bool,
        framing: Option<SessionEncoder>,
        signer: Option<MessageSigner>,
    ) -> Self {
        let v1 = || {
            SessionEncoder::V1(
                FrameEncoder::new(uses_msg_auth(features), crc_data).with_signer(signer),
            )
        };
        Open {
            gen,
            features,
            encoder: framing.unwrap_or_else(v1),
            keepalive2_acks: Vec::new(),
        }
    }
}

/// A state's name, for tools and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateName {
    /// Waiting for its first socket.
    New,
    /// Dialling.
    Connecting,
    /// Finishing an accepted socket's handshake.
    Accepting,
    /// An accept was decided; its socket is awaited.
    Replacing,
    /// Open.
    Open,
    /// Standing by.
    Standby,
    /// Waiting to redial.
    Backoff,
    /// Over.
    Closed,
}

impl StateName {
    /// The lower-case name (what `dump_connections` shows).
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::New => "new",
            StateName::Connecting => "connecting",
            StateName::Accepting => "accepting",
            StateName::Replacing => "replacing",
            StateName::Open => "open",
            StateName::Standby => "standby",
            StateName::Backoff => "backoff",
            StateName::Closed => "closed",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    pub(super) fn name(&self) -> StateName {
        match self {
            State::New => StateName::New,
            State::Connecting { .. } => StateName::Connecting,
            State::Accepting { .. } => StateName::Accepting,
            State::Replacing => StateName::Replacing,
            State::Open(_) => StateName::Open,
            State::Standby => StateName::Standby,
            State::Backoff => StateName::Backoff,
            State::Closed => StateName::Closed,
        }
    }
}

/// The session's connection bookkeeping (spec §2.6): what the acceptor's rules and the next
/// dial need.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Bookkeeping {
    pub(super) connect_seq: u32,
    pub(super) peer_global_seq: u32,
    /// A handshake of this session completed at least once.
    pub(super) established: bool,
    /// The session was open on the last socket: the next dial uses connect_seq + 1.
    pub(super) bump_connect_seq: bool,
    /// Some socket ever opened (later opens are reconnects).
    pub(super) ever_opened: bool,
    /// msgr2: the session's cookies (client, server), once a msgr2 socket opened.
    pub(super) v2_cookies: Option<(u64, u64)>,
}

/// What happened since the last fault, for the policy's verdict on the next one.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SinceFault {
    /// A socket opened.
    pub(super) opened: bool,
    /// That socket, or a handshake since, was accepted rather than dialled.
    pub(super) accepted: bool,
    /// We sent an open reply on an accepted socket: the peer may hold the session open even
    /// if our side of that handshake never finished.
    pub(super) replied: bool,
}
