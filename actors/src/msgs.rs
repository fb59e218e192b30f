//! Every message between the runtime's actors, grouped by the actor that receives it; each
//! says `from → to: meaning`. docs/architecture.md points here rather than copying the list.
//! Messages an actor sends only to itself (the Pipe's `Flush`, the DispatchQueue's `Drain` and
//! `Release`) stay private in that actor's file.

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use msgr::handshake::{Acceptor, ConnectRequest, Decision};
use msgr::wire::Frame;
use msgr::{EntityAddr, EntityType, Message};

use crate::closing::ClosingGuard;
use crate::connection::Connection;
use crate::dispatcher::ConnEvent;
use crate::error::PipeError;
use crate::net::SocketSlot;
use crate::throttle::{ThrottleGuard, ThrottlePermit};

// ---- what the messages carry ----

/// A snapshot of a Pipe's state, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PipeInfo {
    /// State name: new, connecting, accepting, replacing, open, standby, backoff, closed.
    pub state: &'static str,
    /// The session's connect_seq.
    pub connect_seq: u32,
    /// Last seq received.
    pub in_seq: u64,
    /// Last seq sent.
    pub out_seq: u64,
    /// Highest seq the peer acked.
    pub acked: u64,
    /// Messages waiting to be written.
    pub pending: usize,
    /// Messages written and not yet acked.
    pub unacked: usize,
    /// The session is lossy.
    pub lossy: bool,
    /// The open socket's framing: `v1`, `msgr2-crc` or `msgr2-secure` (None without one).
    pub wire: Option<&'static str>,
}

/// Which actor of a connection to stop, for supervision fault tests.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// The PipeReader (its socket half is dropped).
    Reader,
    /// The PipeWriter.
    Writer,
    /// The Pipe itself (its supervisor restarts it).
    Pipe,
}

/// Where a socket's reader and writer report to their Pipe.
#[derive(Clone)]
pub(crate) struct PipeInbox {
    pub(crate) incoming: Recipient<Incoming>,
    pub(crate) fault: Recipient<SocketFault>,
}

/// Where an accept task takes a connect: the Pipe that decides on it and takes its socket.
pub(crate) struct AcceptRoute {
    pub(crate) decide: Recipient<DecideAccept>,
    pub(crate) decide_v2: Recipient<DecideAcceptV2>,
    pub(crate) adopt: Recipient<Adopt>,
}

/// A decoded frame; messages carry the throttle permits taken for them.
pub(crate) enum InFrame {
    Message(Message, ThrottleGuard),
    Other(Frame),
}

/// One queued item; a message keeps its throttle permits until dispatched.
pub(crate) enum DispatchItem {
    Message(Message, ThrottleGuard),
    Event(ConnEvent),
}

impl DispatchItem {
    pub(crate) fn message(msg: Message, guard: ThrottleGuard) -> Self {
        DispatchItem::Message(msg, guard)
    }

    pub(crate) fn priority(&self) -> u16 {
        match self {
            DispatchItem::Message(m, _) => m.priority,
            DispatchItem::Event(_) => msgr::message::priority::HIGHEST,
        }
    }
}

// ---- to the Pipe ----

/// Connection → Pipe: queue a message.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SendMessage(pub(crate) Message);

/// Connection → Pipe: the user's requests besides sends.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum PipeControl {
    /// Send a keepalive now.
    Keepalive,
    /// Close the session (the user's mark_down).
    MarkDown {
        /// Flush what is queued first.
        graceful: bool,
    },
    /// Test hook: stop one of the connection's actors.
    #[cfg(feature = "fault-injection")]
    Kill(KillTarget),
}

/// Registry → Pipe: close the session; graceful: flush what is queued first.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MarkDown {
    pub(crate) graceful: bool,
}

/// Connection → Pipe: report the state.
#[derive(Message)]
#[rtype(result = "PipeInfo")]
pub(crate) struct GetInfo;

/// PipeReader → Pipe: frames decoded from socket generation `gen`, one batch per read, and the
/// dispatch-throttle permit holding their messages' units (released once the batch is handled).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Incoming {
    pub(crate) gen: u64,
    pub(crate) frames: Vec<InFrame>,
    pub(crate) dispatch: Option<ThrottlePermit>,
}

/// PipeReader, PipeWriter → Pipe: the socket of generation `gen` failed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SocketFault {
    pub(crate) gen: u64,
    pub(crate) error: PipeError,
}

/// accept task → Pipe: decide on a connect request with this session's exact state (spec §2.6).
/// The answer carries the socket generation it was made in, for the `Adopt` that follows.
#[derive(Message)]
#[rtype(result = "(Decision, u64)")]
pub(crate) struct DecideAccept(pub(crate) ConnectRequest);

