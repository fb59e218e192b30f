//! Ceph's SyntheticInjectTest 1–4 over v1: several clients talk to one server while sockets fail
//! on purpose (`ms_inject_socket_failures`), with internal delays and delayed dispatch.
//! Lossless policies must deliver every message exactly once, in order, intact, both ways;
//! lossy ones must never duplicate or reorder, and every loss must come with a reset event.
//!
//! A run that injects faults is sure to get them: it sends in batches and goes on (up to
//! [`MAX_BATCHES`]) until at least [`MIN_INJECTED_FAULTS`] were injected, then asserts that
//! they were. A fixed amount of traffic let a fast run finish before its first 1-in-600 fault.
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

/// Faults a run that injects them must have had before it may end.
const MIN_INJECTED_FAULTS: u64 = 5;
/// Most batches a run sends while waiting for its faults.
const MAX_BATCHES: u64 = 60;

/// Injected faults so far, on every messenger of a run.
fn injected<'a>(messengers: impl IntoIterator<Item = &'a Messenger>) -> u64 {
    messengers
        .into_iter()
        .map(|m| m.counters().faults_injected)
        .sum()
}

/// Whether a run that has sent `batches` batches may stop: it has had its faults (or injects
/// none), or it has sent all it may (the caller then asserts the faults and fails).
fn enough(config: &Config, batches: u64, injected: u64) -> bool {
    config.ms_inject_socket_failures == 0
        || injected >= MIN_INJECTED_FAULTS
        || batches == MAX_BATCHES
}

fn assert_faults_happened(config: &Config, injected: u64, batches: u64) {
    if config.ms_inject_socket_failures > 0 {
        assert!(
            injected >= MIN_INJECTED_FAULTS,
            "only {injected} faults injected in {batches} batches: the test proves nothing"
        );
    }
}

struct Run {
    clients: usize,
    /// Messages per client in one batch.
    per_client: u64,
    size: usize,
    config: Config,
}

async fn lossless_run(r: Run) {
    init_tracing();
    let srv_rec = Checking {
        inner: Recorder::echoing(),
        ..Default::default()
    };
    let srv = {
        let m = test_builder(osd(0))
            .config(r.config.clone())
            .default_policy(Policy::stateful_server(0))
            .dispatcher(std::sync::Arc::new(srv_rec.clone()))
            .build()
            .unwrap();
        bind_wire(&m, "127.0.0.1:0".parse().unwrap()).await;
        m.start().unwrap();
        m
    };
    let mut clients = vec![];
    for c in 0..r.clients {
        let rec = Checking::default();
        let m = test_builder(client_name(c as i64))
            .config(r.config.clone())
            .default_policy(Policy::lossless_client(0))
            .dispatcher(std::sync::Arc::new(rec.clone()))
            .build()
            .unwrap();
        let conn = osd_connection(&m, &srv).await;
        clients.push((m, rec, conn));
    }
    let mut batches = 0;
    let per_client = loop {
        for n in batches * r.per_client..(batches + 1) * r.per_client {
            for (c, (_, _, conn)) in clients.iter().enumerate() {
                conn.send_message(stamped(c as u64, n, r.size)).unwrap();
            }
            if n % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        batches += 1;
        let total = r.clients * (batches * r.per_client) as usize;
        wait_for(120, "every echo back at its client", || {
            clients
                .iter()
                .map(|(_, rec, _)| rec.inner.total())
                .sum::<usize>()
                == total
        })
        .await;
        let messengers = clients.iter().map(|(m, _, _)| m).chain([&srv]);
        if enough(&r.config, batches, injected(messengers)) {
            break batches * r.per_client;
        }
    };
    let total = r.clients * per_client as usize;
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
    let want: Vec<u64> = (0..per_client).collect();
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
    let faults = injected(clients.iter().map(|(m, _, _)| m).chain([&srv]));
    let replayed: u64 = clients
        .iter()
        .map(|(m, _, _)| m.counters().replayed)
        .sum::<u64>()
        + srv.counters().replayed;
    assert_faults_happened(&r.config, faults, batches);
    eprintln!(
        "lossless run: {total} messages each way in {batches} batches, {faults} faults injected, {replayed} replayed"
    );
    for (m, _, _) in &clients {
        m.shutdown().await;
    }
    srv.shutdown().await;
}

async fn lossy_run(r: Run) {
    init_tracing();
    let srv_rec = Checking::default();
    let srv = {
        let m = test_builder(osd(0))
            .config(r.config.clone())
            .default_policy(Policy::stateless_server(0))
            .dispatcher(std::sync::Arc::new(srv_rec.clone()))
            .build()
            .unwrap();
        bind_wire(&m, "127.0.0.1:0".parse().unwrap()).await;
        m.start().unwrap();
        m
    };
    let mut sent = 0u64;
    let mut clients = vec![];
    for c in 0..r.clients {
        let rec = Checking::default();
        let m = test_builder(client_name(c as i64))
            .config(r.config.clone())
            .default_policy(Policy::lossy_client(0))
            .dispatcher(std::sync::Arc::new(rec.clone()))
            .build()
            .unwrap();
        clients.push((m, rec));
    }
    let mut batches = 0;
    loop {
        for (c, (m, _)) in clients.iter().enumerate() {
            let mut conn = osd_connection(m, &srv).await;
            for n in batches * r.per_client..(batches + 1) * r.per_client {
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
        batches += 1;
        let messengers = clients.iter().map(|(m, _)| m).chain([&srv]);
        if enough(&r.config, batches, injected(messengers)) {
            break;
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
    let faults = injected(clients.iter().map(|(m, _)| m).chain([&srv]));
    assert_faults_happened(&r.config, faults, batches);
    eprintln!(
        "lossy run: {sent} sent in {batches} batches, {delivered} delivered, {faults} faults injected, {resets} resets"
    );
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
    })
    .await;
}
