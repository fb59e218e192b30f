//! cephx against a real ceph-mon 16.2.15 with `auth_* = cephx` over msgr v1 (spec §9.7, §11):
//! the mon client's MAuth exchange, tickets, renewal, and maps only an authenticated session
//! gets; and cephx authorizers and message signatures between the mon and us, both ways.

mod ceph_harness;
mod common;

use std::sync::Arc;
use std::time::Duration;

use ceph_harness::{CephMon, MonOpts};
use common::*;
use msgr::auth::cephx::{CephxError, MonAuthClient};
use msgr::auth::{AuthName, CryptoKey, Keyring};
use msgr::messages::{MMonGetMap, MMonMap, MPing, CEPH_MSG_MON_MAP, CEPH_MSG_PING, MSG_MON_PROBE};
use msgr::{EntityAddr, EntityName, EntityType, Message, Policy};
use msgr_actors::{AuthSetup, Connection, Messenger, MonAuth, MonAuthError, SharedServiceKey};

fn admin(mon: &CephMon) -> (AuthName, CryptoKey) {
    let ring = Keyring::parse(&std::fs::read_to_string(mon.admin_keyring()).unwrap()).unwrap();
    let name: AuthName = "client.admin".parse().unwrap();
    let key = ring
        .get(&name)
        .expect("client.admin in its keyring")
        .clone();
    (name, key)
}

fn messenger(auth: &MonAuth, inbox: &Inbox) -> Messenger {
    Messenger::builder(EntityName::anonymous_client())
        .config(test_config())
        .default_policy(Policy::lossy_client(0))
        .dispatcher(auth.dispatcher())
        .dispatcher(Arc::new(inbox.clone()))
        .build()
        .unwrap()
}

