//! Dialling: when the machine dials, with which connect_seq, and what a finished connector
//! (spec §2.7) does to the session.

use std::time::Instant;

use super::state::State;
use super::{Action, Machine, PipeEvent};
use crate::handshake::Established;
use crate::session::SessionError;

/// What became of a finished handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The session is open on the handshake's socket, of this generation.
    Opened {
        /// The socket's generation.
        gen: u64,
    },
    /// A newer attempt, or something else, took over since the handshake began: its socket
    /// is to be closed, and nothing changed.
    Stale,
}

impl Machine {
    /// Dials: the next attempt, with connect_seq + 1 if the session was open on the last socket.
    pub(super) fn dial(&mut self) {
        if self.book.bump_connect_seq {
            self.book.connect_seq += 1;
            self.book.bump_connect_seq = false;
        }
        let attempt = self.next_attempt();
        self.state = State::Connecting { attempt };
        self.act(Action::Dial {
            attempt,
            connect_seq: self.book.connect_seq,
            in_seq: self.session.in_seq(),
        });
    }

    pub(super) fn next_attempt(&mut self) -> u64 {
        self.attempt += 1;
        self.attempt
    }

    /// Whether the dial or accept hand-over numbered `attempt` is the one the session still
    /// waits for.
    ///
    /// Every change away from a handshake cancels it, but a runtime may still report one that
    /// completed in the same turn as its cancel (actix reaps a cancelled future only after
    /// polling it once more; seen in the cluster sim). It must not open a second socket for the
    /// session. The newest attempt is current while the session is Connecting or Accepting
    /// (each new attempt is numbered, so those states belong to it).
    pub fn handshake_is_current(&self, attempt: u64) -> bool {
        match self.state {
            State::Connecting { attempt: a } | State::Accepting { attempt: a } => a == attempt,
            _ => false,
        }
    }

    /// The handshake numbered `attempt` failed. Returns whether it was current: if so the
    /// runtime faults (and feeds the fault to [`fault`](Self::fault)); if not, nothing changes.
    pub fn handshake_failed(&mut self, attempt: u64) -> bool {
        let current = self.handshake_is_current(attempt);
        if current && matches!(self.state, State::Accepting { .. }) {
            // A half-done accept: a session made for it with nothing to keep closes.
            self.since_fault.accepted = true;
        }
        current
    }

    /// The runtime has no address to dial for `attempt`: the session stands by.
    pub fn dial_impossible(&mut self, attempt: u64) {
        if self.handshake_is_current(attempt) {
            self.state = State::Standby;
        }
    }

    /// The peer answered the connector numbered `attempt` with RESETSESSION: it has no
    /// session with us (it restarted, or dropped ours), so ours starts over now, before the
    /// connector goes on with connect_seq 0 (ms_handle_remote_reset). Now and not at READY:
    /// if this handshake fails, the next one must not replay the old session's messages to a
    /// peer whose new session would take them as new (duplicates). Returns whether the
    /// attempt was current (a stale one changes nothing).
    pub fn peer_reset_session(&mut self, attempt: u64) -> bool {
        let current = self.handshake_is_current(attempt);
        if current {
            self.reset_session();
            self.act(Action::Event(PipeEvent::RemoteReset));
        }
        current
    }

    /// The connector numbered `attempt` reached READY.
    ///
    /// An error means the peer's SEQ claim cannot be true: the runtime faults the socket.
    pub fn dialled(
        &mut self,
        now: Instant,
        attempt: u64,
        est: &Established,
    ) -> Result<Completion, SessionError> {
        self.dialled_with(now, attempt, est, None)
    }

    /// [`dialled`](Self::dialled) for a handshake that chose the socket's framing (msgr2: the
    /// writer in its negotiated mode). None: msgr v1.
    pub fn dialled_with(
        &mut self,
        now: Instant,
        attempt: u64,
        est: &Established,
        framing: Option<crate::framing::SessionEncoder>,
    ) -> Result<Completion, SessionError> {
        self.dialled_as(now, attempt, est, framing, false)
    }

    /// [`dialled_with`](Self::dialled_with); `fresh_peer`: the peer's side of the session is
    /// new (msgr2's SERVER_IDENT): everything queued is sent again and in_seq restarts.
    pub fn dialled_as(
        &mut self,
        now: Instant,
        attempt: u64,
        est: &Established,
        framing: Option<crate::framing::SessionEncoder>,
        fresh_peer: bool,
    ) -> Result<Completion, SessionError> {
        if !self.handshake_is_current(attempt) {
            return Ok(Completion::Stale);
        }
        self.book.connect_seq = est.connect_seq;
        self.book.peer_global_seq = est.peer_global_seq;
        self.session.set_lossy(est.lossy);
        let restart = est.peer_acked_seq.is_none() || fresh_peer;
        let gen = self.open_socket(
            now,
            super::Opening {
                features: est.features,
                peer_acked: if fresh_peer {
                    Some(0)
                } else {
                    est.peer_acked_seq
                },
                restart_in_seq: restart,
                accepted: false,
                session_key: est.session_key.as_ref(),
                framing,
            },
        )?;
        self.act(Action::Event(PipeEvent::Connect));
        Ok(Completion::Opened { gen })
    }
}
