//! `pipe`: one peer session's whole lifecycle, as a deterministic state machine.
//!
//! A [`Machine`] owns everything a session remembers across sockets: the [`Session`] (seqs,
//! queues, the unacked list), connect_seq and the peer's global_seq, whether a handshake of the
//! session ever completed, the numbering of handshake attempts and of sockets, the backoff, and
//! the control frames waiting to go out. It decides every protocol question a Ceph Pipe
//! decides: whether to dial, how to answer an accepted connect (through
//! [`decide`](crate::handshake::decide)), whether a late dial or accept hand-over still counts,
//! what a fault leads to (through [`Policy::on_fault`]), when keepalives are due.
//!
//! It is driven the way quinn-proto's `Connection` is: the runtime feeds it inputs (dial and
//! accept results, accepted connects, adopted sockets, socket faults, decoded frames, timer
//! expiries, user sends and mark-downs), each with the time passed in, and then polls it for
//! [`Action`]s (dial, open or drop a socket, deliver an event, leave the registry), for the
//! earliest timer ([`Machine::poll_timeout`]) and for bytes to write
//! ([`Machine::poll_transmit`]). It never reads a clock, does no IO and takes its randomness
//! from a seed: the same inputs give the same outputs, which is what lets tests/sim.rs run two
//! of them through faults and races on virtual time.
//!
//! The handshakes themselves are the [`Connector`](crate::handshake::Connector) and
//! [`Acceptor`](crate::handshake::Acceptor) state machines; the runtime runs them over its socket
//! and reports their outcome here.

mod accept;
mod dial;
mod fault;
mod io;
mod state;
#[cfg(test)]
mod tests;
mod timers;
mod v2;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth::{CryptoKey, MessageSigner};
use crate::framing::SessionEncoder;
use crate::policy::{Backoff, Policy};
use crate::session::{Session, SessionError, SessionStats};

pub use accept::Adoption;
pub use dial::Completion;
pub use fault::FaultKind;
pub use io::{Queued, Transmitted};
pub use state::StateName;
pub use timers::Timer;
pub use v2::{V2Connect, V2Decision};

use state::{Bookkeeping, SinceFault, State};
use timers::Timers;

/// What a machine is told when it is made.
#[derive(Debug, Clone, Copy)]
pub struct PipeConfig {
    /// The policy for the peer's entity type.
    pub policy: Policy,
    /// We know the peer's listening address and the policy lets us dial it (not a server
    /// policy, not a blank address): a fault may lead to a reconnect, a send in standby dials.
    pub dialable: bool,
    /// An outgoing connection: dial at [`Machine::start`]. An accepted one waits for its socket.
    pub dial_first: bool,
    /// First reconnect delay (`ms_initial_backoff`).
    pub initial_backoff: Duration,
    /// Largest reconnect delay (`ms_max_backoff`), also the wait after losing a race.
    pub max_backoff: Duration,
    /// How long an Open decision waits for its socket (`ms_connection_ready_timeout`).
    pub ready_timeout: Duration,
    /// Keepalive period on open lossless sessions (`ms_keepalive_interval`; zero: none).
    pub keepalive_interval: Duration,
    /// Priority for messages sent with priority 0 (monitors send theirs high).
    pub default_priority: Option<u16>,
    /// Write data CRCs (`ms_crc_data`).
    pub crc_data: bool,
    /// Seeds the out_seq a reset session starts from (with MSG_AUTH, Ceph starts it at random).
    pub seed: u64,
    /// Sign messages (and check the peer's) on sessions opened with a cephx authorizer
    /// (`cephx_sign_messages`).
    pub sign_messages: bool,
}

/// What a finished handshake opens a socket with.
struct Opening<'a> {
    features: u64,
    /// From SEQ (or RECONNECT_OK): the last of our messages the peer has.
    peer_acked: Option<u64>,
    /// in_seq restarts and requeued messages are dropped.
    restart_in_seq: bool,
    /// An accepted socket (else dialled).
    accepted: bool,
    /// The authorizer's session key (signs v1 messages).
    session_key: Option<&'a CryptoKey>,
    /// msgr2's writer; None: msgr v1.
    framing: Option<SessionEncoder>,
}