/// msgr2 accept task → Pipe: decide on an ident (its cookies first, then the session rules).
#[derive(Message)]
#[rtype(result = "(msgr::pipe::V2Decision, u64)")]
pub(crate) struct DecideAcceptV2(pub(crate) ConnectRequest, pub(crate) msgr::pipe::V2Connect);

/// accept task → Pipe: after an Open decision, take over the socket and finish the handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Adopt {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) acceptor: AcceptingSide,
    pub(crate) inbuf: BytesMut,
    pub(crate) decision: Decision,
    pub(crate) req: ConnectRequest,
    pub(crate) slot: Option<SocketSlot>,
    /// The socket generation the decision was made in.
    pub(crate) decided_at: u64,
}

/// The handshake state an accepted socket is handed over with.
pub(crate) enum AcceptingSide {
    /// msgr v1: the acceptor writes READY / SEQ.
    V1(Box<Acceptor>),
    /// msgr2: the acceptor writes SERVER_IDENT; its codec carries the mode's state.
    V2 {
        acceptor: Box<msgr::v2::acceptor::V2Acceptor>,
        /// The number in the peer's name (from its ident).
        peer_gid: i64,
        /// The ident's cookies and kind.
        v2: msgr::pipe::V2Connect,
        /// A SESSION_RECONNECT's msg_seq (the client's in_seq); None for a CLIENT_IDENT.
        reconnect_msg_seq: Option<u64>,
    },
}

// ---- to the PipeReader ----

/// Pipe → PipeReader: stop now (the socket half is dropped).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopReader;

/// Pipe → PipeReader: graceful close. Keep reading (what arrives goes nowhere) until the
/// peer closes too, for at most two seconds. Closing a socket with unread bytes in its receive
/// buffer (the peer's ACKs, say) makes the kernel send a reset, and a reset makes the peer's
/// kernel discard what it received and its application has not read yet: the tail of what our
/// writer just wrote. The guard counts the close as in progress until the reader is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DrainUntilClosed(pub(crate) ClosingGuard);

// ---- to the PipeWriter ----

/// Pipe → PipeWriter: chunks to write, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Write(pub(crate) Vec<Bytes>);

/// Pipe → PipeWriter: write what is queued, then close the socket and stop (graceful). The guard
/// counts the close as in progress until the writer is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CloseAfterFlush(pub(crate) ClosingGuard);

/// Pipe → PipeWriter: stop now; unwritten data is dropped (the Pipe still holds unacked
/// messages).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopWriter;

// ---- to the DispatchQueue ----

/// Pipe, local Connection → DispatchQueue: messages and events of one connection, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Deliver {
    pub(crate) conn: Connection,
    pub(crate) items: Vec<DispatchItem>,
}

// ---- to the Registry ----

/// Messenger → Registry: find or create the outgoing session to `addr`.
#[derive(Message)]
#[rtype(result = "Option<Connection>")]
pub(crate) struct GetConnection {
    pub(crate) addr: EntityAddr,
    pub(crate) peer_type: EntityType,
    pub(crate) check_nonce: bool,
    /// Dial with msgr2.
    pub(crate) v2: bool,
}

/// accept task → Registry: find (or create, on `shard`) the Pipe that will decide on a connect
/// from `peer_addr`.
#[derive(Message)]
#[rtype(result = "Option<AcceptRoute>")]
pub(crate) struct RouteAccept {
    pub(crate) peer_addr: EntityAddr,
    pub(crate) peer_type: EntityType,
    pub(crate) shard: usize,
    /// The peer came over msgr2: a Pipe made for it redials over msgr2 too.
    pub(crate) v2: bool,
}

/// Pipe → Registry: the Pipe closed for good. Named by its connection id: the registry alone
/// knows the address it filed the Pipe under, which is not always the peer address the Pipe
/// ended up with.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unregister {
    pub(crate) id: u64,
}

/// Messenger → Registry: mark down every session (graceful: flush first); `shutting_down` also
/// refuses new ones.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MarkDownAll {
    pub(crate) graceful: bool,
    pub(crate) shutting_down: bool,
}

/// Messenger → Registry: every live connection.
#[derive(Message)]
#[rtype(result = "Vec<Connection>")]
pub(crate) struct ListConnections;

/// Messenger → Registry: a receiver that resolves once no session is left (at once if none is).
#[derive(Message)]
#[rtype(result = "tokio::sync::oneshot::Receiver<()>")]
pub(crate) struct WhenEmpty;

// ---- to the Accepter ----

/// Messenger → Accepter: stop accepting (the listening socket is closed).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopAccepting;
