//! The world's sockets: two byte queues each, delivered in pieces; a close (FIN after the
//! data) or a fault (a reset that loses what is in flight), and each end hearing of it.

use bytes::{Bytes, BytesMut};
use msgr::pipe::FaultKind;
use rand::Rng;

use super::{End, Ev, SockId, World};

impl World {
    pub(super) fn end_of(&self, s: SockId, node: usize) -> usize {
        usize::from(self.socks[s].nodes[0] != node)
    }

    /// End `from` of socket `s` writes `chunks`.
    pub(super) fn write(
        &mut self,
        s: SockId,
        from: usize,
        chunks: impl IntoIterator<Item = Bytes>,
    ) {
        let sock = &mut self.socks[s];
        if sock.cut {
            return;
        }
        let to = 1 - from;
        let before = sock.wires[to].is_empty();
        sock.wires[to].extend(chunks.into_iter().filter(|c| !c.is_empty()));
        if before && !sock.wires[to].is_empty() {
            self.soon(Ev::Deliver { sock: s, to });
        }
    }

    /// Moves some of the bytes on their way to end `to` into its buffer, and lets it read.
    pub(super) fn deliver(&mut self, s: SockId, to: usize) {
        let n = self.rng.gen_range(1..300);
        let sock = &mut self.socks[s];
        let mut got = BytesMut::new();
        while got.len() < n {
            let Some(front) = sock.wires[to].front_mut() else {
                break;
            };
            let take = (n - got.len()).min(front.len());
            got.extend_from_slice(&front.split_to(take));
            if front.is_empty() {
                sock.wires[to].pop_front();
            }
        }
        match &mut sock.ends[to] {
            End::Dial { inbuf, .. }
            | End::Accept { inbuf, .. }
            | End::Adopted { inbuf, .. }
            | End::Open { inbuf, .. } => inbuf.extend_from_slice(&got),
            End::Gone => {}
        }
        if !sock.wires[to].is_empty() {
            self.soon(Ev::Deliver { sock: s, to });
        }
        self.read(s, to);
    }

    /// The socket dies: its bytes in flight are lost, and each end still in use hears of it at
    /// its own moment. `closer`: the end whose owner closed it (it hears nothing).
    pub(super) fn cut(&mut self, s: SockId, closer: Option<usize>) {
        let sock = &mut self.socks[s];
        if let Some(c) = closer {
            sock.ends[c] = End::Gone;
            // A close sends what its owner wrote before the FIN; what comes back is lost.
            sock.wires[c].clear();
        }
        if sock.cut {
            return;
        }
        sock.cut = true;
        if closer.is_none() {
            // A fault resets the connection: whatever was in flight is lost.
            sock.wires = Default::default();
        }
        for to in 0..2 {
            if !matches!(self.socks[s].ends[to], End::Gone) {
                self.soon(Ev::Eof { sock: s, to });
            }
        }
    }

    pub(super) fn eof(&mut self, s: SockId, to: usize) {
        if !self.socks[s].wires[to].is_empty() {
            // The FIN comes after the data.
            return self.soon(Ev::Eof { sock: s, to });
        }
        let node = self.socks[s].nodes[to];
        match std::mem::replace(&mut self.socks[s].ends[to], End::Gone) {
            End::Dial { pipe, attempt, .. } | End::Adopted { pipe, attempt, .. } => {
                if self.machine(node, pipe).handshake_failed(attempt) {
                    self.fail(node, pipe, FaultKind::Other);
                }
            }
            End::Open { pipe, gen, .. } => {
                if self.machine(node, pipe).is_current_socket(gen) {
                    self.fail(node, pipe, FaultKind::Other);
                }
            }
            // An accept task waiting on its decision or hand-over goes on (the hand-over finds
            // the socket dead); one reading connects just ends.
            End::Accept {
                acc,
                inbuf,
                busy: true,
            } => {
                self.socks[s].ends[to] = End::Accept {
                    acc,
                    inbuf,
                    busy: true,
                }
            }
            End::Accept { .. } | End::Gone => {}
        }
    }
}
