//! Hostile peers against a running Messenger server, over real sockets. For every kind of bad
//! input the server closes that connection within its deadline, keeps serving a legitimate
//! lossless client that runs all along (which loses nothing), stays within a memory bound,
//! and nothing panics anywhere.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use msgr::entity::EntityAddr;
use msgr::handshake::protocol_version;
use msgr::wire::{ConnectMsg, FrameEncoder, Header, BANNER, HEADER_LEN};
use msgr::{EntityName, EntityType, Message, Policy};
use msgr_actors::Messenger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const CAP: u64 = 1 << 20;

fn hostile_config() -> msgr::Config {
    test_config()
        .ms_connection_ready_timeout(Duration::from_secs(1))
        .ms_stall_timeout(Duration::from_secs(1))
        .ms_max_message_bytes(CAP)
}

/// Reads until the server closes the socket; returns how long that took, or panics at 10 s.
async fn closed_within(mut s: TcpStream, what: &str) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("{what}: the server kept the connection open for 10 s"),
        }
    }
}

fn valid_frame(msg_auth: bool) -> Vec<u8> {
    let mut m = Message::new(TEST_MSG, payload(1));
    m.seq = 1;
    m.middle = bytes::Bytes::from_static(b"mid");
    m.data = bytes::Bytes::from_static(b"data");
    FrameEncoder::new(msg_auth, true)
        .encode_message(&m)
        .to_vec()
}

fn header_with_lengths(front: u32, middle: u32, data: u32) -> Vec<u8> {
    let h = Header {
        seq: 1,
        tid: 0,
        msg_type: TEST_MSG,
        priority: 127,
        version: 1,
        front_len: front,
        middle_len: middle,
        data_len: data,
        data_off: 0,
        src: EntityName::anonymous_client(),
        compat_version: 1,
        crc: 0,
    };
    let mut v = vec![7u8];
    v.extend_from_slice(&h.encode());
    v
}

fn greeting_and(addr_first_byte: u8, connect: ConnectMsg, authorizer: &[u8]) -> Vec<u8> {
    let mut v = BANNER.to_vec();
    let mut a = EntityAddr::blank(5).encode_legacy();
    a[0] = addr_first_byte;
    v.extend_from_slice(&a);
    v.extend_from_slice(&connect.encode());
    v.extend_from_slice(authorizer);
    v
}

fn connect_msg() -> ConnectMsg {
    ConnectMsg {
        features: msgr::features::CEPH_FEATURES_ALL,
        host_type: EntityType::CLIENT,
        global_seq: 1,
        connect_seq: 0,
        protocol_version: protocol_version(EntityType::OSD, EntityType::CLIENT, false),
        authorizer_protocol: 0,
        authorizer_len: 0,
        flags: 1,
    }
}

/// Sends `bytes` on a fresh socket and expects the server to close it.
async fn raw(server: EntityAddr, bytes: Vec<u8>, what: &str) -> Duration {
    let mut s = TcpStream::connect(server.addr.unwrap()).await.unwrap();
    let _ = s.write_all(&bytes).await;
    closed_within(s, what).await
}

/// Sends `bytes` after a valid handshake and expects the server to close it.
async fn after_handshake(
    server: EntityAddr,
    make: impl FnOnce(bool) -> Vec<u8>,
    what: &str,
) -> Duration {
    let (mut s, est) = raw_handshake(server, None).await;
    let msg_auth = msgr::handshake::connector::uses_msg_auth(est.features);
    let _ = s.write_all(&make(msg_auth)).await;
    closed_within(s, what).await
}

/// Expects a refusal reply with `tag`, then closes.
async fn refused_with(server: EntityAddr, bytes: Vec<u8>, tag: u8, what: &str) {
    let mut s = TcpStream::connect(server.addr.unwrap()).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut hello = vec![0u8; 9 + 2 * 136 + 26];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut hello))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hello[9 + 272], tag, "{what}: reply tag");
}

