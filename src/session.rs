//! One peer session's sequencing (spec §4): `out_seq` / `in_seq`, priority out-queues, the
//! unacked `sent` list, cumulative acks, requeue on fault, replay after reconnect, and duplicate
//! discard. Pure and deterministic: the Pipe actor owns one of these and feeds it events.

use std::collections::{BTreeMap, VecDeque};

use crate::message::{priority, Message};

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// New: deliver it. `gap` is true when seqs were skipped (Ceph logs "missed message?" and accepts).
    Accept {
        /// Seqs between the previous in_seq and this one were never seen.
        gap: bool,
    },
    /// `seq <= in_seq`: already delivered; drop it and keep reading.
    Duplicate,
}

/// A sequence number from the peer that cannot be true: v1 carries ACK and SEQ values without
/// a CRC, so a bit flipped on the way (or a peer's bug) shows up here. Acting on one would drop
/// unacked messages the peer never received; the socket is faulted instead, and the messages
/// are replayed on the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An ACK for a seq we never numbered.
    #[error("peer acked seq {ack}, but we numbered only up to {highest}")]
    AckBeyondSent {
        /// The seq acked.
        ack: u64,
        /// The highest seq we ever gave a message in this session.
        highest: u64,
    },
    /// The SEQ exchange claims the peer has messages of ours that we never numbered, while we
    /// still hold some to replay.
    #[error("peer claims in_seq {peer_in_seq}, but we numbered only up to {highest}")]
    SeqBeyondSent {
        /// The peer's claimed in_seq.
        peer_in_seq: u64,
        /// The highest seq we ever gave a message in this session.
        highest: u64,
    },
}

/// Sequencing state of one session, on one side.
#[derive(Debug, Clone)]
pub struct Session {
    lossy: bool,
    default_priority: u16,
    out_seq: u64,
    in_seq: u64,
    in_seq_acked: u64,
    /// The highest seq the peer acked in this session (0: none yet).
    peer_acked: u64,
    /// Waiting to be sent, by priority (highest served first, FIFO within one). Emptied queues
    /// are kept, so a busy session does not reallocate them on every flush.
    queues: BTreeMap<u16, VecDeque<Message>>,
    /// Messages in `queues`.
    queued: usize,
    /// Requeued after a fault: already numbered, sent before anything else, same seqs.
    replay: VecDeque<Message>,
    /// Written but not yet acked (lossless only).
    sent: VecDeque<Message>,
    stats: SessionStats,
}

/// Counters the session keeps for perf reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages re-sent after a reconnect.
    pub replayed: u64,
    /// Requeued messages dropped because the peer already had them (SEQ exchange).
    pub skipped_after_seq: u64,
    /// Received duplicates dropped.
    pub duplicates: u64,
    /// Messages dropped by session resets.
    pub dropped_by_reset: u64,
    /// Messages the peer acked and then, in the SEQ exchange of a later socket, turned out not
    /// to have: the ACK that released them was false (in v1, a corrupted ACK that still looked
    /// plausible). They were dropped at the ACK and cannot be replayed.
    pub lost_to_false_acks: u64,
}

