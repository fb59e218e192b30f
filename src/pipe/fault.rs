//! Faults: what follows a socket or handshake failure (spec §5), by the policy's verdict.

use std::time::Instant;

use super::state::State;
use super::{Action, Machine, PipeEvent, Timer};
use crate::policy::{FaultAction, FaultContext, ReconnectKind};

/// The kind of fault, as far as the session's rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The peer refused our dial (connection refused): the dispatchers hear of it.
    Refused,
    /// We lost a connection race (WAIT): redial after the longest backoff.
    Wait,
    /// Nothing arrived for `ms_connection_idle_timeout`.
    Idle,
    /// Anything else: the socket broke, bad input, a handshake failed or timed out.
    Other,
}

impl Machine {
    /// The socket or handshake in progress failed (the runtime has already stopped reading and
    /// writing it): the session is torn down to its queues and the policy says what follows:
    /// mark down (lossy), close (an accept that never became a session), stand by, or redial
    /// at once, after the backoff, or after the longest backoff (lost a race).
    pub fn fault(&mut self, now: Instant, kind: FaultKind) {
        if self.is_closed() {
            return;
        }
        self.teardown(false);
        if kind == FaultKind::Refused {
            self.act(Action::Event(PipeEvent::Refused));
        }
        let since = std::mem::take(&mut self.since_fault);
        let verdict = self.cfg.policy.on_fault(FaultContext {
            was_open: since.opened,
            accepted: since.accepted,
            has_queued: self.session.has_outstanding(),
            in_wait: kind == FaultKind::Wait,
            idle: kind == FaultKind::Idle,
            // Once our open reply went out the peer may consider the session open (Ceph
            // registers it then): a failure before its SEQ answer must not close it, or the
            // peer's reconnect meets RESETSESSION and drops everything it has queued.
            session_established: self.book.established || since.replied,
            peer_undialable: !self.cfg.dialable,
        });
        match verdict {
            FaultAction::MarkDown => {
                self.session.reset(0);
                self.act(Action::Event(PipeEvent::Reset));
                self.close();
            }
            FaultAction::Close => self.close(),
            FaultAction::Standby => self.state = State::Standby,
            FaultAction::Reconnect(ReconnectKind::Immediate) => {
                self.backoff.reset();
                self.dial();
            }
            FaultAction::Reconnect(ReconnectKind::Backoff) => {
                let delay = self.backoff.next_delay();
                self.wait_to_dial(now + delay);
            }
            FaultAction::Reconnect(ReconnectKind::AfterWait) => {
                let delay = self.backoff.max();
                self.wait_to_dial(now + delay);
            }
        }
    }

    fn wait_to_dial(&mut self, at: Instant) {
        self.state = State::Backoff;
        self.timers.set(Timer::Backoff, at);
    }
}
