//! Connector and acceptor driven against each other in memory, through every reply tag.

use bytes::BytesMut;

use super::acceptor::ReplyContext;
use super::*;
use crate::entity::EntityAddr;
use crate::features::{CEPH_FEATURES_ALL, RECONNECT_SEQ};
use crate::policy::Policy;
use crate::wire::{Tag, BANNER};

fn client_params() -> ConnectorParams {
    ConnectorParams {
        my_addr: EntityAddr::blank(77),
        my_type: EntityType::CLIENT,
        peer_addr: "127.0.0.1:6800/5".parse().unwrap(),
        check_peer_nonce: true,
        policy: Policy::lossless_client(0),
        global_seq: 1,
        connect_seq: 0,
        in_seq: 0,
        protocol_version: protocol_version(EntityType::CLIENT, EntityType::OSD, true),
        authorizer: None,
        cephx: None,
        learn_addr: true,
    }
}

struct Pair {
    conn: Connector,
    acc: Acceptor,
    to_acc: BytesMut,
    to_conn: BytesMut,
}

impl Pair {
    fn new(p: ConnectorParams) -> Self {
        let mut conn = Connector::new(p);
        let mut acc = Acceptor::new(
            "127.0.0.1:6800/5".parse().unwrap(),
            "127.0.0.1:41000".parse().unwrap(),
        );
        let mut to_acc = BytesMut::new();
        let mut to_conn = BytesMut::new();
        to_acc.extend_from_slice(&conn.take_output().unwrap());
        to_conn.extend_from_slice(&acc.take_output().unwrap());
        Pair {
            conn,
            acc,
            to_acc,
            to_conn,
        }
    }

    /// Runs the acceptor until it has a connect request.
    fn acceptor_connect(&mut self) -> ConnectRequest {
        let ev = self.conn.handle_input(&mut self.to_conn).unwrap();
        assert_eq!(ev, None);
        self.to_acc
            .extend_from_slice(&self.conn.take_output().unwrap());
        match self.acc.handle_input(&mut self.to_acc).unwrap() {
            Some(AcceptorEvent::Connect(req)) => req,
            other => panic!("expected connect, got {other:?}"),
        }
    }

    fn respond(&mut self, d: Decision, in_seq: u64) -> Option<AcceptorEvent> {
        let ev = self
            .acc
            .respond(
                d,
                &ReplyContext {
                    policy: Policy::stateful_server(0),
                    protocol_version: 24,
                    server_global_seq: 9,
                    in_seq,
                },
            )
            .unwrap();
        self.to_conn
            .extend_from_slice(&self.acc.take_output().unwrap());
        ev
    }

    fn connector_step(&mut self) -> Result<Option<ConnectorEvent>, HandshakeError> {
        let ev = self.conn.handle_input(&mut self.to_conn);
        if let Some(out) = self.conn.take_output() {
            self.to_acc.extend_from_slice(&out);
        }
        ev
    }

    fn next_connect(&mut self) -> ConnectRequest {
        match self.acc.handle_input(&mut self.to_acc).unwrap() {
            Some(AcceptorEvent::Connect(req)) => req,
            other => panic!("expected connect, got {other:?}"),
        }
    }
}

fn open() -> Decision {
    Decision::Open {
        replace: false,
        reset_existing: false,
        peer_restarted: false,
    }
}

#[test]
fn fresh_session_opens_with_seq_exchange_both_ways() {
    let mut pair = Pair::new(client_params());
    let req = pair.acceptor_connect();
    assert_eq!(req.connect.features, CEPH_FEATURES_ALL);
    assert_eq!(
        (
            req.connect.global_seq,
            req.connect.connect_seq,
            req.connect.protocol_version
        ),
        (1, 0, 24)
    );
    assert_eq!(
        req.peer_addr.to_string(),
        "v1:127.0.0.1:0/77",
        "blank IP filled from the socket"
    );
    assert_eq!(
        pair.respond(open(), 4),
        None,
        "SEQ waits for the peer's in_seq"
    );
    let Some(ConnectorEvent::Ready(est)) = pair.connector_step().unwrap() else {
        panic!()
    };
    assert_eq!(est.peer_acked_seq, Some(4));
    assert_eq!(
        (est.connect_seq, est.peer_global_seq, est.lossy),
        (1, 9, false)
    );
    assert_eq!(
        est.my_addr.to_string(),
        "v1:127.0.0.1:0/77",
        "learned our IP from the server"
    );
    assert_eq!(est.peer_addr.nonce, 5);
    let Some(AcceptorEvent::Ready(acc)) = pair.acc.handle_input(&mut pair.to_acc).unwrap() else {
        panic!()
    };
    assert_eq!(acc.peer_acked_seq, Some(0));
    assert_eq!(acc.connect_seq, 1);
    assert!(!acc.restart_in_seq);
}

