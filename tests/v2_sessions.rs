//! msgr2 between our own messengers: a server bound to a `v2:` address, lossy clients dialling
//! it with `get_connection_v2`, in crc and in secure mode, with cephx (a service key) and with
//! auth none; messages and their echoes flow, under injected socket faults too (lossy: what was
//! in flight may be lost, but nothing arrives twice, out of order or damaged).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::auth::cephx::ServiceKeys;
use msgr::auth::CryptoKey;
use msgr::{Config, EntityType, Policy};
use msgr_actors::{AuthSetup, Messenger, SharedServiceKey};

fn osd_key() -> CryptoKey {
    CryptoKey::new((0, 0), &[0x42; 16]).unwrap()
}

async fn v2_server(rec: Recorder, config: Config, cephx: bool) -> Messenger {
    let auth = if cephx {
        AuthSetup {
            service_keys: ServiceKeys {
                service_id: u32::from(EntityType::OSD.0),
                own: Some(osd_key()),
                rotating: Vec::new(),
            },
            ..AuthSetup::default()
        }
    } else {
        AuthSetup::default()
    };
    let m = Messenger::builder(osd(0))
        .config(config)
        .default_policy(Policy::stateless_server(0))
        .auth(auth)
        .dispatcher(Arc::new(rec))
        .build()
        .unwrap();
    m.bind_v2("127.0.0.1:0".parse().unwrap()).await.unwrap();
    m.start().unwrap();
    m
}

fn v2_client(rec: Recorder, config: Config, cephx: bool) -> Messenger {
    let auth = if cephx {
        AuthSetup {
            tickets: Some(Arc::new(SharedServiceKey {
                name: "client.test".parse().unwrap(),
                service: EntityType::OSD,
                key: osd_key(),
                validity: Duration::from_secs(600),
            })),
            ..AuthSetup::default()
        }
    } else {
        AuthSetup::default()
    };
    Messenger::builder(client_name(1))
        .config(config)
        .default_policy(Policy::lossy_client(0))
        .auth(auth)
        .dispatcher(Arc::new(rec))
        .build()
        .unwrap()
}

fn with_modes(modes: &str) -> Config {
    Config {
        ms_client_mode: modes.into(),
        ms_service_mode: modes.into(),
        ..test_config()
    }
}

