//! What a run measured, in the compare bench's schema.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Instant;

use crate::child::cpu_secs;

/// The workload: `count` requests of `size` bytes, at most `depth` in flight, one connection.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub size: usize,
    pub depth: usize,
    pub count: u64,
}

/// Round-trip latencies (µs) of a run; shared by the tasks or actors that record them.
pub struct Latencies(Mutex<Histogram<u64>>);

impl Latencies {
    pub fn new() -> Self {
        Latencies(Mutex::new(
            Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds"),
        ))
    }
    /// Records a round trip that began `sent_ns` after `start`.
    pub fn record(&self, start: Instant, sent_ns: u64) {
        let now = start.elapsed().as_nanos() as u64;
        let us = (now.saturating_sub(sent_ns) / 1000).max(1);
        let _ = self.0.lock().unwrap().record(us);
    }
    pub fn add(&self, other: &Histogram<u64>) {
        let _ = self.0.lock().unwrap().add(other);
    }
    pub fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap().clone()
    }
    pub fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds")
    }
}

/// A request payload: its index and send time (ns since the start), then `size` bytes.
pub fn request(index: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + size);
    p.extend_from_slice(&index.to_le_bytes());
    p.extend_from_slice(&sent_ns.to_le_bytes());
    p.resize(16 + size, 0x5a);
    p
}

/// The send time stamped in a request or reply.
pub fn sent_ns(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[8..16].try_into().unwrap())
}

/// The client's report.
pub fn report(
    system: &str,
    scenario: &str,
    load: Load,
    msgs: u64,
    secs: f64,
    cpu: f64,
    h: &Histogram<u64>,
) -> Value {
    json!({
        "system": system, "scenario": scenario, "size": load.size, "conns": 1, "msgs": msgs, "secs": secs,
        "msgs_per_sec": msgs as f64 / secs, "gb_per_sec": msgs as f64 * load.size as f64 / secs / 1e9,
        "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99), "max_us": h.max(),
        "cpu_secs": cpu, "cpu_pct": cpu / secs * 100.0,
    })
}

/// Runs the load as `depth` tasks, each sending its share of the requests one after another
/// with `ask` (which returns the reply); returns (round trips, seconds, client CPU seconds,
/// latencies). The measured phase is marked for the server's CPU count.
pub async fn run_asks<F, Fut>(load: Load, ask: F) -> (u64, f64, f64, Histogram<u64>)
where
    F: Fn(Vec<u8>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<u8>> + Send,
{
    let lat = std::sync::Arc::new(Latencies::new());
    let start = Instant::now();
    let cpu0 = cpu_secs();
    crate::child::mark(crate::child::PHASE_BEGIN);
    let per_task = load.count / load.depth as u64;
    let tasks: Vec<_> = (0..load.depth as u64)
        .map(|t| {
            let (ask, lat) = (ask.clone(), lat.clone());
            tokio::spawn(async move {
                let mut h = Latencies::histogram();
                for i in 0..per_task {
                    let req = request(
                        t * per_task + i,
                        start.elapsed().as_nanos() as u64,
                        load.size,
                    );
                    let reply = ask(req).await;
                    let us =
                        (start.elapsed().as_nanos() as u64).saturating_sub(sent_ns(&reply)) / 1000;
                    let _ = h.record(us.max(1));
                }
                lat.add(&h);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let secs = start.elapsed().as_secs_f64();
    crate::child::mark(crate::child::PHASE_END);
    (
        per_task * load.depth as u64,
        secs,
        cpu_secs() - cpu0,
        lat.snapshot(),
    )
}

/// A loopback address no one listens on now, for a system that wants its port up front.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The 2-worker tokio runtime the tokio-based peers (ractor, kameo) run on, as raw tokio and
/// msgr get two IO threads per process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
