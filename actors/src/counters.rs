//! Perf counters: per messenger and per connection, lock-free, readable as a struct or JSON.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

macro_rules! counters {
    ($(#[$m:meta])* $name:ident / $snap:ident { $( $(#[doc = $d:literal])* $f:ident ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name { $( $(#[doc = $d])* pub $f: AtomicU64, )* }

        /// A point-in-time copy of the counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct $snap { $( $(#[doc = $d])* pub $f: u64, )* }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $( $f: self.$f.load(Relaxed), )* }
            }

            /// Sets every counter back to zero (`perf reset`).
            pub fn reset(&self) {
                $( self.$f.store(0, Relaxed); )*
            }
        }

        impl std::ops::AddAssign for $snap {
            fn add_assign(&mut self, o: Self) {
                $( self.$f += o.$f; )*
            }
        }

        impl $snap {
            /// Every counter's name and description.
            pub const FIELDS: &'static [(&'static str, &'static str)] =
                &[$( (stringify!($f), concat!($($d),*)) ),*];

            /// The counters as a JSON object.
            pub fn to_json(&self) -> String {
                serde_json::to_string(self).expect("counters serialize")
            }
        }
    };
}

counters! {
    /// Counters of one connection (and, summed, of a messenger).
    Counters / CountersSnapshot {
        /// Messages received and accepted.
        msgs_in,
        /// Messages written (first sends and replays).
        msgs_out,
        /// Payload bytes received.
        bytes_in,
        /// Bytes written to sockets.
        bytes_out,
        /// ACK frames sent.
        acks_out,
        /// ACK frames received.
        acks_in,
        /// KEEPALIVE / KEEPALIVE2 / KEEPALIVE2_ACK frames sent.
        keepalives_out,
        /// KEEPALIVE / KEEPALIVE2 / KEEPALIVE2_ACK frames received.
        keepalives_in,
        /// Successful connects after the first.
        reconnects,
        /// Messages re-sent after a reconnect.
        replayed,
        /// Requeued messages the peer already had (dropped after SEQ).
        skipped_after_seq,
        /// Duplicate messages received and dropped.
        duplicates,
        /// Messages dropped by session resets or lossy mark-downs.
        dropped,
        /// Socket faults, all kinds.
        faults,
        /// Faults from I/O errors or EOF.
        faults_io,
        /// Faults from malformed input.
        faults_decode,
        /// Faults from failed handshakes.
        faults_handshake,
        /// Faults from timeouts (handshake, stall, idle).
        faults_timeout,
        /// Faults injected on purpose (socket failures, killed actors).
        faults_injected,
        /// Times a reader found a receive throttle exhausted and waited for it.
        throttle_waits,
        /// Connections accepted.
        accepts,
        /// Accepted connections refused (limit reached, or handshake refused).
        accept_refused,
        /// Session resets (RESETSESSION, restarted peers).
        session_resets,
        /// Sessions created (dialled or accepted).
        connections_created,
        /// Connects refused with BADAUTHORIZER (a method not allowed, a bad, expired or
        /// replayed cephx authorizer).
        bad_authorizers,
        /// Messages whose cephx signature did not verify (never delivered; the socket faults).
        bad_signatures,
        /// Messages a false ACK released before the peer had them, found out at the next SEQ
        /// exchange (v1 ACKs carry no CRC; see docs/semantics.md). Lost; should stay 0.
        lost_to_false_acks,
    }
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Counts a fault by its kind.
    pub fn fault(&self, kind: &str) {
        Self::add(&self.faults, 1);
        let c = match kind {
            "io" | "peer_closed" => &self.faults_io,
            "decode" | "sequence" => &self.faults_decode,
            "signature" => {
                Self::add(&self.bad_signatures, 1);
                &self.faults_decode
            }
            "handshake" | "wait" => &self.faults_handshake,
            "handshake_timeout" | "stalled" | "idle" => &self.faults_timeout,
            _ => &self.faults_injected,
        };
        Self::add(c, 1);
    }
}

/// A messenger's own counters, one set per shard thread (and one for work on no shard, such as
/// accepting), each on cache lines of its own. A connection counts into its shard's set, so
/// shard threads never write the same cache line; readers sum the sets.
#[derive(Debug)]
pub(crate) struct ShardedCounters {
    sets: Box<[PaddedCounters]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounters(Counters);

impl ShardedCounters {
    /// Sets for `shards` shard threads, plus the one for work on no shard.
    pub(crate) fn new(shards: usize) -> Self {
        ShardedCounters {
            sets: (0..=shards).map(|_| PaddedCounters::default()).collect(),
        }
    }

    /// The set that shard `shard`'s connections count into.
    pub(crate) fn shard(&self, shard: usize) -> &Counters {
        &self.sets[shard % (self.sets.len() - 1)].0
    }

    /// The set for work on no shard thread (the accepter).
    pub(crate) fn unsharded(&self) -> &Counters {
        &self.sets[self.sets.len() - 1].0
    }

    /// Every set back to zero.
    pub(crate) fn reset(&self) {
        for set in self.sets.iter() {
            set.0.reset();
        }
    }

    /// Every set, summed.
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let mut total = CountersSnapshot::default();
        for set in self.sets.iter() {
            total += set.0.snapshot();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_counters_sum_every_set() {
        let c = ShardedCounters::new(2);
        Counters::add(&c.shard(0).msgs_in, 3);
        Counters::add(&c.shard(1).msgs_in, 4);
        Counters::add(&c.unsharded().accepts, 1);
        let s = c.snapshot();
        assert_eq!((s.msgs_in, s.accepts), (7, 1));
        assert!(!std::ptr::eq(c.shard(0), c.shard(1)));
        assert!(!std::ptr::eq(c.shard(1), c.unsharded()));
    }
}
