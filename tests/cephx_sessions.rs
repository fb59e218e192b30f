//! cephx between our own messengers (spec §9.8, §9.10): an OSD that verifies authorizers with
//! its service key, clients that present tickets sealed with it. Lossless sessions keep every
//! guarantee under injected faults with every message signed and checked; a downgrade to auth
//! none, a wrong key, an expired ticket and a forged signature are refused, counted, and
//! deliver nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::auth::cephx::{ClientAuthorizer, ServiceKeys};
use msgr::auth::{CryptoKey, MessageSigner};
use msgr::features::CEPH_FEATURES_ALL;
use msgr::wire::FrameEncoder;
use msgr::{Config, EntityAddr, EntityType, Policy};
use msgr_actors::{AuthSetup, Messenger, SharedServiceKey, TicketSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn osd_key() -> CryptoKey {
    CryptoKey::new((0, 0), &[0x42; 16]).unwrap()
}

/// The OSD verifies tickets sealed with `osd_key()` (cephx required: it has keys).
async fn cephx_osd(rec: Recorder, config: Config) -> Messenger {
    let m = Messenger::builder(osd(0))
        .config(config)
        .default_policy(Policy::stateful_server(0))
        .auth(AuthSetup {
            service_keys: ServiceKeys {
                service_id: u32::from(EntityType::OSD.0),
                own: Some(osd_key()),
                rotating: Vec::new(),
            },
            tickets: None,
            mon_identity: None,
        })
        .dispatcher(Arc::new(rec))
        .build()
        .unwrap();
    m.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    m.start().unwrap();
    m
}

/// Tickets for the OSD service, sealed with `key`, valid for `validity`.
fn tickets(key: CryptoKey, validity: Duration) -> Arc<SharedServiceKey> {
    Arc::new(SharedServiceKey {
        name: "client.test".parse().unwrap(),
        service: EntityType::OSD,
        key,
        validity,
    })
}

fn cephx_client(
    policy: Policy,
    rec: Recorder,
    config: Config,
    t: Arc<SharedServiceKey>,
) -> Messenger {
    Messenger::builder(client_name(1))
        .config(config)
        .default_policy(policy)
        .auth(AuthSetup {
            tickets: Some(t),
            ..AuthSetup::default()
        })
        .dispatcher(Arc::new(rec))
        .build()
        .unwrap()
}

#[actix_rt::test]
async fn lossless_cephx_sessions_survive_faults_with_every_message_signed_and_checked() {
    init_tracing();
    let config = test_config().ms_inject_socket_failures(40);
    let srv_rec = Recorder::echoing();
    let srv = cephx_osd(srv_rec.clone(), config.clone()).await;
    let cli_rec = Recorder::default();
    let cli = cephx_client(
        Policy::lossless_client(0),
        cli_rec.clone(),
        config,
        tickets(osd_key(), Duration::from_secs(600)),
    );
    let conn = osd_connection(&cli, &srv).await;
    // Rounds of 200 until at least three reconnects happened (each re-ran the cephx
    // handshake), so the faults the test is about surely happen.
    let n = rounds_until_reconnects(&cli, &conn, &cli_rec, 3, 120).await;
    let total = n;
    wait_for(120, "every message and its echo", || {
        srv_rec.total() == total as usize
    })
    .await;
    let got: Vec<u64> = srv_rec
        .all_msgs()
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "exactly once, in order"
    );
    let (s, c) = (srv.counters(), cli.counters());
    assert!(c.faults + s.faults > 0, "faults were injected");
    assert!(
        c.reconnects > 0,
        "each reconnect ran the cephx handshake again"
    );
    assert_eq!((s.bad_authorizers, s.bad_signatures), (0, 0));
    assert_eq!(c.bad_signatures, 0);
}

/// A client that offers auth none (it holds no ticket) to a server that requires cephx.
#[actix_rt::test]
async fn a_downgrade_to_auth_none_is_refused() {
    init_tracing();
    let srv_rec = Recorder::default();
    let srv = cephx_osd(srv_rec.clone(), test_config()).await;
    let cli = client(
        client_name(1),
        Policy::lossy_client(0),
        Recorder::default(),
        test_config(),
    );
    let conn = osd_connection(&cli, &srv).await;
    // The dial starts as the connection is made: the refusal may close it before
    // this send, which then fails; either way nothing may arrive.
    let _ = conn.send_message(numbered(1));
    wait_for(20, "the refusal", || srv.counters().bad_authorizers >= 1).await;
    wait_for(20, "the client's session to fail", || conn.is_closed()).await;
    let why = conn.last_error().expect("an error").to_string();
    assert!(why.contains("BADAUTHORIZER"), "{why}");
    assert_eq!(srv_rec.total(), 0, "nothing delivered");
}