#[actix_rt::test]
async fn echoes_over_msgr2_in_every_mode_with_cephx_and_with_none() {
    init_tracing();
    for (modes, cephx) in [("crc", true), ("secure", true), ("crc", false)] {
        let srv_rec = Recorder::echoing();
        let srv = v2_server(srv_rec.clone(), with_modes(modes), cephx).await;
        let cli_rec = Recorder::default();
        let cli = v2_client(cli_rec.clone(), with_modes(modes), cephx);
        let addr = srv.my_addr_v2().unwrap();
        let conn = cli.get_connection_v2(addr, EntityType::OSD).await.unwrap();
        for i in 0..500 {
            conn.send_message(numbered(i)).unwrap();
        }
        wait_for(30, "500 echoes", || cli_rec.total() == 500).await;
        let got: Vec<u64> = cli_rec
            .all_msgs()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        assert_eq!(got, (0..500).collect::<Vec<_>>(), "{modes} cephx={cephx}");
        let (s, c) = (srv.counters(), cli.counters());
        assert_eq!((s.faults, c.faults), (0, 0), "{modes} cephx={cephx}");
        cli.shutdown().await;
        srv.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_wrong_key_or_none_where_cephx_is_required_opens_nothing() {
    init_tracing();
    let srv_rec = Recorder::default();
    let srv = v2_server(srv_rec.clone(), test_config(), true).await;
    let addr = srv.my_addr_v2().unwrap();
    let cli = v2_client(Recorder::default(), test_config(), false);
    let conn = cli.get_connection_v2(addr, EntityType::OSD).await.unwrap();
    // The dial starts as the connection is made: the refusal may close it before
    // this send, which then fails; either way nothing may arrive.
    let _ = conn.send_message(numbered(1));
    wait_for(20, "the session to fail", || conn.is_closed()).await;
    let why = conn.last_error().unwrap().to_string();
    assert!(why.contains("-95") || why.contains("EOPNOTSUPP"), "{why}");
    assert_eq!(srv_rec.total(), 0);
}

#[actix_rt::test]
async fn lossy_msgr2_sessions_under_socket_failures_never_duplicate_or_reorder() {
    init_tracing();
    let config = Config {
        ms_client_mode: "secure".into(),
        ms_service_mode: "secure".into(),
        ..test_config().ms_inject_socket_failures(30)
    };
    let srv_rec = Recorder::echoing();
    let srv = v2_server(srv_rec.clone(), config.clone(), true).await;
    let cli_rec = Recorder::default();
    let cli = v2_client(cli_rec.clone(), config, true);
    let addr = srv.my_addr_v2().unwrap();
    let mut sent = 0u64;
    // Until faults surely happened: each lossy reset gives a new connection.
    while cli.counters().faults + srv.counters().faults < 3 {
        assert!(sent < 100_000, "three faults within 100,000 messages");
        let conn = cli.get_connection_v2(addr, EntityType::OSD).await.unwrap();
        for i in sent..sent + 100 {
            let _ = conn.send_message(numbered(i));
        }
        sent += 100;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // What arrived came once, in order, per connection.
    for (_, nums) in srv_rec.all_msgs() {
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    }
    assert_eq!(
        srv.counters().faults_decode,
        0,
        "no frame failed its checks"
    );
}

/// A cephx OSD over msgr2 with `policy`, and a lossless client of it.
async fn lossless_pair(config: Config) -> (Messenger, Recorder, Messenger, Recorder) {
    let srv_rec = Recorder::echoing();
    let srv = Messenger::builder(osd(0))
        .config(config.clone())
        .default_policy(Policy::stateful_server(0))
        .auth(AuthSetup {
            service_keys: ServiceKeys {
                service_id: u32::from(EntityType::OSD.0),
                own: Some(osd_key()),
                rotating: Vec::new(),
            },
            ..AuthSetup::default()
        })
        .dispatcher(Arc::new(srv_rec.clone()))
        .build()
        .unwrap();
    srv.bind_v2("127.0.0.1:0".parse().unwrap()).await.unwrap();
    srv.start().unwrap();
    let cli_rec = Recorder::default();
    let cli = Messenger::builder(client_name(1))
        .config(config)
        .default_policy(Policy::lossless_client(0))
        .auth(AuthSetup {
            tickets: Some(Arc::new(SharedServiceKey {
                name: "client.test".parse().unwrap(),
                service: EntityType::OSD,
                key: osd_key(),
                validity: Duration::from_secs(600),
            })),
            ..AuthSetup::default()
        })
        .dispatcher(Arc::new(cli_rec.clone()))
        .build()
        .unwrap();
    (srv, srv_rec, cli, cli_rec)
}

/// Lossless sessions over msgr2 resume with SESSION_RECONNECT after every injected socket
/// failure: every message and every echo arrives exactly once and in order, through at least
/// three reconnects, in crc and in secure mode (cephx).
#[actix_rt::test]
async fn lossless_msgr2_sessions_resume_and_lose_nothing_under_socket_failures() {
    init_tracing();
    for modes in ["crc", "secure"] {
        let config = Config {
            ms_client_mode: modes.into(),
            ms_service_mode: modes.into(),
            ..test_config().ms_inject_socket_failures(40)
        };
        let (srv, srv_rec, cli, cli_rec) = lossless_pair(config).await;
        let addr = srv.my_addr_v2().unwrap();
        let conn = cli.get_connection_v2(addr, EntityType::OSD).await.unwrap();
        let n = rounds_until_reconnects(&cli, &conn, &cli_rec, 3, 60).await;
        let sent: Vec<u64> = (0..n).collect();
        let got: Vec<u64> = srv_rec
            .all_msgs()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        assert_eq!(
            got, sent,
            "{modes}: the server got each exactly once, in order"
        );
        let echoes: Vec<u64> = cli_rec
            .all_msgs()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        assert_eq!(echoes, sent, "{modes}: and so did the client");
        let (s, c) = (srv.counters(), cli.counters());
        assert_eq!(
            (s.session_resets, c.session_resets),
            (0, 0),
            "{modes}: resumed, never reset"
        );
        assert_eq!((s.faults_decode, c.faults_decode), (0, 0), "{modes}");
        cli.shutdown().await;
        srv.shutdown().await;
    }
}

/// The server restarts (a new messenger on the same msgr2 address): the client's
/// SESSION_RECONNECT finds no session and gets a full SESSION_RESET, so the client resets its
/// session (`ms_handle_remote_reset`) and the messages sent after arrive on a fresh one.
#[actix_rt::test]
async fn a_restarted_msgr2_server_resets_the_session_and_the_client_hears_of_it() {
    init_tracing();
    let port = free_port();
    let bind = |rec: Recorder| async move {
        let m = Messenger::builder(osd(0))
            .config(test_config())
            .nonce(7)
            .default_policy(Policy::stateful_server(0))
            .dispatcher(Arc::new(rec))
            .build()
            .unwrap();
        m.bind_v2(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
        m.start().unwrap();
        m
    };
    let rec1 = Recorder::echoing();
    let srv = bind(rec1.clone()).await;
    let cli_rec = Recorder::default();
    let cli = Messenger::builder(client_name(1))
        .config(test_config())
        .default_policy(Policy::lossless_client(0))
        .dispatcher(Arc::new(cli_rec.clone()))
        .build()
        .unwrap();
    let addr = srv.my_addr_v2().unwrap();
    let conn = cli.get_connection_v2(addr, EntityType::OSD).await.unwrap();
    for i in 0..10 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "ten echoes", || cli_rec.total() == 10).await;
    srv.shutdown().await;
    let rec2 = Recorder::echoing();
    let _srv2 = bind(rec2.clone()).await;
    for i in 10..20 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(30, "the remote reset", || {
        cli_rec.events(msgr_actors::ConnEvent::RemoteReset) == 1
    })
    .await;
    for i in 20..30 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(30, "the messages sent after the reset", || {
        rec2.all_msgs()
            .into_iter()
            .flat_map(|(_, v)| v)
            .any(|n| n == 29)
    })
    .await;
    let got: Vec<u64> = rec2.all_msgs().into_iter().flat_map(|(_, v)| v).collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    assert!(
        got.iter().all(|&n| n >= 10),
        "nothing of the old session replayed: {got:?}"
    );
    assert_eq!(cli.counters().session_resets, 1);
}

/// A server bound on both wires, dialled by its address vector: the session is msgr2 (Ceph's
/// clients prefer it); by a vector of its v1 address alone, v1.
#[actix_rt::test]
async fn get_connection_addrs_prefers_msgr2_and_falls_back_to_v1() {
    init_tracing();
    let srv_rec = Recorder::echoing();
    let srv = test_builder(osd(0))
        .config(test_config())
        .default_policy(Policy::stateless_server(0))
        .dispatcher(Arc::new(srv_rec.clone()))
        .build()
        .unwrap();
    srv.bind_v2("127.0.0.1:0".parse().unwrap()).await.unwrap();
    srv.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    srv.start().unwrap();
    let both = srv.my_addrs();
    assert_eq!(both.0.len(), 2, "{both}");
    let text = both.to_string();
    assert!(text.starts_with("[v2:127.0.0.1:") && text.contains(",v1:127.0.0.1:"));
    let v1_only: msgr::v2::AddrVec = format!("[{}]", srv.my_addr()).parse().unwrap();
    for (addrs, wire) in [(both, "msgr2-crc"), (v1_only, "v1")] {
        let rec = Recorder::default();
        let cli = v2_client(rec.clone(), test_config(), false);
        let conn = cli
            .get_connection_addrs(&addrs, EntityType::OSD)
            .await
            .unwrap();
        conn.send_message(numbered(1)).unwrap();
        wait_for(20, "the echo", || rec.total() == 1).await;
        let info = conn.info().await.expect("a Pipe");
        assert_eq!(info.wire, Some(wire), "dialled {addrs}");
        cli.shutdown().await;
    }
    let any: msgr::v2::AddrVec = "any:127.0.0.1:0/1".parse().unwrap();
    let cli = v2_client(Recorder::default(), test_config(), false);
    assert!(cli
        .get_connection_addrs(&any, EntityType::OSD)
        .await
        .is_err());
    cli.shutdown().await;
    srv.shutdown().await;
}