impl Session {
    /// A fresh session; `lossy` sessions keep no sent list and send no acks.
    pub fn new(lossy: bool) -> Self {
        Session {
            lossy,
            default_priority: priority::DEFAULT,
            out_seq: 0,
            in_seq: 0,
            in_seq_acked: 0,
            peer_acked: 0,
            queues: BTreeMap::new(),
            queued: 0,
            replay: VecDeque::new(),
            sent: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// Sets the priority given to messages enqueued with priority 0.
    pub fn set_default_priority(&mut self, prio: u16) {
        self.default_priority = prio;
    }

    /// The acceptor decides lossiness; the connector adopts it from the reply flags.
    pub fn set_lossy(&mut self, lossy: bool) {
        self.lossy = lossy;
        if lossy {
            self.sent.clear();
        }
    }

    /// Whether this session is lossy.
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// Last seq assigned to an outgoing message.
    pub fn out_seq(&self) -> u64 {
        self.out_seq
    }

    /// Last seq accepted from the peer.
    pub fn in_seq(&self) -> u64 {
        self.in_seq
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Messages waiting to be written (queued plus requeued).
    pub fn pending_len(&self) -> usize {
        self.replay.len() + self.queued
    }

    /// The highest seq the peer acked in this session (0: none yet).
    pub fn peer_acked(&self) -> u64 {
        self.peer_acked
    }

    /// Messages written and not yet acked.
    pub fn unacked_len(&self) -> usize {
        self.sent.len()
    }

    /// True when something waits to be written.
    pub fn has_pending(&self) -> bool {
        !self.replay.is_empty() || self.queued > 0
    }

    /// True when anything is queued or unacked (lossless sessions must not forget these).
    pub fn has_outstanding(&self) -> bool {
        self.has_pending() || !self.sent.is_empty()
    }

    /// Queues a message for sending; priority 0 becomes the default priority.
    pub fn enqueue(&mut self, mut msg: Message) {
        if msg.priority == 0 {
            msg.priority = self.default_priority;
        }
        self.queues.entry(msg.priority).or_default().push_back(msg);
        self.queued += 1;
    }

    /// Numbers the next message to write and hands it to `write` by reference: requeued
    /// messages first (with their old seqs), then the highest-priority queue. A lossless session
    /// then keeps it until acked, a lossy one drops it; either way it is never copied.
    /// Returns false when nothing is queued.
    pub fn send_next(&mut self, write: impl FnOnce(&Message)) -> bool {
        let msg = if let Some(msg) = self.replay.pop_front() {
            debug_assert_eq!(msg.seq, self.out_seq + 1);
            self.out_seq = msg.seq;
            self.stats.replayed += 1;
            msg
        } else {
            if self.queued == 0 {
                return false;
            }
            let Some(mut msg) = self.queues.values_mut().rev().find_map(VecDeque::pop_front) else {
                return false;
            };
            self.queued -= 1;
            self.out_seq += 1;
            msg.seq = self.out_seq;
            msg
        };
        write(&msg);
        if !self.lossy {
            self.sent.push_back(msg);
        }
        true
    }

    /// Like [`send_next`](Self::send_next), returning a copy of the message (its sections are
    /// shared, not copied).
    pub fn next_outgoing(&mut self) -> Option<Message> {
        let mut out = None;
        self.send_next(|m| out = Some(m.clone()));
        out
    }

    /// The highest seq we ever gave a message in this session (requeued ones included).
    fn highest_numbered(&self) -> u64 {
        self.replay
            .back()
            .map_or(self.out_seq, |m| m.seq.max(self.out_seq))
    }

    /// The peer acked every seq up to `seq`: forget those. Returns how many were released.
    /// An ACK beyond every seq we numbered is refused (and changes nothing).
    pub fn handle_ack(&mut self, seq: u64) -> Result<usize, SessionError> {
        let highest = self.highest_numbered();
        if seq > highest {
            return Err(SessionError::AckBeyondSent { ack: seq, highest });
        }
        self.peer_acked = self.peer_acked.max(seq);
        let before = self.sent.len();
        while self.sent.front().is_some_and(|m| m.seq <= seq) {
            self.sent.pop_front();
        }
        Ok(before - self.sent.len())
    }

    /// The socket faulted: every unacked message goes back in front of everything, keeping its
    /// seq, and `out_seq` steps back so they are re-sent with the same numbers.
    pub fn requeue_sent(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let mut replay = std::mem::take(&mut self.sent);
        replay.append(&mut self.replay);
        self.out_seq = replay.front().map_or(self.out_seq, |m| m.seq - 1);
        self.replay = replay;
    }

    /// After the SEQ exchange: drop requeued messages the peer already has (`seq <= peer_in_seq`).
    ///
    /// Ceph stalls a v1 connection on a resent old seq, so these must never go out again. If the
    /// peer claims more than we ever numbered (it kept a session we lost), `out_seq` jumps past
    /// its `in_seq` so our next message is not discarded as a duplicate; but while we still hold
    /// messages to replay, such a claim cannot be true and is refused.
    ///
    /// A peer that has less than it acked before proves an earlier ACK false: what lay between
    /// is gone (counted in [`SessionStats::lost_to_false_acks`], and returned).
    pub fn skip_acked_by_peer(&mut self, peer_in_seq: u64) -> Result<u64, SessionError> {
        let highest = self.highest_numbered();
        if !self.replay.is_empty() && peer_in_seq > highest {
            return Err(SessionError::SeqBeyondSent {
                peer_in_seq,
                highest,
            });
        }
        let lost = self.peer_acked.saturating_sub(peer_in_seq);
        self.stats.lost_to_false_acks += lost;
        self.peer_acked = peer_in_seq;
        while self.replay.front().is_some_and(|m| m.seq <= peer_in_seq) {
            let m = self.replay.pop_front().expect("front checked");
            self.out_seq = m.seq;
            self.stats.skipped_after_seq += 1;
        }
        if self.replay.is_empty() && peer_in_seq > self.out_seq {
            self.out_seq = peer_in_seq;
        }
        Ok(lost)
    }

    /// READY without the SEQ exchange, or a restarted peer: requeued messages are dropped (the
    /// peer's new incarnation never expected them) and `in_seq` restarts at 0.
    /// The peer's side of the session is new (msgr2's SERVER_IDENT): its seqs restart, while
    /// what we have queued is all sent again (the new session takes any seq).
    pub fn restart_in_seq(&mut self) {
        self.in_seq = 0;
        self.in_seq_acked = 0;
    }

    /// Drops requeued messages and restarts in_seq (a restarted peer, msgr v1's READY).
    pub fn discard_requeued_and_restart_in_seq(&mut self) {
        self.stats.dropped_by_reset += self.replay.len() as u64;
        self.replay.clear();
        self.in_seq = 0;
        self.in_seq_acked = 0;
        self.peer_acked = 0;
    }

    /// A received message with `seq`: accept it, or report a duplicate to drop.
    pub fn receive(&mut self, seq: u64) -> Receive {
        if seq <= self.in_seq {
            self.stats.duplicates += 1;
            return Receive::Duplicate;
        }
        let gap = seq > self.in_seq + 1;
        self.in_seq = seq;
        Receive::Accept { gap }
    }

    /// An ACK is due: messages arrived since the last one we wrote (never on lossy sessions).
    pub fn ack_due(&self) -> bool {
        !self.lossy && self.in_seq > self.in_seq_acked
    }

    /// A cumulative ACK to write now, if one is due (never on lossy sessions).
    pub fn take_ack(&mut self) -> Option<u64> {
        if self.lossy || self.in_seq <= self.in_seq_acked {
            return None;
        }
        self.in_seq_acked = self.in_seq;
        Some(self.in_seq)
    }

    /// A new socket carries this session: acks already sent on the old one may be lost, so
    /// the next ack is due again (the SEQ exchange told the peer our in_seq anyway).
    pub fn note_in_seq_told_to_peer(&mut self) {
        self.in_seq_acked = self.in_seq;
    }

    /// Session reset (RESETSESSION, or a restarted peer under resetcheck): everything queued,
    /// requeued and unacked is dropped, `in_seq` is 0, and `out_seq` restarts at `new_out_seq`
    /// (0, or random when MSG_AUTH is negotiated). Returns how many messages were dropped.
    pub fn reset(&mut self, new_out_seq: u64) -> usize {
        let dropped = self.pending_len() + self.sent.len();
        self.stats.dropped_by_reset += dropped as u64;
        self.queues.clear();
        self.queued = 0;
        self.replay.clear();
        self.sent.clear();
        self.in_seq = 0;
        self.in_seq_acked = 0;
        self.out_seq = new_out_seq;
        self.peer_acked = 0;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(prio: u16, tag: &'static str) -> Message {
        Message {
            priority: prio,
            front: Bytes::from_static(tag.as_bytes()),
            ..Default::default()
        }
    }

    fn drain(s: &mut Session) -> Vec<(u64, String)> {
        std::iter::from_fn(|| s.next_outgoing())
            .map(|m| (m.seq, String::from_utf8(m.front.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn highest_priority_first_fifo_within_and_seqs_from_one() {
        let mut s = Session::new(false);
        s.enqueue(msg(64, "low1"));
        s.enqueue(msg(196, "high1"));
        s.enqueue(msg(0, "default1"));
        s.enqueue(msg(196, "high2"));
        let got = drain(&mut s);
        let want = [(1, "high1"), (2, "high2"), (3, "default1"), (4, "low1")];
        assert_eq!(got, want.map(|(a, b)| (a, b.to_string())));
        assert_eq!(s.unacked_len(), 4);
    }

    #[test]
    fn acks_are_cumulative_and_release_the_sent_list() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        assert_eq!(s.handle_ack(2), Ok(2));
        assert_eq!(s.unacked_len(), 1);
        assert_eq!(s.handle_ack(1), Ok(0));
    }

    #[test]
    fn an_ack_beyond_every_numbered_seq_is_refused_and_releases_nothing() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        // A flipped high bit: 3 | 1 << 40.
        assert_eq!(
            s.handle_ack(3 | 1 << 40),
            Err(SessionError::AckBeyondSent {
                ack: 3 | 1 << 40,
                highest: 3
            })
        );
        assert_eq!(s.unacked_len(), 3);
        // Requeued messages still count as numbered: an ACK up to them is no error.
        s.requeue_sent();
        assert!(s.handle_ack(3).is_ok());
    }

    #[test]
    fn a_seq_claim_beyond_what_we_replay_is_refused_and_skips_nothing() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        s.requeue_sent();
        assert_eq!(
            s.skip_acked_by_peer(1 << 33),
            Err(SessionError::SeqBeyondSent {
                peer_in_seq: 1 << 33,
                highest: 3
            })
        );
        assert_eq!(drain(&mut s).len(), 3, "everything is still replayed");
    }

    #[test]
    fn a_false_ack_is_proved_by_the_next_seq_exchange() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c", "d", "e"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        // The peer had 2, a corrupted ACK said 4: 3 and 4 are released, unreceived.
        assert_eq!(s.handle_ack(4), Ok(4));
        s.requeue_sent();
        assert_eq!(s.skip_acked_by_peer(2), Ok(2));
        assert_eq!(s.stats().lost_to_false_acks, 2);
        assert_eq!(drain(&mut s), [(5, "e".to_string())]);
    }

    #[test]
    fn requeue_replays_same_seqs_before_new_messages() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        s.handle_ack(1).unwrap();
        s.enqueue(msg(255, "new"));
        s.requeue_sent();
        assert_eq!(s.out_seq(), 1);
        let got = drain(&mut s);
        assert_eq!(got[0], (2, "b".to_string()));
        assert_eq!(got[1], (3, "c".to_string()));
        assert_eq!(got[2], (4, "new".to_string()));
        assert_eq!(s.stats().replayed, 2);
    }

    #[test]
    fn requeue_after_partial_replay_keeps_order() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c", "d"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        s.requeue_sent();
        s.next_outgoing(); // seq 1 re-sent
        s.requeue_sent(); // fault again mid-replay
        let seqs: Vec<u64> = drain(&mut s).into_iter().map(|(q, _)| q).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn seq_exchange_skips_what_the_peer_has() {
        let mut s = Session::new(false);
        for t in ["a", "b", "c"] {
            s.enqueue(msg(127, t));
        }
        drain(&mut s);
        s.requeue_sent();
        assert_eq!(s.skip_acked_by_peer(2), Ok(0));
        assert_eq!(drain(&mut s), [(3, "c".to_string())]);
        assert_eq!(s.stats().skipped_after_seq, 2);
    }

    #[test]
    fn peer_claiming_more_than_we_sent_moves_out_seq_past_it() {
        let mut s = Session::new(false);
        assert_eq!(s.skip_acked_by_peer(50), Ok(0));
        s.enqueue(msg(127, "x"));
        assert_eq!(s.next_outgoing().unwrap().seq, 51);
    }

    #[test]
    fn duplicates_dropped_gaps_accepted() {
        let mut s = Session::new(false);
        assert_eq!(s.receive(1), Receive::Accept { gap: false });
        assert_eq!(s.receive(1), Receive::Duplicate);
        assert_eq!(s.receive(5), Receive::Accept { gap: true });
        assert_eq!(s.receive(3), Receive::Duplicate);
        assert_eq!(s.in_seq(), 5);
        assert_eq!(s.stats().duplicates, 2);
    }

    #[test]
    fn lossy_sessions_never_ack_or_keep_sent() {
        let mut s = Session::new(true);
        s.enqueue(msg(127, "a"));
        s.next_outgoing();
        assert_eq!(s.unacked_len(), 0);
        s.receive(1);
        assert_eq!(s.take_ack(), None);
        let mut l = Session::new(false);
        l.receive(1);
        l.receive(2);
        assert_eq!(l.take_ack(), Some(2));
        assert_eq!(l.take_ack(), None);
    }

    #[test]
    fn reset_drops_everything_and_restarts_seqs() {
        let mut s = Session::new(false);
        s.enqueue(msg(127, "a"));
        s.enqueue(msg(127, "b"));
        s.next_outgoing();
        s.receive(7);
        assert_eq!(s.reset(0), 2);
        assert_eq!(
            (s.in_seq(), s.out_seq(), s.has_outstanding()),
            (0, 0, false)
        );
        s.reset(12345);
        s.enqueue(msg(127, "c"));
        assert_eq!(s.next_outgoing().unwrap().seq, 12346);
    }
}
