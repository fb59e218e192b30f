//! The machine's timers: deadlines it sets, the runtime waits for the earliest
//! ([`Machine::poll_timeout`]) and reports it ([`Machine::handle_timeout`]).
//!
//! A timer that fires after it was cancelled or moved is harmless: only an armed timer whose
//! deadline has passed fires. (actix reaps a cancelled future only after polling it once more,
//! so a runtime can report a timer in the same turn it was cancelled.)

use std::time::Instant;

use super::state::State;
use super::{Action, Failure, Machine};

/// A timer the machine sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The backoff before the next dial.
    Backoff,
    /// The deadline for an Open decision's socket to be handed over.
    AdoptDeadline,
    /// The next keepalive on an open lossless session.
    Keepalive,
}

const ALL: [Timer; 3] = [Timer::Backoff, Timer::AdoptDeadline, Timer::Keepalive];

/// One deadline per timer.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Timers {
    deadlines: [Option<Instant>; 3],
}

impl Timers {
    pub(super) fn set(&mut self, t: Timer, at: Instant) {
        self.deadlines[t as usize] = Some(at);
    }

    pub(super) fn cancel(&mut self, t: Timer) {
        self.deadlines[t as usize] = None;
    }

    pub(super) fn cancel_all(&mut self) {
        self.deadlines = [None; 3];
    }

    fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns one timer due at `now`.
    fn take_due(&mut self, now: Instant) -> Option<Timer> {
        let t = ALL
            .into_iter()
            .find(|t| self.deadlines[*t as usize].is_some_and(|d| d <= now))?;
        self.cancel(t);
        Some(t)
    }
}

impl Machine {
    /// When the machine next wants [`handle_timeout`](Self::handle_timeout) called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.take_due(now) {
            match t {
                Timer::Backoff => {
                    if matches!(self.state, State::Backoff) {
                        self.dial();
                    }
                }
                Timer::AdoptDeadline => {
                    // An Open decision was made long ago and its socket never came: the accept
                    // task gave up (its handshake timed out around the decision, say). Waiting
                    // on would refuse the peer's every later connect (RETRY_GLOBAL against a
                    // session being replaced) and keep ours from dialling, for good; so this is
                    // a handshake timeout on an accept, and the policy decides what follows.
                    if matches!(self.state, State::Replacing) {
                        self.since_fault.accepted = true;
                        self.act(Action::Fail(Failure::AdoptOverdue));
                    }
                }
                Timer::Keepalive => {
                    if self.is_open() {
                        self.keepalive_due = true;
                        self.timers
                            .set(Timer::Keepalive, now + self.cfg.keepalive_interval);
                    }
                }
            }
        }
    }

    /// Open lossless sessions send a keepalive every `keepalive_interval`.
    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        let interval = self.cfg.keepalive_interval;
        if !self.cfg.policy.lossy && !interval.is_zero() {
            self.timers.set(Timer::Keepalive, now + interval);
        }
    }
}