#[test]
fn without_reconnect_seq_the_reply_is_ready() {
    let mut p = client_params();
    p.policy.features_supported &= !RECONNECT_SEQ;
    let mut pair = Pair::new(p);
    pair.acceptor_connect();
    let Some(AcceptorEvent::Ready(acc)) = pair.respond(open(), 0) else {
        panic!()
    };
    assert!(acc.restart_in_seq);
    let Some(ConnectorEvent::Ready(est)) = pair.connector_step().unwrap() else {
        panic!()
    };
    assert_eq!(est.peer_acked_seq, None);
}

#[test]
fn refusals_surface_as_typed_errors_with_their_tag() {
    for (d, tag) in [
        (Decision::BadProtoVer, Tag::BadProtoVer),
        (Decision::Features, Tag::Features),
        (Decision::BadAuthorizer, Tag::BadAuthorizer),
    ] {
        let mut pair = Pair::new(client_params());
        pair.acceptor_connect();
        pair.respond(d, 0);
        let err = pair.connector_step().unwrap_err();
        assert_eq!(err.refusal_tag(), Some(tag), "{err}");
    }
}

#[test]
fn retry_session_resends_with_the_given_connect_seq() {
    let mut pair = Pair::new(client_params());
    pair.acceptor_connect();
    pair.respond(Decision::RetrySession { connect_seq: 7 }, 0);
    assert_eq!(pair.connector_step().unwrap(), None);
    let req = pair.next_connect();
    assert_eq!(req.connect.connect_seq, 7);
    pair.respond(open(), 0);
    let Some(ConnectorEvent::Ready(est)) = pair.connector_step().unwrap() else {
        panic!()
    };
    assert_eq!(est.connect_seq, 8);
}

#[test]
fn retry_global_asks_the_runtime_for_a_higher_global_seq() {
    let mut pair = Pair::new(client_params());
    pair.acceptor_connect();
    pair.respond(
        Decision::RetryGlobal {
            peer_global_seq: 40,
        },
        0,
    );
    assert_eq!(
        pair.connector_step().unwrap(),
        Some(ConnectorEvent::NeedGlobalSeq {
            peer_global_seq: 40
        })
    );
    assert!(pair.conn.retry_global(41).is_ok());
    pair.to_acc
        .extend_from_slice(&pair.conn.take_output().unwrap());
    assert_eq!(pair.next_connect().connect.global_seq, 41);
    assert!(
        pair.conn.retry_global(42).is_err(),
        "only after RETRY_GLOBAL"
    );
}

#[test]
fn reset_session_restarts_at_connect_seq_zero() {
    let mut p = client_params();
    p.connect_seq = 3;
    p.in_seq = 10;
    let mut pair = Pair::new(p);
    pair.acceptor_connect();
    pair.respond(Decision::ResetSession, 0);
    assert_eq!(
        pair.connector_step().unwrap(),
        Some(ConnectorEvent::SessionReset)
    );
    assert_eq!(pair.next_connect().connect.connect_seq, 0);
    pair.respond(open(), 0);
    let Some(ConnectorEvent::Ready(_)) = pair.connector_step().unwrap() else {
        panic!()
    };
    // After a reset we tell the server in_seq 0, not the old 10.
    let Some(AcceptorEvent::Ready(acc)) = pair.acc.handle_input(&mut pair.to_acc).unwrap() else {
        panic!()
    };
    assert_eq!(acc.peer_acked_seq, Some(0));
}