/// What the runtime must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial the peer and run the connector with these values; report the outcome with
    /// [`Machine::dialled`] or [`Machine::handshake_failed`] under `attempt`.
    Dial {
        /// Number of this attempt: only the newest attempt's outcome counts.
        attempt: u64,
        /// The connect_seq to send.
        connect_seq: u32,
        /// Our in_seq, for the SEQ exchange.
        in_seq: u64,
    },
    /// Drop the dial or accept hand-over in progress, if any: its outcome no longer counts.
    CancelHandshake,
    /// The handshake is done: start reading and writing on the socket it ran on, stamping what
    /// the socket's reader reports with `gen`.
    OpenSocket {
        /// Generation of this socket; input stamped with an older one is ignored.
        gen: u64,
        /// The negotiated features.
        features: u64,
        /// Checks the peer's message signatures (a session opened with cephx).
        verifier: Option<MessageSigner>,
    },
    /// Stop using the open socket. `graceful`: write what was handed over, then close, and read
    /// on until the peer closes (a mark-down); otherwise drop it now.
    DropSocket {
        /// Close after flushing rather than at once.
        graceful: bool,
    },
    /// Tell the dispatchers.
    Event(PipeEvent),
    /// The session is over: the connection is closed and leaves the registry.
    Closed,
    /// Fault the current socket or handshake for this reason (the runtime's supervision then
    /// feeds the fault back through [`Machine::fault`]).
    Fail(Failure),
}

/// A connection event for the dispatchers (Ceph's `ms_handle_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeEvent {
    /// We dialled and the session opened (ms_handle_connect).
    Connect,
    /// We accepted and the session opened (ms_handle_accept).
    Accept,
    /// A lossy session was reset (ms_handle_reset).
    Reset,
    /// The peer reset a lossless session (ms_handle_remote_reset).
    RemoteReset,
    /// The peer refused our dial (ms_handle_refused).
    Refused,
}

/// Why the machine faults its own socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An Open decision's socket never came within the ready timeout.
    AdoptOverdue,
    /// The socket's frames cannot be written (a msgr2 secure session out of nonces).
    Framing(crate::v2::V2Error),
}

/// Counters the machine keeps beyond the session's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// The session's own counters.
    pub session: SessionStats,
    /// Sockets opened after the first.
    pub reconnects: u64,
    /// Session resets (RESETSESSION, a restarted peer).
    pub session_resets: u64,
}

/// One peer session's lifecycle. See the [module docs](self).
#[derive(Debug)]
pub struct Machine {
    cfg: PipeConfig,
    session: Session,
    state: State,
    book: Bookkeeping,
    since_fault: SinceFault,
    backoff: Backoff,
    timers: Timers,
    /// Socket generation, bumped at every open.
    gen: u64,
    /// Numbers dials and accept hand-overs: only the newest one's result may open a socket.
    attempt: u64,
    /// Features of the last socket (a reset randomizes out_seq when they include MSG_AUTH).
    features: u64,
    /// A keepalive is to go out with the next transmit.
    keepalive_due: bool,
    started: bool,
    actions: VecDeque<Action>,
    reconnects: u64,
    session_resets: u64,
    rng: u64,
}

impl Machine {
    /// A machine in its first state: waiting for [`start`](Self::start).
    pub fn new(cfg: PipeConfig) -> Self {
        let mut session = Session::new(cfg.policy.lossy);
        if let Some(p) = cfg.default_priority {
            session.set_default_priority(p);
        }
        Machine {
            backoff: Backoff::new(cfg.initial_backoff, cfg.max_backoff),
            rng: cfg.seed,
            cfg,
            session,
            state: State::New,
            book: Bookkeeping::default(),
            since_fault: SinceFault::default(),
            timers: Timers::default(),
            gen: 0,
            attempt: 0,
            features: 0,
            keepalive_due: false,
            started: false,
            actions: VecDeque::new(),
            reconnects: 0,
            session_resets: 0,
        }
    }

    /// The runtime is up: an outgoing connection dials now. Only the first call does anything;
    /// it returns whether this was that call (a runtime that restarts tells the two apart).
    pub fn start(&mut self) -> bool {
        if std::mem::replace(&mut self.started, true) {
            return false;
        }
        if self.cfg.dial_first {
            self.dial();
        }
        true
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The session's sequencing state.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session's connect_seq.
    pub fn connect_seq(&self) -> u32 {
        self.book.connect_seq
    }

    /// A handshake of this session completed at least once.
    pub fn established(&self) -> bool {
        self.book.established
    }

    /// Where the session stands.
    pub fn state(&self) -> StateName {
        self.state.name()
    }

    /// The open socket's framing ([`SessionEncoder::wire`]), or None without one.
    pub fn wire(&self) -> Option<&'static str> {
        match &self.state {
            State::Open(open) => Some(open.encoder.wire()),
            _ => None,
        }
    }

