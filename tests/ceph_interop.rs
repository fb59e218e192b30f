//! Interop with a real ceph-mon 16.2.15 over msgr v1 (spec §6): as a client (MPing, MMonGetMap
//! with the AuthNone authorizer) and as an acceptor (the mon connects to us as to a peer monitor).

mod ceph_harness;
mod common;

use std::sync::Arc;

use ceph_harness::{free_port, CephMon};
use common::*;
use msgr::features::CEPH_FEATURES_ALL;
use msgr::handshake::AuthNoneAuthorizer;
use msgr::messages::{
    MMonGetMap, MMonMap, MPing, MonPingReply, CEPH_MSG_MON_MAP, CEPH_MSG_PING, MSG_MON_PROBE,
};
use msgr::{EntityAddr, EntityName, EntityType, Message, Policy};
use msgr_actors::{ConnEvent, Messenger};

fn mon_addr(mon: &CephMon) -> EntityAddr {
    format!("v1:127.0.0.1:{}/0", mon.port).parse().unwrap()
}

fn client_messenger(inbox: &Inbox) -> Messenger {
    Messenger::builder(EntityName::anonymous_client())
        .config(test_config())
        .default_policy(Policy::lossy_client(0))
        .dispatcher(Arc::new(inbox.clone()))
        .build()
        .unwrap()
}

#[actix_rt::test]
async fn client_pings_a_real_mon_100_times_and_survives_its_restart() {
    init_tracing();
    let Some(mut mon) = CephMon::start() else {
        return;
    };
    let inbox = Inbox::default();
    let m = client_messenger(&inbox);
    let conn = m
        .get_connection(mon_addr(&mon), EntityType::MON)
        .await
        .unwrap();
    conn.send_message(Message::from_payload(&MPing)).unwrap();
    wait_for(20, "the mon's ping reply", || {
        inbox.of_type(CEPH_MSG_PING).len() == 1
    })
    .await;
    let reply = &inbox.of_type(CEPH_MSG_PING)[0];
    assert_eq!(
        (
            reply.seq,
            reply.priority,
            reply.version,
            reply.compat_version
        ),
        (1, 196, 1, 0)
    );
    assert_eq!(reply.src, EntityName::new(EntityType::MON, 0));
    let doc: serde_json::Value =
        serde_json::from_str(&reply.decode_payload::<MonPingReply>().unwrap().json).unwrap();
    assert_eq!(doc["mon_status"]["quorum"], serde_json::json!([0]), "{doc}");
    assert_eq!(doc["mon_status"]["name"], "a");
    assert_eq!(
        conn.features(),
        CEPH_FEATURES_ALL,
        "the mon offers everything 16.2.15 has"
    );

    for _ in 0..100 {
        conn.send_message(Message::from_payload(&MPing)).unwrap();
    }
    wait_for(30, "101 replies", || {
        inbox.of_type(CEPH_MSG_PING).len() == 101
    })
    .await;
    let seqs: Vec<u64> = inbox.of_type(CEPH_MSG_PING).iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=101).collect::<Vec<_>>(),
        "one session, replies in order"
    );
    assert_eq!(m.counters().reconnects, 0);
    assert_eq!(m.counters().acks_in, 0, "the mon never acks a lossy client");

    // The mon restarts under us: the lossy session is reset, and a new one works.
    mon.restart();
    wait_for(30, "reset of the lossy session", || {
        inbox.events(ConnEvent::Reset) == 1
    })
    .await;
    assert!(conn.is_closed());
    let conn2 = m
        .get_connection(mon_addr(&mon), EntityType::MON)
        .await
        .unwrap();
    conn2.send_message(Message::from_payload(&MPing)).unwrap();
    wait_for(30, "a reply on the new session", || {
        inbox.of_type(CEPH_MSG_PING).len() == 102
    })
    .await;
    m.shutdown().await;
}

