//! The races the long cluster runs found, each replayed as one deterministic interleaving of
//! the shipped machine's inputs (what the Pipe actor feeds it: decisions, hand-overs, dial and
//! accept outcomes, faults, timer expiries). Each test names the commit that fixed the race in
//! the actor; each fails when that fix is taken out of `msgr::pipe` (the random sim in
//! main.rs finds most of them too: docs/testing.md lists how many seeds it took).

use std::time::{Duration, Instant};

use bytes::Bytes;
use msgr::features::CEPH_FEATURES_ALL;
use msgr::handshake::{
    AcceptContext, Accepted, ConnectRequest, Decision, Established, CEPH_OSD_PROTOCOL,
};
use msgr::pipe::{
    Action, Adoption, Completion, FaultKind, Machine, PipeConfig, PipeEvent, StateName,
};
use msgr::wire::ConnectMsg;
use msgr::{EntityAddr, EntityType, Message, Policy};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Our address sorts above the peer's (the nonce counts first), so the peer wins connection
/// races (spec §2.8).
fn me() -> EntityAddr {
    "127.0.0.1:40000/99".parse().unwrap()
}

fn peer() -> EntityAddr {
    "127.0.0.1:6800/22".parse().unwrap()
}

/// One machine on a virtual clock.
struct Script {
    m: Machine,
    t0: Instant,
    now: Duration,
    /// The socket generation of the last decision (the accept task hands it back).
    decided_at: u64,
}

impl Script {
    fn new(policy: Policy, dial_first: bool) -> Self {
        let mut m = Machine::new(PipeConfig {
            policy,
            dialable: !policy.server,
            dial_first,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            ready_timeout: READY_TIMEOUT,
            keepalive_interval: Duration::ZERO,
            default_priority: None,
            crc_data: true,
            seed: 1,
            sign_messages: true,
        });
        m.start();
        Script {
            m,
            t0: Instant::now(),
            now: Duration::ZERO,
            decided_at: 0,
        }
    }

    /// A lossless peer that dials first.
    fn dialling_peer() -> Self {
        Script::new(Policy::lossless_peer(0), true)
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.m.poll_action()).collect()
    }

    /// Time passes and the machine's timers fire.
    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        let at = self.at();
        self.m.handle_timeout(at);
        self.actions()
    }

    fn send(&mut self) {
        self.m
            .send(Message::new(0xEF00, Bytes::from_static(b"payload!")));
    }

    /// The dial the machine asked for; panics if it asked for none.
    fn expect_dial(actions: &[Action]) -> (u64, u32) {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Dial {
                    attempt,
                    connect_seq,
                    ..
                } => Some((*attempt, *connect_seq)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no dial in {actions:?}"))
    }

    /// The dial numbered `attempt` reaches READY.
    fn dialled(&mut self, attempt: u64, connect_seq: u32) -> Completion {
        let at = self.at();
        self.m
            .dialled(at, attempt, &established(connect_seq + 1))
            .expect("a truthful peer")
    }

    /// Dials and opens; returns the socket generation.
    fn open_by_dial(&mut self, actions: &[Action]) -> u64 {
        let (attempt, cs) = Script::expect_dial(actions);
        match self.dialled(attempt, cs) {
            Completion::Opened { gen } => gen,
            Completion::Stale => panic!("the only dial was stale"),
        }
    }

    fn decide(&mut self, req: &ConnectRequest) -> Decision {
        let at = self.at();
        let policy = Policy::lossless_peer(0);
        let decision = self.m.decide_accept(at, req, accept_context(policy));
        self.decided_at = self.m.generation();
        decision
    }
}

fn accept_context(policy: Policy) -> AcceptContext {
    AcceptContext {
        policy,
        protocol_version: CEPH_OSD_PROTOCOL,
        authorizer_valid: true,
        my_addr: me(),
        existing: None,
    }
}

/// A connect from the peer (an OSD, as we are).
fn connect(connect_seq: u32, global_seq: u32) -> ConnectRequest {
    ConnectRequest {
        connect: ConnectMsg {
            features: CEPH_FEATURES_ALL,
            host_type: EntityType::OSD,
            global_seq,
            connect_seq,
            protocol_version: CEPH_OSD_PROTOCOL,
            authorizer_protocol: 0,
            authorizer_len: 0,
            flags: 0,
        },
        authorizer: Bytes::new(),
        peer_addr: peer(),
        auth: Default::default(),
    }
}

