//! The cephx authorizer through a connector and acceptor pair: challenge, answer, reply,
//! replay, methods not allowed, a reply that does not prove the nonce.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::auth::cephx::types::{AuthTicket, CapsInfo, ServiceTicketInfo, UTime};
use crate::auth::cephx::{self_made_ticket, ClientAuthorizer, ServiceKeys};
use crate::auth::{AuthMethod, AuthMethods, CryptoKey};

const NOW: Duration = Duration::from_secs(1_800_000_000);

fn key(fill: u8) -> CryptoKey {
    CryptoKey::new((0, 0), &[fill; 16]).unwrap()
}

fn authorizer(service_key: &CryptoKey) -> ClientAuthorizer {
    let info = ServiceTicketInfo {
        ticket: AuthTicket {
            name: "client.x".parse().unwrap(),
            global_id: 4100,
            created: UTime::from_duration(NOW),
            expires: UTime::from_duration(NOW + Duration::from_secs(60)),
            caps: CapsInfo::default(),
            flags: 0,
        },
        session_key: key(7),
    };
    let ticket = self_made_ticket(service_key, 4, &info, NOW);
    ClientAuthorizer::new(&ticket, 4100, 0x1234)
}

fn osd_rules(methods: &str) -> Arc<ServerAuth> {
    let m = AuthMethods::parse(methods).unwrap();
    Arc::new(ServerAuth {
        cluster: m.clone(),
        service: m,
        keys: ServiceKeys {
            service_id: 4,
            own: Some(key(1)),
            rotating: vec![],
        },
    })
}

fn pair(cephx: Option<ClientAuthorizer>, rules: Arc<ServerAuth>, challenge: u64) -> Pair {
    let mut pair = Pair::new(ConnectorParams {
        cephx,
        ..client_params()
    });
    pair.acc = Acceptor::new(
        "127.0.0.1:6800/5".parse().unwrap(),
        "127.0.0.1:41000".parse().unwrap(),
    )
    .with_auth(SocketAuth::new(rules, NOW, challenge));
    pair.to_conn.clear();
    pair.to_conn
        .extend_from_slice(&pair.acc.take_output().unwrap());
    pair
}

/// The connector's connect, then whatever the acceptor makes of it.
fn round(pair: &mut Pair) -> Option<AcceptorEvent> {
    let ev = pair.connector_step().unwrap();
    assert_eq!(ev, None);
    let ev = pair.acc.handle_input(&mut pair.to_acc).unwrap();
    if let Some(out) = pair.acc.take_output() {
        pair.to_conn.extend_from_slice(&out);
    }
    ev
}

#[test]
fn challenge_answer_open_and_a_signed_session_key_on_both_sides() {
    let mut pair = pair(Some(authorizer(&key(1))), osd_rules("cephx"), 99);
    // First connect: challenged, no event for the runtime.
    assert_eq!(round(&mut pair), None);
    // The connector answers; the acceptor now has a valid connect.
    let Some(AcceptorEvent::Connect(req)) = round(&mut pair) else {
        panic!("the answered connect")
    };
    assert!(req.auth.is_valid(), "{:?}", req.auth.refusal);
    assert_eq!(req.auth.method, Some(AuthMethod::Cephx));
    assert_eq!(req.auth.name.as_ref().unwrap().to_string(), "client.x");
    assert_eq!(pair.respond(open(), 0), None);
    let Some(ConnectorEvent::Ready(est)) = pair.connector_step().unwrap() else {
        panic!("ready")
    };
    assert_eq!(est.session_key, Some(key(7)));
    let Some(AcceptorEvent::Ready(acc)) = pair.acc.handle_input(&mut pair.to_acc).unwrap() else {
        panic!("acceptor ready")
    };
    assert_eq!(acc.session_key, Some(key(7)));
}

/// The answered authorizer, replayed on another socket: challenged afresh, and the old
/// answer sent again is refused.
#[test]
fn a_replayed_authorizer_is_refused() {
    let mut first = pair(Some(authorizer(&key(1))), osd_rules("cephx"), 99);
    round(&mut first);
    let Some(AcceptorEvent::Connect(answered)) = round(&mut first) else {
        panic!("answered")
    };
    let mut replay = Acceptor::new(
        "127.0.0.1:6800/5".parse().unwrap(),
        "127.0.0.1:41001".parse().unwrap(),
    )
    .with_auth(SocketAuth::new(osd_rules("cephx"), NOW, 1234));
    let mut wire = BytesMut::new();
    wire.extend_from_slice(BANNER);
    wire.extend_from_slice(&EntityAddr::blank(77).encode_legacy());
    let connect = |w: &mut BytesMut| {
        w.extend_from_slice(&answered.connect.encode());
        w.extend_from_slice(&answered.authorizer);
    };
    connect(&mut wire);
    assert_eq!(replay.handle_input(&mut wire).unwrap(), None, "challenged");
    connect(&mut wire);
    let Some(AcceptorEvent::Connect(req)) = replay.handle_input(&mut wire).unwrap() else {
        panic!("a verdict")
    };
    assert!(!req.auth.is_valid());
    assert!(req.auth.refusal.unwrap().to_string().contains("challenge"));
}

#[test]
fn methods_not_allowed_are_refused_both_ways() {
    // auth none where cephx is required (a downgrade).
    let mut p = pair(None, osd_rules("cephx"), 5);
    let Some(AcceptorEvent::Connect(req)) = round(&mut p) else {
        panic!("verdict")
    };
    assert!(matches!(
        req.auth.refusal,
        Some(AuthRefusal::MethodNotAllowed { protocol: 0, .. })
    ));
    // cephx where only none is allowed.
    let mut p = pair(Some(authorizer(&key(1))), osd_rules("none"), 5);
    let Some(AcceptorEvent::Connect(req)) = round(&mut p) else {
        panic!("verdict")
    };
    assert!(!req.auth.is_valid());
    // Both allowed: none passes, and so does cephx.
    let mut p = pair(None, osd_rules("cephx, none"), 5);
    let Some(AcceptorEvent::Connect(req)) = round(&mut p) else {
        panic!("verdict")
    };
    assert_eq!(req.auth.method, Some(AuthMethod::None));
}

#[test]
fn a_reply_that_does_not_prove_the_nonce_fails_the_dial() {
    let mut p = pair(Some(authorizer(&key(1))), osd_rules("cephx"), 5);
    round(&mut p);
    let Some(AcceptorEvent::Connect(_)) = round(&mut p) else {
        panic!("verdict")
    };
    assert_eq!(p.respond(open(), 0), None);
    // One bit of the reply's ciphertext (after the reply and its u32 length) flipped.
    p.to_conn[crate::wire::CONNECT_REPLY_LEN + 4 + 20] ^= 1;
    assert!(matches!(p.connector_step(), Err(HandshakeError::Cephx(_))));
}