    /// The session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// A socket is open and carries the session.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Counters.
    pub fn stats(&self) -> PipeStats {
        PipeStats {
            session: self.session.stats(),
            reconnects: self.reconnects,
            session_resets: self.session_resets,
        }
    }

    /// New reconnect delays (a run-time configuration change), used from the next fault on.
    pub fn set_backoff_limits(&mut self, initial: Duration, max: Duration) {
        self.backoff.set_limits(initial, max);
    }

    fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// The session starts over (RESETSESSION, a restarted peer): everything queued is dropped
    /// and the seqs restart; connect_seq returns to 0.
    fn reset_session(&mut self) {
        // With MSG_AUTH, Ceph starts out_seq at random after a reset (spec §2.7).
        let out_seq = if crate::features::has_all(self.features, crate::features::MSG_AUTH) {
            self.next_random() % 0x7fff_ffff
        } else {
            0
        };
        self.session.reset(out_seq);
        self.book.v2_cookies = None;
        self.book.connect_seq = 0;
        self.book.established = false;
        self.book.bump_connect_seq = false;
        self.session_resets += 1;
    }

    /// splitmix64: a few well-mixed bits from the seed (not cryptographic; Ceph's own use of
    /// this number only spreads seqs apart).
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The session is over: drop what is queued, leave the registry.
    fn close(&mut self) {
        self.timers.cancel_all();
        self.session.reset(0);
        self.state = State::Closed;
        self.act(Action::Closed);
    }

    /// The user marks the session down: it closes now. `graceful`: what the runtime already
    /// handed to the socket is written before it closes (the runtime first drains
    /// [`poll_transmit`](Self::poll_transmit) to hand over everything queued).
    pub fn mark_down(&mut self, graceful: bool) {
        if self.is_closed() {
            return;
        }
        self.teardown(graceful);
        self.close();
    }

    /// Stops using whatever carries the session now (socket, handshake, timers) and requeues
    /// every unacked message; the state is Standby until the caller says otherwise.
    /// `graceful`: the open socket writes what it was handed before it closes.
    fn teardown(&mut self, graceful: bool) {
        match std::mem::replace(&mut self.state, State::Standby) {
            State::Open(_) => self.act(Action::DropSocket { graceful }),
            State::Connecting { .. } | State::Accepting { .. } => self.act(Action::CancelHandshake),
            State::Closed => self.state = State::Closed,
            State::New | State::Replacing | State::Standby | State::Backoff => {}
        }
        self.timers.cancel_all();
        self.session.requeue_sent();
    }

    /// Checks a peer's claim of what it already has (the SEQ exchange) and opens the socket.
    fn open_socket(&mut self, now: Instant, o: Opening<'_>) -> Result<u64, SessionError> {
        let Opening {
            features,
            peer_acked,
            restart_in_seq,
            accepted,
            session_key,
            framing,
        } = o;
        match peer_acked.map(|acked| self.session.skip_acked_by_peer(acked)) {
            Some(Ok(_)) => {}
            // The claim cannot be true: this socket is not to be trusted. The caller faults
            // it like any other; the replay waits for the next socket.
            Some(Err(e)) => return Err(e),
            None if restart_in_seq => self.session.discard_requeued_and_restart_in_seq(),
            None => {}
        }
        if restart_in_seq && peer_acked.is_some() {
            self.session.restart_in_seq();
        }
        self.session.note_in_seq_told_to_peer();
        self.gen += 1;
        self.features = features;
        if self.book.ever_opened {
            self.reconnects += 1;
        }
        self.book.ever_opened = true;
        self.book.established = true;
        self.book.bump_connect_seq = true;
        self.since_fault = SinceFault {
            opened: true,
            accepted,
            replied: false,
        };
        self.backoff.reset();
        let signer = session_key
            .filter(|_| self.cfg.sign_messages)
            .and_then(|k| MessageSigner::for_session(k, features));
        self.state = State::Open(state::Open::new(
            self.gen,
            features,
            self.cfg.crc_data,
            framing,
            signer.clone(),
        ));
        self.timers.cancel(Timer::Backoff);
        self.timers.cancel(Timer::AdoptDeadline);
        self.arm_keepalive(now);
        self.act(Action::OpenSocket {
            gen: self.gen,
            features,
            verifier: signer,
        });
        Ok(self.gen)
    }
}