#[test]
fn wait_is_reported() {
    let mut pair = Pair::new(client_params());
    pair.acceptor_connect();
    pair.respond(Decision::Wait, 0);
    assert_eq!(pair.connector_step().unwrap(), Some(ConnectorEvent::Wait));
}

#[test]
fn connector_rejects_wrong_banner_and_wrong_peer() {
    let mut conn = Connector::new(client_params());
    let mut hello = BytesMut::from(&b"ceph v028"[..]);
    hello.extend_from_slice(&[0u8; 272]);
    assert!(matches!(
        conn.handle_input(&mut hello),
        Err(HandshakeError::Decode(_))
    ));

    let mut conn = Connector::new(client_params());
    let mut hello = BytesMut::from(&BANNER[..]);
    hello.extend_from_slice(
        &"127.0.0.1:6800/6"
            .parse::<EntityAddr>()
            .unwrap()
            .encode_legacy(),
    );
    hello.extend_from_slice(&[0u8; 136]);
    assert!(matches!(
        conn.handle_input(&mut hello),
        Err(HandshakeError::WrongPeer { .. })
    ));

    // Without a known nonce, any nonce is accepted and learned.
    let mut p = client_params();
    p.check_peer_nonce = false;
    let mut conn = Connector::new(p);
    let mut hello = BytesMut::from(&BANNER[..]);
    hello.extend_from_slice(
        &"127.0.0.1:6800/6"
            .parse::<EntityAddr>()
            .unwrap()
            .encode_legacy(),
    );
    hello.extend_from_slice(&[0u8; 136]);
    assert_eq!(conn.handle_input(&mut hello).unwrap(), None);
}

#[test]
fn acceptor_rejects_bad_banner_marker_and_huge_authorizer() {
    let mut acc = Acceptor::new(
        "127.0.0.1:6800/5".parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
    );
    let mut input = BytesMut::from(&b"ceph v027"[..]);
    let mut addr = EntityAddr::blank(1).encode_legacy();
    addr[0] = 1;
    input.extend_from_slice(&addr);
    assert!(matches!(
        acc.handle_input(&mut input),
        Err(HandshakeError::Decode(
            crate::error::DecodeError::BadAddrMarker(1)
        ))
    ));

    let mut acc = Acceptor::new(
        "127.0.0.1:6800/5".parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
    );
    let mut input = BytesMut::from(&b"ceph v027"[..]);
    input.extend_from_slice(&EntityAddr::blank(1).encode_legacy());
    let mut c = crate::wire::ConnectMsg::decode(&[0u8; 33]).unwrap();
    c.authorizer_len = u32::MAX;
    input.extend_from_slice(&c.encode());
    assert_eq!(
        acc.handle_input(&mut input),
        Err(HandshakeError::AuthorizerTooLong(u32::MAX))
    );
}

fn req(gs: u32, cs: u32, peer: &str) -> ConnectRequest {
    ConnectRequest {
        connect: crate::wire::ConnectMsg {
            features: CEPH_FEATURES_ALL,
            host_type: EntityType::OSD,
            global_seq: gs,
            connect_seq: cs,
            protocol_version: 10,
            authorizer_protocol: 0,
            authorizer_len: 0,
            flags: 0,
        },
        authorizer: bytes::Bytes::new(),
        peer_addr: peer.parse().unwrap(),
        auth: Default::default(),
    }
}

fn ctx(policy: Policy, existing: Option<ExistingSession>) -> AcceptContext {
    AcceptContext {
        policy,
        protocol_version: 10,
        authorizer_valid: true,
        my_addr: "127.0.0.1:6801/5".parse().unwrap(),
        existing,
    }
}

fn ex(cs: u32, gs: u32, state: ExistingState) -> Option<ExistingSession> {
    Some(ExistingSession {
        connect_seq: cs,
        peer_global_seq: gs,
        state,
        lossy: false,
        policy_server: false,
        established: true,
    })
}