fn established(connect_seq: u32) -> Established {
    Established {
        peer_addr: peer(),
        my_addr: me(),
        features: CEPH_FEATURES_ALL,
        connect_seq,
        peer_global_seq: 1,
        global_seq: 1,
        lossy: false,
        peer_acked_seq: Some(0),
        session_key: None,
    }
}

fn accepted(connect_seq: u32) -> Accepted {
    Accepted {
        peer_addr: peer(),
        peer_type: EntityType::OSD,
        features: CEPH_FEATURES_ALL,
        connect_seq,
        peer_global_seq: 9,
        lossy: false,
        peer_acked_seq: Some(0),
        restart_in_seq: false,
        session_key: None,
    }
}

/// A dialling peer, open, whose peer's connect (cs 5) was just decided Open: a replacement
/// whose socket is still to be handed over.
fn open_with_a_replacement_decided() -> (Script, ConnectRequest, Decision) {
    let mut s = Script::dialling_peer();
    let first = s.actions();
    s.open_by_dial(&first);
    s.actions();
    let req = connect(5, 9);
    let decision = s.decide(&req);
    assert!(matches!(decision, Decision::Open { .. }), "{decision:?}");
    (s, req, decision)
}

fn opens(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::OpenSocket { .. }))
        .count()
}

/// 59cab31: an accept decided while the session was open, handed over after the session's
/// socket failed and it started to dial again. The hand-over must drop that dial, and the dial's
/// late success must not open a second socket (which stranded the first socket's unacked
/// messages: the peer saw a gap).
#[test]
fn a_hand_over_during_a_redial_drops_the_dial_and_its_late_success_opens_nothing() {
    let (mut s, req, decision) = open_with_a_replacement_decided();
    s.send();
    s.m.fault(s.at(), FaultKind::Other);
    let redial = s.actions();
    let (dial_attempt, dial_cs) = Script::expect_dial(&redial);
    let Adoption::Finish { attempt, .. } = s.m.adopt(&req, decision, s.decided_at) else {
        panic!("the hand-over was refused");
    };
    assert!(
        s.actions().contains(&Action::CancelHandshake),
        "the dial in progress was not dropped"
    );
    assert_eq!(s.dialled(dial_attempt, dial_cs), Completion::Stale);
    let at = s.at();
    let done = s.m.accepted(at, attempt, &accepted(6)).unwrap();
    assert!(matches!(done, Completion::Opened { .. }));
    assert_eq!(opens(&s.actions()), 1);
}

/// 308c1ac: an Open decision whose socket never comes. The session must give it up after the
/// ready timeout and dial again (before, it waited for good, answering the peer's every connect
/// with RETRY_GLOBAL); and the backoff timer the decision cancelled must not dial when it fires.
#[test]
fn an_open_decision_whose_socket_never_comes_is_given_up_and_the_session_dials_again() {
    let mut s = Script::dialling_peer();
    let first = s.actions();
    let (attempt, _) = Script::expect_dial(&first);
    s.send();
    assert!(s.m.handshake_failed(attempt));
    s.m.fault(s.at(), FaultKind::Other);
    s.actions();
    assert_eq!(s.m.state(), StateName::Backoff);
    let decision = s.decide(&connect(0, 9));
    assert!(matches!(decision, Decision::Open { .. }), "{decision:?}");
    assert_eq!(s.m.state(), StateName::Replacing);
    // The cancelled backoff (200 ms) passes: no dial.
    let after_backoff = s.advance(Duration::from_millis(300));
    assert!(
        !after_backoff
            .iter()
            .any(|a| matches!(a, Action::Dial { .. })),
        "a cancelled backoff dialled: {after_backoff:?}"
    );
    // The ready timeout passes: the decision is given up as a failed accept.
    let overdue = s.advance(READY_TIMEOUT);
    assert!(
        overdue.contains(&Action::Fail(msgr::pipe::Failure::AdoptOverdue)),
        "{overdue:?}"
    );
    s.m.fault(s.at(), FaultKind::Other);
    let mut later = s.actions();
    later.extend(s.advance(Duration::from_secs(20)));
    Script::expect_dial(&later);
}

/// 6baab30: a session made for an accept, whose Open decision's socket never came, has
/// nothing to keep: it must close (and leave the registry), not stand by for good.
#[test]
fn a_session_made_for_an_accept_whose_socket_never_came_closes() {
    let mut s = Script::new(Policy::stateful_server(0), false);
    let at = s.at();
    let decision = s.m.decide_accept(
        at,
        &connect(0, 9),
        accept_context(Policy::stateful_server(0)),
    );
    assert!(matches!(decision, Decision::Open { .. }), "{decision:?}");
    let overdue = s.advance(READY_TIMEOUT);
    assert!(overdue.contains(&Action::Fail(msgr::pipe::Failure::AdoptOverdue)));
    s.m.fault(s.at(), FaultKind::Other);
    assert!(s.actions().contains(&Action::Closed));
    assert!(s.m.is_closed());
}

