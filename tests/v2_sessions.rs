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
