//! Connection policies (spec §5): Ceph's eight presets, and what a fault means under each.

use std::time::Duration;

use crate::features::CEPH_FEATURES_ALL;

/// How a connection behaves when things go wrong, and which features it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Messages may be lost on a fault; the session ends instead of reconnecting.
    pub lossy: bool,
    /// This side never reconnects; it waits for the peer to come back.
    pub server: bool,
    /// When idle after a fault, go to STANDBY instead of reconnecting at once.
    pub standby: bool,
    /// Detect peer restarts (cs 0 against a live session) and answer RESETSESSION when state was lost.
    pub resetcheck: bool,
    /// A lossy server still looks up existing sessions by address (false for `stateless_server`).
    pub register_lossy_clients: bool,
    /// Features we offer.
    pub features_supported: u64,
    /// Features the peer must have.
    pub features_required: u64,
    /// Optional per-policy cap on received-but-undispatched bytes, per connection.
    pub throttle_bytes: Option<u64>,
    /// Optional per-policy cap on received-but-undispatched messages, per connection.
    pub throttle_messages: Option<u64>,
}

macro_rules! preset {
    ($(#[$doc:meta])* $name:ident: lossy $l:expr, server $s:expr, standby $sb:expr,
     resetcheck $r:expr, register $reg:expr) => {
        $(#[$doc])*
        pub const fn $name(features_required: u64) -> Policy {
            Policy {
                lossy: $l,
                server: $s,
                standby: $sb,
                resetcheck: $r,
                register_lossy_clients: $reg,
                features_supported: CEPH_FEATURES_ALL,
                features_required,
                throttle_bytes: None,
                throttle_messages: None,
            }
        }
    };
}

impl Policy {
    preset!(
        /// Ceph's `Policy()`: lossless, reconnecting, with resetcheck.
        default_policy: lossy false, server false, standby false, resetcheck true, register true);
    preset!(
        /// A server that keeps session state for lossless clients.
        stateful_server: lossy false, server true, standby true, resetcheck true, register true);
    preset!(
        /// A lossy server that still registers each client's session.
        stateless_registered_server: lossy true, server true, standby false, resetcheck false, register true);
    preset!(
        /// A lossy server that keeps nothing (the mon toward clients).
        stateless_server: lossy true, server true, standby false, resetcheck false, register false);
    preset!(
        /// Lossless between equals; either side reconnects.
        lossless_peer: lossy false, server false, standby true, resetcheck false, register true);
    preset!(
        /// Lossless peer that also detects peer restarts.
        lossless_peer_reuse: lossy false, server false, standby true, resetcheck true, register true);
    preset!(
        /// A client that gives up its session on any fault.
        lossy_client: lossy true, server false, standby false, resetcheck false, register true);
    preset!(
        /// A client that reconnects and replays.
        lossless_client: lossy false, server false, standby false, resetcheck true, register true);

    /// The preset names accepted by [`Policy::preset`].
    pub const PRESETS: [&'static str; 8] = [
        "default",
        "stateful_server",
        "stateless_registered_server",
        "stateless_server",
        "lossless_peer",
        "lossless_peer_reuse",
        "lossy_client",
        "lossless_client",
    ];

    /// A preset by its Ceph name, with no required features.
    pub fn preset(name: &str) -> Option<Policy> {
        Some(match name {
            "default" => Self::default_policy(0),
            "stateful_server" => Self::stateful_server(0),
            "stateless_registered_server" => Self::stateless_registered_server(0),
            "stateless_server" => Self::stateless_server(0),
            "lossless_peer" => Self::lossless_peer(0),
            "lossless_peer_reuse" => Self::lossless_peer_reuse(0),
            "lossy_client" => Self::lossy_client(0),
            "lossless_client" => Self::lossless_client(0),
            _ => return None,
        })
    }

    /// The acceptor skips all session lookup (spec §2.6 step 6).
    pub fn skips_session_lookup(&self) -> bool {
        self.server && self.lossy && !self.register_lossy_clients
    }

    /// Builder: set per-connection receive throttles.
    pub fn with_throttles(mut self, bytes: Option<u64>, messages: Option<u64>) -> Self {
        self.throttle_bytes = bytes;
        self.throttle_messages = messages;
        self
    }

    /// What to do after a socket fault (spec §5 `fault()`).
    pub fn on_fault(&self, f: FaultContext) -> FaultAction {
        if self.lossy {
            return FaultAction::MarkDown;
        }
        // An idle lossless session with nothing to say just waits for the next send.
        if f.idle && !f.has_queued {
            return FaultAction::Standby;
        }
        if !f.was_open && f.accepted && !f.has_queued {
            // A half-done accept on a session that exists keeps the session.
            return if f.session_established {
                FaultAction::Standby
            } else {
                FaultAction::Close
            };
        }
        match self.on_fault_lossless(f) {
            // Without the peer's listening address there is nobody to dial: wait for it.
            FaultAction::Reconnect(_) if f.peer_undialable => FaultAction::Standby,
            action => action,
        }
    }

    fn on_fault_lossless(&self, f: FaultContext) -> FaultAction {
        if f.was_open && self.server {
            return FaultAction::Standby;
        }
        if self.standby && !f.has_queued && !f.in_wait {
            return FaultAction::Standby;
        }
        if self.server {
            // A server never dials; it waits for the peer.
            return FaultAction::Standby;
        }
        if f.in_wait {
            return FaultAction::Reconnect(ReconnectKind::AfterWait);
        }
        if f.was_open {
            FaultAction::Reconnect(ReconnectKind::Immediate)
        } else {
            FaultAction::Reconnect(ReconnectKind::Backoff)
        }
    }
}

/// What the connection was doing when it faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultContext {
    /// The session had reached READY on this socket.
    pub was_open: bool,
    /// This side accepted the socket (rather than dialled it).
    pub accepted: bool,
    /// Messages are queued or unacked.
    pub has_queued: bool,
    /// We were told to WAIT (lost a connection race).
    pub in_wait: bool,
    /// The fault was the idle timeout (nothing received for `ms_connection_idle_timeout`).
    pub idle: bool,
    /// Some handshake of this session completed (it is more than this one socket).
    pub session_established: bool,
    /// We do not know the peer's listening address (it connected to us from an unbound socket).
    pub peer_undialable: bool,
}

/// The policy's verdict on a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Lossy: the session is gone; tell the dispatcher (ms_handle_reset).
    MarkDown,
    /// Keep the session, but stay disconnected until there is something to send or the peer returns.
    Standby,
    /// Dial again (new global_seq); how soon is given.
    Reconnect(ReconnectKind),
    /// An accepted socket that never opened a session: just close it.
    Close,
}