/// 6049a5c: dials are numbered. A dial cancelled by an accept decision that completes after
/// the session began a newer dial must not open a socket (the state alone, Connecting, let it
/// through).
#[test]
fn a_cancelled_dial_that_completes_during_a_newer_dial_opens_nothing() {
    let mut s = Script::dialling_peer();
    let first = s.actions();
    let (old_attempt, old_cs) = Script::expect_dial(&first);
    s.send();
    s.decide(&connect(0, 9));
    assert!(s.actions().contains(&Action::CancelHandshake));
    s.advance(READY_TIMEOUT);
    s.m.fault(s.at(), FaultKind::Other);
    let mut redial = s.actions();
    redial.extend(s.advance(Duration::from_secs(1)));
    let (new_attempt, _) = Script::expect_dial(&redial);
    assert_ne!(new_attempt, old_attempt);
    assert_eq!(s.m.state(), StateName::Connecting);
    assert_eq!(s.dialled(old_attempt, old_cs), Completion::Stale);
    assert_eq!(opens(&s.actions()), 0);
}

/// 86cf161: an accepted socket handed over after the session reopened on a newer socket of
/// its own is stale (the peer gave up the dial behind it when it accepted ours): it must be
/// dropped, not adopted in place of the live socket.
#[test]
fn a_hand_over_the_session_outgrew_is_dropped_and_the_live_socket_stays() {
    let (mut s, req, decision) = open_with_a_replacement_decided();
    s.send();
    s.m.fault(s.at(), FaultKind::Other);
    let redial = s.actions();
    let gen = s.open_by_dial(&redial);
    s.actions();
    assert_eq!(s.m.adopt(&req, decision, s.decided_at), Adoption::Outgrown);
    assert!(s.actions().is_empty(), "the live socket was touched");
    assert!(s.m.is_current_socket(gen));
}

/// 9cf73fe: a closed session answers a connect (Ceph's "open a new one") but takes nothing:
/// it must not enter Replacing (that overwrote Closed, so a late hand-over revived a closed
/// session, and the hand-over deadline fired for nothing).
#[test]
fn a_closed_session_answers_a_connect_but_waits_for_nothing_and_takes_no_socket() {
    let mut s = Script::dialling_peer();
    let first = s.actions();
    s.open_by_dial(&first);
    s.m.mark_down(false);
    assert!(s.actions().contains(&Action::Closed));
    let req = connect(0, 9);
    let decision = s.decide(&req);
    assert!(matches!(decision, Decision::Open { .. }), "{decision:?}");
    assert!(s.m.is_closed());
    assert_eq!(s.m.poll_timeout(), None);
    assert_eq!(s.m.adopt(&req, decision, s.decided_at), Adoption::Refused);
    assert!(s.m.is_closed());
}

/// Found by this sim (seed 57 of the lossless client / stateful server pair): a server's
/// session made for an accept sent its open reply, and the socket failed before the client's
/// SEQ answer. The client holds the session open; closing ours made its reconnect meet
/// RESETSESSION, and the client dropped everything it had queued. The session must be kept.
#[test]
fn an_accept_that_fails_after_its_open_reply_keeps_the_session_for_the_peer() {
    let server = Policy::stateful_server(0);
    let mut s = Script::new(server, false);
    let req = connect(0, 9);
    let at = s.at();
    let decision = s.m.decide_accept(at, &req, accept_context(server));
    s.decided_at = s.m.generation();
    let Adoption::Finish { attempt, .. } = s.m.adopt(&req, decision, s.decided_at) else {
        panic!("refused");
    };
    assert!(s.m.handshake_failed(attempt));
    s.m.fault(s.at(), FaultKind::Other);
    assert!(
        !s.actions().contains(&Action::Closed),
        "the session was closed"
    );
    assert_eq!(s.m.state(), StateName::Standby);
    // The client reconnects with the connect_seq our reply gave it, plus one.
    let at = s.at();
    let again =
        s.m.decide_accept(at, &connect(2, 10), accept_context(server));
    assert!(
        matches!(
            again,
            Decision::Open {
                replace: true,
                reset_existing: false,
                ..
            }
        ),
        "{again:?}"
    );
    assert!(!s.actions().contains(&Action::Event(PipeEvent::RemoteReset)));
}