#[actix_rt::test]
async fn client_with_auth_none_authorizer_gets_the_monmap() {
    init_tracing();
    let Some(mon) = CephMon::start() else { return };
    let inbox = Inbox::default();
    let authorizer = AuthNoneAuthorizer {
        entity_type: EntityType::CLIENT,
        id: "admin".into(),
        global_id: 0,
    };
    let m = Messenger::builder(EntityName::anonymous_client())
        .config(test_config())
        .default_policy(Policy::lossy_client(0))
        .authorizer(authorizer.to_authorizer())
        .dispatcher(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    let conn = m
        .get_connection(mon_addr(&mon), EntityType::MON)
        .await
        .unwrap();
    conn.send_message(Message::from_payload(&MMonGetMap))
        .unwrap();
    wait_for(20, "MMonMap", || {
        !inbox.of_type(CEPH_MSG_MON_MAP).is_empty()
    })
    .await;
    let map = inbox.of_type(CEPH_MSG_MON_MAP)[0]
        .decode_payload::<MMonMap>()
        .unwrap();
    let summary = map.summary().unwrap();
    let reference = mon.monmaptool_print();
    assert!(
        reference.contains(&format!("fsid {}", summary.fsid_string())),
        "{reference}"
    );
    assert!(
        reference.contains(&format!("epoch {}", summary.epoch)),
        "{reference}"
    );
    assert_eq!(summary.fsid_string(), mon.fsid);
    m.shutdown().await;
}

/// Lines of a mon log that would mean we broke the protocol on its side.
fn protocol_errors(log: &str, our_port: u16) -> Vec<String> {
    let ours = format!("127.0.0.1:{our_port}");
    let bad = [
        "bad crc",
        "failed to decode",
        "decode message failed",
        "BADPROTOVER",
        "bad tag",
        "got bad",
        "bad_tag",
        "fault with nothing to send",
    ];
    log.lines()
        .filter(|l| {
            l.contains(&ours)
                && bad
                    .iter()
                    .any(|b| l.to_lowercase().contains(&b.to_lowercase()))
        })
        .map(str::to_string)
        .collect()
}

#[actix_rt::test]
async fn a_real_mon_connects_to_us_as_a_peer_monitor() {
    init_tracing();
    let our_port = free_port();
    let Some(mon) = CephMon::start_with(&[("b", our_port)]) else {
        return;
    };
    let inbox = Inbox::default();
    let m = auth_none_peer_mon(&inbox, our_port).await;
    wait_for(60, "three mon_probe messages from mon.a", || {
        inbox.of_type(MSG_MON_PROBE).len() >= 3
    })
    .await;
    let probes = inbox.of_type(MSG_MON_PROBE);
    assert!(probes.iter().all(|p| p.src.ty == EntityType::MON));
    let seqs: Vec<u64> = probes.iter().map(|p| p.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    wait_for(20, "our acks", || m.counters().acks_out > 0).await;
    assert_eq!(
        m.counters().faults_decode,
        0,
        "every CRC and frame checked out"
    );
    let conns = m.connections().await;
    assert_eq!(conns.len(), 1);
    assert!(
        !conns[0].info().await.unwrap().lossy,
        "mon to mon is a lossless session"
    );

    // Our side restarts (same address, nonce 0, no memory): the mon reconnects, our fresh
    // messenger answers RESETSESSION to its old session, and probes flow again.
    m.shutdown().await;
    let inbox2 = Inbox::default();
    let m2 = auth_none_peer_mon(&inbox2, our_port).await;
    wait_for(60, "probes after our restart", || {
        inbox2.of_type(MSG_MON_PROBE).len() >= 2
    })
    .await;
    assert_eq!(m2.counters().faults_decode, 0);
    let log = mon.log();
    let mentions = log
        .lines()
        .filter(|l| l.contains(&format!("127.0.0.1:{our_port}")))
        .count();
    assert!(
        mentions > 0,
        "the mon log never mentions us: the error check below would be vacuous"
    );
    let errors = protocol_errors(&log, our_port);
    assert!(
        errors.is_empty(),
        "the mon logged protocol errors about us:\n{}",
        errors.join("\n")
    );
    eprintln!("mon log: {mentions} lines about our address, none of them protocol errors");
    m2.shutdown().await;
}

/// Our messenger as mon.b with auth none, as the mon's peer.
async fn auth_none_peer_mon(inbox: &Inbox, port: u16) -> Messenger {
    let authorizer = AuthNoneAuthorizer {
        entity_type: EntityType::MON,
        id: "b".into(),
        global_id: 0,
    };
    peer_mon(inbox, port, false, |b| {
        b.config(test_config())
            .authorizer(authorizer.to_authorizer())
    })
    .await
}
