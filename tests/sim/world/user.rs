//! What the users and the operators do: send, mark a connection down, restart a node; and
//! the invariants the world checks about its sessions.

use bytes::Bytes;
use msgr::pipe::Queued;
use msgr::Message;

use super::{Ev, World};

impl World {
    /// The user sends the next numbered payload on its connection to the peer.
    pub(super) fn user_send(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let pipe = match n.live_registered() {
            // A server's user answers on a connection it was told of (ms_handle_accept).
            Some(p) if !n.dials && !n.pipes[p].machine.established() => return,
            Some(p) => p,
            // A client's get_connection makes a new session when none is live.
            None if n.dials => {
                let p = n.start_pipe(true);
                n.registered = Some(p);
                self.drive(node, p);
                p
            }
            None => return,
        };
        let n = &mut self.nodes[node];
        // The payload's number, then the sending session's.
        let mut front = n.sent.to_le_bytes().to_vec();
        front.extend_from_slice(&(pipe as u64).to_le_bytes());
        let mut m = Message::new(0xEF00, Bytes::from(front));
        m.priority = 127;
        n.sent += 1;
        match n.pipes[pipe].machine.send(m) {
            Queued::Transmit => self.want_flush(node, pipe),
            Queued::Held => self.drive(node, pipe),
            Queued::Dropped => n.dropped += 1,
        }
    }

    /// The user marks its connection down: the session closes with what it holds (the user
    /// knows those may be lost).
    pub(super) fn user_mark_down(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(pipe) = n.live_registered() else {
            return;
        };
        n.barrier = n.sent;
        n.pipes[pipe].awaiting_handover = false;
        n.pipes[pipe].machine.mark_down(false);
        self.drive(node, pipe);
    }

    /// The node's process restarts at the same address: its actors are gone with everything
    /// they held, its sockets die (the peer hears of it), its user goes on numbering.
    pub(super) fn restart(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.barrier = n.sent;
        n.registered = None;
        for p in &mut n.pipes {
            p.dead = true;
        }
        for s in 0..self.socks.len() {
            let end = self.end_of(s, node);
            self.cut(s, Some(end));
        }
    }

    /// Sessions that live on beside the registered one (a closed session revived, say). A
    /// stateless server keeps none registered, so its own are not counted.
    pub fn stray_sessions(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.policy.skips_session_lookup())
            .map(|n| {
                (0..n.pipes.len())
                    .filter(|p| {
                        let pipe = &n.pipes[*p];
                        Some(*p) != n.registered && !pipe.dead && !pipe.machine.is_closed()
                    })
                    .count()
            })
            .sum()
    }

    /// Sessions made for an accepted connect that hold nothing, never carried anything, never
    /// answered with an open reply, and still do not close: leaks.
    pub fn idle_leftovers(&self) -> usize {
        self.nodes
            .iter()
            .flat_map(|n| &n.pipes)
            .inspect(|p| {
                if self.trace {
                    let m = &p.machine;
                    eprintln!(
                        "pipe: {} established {} adopted {} dead {}",
                        m.state(),
                        m.established(),
                        p.adopted,
                        p.dead
                    );
                }
            })
            .filter(|p| {
                let m = &p.machine;
                p.for_accept
                    && !p.dead
                    && !m.is_closed()
                    && !m.established()
                    && !p.adopted
                    && !m.session().has_outstanding()
            })
            .count()
    }
}

impl Ev {
    /// Sends, cuts, mark-downs and restarts are scheduled up front; the world is not done
    /// before all happened.
    pub(super) fn is_scheduled(&self) -> bool {
        matches!(
            self,
            Ev::Send { .. } | Ev::Cut | Ev::MarkDown { .. } | Ev::Restart { .. }
        )
    }

    /// Work whose outcome may still change a session.
    pub(super) fn is_pending_work(&self) -> bool {
        matches!(
            self,
            Ev::Route { .. } | Ev::Decide { .. } | Ev::Adopt { .. } | Ev::Eof { .. }
        )
    }
}