#[test]
fn decide_follows_ceph_acceptor_rules() {
    use ExistingState::*;
    let peer = "127.0.0.1:6800/5";
    let p = Policy::lossless_peer_reuse(0);
    let o = |replace, reset, restarted| Decision::Open {
        replace,
        reset_existing: reset,
        peer_restarted: restarted,
    };
    let mut bad = ctx(p, None);
    bad.protocol_version = 24;
    assert_eq!(decide(&req(1, 0, peer), &bad), Decision::BadProtoVer);
    let needs = ctx(Policy::lossless_peer(1 << 62), None);
    assert_eq!(decide(&req(1, 0, peer), &needs), Decision::Features);
    let mut unauth = ctx(p, None);
    unauth.authorizer_valid = false;
    assert_eq!(decide(&req(1, 0, peer), &unauth), Decision::BadAuthorizer);
    // stateless_server never looks at existing sessions.
    assert_eq!(
        decide(
            &req(1, 5, peer),
            &ctx(Policy::stateless_server(0), ex(9, 9, Open))
        ),
        o(false, false, false)
    );
    // step 8: nothing existing.
    assert_eq!(
        decide(&req(1, 0, peer), &ctx(p, None)),
        o(false, false, false)
    );
    assert_eq!(
        decide(&req(1, 2, peer), &ctx(p, None)),
        Decision::ResetSession
    );
    // step 7.
    assert_eq!(
        decide(&req(1, 2, peer), &ctx(p, ex(2, 1, Closed))),
        o(false, false, false)
    );
    assert_eq!(
        decide(&req(9, 2, peer), &ctx(p, ex(2, 5, Replacing))),
        Decision::RetryGlobal { peer_global_seq: 5 }
    );
    assert_eq!(
        decide(&req(4, 2, peer), &ctx(p, ex(2, 5, Open))),
        Decision::RetryGlobal { peer_global_seq: 5 }
    );
    let mut lossy = ex(2, 1, Open);
    lossy.as_mut().unwrap().lossy = true;
    assert_eq!(
        decide(&req(5, 0, peer), &ctx(p, lossy)),
        o(true, true, false)
    );
    assert_eq!(
        decide(&req(5, 0, peer), &ctx(p, ex(3, 1, Open))),
        o(true, true, true)
    );
    assert_eq!(
        decide(
            &req(5, 0, peer),
            &ctx(Policy::lossless_peer(0), ex(3, 1, Open))
        ),
        o(true, false, true),
        "without resetcheck the old session is kept"
    );
    let mut half_open = ex(1, 1, Standby);
    half_open.as_mut().unwrap().established = false;
    assert_eq!(
        decide(&req(5, 0, peer), &ctx(p, half_open)),
        o(true, false, false)
    );
    assert_eq!(
        decide(&req(5, 2, peer), &ctx(p, ex(4, 1, Open))),
        Decision::RetrySession { connect_seq: 5 }
    );
    assert_eq!(
        decide(&req(5, 4, peer), &ctx(p, ex(4, 1, Open))),
        Decision::RetrySession { connect_seq: 5 }
    );
    assert_eq!(
        decide(&req(5, 4, peer), &ctx(p, ex(4, 1, Standby))),
        Decision::RetrySession { connect_seq: 5 }
    );
    assert_eq!(
        decide(&req(5, 0, peer), &ctx(p, ex(0, 1, Open))),
        o(true, false, false)
    );
    assert_eq!(
        decide(&req(5, 5, peer), &ctx(p, ex(4, 1, Open))),
        o(true, false, false)
    );
    assert_eq!(
        decide(&req(5, 1, peer), &ctx(p, ex(0, 1, Connecting))),
        Decision::ResetSession
    );
}

#[test]
fn races_are_won_by_the_lower_address_or_a_server_policy() {
    let lower = "127.0.0.1:6800/5"; // below our 127.0.0.1:6801/5
    let higher = "127.0.0.1:6802/5";
    let p = Policy::lossless_peer(0);
    let racing = ex(0, 0, ExistingState::Connecting);
    let replace = Decision::Open {
        replace: true,
        reset_existing: false,
        peer_restarted: false,
    };
    assert_eq!(decide(&req(3, 0, lower), &ctx(p, racing)), replace);
    assert_eq!(decide(&req(3, 0, higher), &ctx(p, racing)), Decision::Wait);
    let mut server = racing;
    server.as_mut().unwrap().policy_server = true;
    assert_eq!(decide(&req(3, 0, higher), &ctx(p, server)), replace);
}

mod cephx;