#[actix_rt::test]
async fn hostile_peers_are_closed_while_a_lossless_client_loses_nothing() {
    count_panics();
    init_tracing();
    let srv_rec = Recorder::echoing();
    let srv = Messenger::builder(osd(0))
        .config(hostile_config())
        .default_policy(Policy::stateful_server(0))
        .policy(EntityType::CLIENT, Policy::stateful_server(0))
        .dispatcher(Arc::new(srv_rec.clone()))
        .build()
        .unwrap();
    let addr = srv.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    srv.start().unwrap();
    let rss_before = rss_kib();

    // The legitimate client, sending all along.
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        test_config(),
    );
    let conn = cli.get_connection(addr, EntityType::OSD).await.unwrap();
    let sender = {
        let conn = conn.clone();
        tokio::spawn(async move {
            for i in 0..2000u64 {
                conn.send_message(numbered(i)).unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };

    let ready = Duration::from_secs(1);
    let margin = Duration::from_secs(3);
    let mut bad_banner = b"ceph v028".to_vec();
    bad_banner.extend_from_slice(&[0u8; 136]);
    raw(addr, bad_banner, "wrong banner").await;
    raw(
        addr,
        greeting_and(1, connect_msg(), &[]),
        "address marker byte 1",
    )
    .await;
    let mut huge_auth = connect_msg();
    huge_auth.authorizer_protocol = 1;
    huge_auth.authorizer_len = u32::MAX;
    raw(
        addr,
        greeting_and(0, huge_auth, &[]),
        "authorizer_len 4 GiB",
    )
    .await;
    after_handshake(
        addr,
        |_| header_with_lengths(u32::MAX, 0, 0),
        "front_len 4 GiB",
    )
    .await;
    after_handshake(
        addr,
        |_| header_with_lengths(CAP as u32 / 2, CAP as u32 / 2, 10),
        "sections past the cap",
    )
    .await;
    after_handshake(
        addr,
        |a| {
            let mut f = valid_frame(a);
            f[3] ^= 1;
            f
        },
        "bad header crc",
    )
    .await;
    for (name, off) in [("front", 8usize), ("middle", 8 + 2), ("data", 8 + 3 + 1)] {
        after_handshake(
            addr,
            |a| {
                let mut f = valid_frame(a);
                f[1 + HEADER_LEN + off - 8] ^= 0xff;
                f
            },
            name,
        )
        .await;
    }
    after_handshake(
        addr,
        |a| {
            let mut f = valid_frame(a);
            let n = f.len();
            f[n - 1] = 0;
            f
        },
        "footer without COMPLETE",
    )
    .await;
    after_handshake(addr, |_| vec![42u8], "unknown tag").await;
    let t = after_handshake(
        addr,
        |a| {
            let f = valid_frame(a);
            f[..f.len() / 2].to_vec()
        },
        "truncated frame then silence",
    )
    .await;
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(1) + margin,
        "stall timeout took {t:?}"
    );
    let t = raw(addr, BANNER.to_vec(), "handshake that never finishes").await;
    assert!(t < ready + margin, "ready timeout took {t:?}");
    {
        // One byte every 100 ms: the handshake deadline ends it.
        let mut s = TcpStream::connect(addr.addr.unwrap()).await.unwrap();
        let start = Instant::now();
        let bytes = greeting_and(0, connect_msg(), &[]);
        let mut closed = false;
        for b in bytes {
            if s.write_all(&[b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if start.elapsed() > ready + margin {
                break;
            }
        }
        if !closed {
            closed_within(s, "slow drip").await;
        }
        assert!(start.elapsed() < ready + margin + Duration::from_secs(1));
    }
    let mut wrong_proto = connect_msg();
    wrong_proto.protocol_version = 99;
    refused_with(
        addr,
        greeting_and(0, wrong_proto, &[]),
        10,
        "protocol mismatch",
    )
    .await;
    let mut no_features = connect_msg();
    no_features.features = 0;
    let srv_required = Messenger::builder(osd(9))
        .config(hostile_config())
        .default_policy(Policy::stateful_server(msgr::features::MSG_AUTH))
        .build()
        .unwrap();
    let addr2 = srv_required
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    srv_required.start().unwrap();
    refused_with(
        addr2,
        greeting_and(0, no_features, &[]),
        12,
        "features mismatch",
    )
    .await;
    srv_required.shutdown().await;
    let mut bad_auth = connect_msg();
    bad_auth.authorizer_protocol = 1;
    bad_auth.authorizer_len = 3;
    refused_with(
        addr,
        greeting_and(0, bad_auth, &[1, 2, 3]),
        11,
        "malformed AuthNone blob",
    )
    .await;
    // Random bytes at every stage.
    for seed in 0..20u64 {
        let junk: Vec<u8> = (0..300u64)
            .map(|i| {
                (seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i.wrapping_mul(1442695040888963407))
                    >> 33) as u8
            })
            .collect();
        raw(addr, junk.clone(), "random bytes instead of a banner").await;
        let mut after_banner = BANNER.to_vec();
        after_banner.extend_from_slice(&junk);
        raw(addr, after_banner, "random bytes after the banner").await;
        after_handshake(addr, |_| junk.clone(), "random bytes after the handshake").await;
    }
    // 2,000 idle connections: held, then dropped by the handshake deadline.
    let mut idle = vec![];
    for _ in 0..2000 {
        idle.push(TcpStream::connect(addr.addr.unwrap()).await.unwrap());
    }
    let rss_with_idle = rss_kib();
    for s in idle {
        closed_within(s, "idle connection").await;
    }

    sender.await.unwrap();
    wait_for(30, "every legitimate message echoed", || {
        cli_rec.total() == 2000
    })
    .await;
    assert_eq!(
        cli_rec.all_msgs()[0].1,
        (0..2000).collect::<Vec<_>>(),
        "the lossless client lost or reordered"
    );
    let counters = srv.counters();
    assert!(counters.faults_decode >= 10, "{counters:?}");
    assert!(counters.faults_timeout >= 2, "{counters:?}");
    let rss_after = rss_kib();
    eprintln!(
        "RSS KiB: before {rss_before}, with 2000 idle sockets {rss_with_idle}, after {rss_after}"
    );
    // Generous: the process (test harness included) stays within 256 MiB of where it began.
    assert!(
        rss_with_idle.max(rss_after) < rss_before + 256 * 1024,
        "RSS grew past the bound"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
    cli.shutdown().await;
    srv.shutdown().await;
}

#[actix_rt::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let srv = Messenger::builder(osd(0))
        .config(
            test_config()
                .ms_max_connections(5)
                .ms_connection_ready_timeout(Duration::from_secs(30)),
        )
        .default_policy(Policy::stateless_server(0))
        .build()
        .unwrap();
    let addr = srv.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    srv.start().unwrap();
    let mut held = vec![];
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr.addr.unwrap()).await.unwrap();
        let mut hello = [0u8; 9];
        s.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, BANNER);
        held.push(s);
    }
    for _ in 0..5 {
        let s = TcpStream::connect(addr.addr.unwrap()).await.unwrap();
        let t = closed_within(s, "connection over the limit").await;
        assert!(t < Duration::from_secs(5));
    }
    assert_eq!(srv.counters().accept_refused, 5);
    drop(held);
    srv.shutdown().await;
}