/// How soon to redial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectKind {
    /// The open connection broke: reconnect now with connect_seq + 1.
    Immediate,
    /// A connect attempt failed: wait the current backoff, then double it.
    Backoff,
    /// We lost a race: wait `ms_max_backoff`.
    AfterWait,
}

/// Reconnect delays: `initial`, doubling up to `max` (0.2 s, 0.4 s, ... 15 s by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: Duration::ZERO,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        self.current = if self.current.is_zero() {
            self.initial
        } else {
            (self.current * 2).min(self.max)
        };
        self.current
    }

    /// The maximum delay (used after WAIT).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// New limits (a run-time configuration change); a delay already past the new maximum
    /// comes down to it.
    pub fn set_limits(&mut self, initial: Duration, max: Duration) {
        self.initial = initial;
        self.max = max;
        self.current = self.current.min(max);
    }

    /// Back to the initial delay (after a successful connect).
    pub fn reset(&mut self) {
        self.current = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_table_matches_policy_h() {
        let rows = [
            ("default", false, false, false, true, true),
            ("stateful_server", false, true, true, true, true),
            (
                "stateless_registered_server",
                true,
                true,
                false,
                false,
                true,
            ),
            ("stateless_server", true, true, false, false, false),
            ("lossless_peer", false, false, true, false, true),
            ("lossless_peer_reuse", false, false, true, true, true),
            ("lossy_client", true, false, false, false, true),
            ("lossless_client", false, false, false, true, true),
        ];
        for (name, l, s, sb, r, reg) in rows {
            let p = Policy::preset(name).unwrap();
            assert_eq!(
                (
                    p.lossy,
                    p.server,
                    p.standby,
                    p.resetcheck,
                    p.register_lossy_clients
                ),
                (l, s, sb, r, reg),
                "{name}"
            );
            assert_eq!(p.features_supported, CEPH_FEATURES_ALL);
        }
        assert!(Policy::stateless_server(0).skips_session_lookup());
        assert!(!Policy::stateless_registered_server(0).skips_session_lookup());
    }

    #[test]
    fn backoff_doubles_to_max_like_the_mon_log() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
        let got: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, [200, 400, 800, 1600, 3200, 6400, 12800, 15000, 15000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn fault_actions_per_policy() {
        let open = FaultContext {
            was_open: true,
            has_queued: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::lossy_client(0).on_fault(open),
            FaultAction::MarkDown
        );
        assert_eq!(
            Policy::lossless_client(0).on_fault(open),
            FaultAction::Reconnect(ReconnectKind::Immediate)
        );
        assert_eq!(
            Policy::stateful_server(0).on_fault(open),
            FaultAction::Standby
        );
        let idle = FaultContext {
            was_open: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::lossless_peer(0).on_fault(idle),
            FaultAction::Standby
        );
        let connecting = FaultContext::default();
        assert_eq!(
            Policy::lossless_client(0).on_fault(connecting),
            FaultAction::Reconnect(ReconnectKind::Backoff)
        );
        let waiting = FaultContext {
            in_wait: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::lossless_peer(0).on_fault(waiting),
            FaultAction::Reconnect(ReconnectKind::AfterWait)
        );
        let accepted = FaultContext {
            accepted: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::stateful_server(0).on_fault(accepted),
            FaultAction::Close
        );
        let half_done_accept_of_a_live_session = FaultContext {
            accepted: true,
            session_established: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::stateful_server(0).on_fault(half_done_accept_of_a_live_session),
            FaultAction::Standby
        );
        let idle_timeout = FaultContext {
            was_open: true,
            idle: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::lossless_client(0).on_fault(idle_timeout),
            FaultAction::Standby
        );
        assert_eq!(
            Policy::lossy_client(0).on_fault(idle_timeout),
            FaultAction::MarkDown
        );
        let undialable = FaultContext {
            was_open: true,
            has_queued: true,
            accepted: true,
            peer_undialable: true,
            ..Default::default()
        };
        assert_eq!(
            Policy::lossless_peer(0).on_fault(undialable),
            FaultAction::Standby
        );
    }
}