/// Found by this sim (seed 199 of the lossless client / stateful server pair, with restarts):
/// the server restarted and answered our reconnect with RESETSESSION, and the dial then failed
/// before READY. The session heard of the reset only at READY, so the next dial went out with
/// the old connect_seq and replayed the old session's messages to the server's new session,
/// which took them as new: duplicates. The reset applies when RESETSESSION arrives.
#[test]
fn a_resetsession_on_a_dial_that_then_fails_still_resets_the_session() {
    let mut s = Script::new(Policy::lossless_client(0), true);
    let first = s.actions();
    s.open_by_dial(&first);
    s.actions();
    s.send();
    let mut out = Vec::new();
    s.m.poll_transmit(10, || msgr::wire::Timespec { sec: 0, nsec: 0 }, &mut out);
    assert_eq!(s.m.session().unacked_len(), 1);
    s.m.fault(s.at(), FaultKind::Other);
    let redial = s.actions();
    let (attempt, _) = Script::expect_dial(&redial);
    assert!(s.m.peer_reset_session(attempt));
    assert!(s.actions().contains(&Action::Event(PipeEvent::RemoteReset)));
    assert!(s.m.handshake_failed(attempt));
    s.m.fault(s.at(), FaultKind::Other);
    let mut next = s.actions();
    next.extend(s.advance(Duration::from_secs(1)));
    let (_, connect_seq) = Script::expect_dial(&next);
    assert_eq!(connect_seq, 0, "the next dial still claims the old session");
    assert_eq!(
        s.m.session().unacked_len(),
        0,
        "the old session's messages would be replayed"
    );
}

/// Found by this sim (seed 23,705 of the lossless client / stateful server pair, once late
/// cancels were reaped after the next mailbox message): a hand-over decided long ago (the
/// client's old connect, cs 0, "a restarted peer") arrived after the session had opened again
/// with the client's newer dial and stood by. The rule of 86cf161 refused such a hand-over only
/// while the session was open, so it was adopted: the session reset under the client's newer
/// incarnation, whose replay then arrived as new messages (duplicates). A decision is good for
/// the socket generation it was made in, whatever the state.
#[test]
fn a_hand_over_decided_before_the_session_reopened_is_refused_whatever_the_state() {
    let server = Policy::stateful_server(0);
    let mut s = Script::new(server, false);
    let decide = |s: &mut Script, req: &ConnectRequest| {
        let at = s.at();
        let d = s.m.decide_accept(at, req, accept_context(server));
        s.decided_at = s.m.generation();
        d
    };
    // The client's session opens, and its socket fails: the server stands by.
    let first = connect(0, 9);
    let decision = decide(&mut s, &first);
    let Adoption::Finish { attempt, .. } = s.m.adopt(&first, decision, s.decided_at) else {
        panic!("refused");
    };
    let at = s.at();
    s.m.accepted(at, attempt, &accepted(1)).unwrap();
    s.m.fault(s.at(), FaultKind::Other);
    s.actions();
    // A connect with cs 0 (the client's old incarnation) is decided as a restarted peer ...
    let stale = connect(0, 20);
    let stale_decision = decide(&mut s, &stale);
    let stale_at = s.decided_at;
    assert!(
        matches!(
            stale_decision,
            Decision::Open {
                reset_existing: true,
                ..
            }
        ),
        "{stale_decision:?}"
    );
    // ... its socket does not come; the session gives it up and reopens with a newer connect.
    s.advance(READY_TIMEOUT);
    s.m.fault(s.at(), FaultKind::Other);
    s.actions();
    let newer = connect(2, 30);
    let decision = decide(&mut s, &newer);
    let Adoption::Finish { attempt, .. } = s.m.adopt(&newer, decision, s.decided_at) else {
        panic!("refused");
    };
    let at = s.at();
    s.m.accepted(at, attempt, &accepted(3)).unwrap();
    s.m.fault(s.at(), FaultKind::Other);
    s.send();
    s.actions();
    assert_eq!(s.m.state(), StateName::Standby);
    // The old hand-over arrives at last: refused, the session untouched.
    assert_eq!(
        s.m.adopt(&stale, stale_decision, stale_at),
        Adoption::Outgrown
    );
    assert!(!s.actions().contains(&Action::Event(PipeEvent::RemoteReset)));
    assert!(
        s.m.session().has_outstanding(),
        "the queued message is still there"
    );
    assert_eq!(s.m.connect_seq(), 3);
}