#[actix_rt::test]
async fn a_ticket_sealed_with_another_key_or_expired_is_refused() {
    init_tracing();
    let srv_rec = Recorder::default();
    let srv = cephx_osd(srv_rec.clone(), test_config()).await;
    let wrong = CryptoKey::new((0, 0), &[0x43; 16]).unwrap();
    for (what, t) in [
        ("wrong key", tickets(wrong, Duration::from_secs(600))),
        ("expired", tickets(osd_key(), Duration::ZERO)),
    ] {
        let before = srv.counters().bad_authorizers;
        let cli = cephx_client(
            Policy::lossy_client(0),
            Recorder::default(),
            test_config(),
            t,
        );
        let conn = osd_connection(&cli, &srv).await;
        // The dial starts as the connection is made: the refusal may close it before
        // this send, which then fails; either way nothing may arrive.
        let _ = conn.send_message(numbered(1));
        wait_for(20, what, || srv.counters().bad_authorizers > before).await;
        wait_for(20, "the client's session to fail", || conn.is_closed()).await;
        cli.shutdown().await;
    }
    assert_eq!(srv_rec.total(), 0, "nothing delivered");
}

/// A raw client that completes a real cephx handshake, then writes one message signed with
/// `signer` (None: the session's own key).
async fn send_signed(server: EntityAddr, forge: Option<CryptoKey>) {
    let (ticket, gid) = tickets(osd_key(), Duration::from_secs(600))
        .ticket(u32::from(EntityType::OSD.0))
        .unwrap();
    let cephx = ClientAuthorizer::new(&ticket, gid, rand::random());
    let (mut s, est) = raw_handshake(server, Some(cephx)).await;
    assert_eq!(est.features, CEPH_FEATURES_ALL);
    let key = forge.unwrap_or_else(|| est.session_key.clone().expect("a cephx session"));
    let mut m = numbered(7);
    m.seq = 1;
    let frame = FrameEncoder::new(true, true)
        .with_signer(MessageSigner::for_session(&key, est.features))
        .encode_message(&m)
        .to_vec();
    s.write_all(&frame).await.unwrap();
    // Hold the socket until the server has either delivered or closed it.
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut [0u8; 64])).await;
}

#[actix_rt::test]
async fn a_forged_signature_faults_the_socket_and_the_message_is_never_delivered() {
    init_tracing();
    let srv_rec = Recorder::default();
    let srv = cephx_osd(srv_rec.clone(), test_config()).await;
    let forged = CryptoKey::new((0, 0), &[0x99; 16]).unwrap();
    send_signed(srv.my_addr(), Some(forged)).await;
    wait_for(20, "the bad signature counted", || {
        srv.counters().bad_signatures == 1
    })
    .await;
    assert_eq!(srv_rec.total(), 0, "the forged message was not delivered");
    // The same message under the session's key is delivered: the test can tell them apart.
    send_signed(srv.my_addr(), None).await;
    wait_for(20, "the genuine message", || srv_rec.total() == 1).await;
    assert_eq!(srv.counters().bad_signatures, 1);
}

/// A client without CEPHX_V2 (bit 61): the session signs with the legacy scheme (spec §9.10),
/// and both sides check it.
#[actix_rt::test]
async fn without_cephx_v2_the_legacy_signature_scheme_is_used_and_checked() {
    init_tracing();
    let srv_rec = Recorder::echoing();
    let srv = cephx_osd(srv_rec.clone(), test_config()).await;
    let mut policy = Policy::lossless_client(0);
    policy.features_supported &= !msgr::features::CEPHX_V2;
    let cli_rec = Recorder::default();
    let cli = cephx_client(
        policy,
        cli_rec.clone(),
        test_config(),
        tickets(osd_key(), Duration::from_secs(600)),
    );
    let conn = osd_connection(&cli, &srv).await;
    for i in 0..100 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "100 echoes", || cli_rec.total() == 100).await;
    assert_eq!(conn.features() & msgr::features::CEPHX_V2, 0);
    assert_eq!(
        srv.counters().bad_signatures + cli.counters().bad_signatures,
        0
    );
}

/// A client that does not sign (`cephx_sign_messages = false`) talking to one that checks:
/// the unsigned message is refused, which shows the checks run on real sessions.
#[actix_rt::test]
async fn an_unsigned_message_on_a_signed_session_is_refused() {
    init_tracing();
    let srv_rec = Recorder::default();
    let srv = cephx_osd(srv_rec.clone(), test_config()).await;
    let mut config = test_config();
    config.cephx_sign_messages = false;
    let cli = cephx_client(
        Policy::lossy_client(0),
        Recorder::default(),
        config,
        tickets(osd_key(), Duration::from_secs(600)),
    );
    let conn = osd_connection(&cli, &srv).await;
    conn.send_message(numbered(1)).unwrap();
    wait_for(20, "the unsigned message refused", || {
        srv.counters().bad_signatures == 1
    })
    .await;
    assert_eq!(srv_rec.total(), 0);
}