async fn mon_connection(m: &Messenger, mon: &CephMon) -> Connection {
    let addr: EntityAddr = format!("v1:127.0.0.1:{}/0", mon.port).parse().unwrap();
    m.get_connection(addr, EntityType::MON).await.unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn a_client_authenticates_gets_its_tickets_and_then_the_monmap() {
    init_tracing();
    let Some(mon) = CephMon::start_cephx() else {
        return;
    };
    let (name, key) = admin(&mon);
    let (auth, inbox) = (MonAuth::new(), Inbox::default());
    let m = messenger(&auth, &inbox);
    let conn = mon_connection(&m, &mon).await;
    let session = auth
        .authenticate(&conn, MonAuthClient::new(name, key, 0x35), TIMEOUT)
        .await
        .expect("the mon accepts client.admin's key");
    assert!(session.global_id() > 0);
    for service in [0x01, 0x04, 0x10, 0x20] {
        let t = session
            .ticket(service)
            .unwrap_or_else(|| panic!("ticket {service:#x}"));
        assert!(!t.blob.blob.is_empty());
    }
    // The AUTH ticket lives 72 h, service tickets 1 h (auth_mon_ticket_ttl, auth_service_ticket_ttl).
    let auth_t = session.ticket(0x20).unwrap();
    let mon_t = session.ticket(0x01).unwrap();
    assert!(auth_t.expires - mon_t.expires > Duration::from_secs(70 * 3600));

    // Whatever the mon pushed during authentication arrived before its last reply; from here
    // on a monmap is the answer to our request, which Pacific drops from unauthenticated peers.
    inbox.clear();
    conn.send_message(Message::from_payload(&MMonGetMap))
        .unwrap();
    wait_for(20, "the monmap after authentication", || {
        !inbox.of_type(CEPH_MSG_MON_MAP).is_empty()
    })
    .await;
    let map = inbox.of_type(CEPH_MSG_MON_MAP)[0]
        .decode_payload::<MMonMap>()
        .unwrap();
    assert_eq!(map.summary().unwrap().fsid_string(), mon.fsid);

    // The real CLI still works against the mon while we hold our session.
    let status = mon.ceph(&["-s", "--format", "json"]).expect("ceph -s");
    assert!(status.contains(&mon.fsid), "{status}");
    assert!(!conn.is_closed());
}

#[actix_rt::test]
async fn a_key_the_mon_does_not_know_is_refused_with_eacces() {
    init_tracing();
    let Some(mon) = CephMon::start_cephx() else {
        return;
    };
    let (name, _) = admin(&mon);
    let wrong = CryptoKey::new((0, 0), &[0x5a; 16]).unwrap();
    let (auth, inbox) = (MonAuth::new(), Inbox::default());
    let m = messenger(&auth, &inbox);
    let conn = mon_connection(&m, &mon).await;
    let err = auth
        .authenticate(
            &conn,
            MonAuthClient::new(name, wrong.clone(), 0x35),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MonAuthError::Cephx(CephxError::Refused { result: -13 })
        ),
        "{err:?}"
    );
    // An entity the mon has never heard of fares no better.
    let conn = mon_connection(&m, &mon).await;
    let stranger: AuthName = "client.stranger".parse().unwrap();
    let err = auth
        .authenticate(&conn, MonAuthClient::new(stranger, wrong, 0x35), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MonAuthError::Cephx(CephxError::Refused { .. })),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn tickets_are_renewed_over_the_same_session_before_they_expire() {
    init_tracing();
    // Service tickets that live 4 s: renewal is due after 3 s.
    let Some(mon) = CephMon::start_opts(MonOpts {
        cephx: true,
        extra_conf: "auth_service_ticket_ttl = 4".into(),
        ..MonOpts::default()
    }) else {
        return;
    };
    let (name, key) = admin(&mon);
    let (auth, inbox) = (MonAuth::new(), Inbox::default());
    let m = messenger(&auth, &inbox);
    let conn = mon_connection(&m, &mon).await;
    let session = auth
        .authenticate(&conn, MonAuthClient::new(name, key, 0x35), TIMEOUT)
        .await
        .unwrap();
    let first = session.ticket(0x04).unwrap();
    wait_for(60, "two renewals", || session.renewals() >= 2).await;
    assert_eq!(session.last_error(), None);
    let renewed = session.ticket(0x04).unwrap();
    assert!(renewed.expires > first.expires);
    assert_ne!(
        renewed.session_key, first.session_key,
        "a new ticket, new key"
    );
    assert_eq!(m.counters().reconnects, 0, "renewed on the same session");
    // The session is still authenticated.
    inbox.clear();
    conn.send_message(Message::from_payload(&MMonGetMap))
        .unwrap();
    wait_for(20, "the monmap", || {
        !inbox.of_type(CEPH_MSG_MON_MAP).is_empty()
    })
    .await;
}

fn mon_key(mon: &CephMon) -> CryptoKey {
    let ring = Keyring::parse(&std::fs::read_to_string(mon.mon_keyring()).unwrap()).unwrap();
    ring.get(&"mon.".parse().unwrap())
        .expect("mon. key")
        .clone()
}

#[actix_rt::test]
async fn a_real_mon_connects_with_a_cephx_authorizer_and_signatures_check_both_ways() {
    init_tracing();
    let our_port = free_port();
    let Some(mon) = CephMon::start_opts(MonOpts {
        cephx: true,
        peers: vec![("b".into(), our_port)],
        ..MonOpts::default()
    }) else {
        return;
    };
    let inbox = Inbox::default();
    let m = cephx_peer_mon(&inbox, our_port, mon_key(&mon)).await;
    wait_for(60, "three signed mon_probe messages from mon.a", || {
        inbox.of_type(MSG_MON_PROBE).len() >= 3
    })
    .await;
    let c = m.counters();
    assert_eq!(
        (c.bad_authorizers, c.bad_signatures, c.faults_decode),
        (0, 0, 0)
    );
    // Our signed MPing on that session: the mon checks its signature (a bad one closes the
    // session: "Signature check failed") and answers with a signed reply we check.
    let conn = m.connections().await.pop().expect("mon.a's session");
    conn.send_message(Message::from_payload(&MPing)).unwrap();
    wait_for(20, "the mon's signed ping reply", || {
        !inbox.of_type(CEPH_MSG_PING).is_empty()
    })
    .await;
    assert_eq!(m.counters().bad_signatures, 0);
    let log = mon.log();
    assert!(
        !log.contains("Signature check failed"),
        "the mon refused a signature"
    );
    m.shutdown().await;
}

#[actix_rt::test]
async fn we_dial_a_real_mon_with_a_cephx_authorizer_and_its_replies_verify() {
    init_tracing();
    let Some(mon) = CephMon::start_cephx() else {
        return;
    };
    let inbox = Inbox::default();
    let mut config = test_config();
    config.auth_client_required = "cephx".into();
    let m = Messenger::builder(EntityName::anonymous_client())
        .config(config)
        .default_policy(Policy::lossy_client(0))
        .auth(AuthSetup {
            tickets: Some(Arc::new(SharedServiceKey {
                name: "mon.".parse().unwrap(),
                service: EntityType::MON,
                key: mon_key(&mon),
                validity: Duration::from_secs(600),
            })),
            ..AuthSetup::default()
        })
        .dispatcher(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    let conn = mon_connection(&m, &mon).await;
    for _ in 0..5 {
        conn.send_message(Message::from_payload(&MPing)).unwrap();
    }
    wait_for(20, "five signed ping replies", || {
        inbox.of_type(CEPH_MSG_PING).len() == 5
    })
    .await;
    let c = m.counters();
    assert_eq!((c.bad_signatures, c.faults, c.reconnects), (0, 0, 0));
    assert!(!mon.log().contains("Signature check failed"));
}

#[actix_rt::test]
async fn with_a_wrong_mon_key_nothing_the_mon_sends_is_delivered() {
    init_tracing();
    let our_port = free_port();
    let Some(_mon) = CephMon::start_opts(MonOpts {
        cephx: true,
        peers: vec![("b".into(), our_port)],
        ..MonOpts::default()
    }) else {
        return;
    };
    let inbox = Inbox::default();
    let wrong = CryptoKey::new((0, 0), &[0x33; 16]).unwrap();
    let m = cephx_peer_mon(&inbox, our_port, wrong).await;
    wait_for(60, "the mon's authorizers refused twice", || {
        m.counters().bad_authorizers >= 2
    })
    .await;
    assert!(inbox.is_empty(), "nothing delivered");
    assert!(m.connections().await.is_empty(), "no session was opened");
    m.shutdown().await;
}

/// Our messenger as mon.b, verifying with `key` (the `mon.` key, or a wrong one).
async fn cephx_peer_mon(inbox: &Inbox, port: u16, key: CryptoKey) -> Messenger {
    peer_mon(inbox, port, false, |b| {
        b.config(test_config())
            .auth(AuthSetup::shared_service_key("mon.".parse().unwrap(), key))
    })
    .await
}
