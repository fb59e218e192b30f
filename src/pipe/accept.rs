//! Accepting: the answer to a peer's connect (spec §2.6, through [`decide`]) against what this
//! session is doing, the hand-over of the accepted socket, and the finished accept.

use std::time::Instant;

use super::state::State;
use super::{Action, Completion, Machine, PipeEvent, Timer};
use crate::handshake::{
    decide, AcceptContext, Accepted, ConnectRequest, Decision, ExistingSession, ExistingState,
};
use crate::session::SessionError;

/// What to do with an accepted socket handed over after an Open decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// Write the open reply on it and finish the accept (the SEQ exchange), reporting the
    /// outcome under `attempt`.
    Finish {
        /// Number of this attempt.
        attempt: u64,
        /// Our in_seq, for the reply.
        in_seq: u64,
    },
    /// Close it: the session is closed, or the decision was not to open.
    Refused,
    /// Close it: since the decision the session opened a newer socket (its own dial, which the
    /// peer accepted, or another accept), so the peer gave up the connect behind this one, and
    /// the decision was made against a session that has moved on. Adopting it would tear down
    /// the live socket, or reset a session the peer's newer incarnation owns.
    Outgrown,
}

impl Machine {
    /// The facts an acceptor decision needs about this session.
    fn existing_facts(&self) -> Option<ExistingSession> {
        let state = match self.state {
            State::New if !self.book.established => return None,
            State::New | State::Standby => ExistingState::Standby,
            State::Connecting { .. } | State::Backoff => ExistingState::Connecting,
            State::Accepting { .. } | State::Replacing => ExistingState::Replacing,
            State::Open(_) => ExistingState::Open,
            State::Closed => ExistingState::Closed,
        };
        Some(ExistingSession {
            connect_seq: self.book.connect_seq,
            peer_global_seq: self.book.peer_global_seq,
            state,
            lossy: self.cfg.policy.lossy,
            policy_server: self.cfg.policy.server,
            established: self.book.established,
        })
    }

    /// A peer's connect reached this session: decide the answer (`ctx.existing` is filled
    /// from the session). An Open decision drops our own dial or backoff (the accepted socket
    /// replaces it) and waits for the socket's hand-over until the ready timeout.
    pub fn decide_accept(
        &mut self,
        now: Instant,
        req: &ConnectRequest,
        mut ctx: AcceptContext,
    ) -> Decision {
        ctx.existing = self.existing_facts();
        let decision = decide(req, &ctx);
        match decision {
            Decision::Open { .. } => {
                match self.state {
                    State::Connecting { .. } => self.act(Action::CancelHandshake),
                    State::Backoff => self.timers.cancel(Timer::Backoff),
                    _ => {}
                }
                // A closed session answers "closed" (the peer may open a new session) but
                // waits for nothing: its hand-over will be refused.
                if !matches!(self.state, State::Open(_) | State::Closed) {
                    self.state = State::Replacing;
                    self.timers
                        .set(Timer::AdoptDeadline, now + self.cfg.ready_timeout);
                }
            }
            // A session made for this accept that will not open: nothing to keep.
            _ if matches!(self.state, State::New) && !self.book.established => self.close(),
            _ => {}
        }
        decision
    }

    /// The socket generation now. A decision is only good for the generation it was made in:
    /// the accept task hands it back with its socket ([`adopt`](Self::adopt)).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// The accept task hands over the socket of `req`, decided as `decision` when the socket
    /// generation was `decided_at` ([`generation`](Self::generation) right after the decision).
    pub fn adopt(&mut self, req: &ConnectRequest, decision: Decision, decided_at: u64) -> Adoption {
        let Decision::Open { reset_existing, .. } = decision else {
            return Adoption::Refused;
        };
        if self.is_closed() {
            return Adoption::Refused;
        }
        if self.gen != decided_at {
            // A socket opened since the decision: it was made against a session that has moved
            // on (its reset_existing, its connect_seq), and the peer gave up the connect behind
            // it when it took that newer socket.
            return Adoption::Outgrown;
        }
        // Whatever this session is doing now goes: the decision was made against its state
        // then, and since then it may have faulted and started to dial again. A dial left
        // running would open a second socket for the session, and the second open would
        // strand the first socket's unacked messages (the peer would see a gap).
        self.teardown(false);
        if reset_existing && self.book.established {
            self.reset_session();
            let event = if self.cfg.policy.lossy {
                PipeEvent::Reset
            } else {
                PipeEvent::RemoteReset
            };
            self.act(Action::Event(event));
        }
        // The session counts as registered once the open reply goes out: the peer may consider
        // it open before we read its in_seq, and a later cs 0 from it is then not a restart.
        self.book.connect_seq = req.connect.connect_seq.wrapping_add(1);
        self.book.peer_global_seq = req.connect.global_seq;
        self.book.bump_connect_seq = false;
        self.since_fault.replied = true;
        let attempt = self.next_attempt();
        self.state = State::Accepting { attempt };
        Adoption::Finish {
            attempt,
            in_seq: self.session.in_seq(),
        }
    }

    /// The accept numbered `attempt` finished its SEQ exchange.
    ///
    /// An error means the peer's SEQ claim cannot be true: the runtime faults the socket.
    pub fn accepted(
        &mut self,
        now: Instant,
        attempt: u64,
        acc: &Accepted,
    ) -> Result<Completion, SessionError> {
        self.accepted_with(now, attempt, acc, None)
    }

    /// [`accepted`](Self::accepted) for a handshake that chose the socket's framing (msgr2: the
    /// writer in its negotiated mode). None: msgr v1.
    pub fn accepted_with(
        &mut self,
        now: Instant,
        attempt: u64,
        acc: &Accepted,
        framing: Option<crate::framing::SessionEncoder>,
    ) -> Result<Completion, SessionError> {
        self.accepted_as(now, attempt, acc, framing, false)
    }

    /// [`accepted_with`](Self::accepted_with); `fresh_peer`: the peer's side is new (a msgr2
    /// CLIENT_IDENT): everything queued is sent again and in_seq restarts.
    pub fn accepted_as(
        &mut self,
        now: Instant,
        attempt: u64,
        acc: &Accepted,
        framing: Option<crate::framing::SessionEncoder>,
        fresh_peer: bool,
    ) -> Result<Completion, SessionError> {
        if !self.handshake_is_current(attempt) {
            return Ok(Completion::Stale);
        }
        self.book.connect_seq = acc.connect_seq;
        self.book.peer_global_seq = acc.peer_global_seq;
        self.session.set_lossy(acc.lossy);
        let gen = self.open_socket(
            now,
            super::Opening {
                features: acc.features,
                peer_acked: if fresh_peer {
                    Some(0)
                } else {
                    acc.peer_acked_seq
                },
                restart_in_seq: acc.restart_in_seq || fresh_peer,
                accepted: true,
                session_key: acc.session_key.as_ref(),
                framing,
            },
        )?;
        self.act(Action::Event(PipeEvent::Accept));
        Ok(Completion::Opened { gen })
    }
}
