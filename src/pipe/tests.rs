//! The machine alone: policies' verdicts, timers, and what a transmit holds. The races and
//! whole lifecycles between two machines are in tests/sim.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::entity::EntityAddr;
use crate::features::CEPH_FEATURES_ALL;
use crate::handshake::Established;
use crate::message::Message;
use crate::wire::{Frame, FrameDecoder, Timespec};

fn config(policy: Policy) -> PipeConfig {
    PipeConfig {
        policy,
        dialable: !policy.server,
        dial_first: true,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(15),
        ready_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(1),
        default_priority: None,
        crc_data: true,
        seed: 7,
        sign_messages: true,
    }
}

fn actions(m: &mut Machine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn dial_of(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Dial { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .expect("a dial")
}

/// A machine whose first dial opened at `now`.
fn open(policy: Policy, now: Instant) -> Machine {
    let mut m = Machine::new(config(policy));
    m.start();
    let attempt = dial_of(&actions(&mut m));
    let est = Established {
        peer_addr: "127.0.0.1:6800/2".parse::<EntityAddr>().unwrap(),
        my_addr: "127.0.0.1:40000/1".parse::<EntityAddr>().unwrap(),
        features: CEPH_FEATURES_ALL,
        connect_seq: 1,
        peer_global_seq: 1,
        global_seq: 1,
        lossy: policy.lossy,
        peer_acked_seq: Some(0),
        session_key: None,
    };
    assert!(matches!(
        m.dialled(now, attempt, &est),
        Ok(Completion::Opened { .. })
    ));
    actions(&mut m);
    m
}

fn message(n: u8) -> Message {
    Message::new(0xEF00, Bytes::copy_from_slice(&[n]))
}

#[test]
fn a_lossy_session_whose_socket_fails_is_reset_and_closed() {
    let now = Instant::now();
    let mut m = open(Policy::lossy_client(0), now);
    m.send(message(1));
    m.fault(now, FaultKind::Other);
    let done = actions(&mut m);
    assert_eq!(
        done,
        [
            Action::DropSocket { graceful: false },
            Action::Event(PipeEvent::Reset),
            Action::Closed
        ]
    );
    assert!(m.is_closed());
    assert_eq!(m.send(message(2)), Queued::Dropped);
}

#[test]
fn a_lossless_client_redials_at_once_after_an_open_socket_fails_and_backs_off_after_a_failed_dial()
{
    let now = Instant::now();
    let mut m = open(Policy::lossless_client(0), now);
    m.fault(now, FaultKind::Other);
    let redial = actions(&mut m);
    let attempt = dial_of(&redial);
    assert!(matches!(
        redial[..],
        [
            Action::DropSocket { .. },
            Action::Dial { connect_seq: 2, .. }
        ]
    ));
    // Failed dials wait 200 ms, then 400 ms, doubling.
    let mut at = now;
    let mut attempt = attempt;
    for wait in [200, 400, 800] {
        assert!(m.handshake_failed(attempt));
        m.fault(at, FaultKind::Other);
        assert_eq!(m.state(), StateName::Backoff);
        assert_eq!(m.poll_timeout(), Some(at + Duration::from_millis(wait)));
        at += Duration::from_millis(wait);
        m.handle_timeout(at);
        attempt = dial_of(&actions(&mut m));
    }
}

#[test]
fn a_server_keeps_its_session_in_standby_when_the_socket_fails() {
    let now = Instant::now();
    let mut m = open(Policy::stateful_server(0), now);
    m.send(message(1));
    m.fault(now, FaultKind::Other);
    assert_eq!(actions(&mut m), [Action::DropSocket { graceful: false }]);
    assert_eq!(m.state(), StateName::Standby);
    assert!(
        m.session().has_outstanding(),
        "the message waits for the client"
    );
}

#[test]
fn a_transmit_writes_messages_then_the_ack_then_keepalives() {
    let now = Instant::now();
    let mut m = open(Policy::lossless_peer(0), now);
    m.send(message(1));
    m.send(message(2));
    assert_eq!(m.receive(1), crate::session::Receive::Accept { gap: false });
    m.send_keepalive();
    m.handle_keepalive2(Timespec { sec: 5, nsec: 6 });
    assert!(m.wants_transmit());
    let mut out = Vec::new();
    let sent = m.poll_transmit(10, || Timespec { sec: 1, nsec: 2 }, &mut out);
    assert_eq!(
        sent,
        Transmitted {
            msgs: 2,
            acks: 1,
            keepalives: 2
        }
    );
    let mut bytes = BytesMut::new();
    out.iter().for_each(|c| bytes.extend_from_slice(c));
    let mut dec = FrameDecoder::new(true, Default::default());
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut bytes).unwrap() {
        frames.push(f);
    }
    assert!(matches!(frames[0], Frame::Message(ref m) if m.seq == 1));
    assert!(matches!(frames[1], Frame::Message(ref m) if m.seq == 2));
    assert_eq!(frames[2], Frame::Ack(1));
    assert_eq!(frames[3], Frame::Keepalive2(Timespec { sec: 1, nsec: 2 }));
    assert_eq!(
        frames[4],
        Frame::Keepalive2Ack(Timespec { sec: 5, nsec: 6 })
    );
    assert!(!m.wants_transmit());
}

#[test]
fn keepalives_fall_due_every_interval_while_open_and_stop_with_the_socket() {
    let now = Instant::now();
    let mut m = open(Policy::lossless_peer(0), now);
    let second = now + Duration::from_secs(1);
    assert_eq!(m.poll_timeout(), Some(second));
    m.handle_timeout(second);
    assert!(m.wants_transmit());
    assert_eq!(m.poll_timeout(), Some(second + Duration::from_secs(1)));
    m.fault(second, FaultKind::Other);
    actions(&mut m);
    assert!(
        m.state() == StateName::Standby,
        "nothing queued: it stands by"
    );
    assert_eq!(
        m.poll_timeout(),
        None,
        "no keepalive timer without a socket"
    );
}

#[test]
fn a_timer_reported_early_late_or_after_its_cancel_changes_nothing() {
    let now = Instant::now();
    let mut m = open(Policy::lossless_client(0), now);
    m.mark_down(false);
    actions(&mut m);
    for t in [now, now + Duration::from_secs(3600)] {
        m.handle_timeout(t);
        assert!(actions(&mut m).is_empty());
    }
    let mut m = open(Policy::lossless_client(0), now);
    m.handle_timeout(now + Duration::from_millis(999));
    assert!(!m.wants_transmit(), "a keepalive before its time");
}

#[test]
fn a_graceful_mark_down_lets_the_socket_finish_then_closes() {
    let now = Instant::now();
    let mut m = open(Policy::lossless_client(0), now);
    m.mark_down(true);
    assert_eq!(
        actions(&mut m),
        [Action::DropSocket { graceful: true }, Action::Closed]
    );
    m.mark_down(true);
    assert!(actions(&mut m).is_empty(), "once");
}

#[test]
fn a_reset_session_restarts_out_seq_from_the_seed_under_msg_auth() {
    let now = Instant::now();
    let out_seq_after_reset = || {
        let mut m = open(Policy::lossless_client(0), now);
        m.send(message(1));
        m.fault(now, FaultKind::Other);
        let attempt = dial_of(&actions(&mut m));
        assert!(m.peer_reset_session(attempt));
        assert!(actions(&mut m).contains(&Action::Event(PipeEvent::RemoteReset)));
        assert_eq!(m.connect_seq(), 0);
        assert!(!m.session().has_outstanding());
        m.session().out_seq()
    };
    let first = out_seq_after_reset();
    assert_eq!(
        first,
        out_seq_after_reset(),
        "the same seed, the same out_seq"
    );
    assert!(first < 0x7fff_ffff);
}

#[test]
fn a_send_in_standby_dials_when_the_peer_is_dialable_and_waits_otherwise() {
    let now = Instant::now();
    let mut m = open(Policy::lossless_peer(0), now);
    m.fault(now, FaultKind::Other);
    actions(&mut m);
    assert_eq!(m.state(), StateName::Standby);
    assert_eq!(m.send(message(1)), Queued::Held);
    dial_of(&actions(&mut m));
    let mut server = open(Policy::stateful_server(0), now);
    server.fault(now, FaultKind::Other);
    actions(&mut server);
    assert_eq!(server.send(message(1)), Queued::Held);
    assert!(actions(&mut server).is_empty(), "a server never dials");
}

/// msgr2's cookie rules come before the session rules: a SESSION_RECONNECT resumes only the
/// session whose cookies it names.
#[test]
fn a_msgr2_reconnect_resumes_only_the_session_its_cookies_name() {
    use crate::handshake::{AcceptContext, ConnectRequest, Decision};
    use crate::pipe::{V2Connect, V2Decision};
    use crate::wire::ConnectMsg;
    let now = Instant::now();
    let policy = Policy::stateful_server(0);
    let mut m = open(Policy::lossless_peer(0), now);
    let req = ConnectRequest {
        connect: ConnectMsg {
            features: CEPH_FEATURES_ALL,
            host_type: crate::EntityType::OSD,
            global_seq: 9,
            connect_seq: 5,
            protocol_version: 10,
            authorizer_protocol: 0,
            authorizer_len: 0,
            flags: 0,
        },
        authorizer: Default::default(),
        peer_addr: "127.0.0.1:6800/2".parse().unwrap(),
        auth: Default::default(),
    };
    let ctx = AcceptContext {
        policy,
        protocol_version: 10,
        authorizer_valid: true,
        my_addr: "127.0.0.1:40000/1".parse().unwrap(),
        existing: None,
    };
    let reconnect = |client_cookie, server_cookie| V2Connect {
        client_cookie,
        server_cookie,
        reconnect: true,
    };
    // No msgr2 session to resume yet.
    assert_eq!(
        m.decide_accept_v2(now, &req, ctx, reconnect(1, 2)),
        V2Decision::Reset { full: true }
    );
    m.v2_opened((1, 0));
    assert_eq!(
        m.decide_accept_v2(now, &req, ctx, reconnect(1, 0)),
        V2Decision::Reset { full: false },
        "the server never gave the session a cookie"
    );
    m.v2_opened((1, 2));
    assert_eq!(
        m.decide_accept_v2(now, &req, ctx, reconnect(3, 2)),
        V2Decision::Reset {
            full: policy.resetcheck
        },
        "another incarnation of the client"
    );
    let d = m.decide_accept_v2(now, &req, ctx, reconnect(1, 2));
    assert!(
        matches!(d, V2Decision::Rules(Decision::Open { replace: true, .. })),
        "{d:?}"
    );
}
