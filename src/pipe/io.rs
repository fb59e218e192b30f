//! The open socket's traffic: user sends, decoded frames in, and the batch of bytes out
//! (messages numbered by the session, then a due ACK and keepalives).

use bytes::Bytes;

use super::state::State;
use super::Machine;
use crate::features::MSGR_KEEPALIVE2;
use crate::message::Message;
use crate::session::{Receive, SessionError};
use crate::wire::Timespec;

/// What one [`Machine::poll_transmit`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transmitted {
    /// Messages.
    pub msgs: u64,
    /// ACK frames.
    pub acks: u64,
    /// Keepalive frames and keepalive acks.
    pub keepalives: u64,
}

/// What became of a user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued on an open socket: transmit (now or soon).
    Transmit,
    /// Queued until a socket opens (a dial may have started for it).
    Held,
    /// The session is closed: the message is dropped.
    Dropped,
}

impl Machine {
    /// The user sends `msg` (its `src` already set). A session standing by with a peer it may
    /// dial dials for it.
    pub fn send(&mut self, msg: Message) -> Queued {
        if self.is_closed() {
            return Queued::Dropped;
        }
        self.session.enqueue(msg);
        match self.state {
            State::Open(_) => Queued::Transmit,
            State::Standby if self.cfg.dialable => {
                self.dial();
                Queued::Held
            }
            _ => Queued::Held,
        }
    }

    /// The user asks for a keepalive: it goes out with the next transmit.
    pub fn send_keepalive(&mut self) {
        self.keepalive_due = true;
    }

    /// Input stamped with socket generation `gen` is from the socket that carries the session
    /// now (anything from an older one is ignored).
    pub fn is_current_socket(&self, gen: u64) -> bool {
        matches!(&self.state, State::Open(o) if o.gen == gen)
    }

    /// A message with `seq` arrived on the open socket: accept it, or drop a duplicate.
    pub fn receive(&mut self, seq: u64) -> Receive {
        self.session.receive(seq)
    }

    /// An ACK arrived. An ACK beyond every seq we numbered is refused: the runtime faults the
    /// socket (its unacked messages are replayed on the next).
    pub fn handle_ack(&mut self, seq: u64) -> Result<usize, SessionError> {
        self.session.handle_ack(seq)
    }

    /// A KEEPALIVE2 arrived: it is echoed with the next transmit.
    pub fn handle_keepalive2(&mut self, stamp: Timespec) {
        if let State::Open(o) = &mut self.state {
            o.keepalive2_acks.push(stamp);
        }
    }

    /// Something is waiting to be written on the open socket.
    pub fn wants_transmit(&self) -> bool {
        let State::Open(o) = &self.state else {
            return false;
        };
        self.session.has_pending()
            || self.session.ack_due()
            || self.keepalive_due
            || !o.keepalive2_acks.is_empty()
    }

    /// Encodes up to `max_msgs` queued messages (numbering them), then a due ACK and due
    /// keepalives, appending the chunks to `out`. `wall_clock` stamps a KEEPALIVE2 (only
    /// called when one goes out). Nothing is written unless a socket is open.
    pub fn poll_transmit(
        &mut self,
        max_msgs: usize,
        wall_clock: impl FnOnce() -> Timespec,
        out: &mut Vec<Bytes>,
    ) -> Transmitted {
        let State::Open(open) = &mut self.state else {
            return Transmitted::default();
        };
        let enc = &mut open.encoder;
        let mut done = Transmitted::default();
        // msgr2 can fail to frame (a secure session out of nonces): the socket must go.
        let mut failed = None;
        let in_seq = self.session.in_seq();
        while done.msgs < max_msgs as u64 && failed.is_none() {
            // Encoded by reference: the session keeps the message itself until it is acked.
            let sent = self.session.send_next(|m| {
                if let Err(e) = enc.message(m, in_seq, out) {
                    failed = Some(e);
                }
            });
            if !sent {
                break;
            }
            done.msgs += 1;
        }
        // Control frames go inline, after the messages.
        if let Some(seq) = self.session.take_ack() {
            failed = failed.or(enc.ack(seq, out).err());
            done.acks = 1;
        }
        if std::mem::take(&mut self.keepalive_due) {
            done.keepalives = 1;
            let stamp = (open.features & MSGR_KEEPALIVE2 != 0).then(wall_clock);
            failed = failed.or(enc.keepalive(stamp, false, out).err());
        }
        for stamp in open.keepalive2_acks.drain(..) {
            done.keepalives += 1;
            failed = failed.or(enc.keepalive(Some(stamp), true, out).err());
        }
        enc.finish_batch(out);
        if let Some(e) = failed {
            self.act(super::Action::Fail(super::Failure::Framing(e)));
        }
        done
    }
}
