//! What every system under comparison reports, and process measurements.

use hdrhistogram::Histogram;

pub use crate::child::cpu_secs;
use crate::child::{mark, PHASE_BEGIN, PHASE_END};

/// A load: C connections, each with at most `depth` requests in flight, `count` in total, on
/// `threads` IO threads per process (msgr's shard threads, tokio's workers; the
/// thread-per-connection baseline has no such knob).
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub conns: usize,
    pub size: usize,
    pub depth: usize,
    pub count: u64,
    pub threads: usize,
}

/// What a run measured.
pub struct Outcome {
    pub msgs: u64,
    pub secs: f64,
    /// Round-trip latency, microseconds.
    pub lat: Histogram<u64>,
    pub rss_kib: u64,
    pub threads: u64,
    pub replayed: u64,
    /// CPU used during the measured phase, in % of one core.
    pub cpu_pct: f64,
}

/// The measured phase of a run: wall clock and process CPU from its start.
pub struct Phase {
    began: std::time::Instant,
    cpu0: f64,
}

impl Phase {
    pub fn start() -> Self {
        mark(PHASE_BEGIN);
        Phase {
            began: std::time::Instant::now(),
            cpu0: cpu_secs(),
        }
    }

    /// Ends the phase after `msgs` round trips: time and CPU since the start, RSS and threads
    /// now. Latency and replays are the caller's to fill in.
    pub fn finish(&self, msgs: u64) -> Outcome {
        let secs = self.began.elapsed().as_secs_f64();
        mark(PHASE_END);
        Outcome {
            cpu_pct: (cpu_secs() - self.cpu0) / secs * 100.0,
            msgs,
            secs,
            lat: histogram(),
            rss_kib: rss_kib(),
            threads: threads(),
            replayed: 0,
        }
    }
}

impl Outcome {
    pub fn msgs_per_sec(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    pub fn gb_per_sec(&self, size: usize) -> f64 {
        self.msgs as f64 * size as f64 / self.secs / 1e9
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds")
}

/// Round-trip latencies recorded from many threads: one histogram per shard, a thread always
/// records into the same shard, so threads rarely contend (every system's harness uses this,
/// so no system pays more than another for being measured).
pub struct Latencies {
    shards: Vec<Shard>,
}

#[repr(align(128))]
struct Shard(std::sync::Mutex<Histogram<u64>>);

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            shards: (0..16)
                .map(|_| Shard(std::sync::Mutex::new(histogram())))
                .collect(),
        }
    }

    /// Records a round trip that began at `sent_ns` and ended at `now_ns` (ns since the start).
    pub fn record(&self, sent_ns: u64, now_ns: u64) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let i = SHARD.with(|s| *s) % self.shards.len();
        let us = (now_ns.saturating_sub(sent_ns) / 1000).max(1);
        let _ = self.shards[i].0.lock().unwrap().record(us);
    }

    /// All shards in one histogram.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for s in &self.shards {
            all.add(&*s.0.lock().unwrap()).expect("same bounds");
        }
        all
    }
}

fn status_field(name: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

pub fn threads() -> u64 {
    status_field("Threads:")
}

/// Baseline framing: u32 length, u32 CRC-32C of the payload, payload. The same CRC work msgr does.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&msgr::wire::ceph_crc32c(0, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Parses one frame from the front of `buf`: (payload range, total length), or None if incomplete.
/// Panics on a CRC mismatch (baselines run on loopback; a mismatch is a bug).
pub fn parse(buf: &[u8]) -> Option<(std::ops::Range<usize>, usize)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    assert_eq!(
        msgr::wire::ceph_crc32c(0, &buf[8..8 + len]),
        crc,
        "baseline frame crc"
    );
    Some((8..8 + len, 8 + len))
}

/// Request payload: index, send time (ns since run start), then `size` bytes of data.
pub fn request(index: u64, sent_ns: u64, data: &[u8], out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(16 + data.len());
    p.extend_from_slice(&index.to_le_bytes());
    p.extend_from_slice(&sent_ns.to_le_bytes());
    p.extend_from_slice(data);
    frame(&p, out);
}

/// The reply to a request payload: its first 16 bytes.
pub fn reply(req_payload: &[u8], out: &mut Vec<u8>) {
    frame(&req_payload[..16], out);
}

pub fn stamp(payload: &[u8]) -> (u64, u64) {
    (
        u64::from_le_bytes(payload[..8].try_into().unwrap()),
        u64::from_le_bytes(payload[8..16].try_into().unwrap()),
    )
}

/// Samples the process's thread count and RSS every 10 ms until dropped; reports the peaks
/// (not counting its own thread).
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl PeakSampler {
    pub fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut th, mut rss) = (0, 0);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                th = th.max(threads().saturating_sub(1));
                rss = rss.max(rss_kib());
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (th, rss)
        });
        PeakSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// (peak threads, peak RSS KiB)
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}
