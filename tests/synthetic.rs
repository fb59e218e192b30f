//! Ceph's SyntheticInjectTest 1–4 over v1: several clients talk to one server while sockets fail
//! on purpose (`ms_inject_socket_failures`), with internal delays and delayed dispatch.
//! Lossless policies must deliver every message exactly once, in order, intact, both ways;
//! lossy ones must never duplicate or reorder, and every loss must come with a reset event.
//!
//! The bigger soak: `cargo test --release --test synthetic -- --ignored`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use msgr::{Config, Message, Policy};
use msgr_actors::{ConnEvent, Messenger};

/// Payload: client id in the high 32 bits, message number in the low 32, plus a body whose
/// bytes are derived from both so corruption is caught.
fn stamped(client: u64, n: u64, size: usize) -> Message {
    let id = (client << 32) | n;
    let mut m = numbered(id);
    let body: Vec<u8> = (0..size)
        .map(|i| (id as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect();
    m.data = body.into();
    m
}

fn check_body(m: &Message) -> bool {
    let id = number_of(m);
    m.data
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (id as usize).wrapping_mul(31).wrapping_add(i) as u8)
}

/// Verifies data bodies, then records like `Recorder`.
#[derive(Clone, Default)]
struct Checking {
    inner: Recorder,
    corrupt: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl msgr_actors::Dispatcher for Checking {
    fn ms_dispatch(&self, conn: &msgr_actors::Connection, msg: Message) -> bool {
        if !check_body(&msg) {
            self.corrupt
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.ms_dispatch(conn, msg)
    }
    fn ms_handle_reset(&self, c: &msgr_actors::Connection) -> bool {
        self.inner.ms_handle_reset(c)
    }
    fn ms_handle_remote_reset(&self, c: &msgr_actors::Connection) {
        self.inner.ms_handle_remote_reset(c)
    }
}

struct Run {
    clients: usize,
    per_client: u64,
    size: usize,
    config: Config,
    lossless: bool,
}

async fn lossless_run(r: Run) {
    init_tracing();
    let srv_rec = Checking {
        inner: Recorder::echoing(),
        ..Default::default()
    };
    let srv = {
        let m = Messenger::builder(osd(0))
            .config(r.config.clone())
            .default_policy(Policy::stateful_server(0))
            .dispatcher(std::sync::Arc::new(srv_rec.clone()))
            .build()
            .unwrap();
        m.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        m.start().unwrap();
        m
    };
    let mut clients = vec![];
    for c in 0..r.clients {
        let rec = Checking::default();
        let m = Messenger::builder(client_name(c as i64))
            .config(r.config.clone())
            .default_policy(Policy::lossless_client(0))
            .dispatcher(std::sync::Arc::new(rec.clone()))
            .build()
            .unwrap();
        let conn = osd_connection(&m, &srv).await;
        clients.push((m, rec, conn));
    }
    for n in 0..r.per_client {
        for (c, (_, _, conn)) in clients.iter().enumerate() {
            conn.send_message(stamped(c as u64, n, r.size)).unwrap();
        }
        if n % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let total = r.clients * r.per_client as usize;
    wait_for(120, "every echo back at its client", || {
        clients
            .iter()
            .map(|(_, rec, _)| rec.inner.total())
            .sum::<usize>()
            == total
    })
    .await;
    // Server side: per client, exactly 0..per_client in order on one session.
    let mut by_client: HashMap<u64, Vec<u64>> = HashMap::new();
    for (_, v) in srv_rec.inner.all_msgs() {
        let client = v[0] >> 32;
        assert!(
            v.iter().all(|id| id >> 32 == client),
            "one session carried two clients' messages"
        );
        by_client
            .entry(client)
            .or_default()
            .extend(v.iter().map(|id| id & 0xffff_ffff));
    }
    let want: Vec<u64> = (0..r.per_client).collect();
    for c in 0..r.clients as u64 {
        assert_eq!(
            by_client.get(&c),
            Some(&want),
            "server: client {c} lost, duplicated or reordered"
        );
    }
    for (c, (_, rec, conn)) in clients.iter().enumerate() {
        let got: Vec<u64> = rec
            .inner
            .all_msgs()
            .into_iter()
            .flat_map(|(_, v)| v)
            .map(|id| id & 0xffff_ffff)
            .collect();
        assert_eq!(
            got, want,
            "client {c}: echoes lost, duplicated or reordered"
        );
        assert_eq!(rec.corrupt.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(
            rec.inner.events(ConnEvent::RemoteReset),
            0,
            "client {c} saw a session reset"
        );
        let _ = conn;
    }
    assert_eq!(
        srv_rec.corrupt.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let faults: u64 = clients
        .iter()
        .map(|(m, _, _)| m.counters().faults)
        .sum::<u64>()
        + srv.counters().faults;
    let replayed: u64 = clients
        .iter()
        .map(|(m, _, _)| m.counters().replayed)
        .sum::<u64>()
        + srv.counters().replayed;
    if r.config.ms_inject_socket_failures > 0 {
        assert!(faults > 0, "no fault was injected: the test proves nothing");
    }
    eprintln!("lossless run: {total} messages each way, {faults} faults, {replayed} replayed");
    for (m, _, _) in &clients {
        m.shutdown().await;
    }
    srv.shutdown().await;
    let _ = r.lossless;
}

async fn lossy_run(r: Run) {
    init_tracing();
    let srv_rec = Checking::default();
    let srv = {
        let m = Messenger::builder(osd(0))
            .config(r.config.clone())
            .default_policy(Policy::stateless_server(0))
            .dispatcher(std::sync::Arc::new(srv_rec.clone()))
            .build()
            .unwrap();
        m.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        m.start().unwrap();
        m
    };
    let mut sent = 0u64;
    let mut clients = vec![];
    for c in 0..r.clients {
        let rec = Checking::default();
        let m = Messenger::builder(client_name(c as i64))
            .config(r.config.clone())
            .default_policy(Policy::lossy_client(0))
            .dispatcher(std::sync::Arc::new(rec.clone()))
            .build()
            .unwrap();
        clients.push((m, rec));
    }
    for (c, (m, _)) in clients.iter().enumerate() {
        let mut conn = osd_connection(m, &srv).await;
        for n in 0..r.per_client {
            if conn.send_message(stamped(c as u64, n, r.size)).is_err() {
                // Marked down by a fault: a lossy client opens a new session.
                conn = osd_connection(m, &srv).await;
                conn.send_message(stamped(c as u64, n, r.size)).unwrap();
            }
            sent += 1;
            if n % 32 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    // Let in-flight messages land: wait until the server's count is stable.
    let mut last = usize::MAX;
    wait_for(60, "server receive count to settle", || {
        let now = srv_rec.inner.total();
        let stable = now == last;
        last = now;
        stable
    })
    .await;
    let mut seen = std::collections::HashSet::new();
    for (_, v) in srv_rec.inner.all_msgs() {
        assert!(
            v.windows(2).all(|w| w[0] < w[1]),
            "a lossy session reordered or duplicated: {v:?}"
        );
        for id in v {
            assert!(seen.insert(id), "message {id:#x} delivered twice");
        }
    }
    let delivered = seen.len() as u64;
    let resets: usize = clients
        .iter()
        .map(|(_, rec)| rec.inner.events(ConnEvent::Reset))
        .sum();
    if delivered < sent {
        assert!(
            resets > 0,
            "{} messages lost without any reset event",
            sent - delivered
        );
    }
    assert_eq!(
        srv_rec.corrupt.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    eprintln!("lossy run: {sent} sent, {delivered} delivered, {resets} resets");
    for (m, _) in &clients {
        m.shutdown().await;
    }
    srv.shutdown().await;
}

fn inject(failures: u64) -> Config {
    test_config().ms_inject_socket_failures(failures)
}

#[actix_rt::test]
async fn synthetic_inject_1_lossless_socket_failures_30() {
    lossless_run(Run {
        clients: 4,
        per_client: 1500,
        size: 100,
        config: inject(30),
        lossless: true,
    })
    .await;
}

#[actix_rt::test]
async fn synthetic_inject_2_lossless_socket_failures_30_with_internal_delays() {
    let config = inject(30).ms_inject_internal_delays(0.01);
    lossless_run(Run {
        clients: 3,
        per_client: 1000,
        size: 512,
        config,
        lossless: true,
    })
    .await;
}

#[actix_rt::test]
async fn synthetic_inject_3_lossy_socket_failures_600() {
    lossy_run(Run {
        clients: 4,
        per_client: 1500,
        size: 100,
        config: inject(600),
        lossless: false,
    })
    .await;
}

#[actix_rt::test]
async fn synthetic_inject_4_lossless_with_delayed_dispatch() {
    let config = inject(600)
        .ms_inject_delay_type("client osd".into())
        .ms_inject_delay_max(Duration::from_millis(5))
        .ms_inject_delay_probability(0.05);
    lossless_run(Run {
        clients: 3,
        per_client: 1000,
        size: 4096,
        config,
        lossless: true,
    })
    .await;
}

#[actix_rt::test]
#[ignore = "soak: 8 clients x 50,000 messages under socket failures; run with --release"]
async fn synthetic_soak_lossless() {
    lossless_run(Run {
        clients: 8,
        per_client: 50_000,
        size: 256,
        config: inject(100),
        lossless: true,
    })
    .await;
}
