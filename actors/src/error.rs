//! Errors of the runtime: why a socket faulted, why a messenger call failed.

use std::io;

use msgr::error::DecodeError;
use msgr::handshake::HandshakeError;

/// Why a connection's socket was given up. Each fault is logged through tracing with this text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// Reading or writing the socket failed, or the peer closed it.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that are not msgr v1.
    #[error("protocol: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent an ACK or SEQ that cannot be true (v1 carries them without a CRC).
    #[error("sequence: {0}")]
    Session(#[from] msgr::session::SessionError),
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The handshake did not reach READY within `ms_connection_ready_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer stopped in the middle of a frame for `ms_stall_timeout`.
    #[error("peer stalled mid-frame")]
    Stalled,
    /// Nothing was received for `ms_connection_idle_timeout`.
    #[error("connection idle")]
    Idle,
    /// The peer sent CLOSE.
    #[error("peer closed the session")]
    PeerClosed,
    /// `ms_inject_socket_failures` chose this read or write to fail.
    #[error("injected socket failure")]
    Injected,
    /// The peer told us to WAIT: it lost nothing, its own connection to us carries the session.
    #[error("lost a connection race (WAIT)")]
    Wait,
    /// A test stopped one of the connection's actors.
    #[error("actor stopped by fault injection")]
    ActorKilled,
}

impl PipeError {
    /// A short stable name for counting faults by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            PipeError::Io(_) => "io",
            PipeError::Decode(msgr::DecodeError::BadSignature { .. }) => "signature",
            PipeError::Decode(_) => "decode",
            PipeError::Session(_) => "sequence",
            PipeError::Handshake(_) => "handshake",
            PipeError::HandshakeTimeout => "handshake_timeout",
            PipeError::Stalled => "stalled",
            PipeError::Idle => "idle",
            PipeError::PeerClosed => "peer_closed",
            PipeError::Injected => "injected",
            PipeError::Wait => "wait",
            PipeError::ActorKilled => "actor_killed",
        }
    }
}

/// Errors of the messenger API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerError {
    /// The configuration does not validate.
    #[error(transparent)]
    Config(#[from] msgr::config::ConfigError),
    /// Binding failed after every retry.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// What we tried to bind.
        addr: String,
        /// The last error.
        source: io::Error,
    },
    /// The call needs a bound messenger.
    #[error("the messenger is not bound")]
    NotBound,
    /// The messenger was shut down.
    #[error("the messenger is shut down")]
    Shutdown,
    /// An address without an IP or port (or an address vector without one we can dial) was
    /// given where one is needed.
    #[error("address {0} has no IP and port to dial")]
    BlankAddress(String),
    /// The admin socket could not be opened.
    #[error("cannot open the admin socket {path}: {source}")]
    AdminSocket {
        /// The socket's path.
        path: String,
        /// Why.
        source: io::Error,
    },
}
