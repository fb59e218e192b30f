//! `msgr bench`: C connections (one client messenger each, on shared threads), at most D
//! messages in flight per connection, N messages in all with B bytes of data. Every message is
//! stamped (connection, index, send time, data CRC); the server replies to each. With
//! `--verify` both sides check order, gaps, duplicates and contents.
//!
//! Closed loop on the shard threads, as Ceph's perf_msgr_client runs: each reply sends its
//! connection's next request from inside dispatch, on the connection's own thread. (Refilling
//! the windows from the main thread cost a cross-thread wake-up per reply, and the command
//! reported about half of what the same load does.)

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use msgr_actors::msgr::handshake::HandshakeError;
use msgr_actors::msgr::messages::{BenchReply, BenchRequest, BenchStamp, BENCH_REPLY};
use msgr_actors::msgr::v2::V2Error;
use msgr_actors::msgr::wire::ceph_crc32c;
use msgr_actors::msgr::{Config, EntityName, EntityType, Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger, PipeError};
use serde::Serialize;
use tokio::sync::Notify;

use crate::auth::AuthArgs;
use crate::common::PeerAddr;

#[derive(clap::Args)]
pub struct Args {
    /// The server (`msgr serve`).
    #[arg(long)]
    peer: PeerAddr,
    /// Bytes of data per message.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Messages in total, spread over the connections.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 128)]
    depth: u64,
    /// Connections (each its own client messenger and session).
    #[arg(long, default_value_t = 1)]
    conns: u32,
    /// Client policy (a Ceph preset name).
    #[arg(long, default_value = "lossless_client")]
    policy: String,
    /// Check every reply: order, gaps, duplicates, contents.
    #[arg(long)]
    verify: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Seconds without progress before giving up on missing replies.
    #[arg(long, default_value_t = 30)]
    stall_secs: u64,
    /// cephx: present tickets sealed with the server's service key (`[osd.]` in the keyring,
    /// else the `--name` entity's key).
    #[command(flatten)]
    auth: AuthArgs,
}

/// The JSON summary.
#[derive(Serialize, Default)]
pub struct Summary {
    sent: u64,
    replies: u64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    corrupt: u64,
    reconnects: u64,
    seconds: f64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    lat_p50_us: u64,
    lat_p99_us: u64,
    lat_max_us: u64,
    /// CPU time this process spent (user + system, every thread), in seconds.
    cpu_seconds: f64,
    /// CPU microseconds per reply (this process: the client side of each round trip).
    cpu_us_per_msg: f64,
}

/// One connection's reply bookkeeping.
struct ConnState {
    next: u64,
    duplicates: u64,
    reordered: u64,
    corrupt: u64,
    hist: Histogram<u64>,
}

struct Shared {
    start: Instant,
    verify: bool,
    conns: Vec<Mutex<ConnState>>,
    replies: Vec<AtomicU64>,
    /// Requests sent per connection. The lock also keeps each connection's sends in index
    /// order when the main thread (filling a window) and the dispatch thread send at once.
    sent: Vec<Mutex<u64>>,
    per_conn: Vec<u64>,
    depth: u64,
    /// Each connection's own payload (one shared by all would bump one refcount from every
    /// thread on every send).
    data: Vec<Bytes>,
    data_crc: u32,
    /// A send failed: the (lossy) session is gone, and the main thread must open another.
    broken: Vec<AtomicBool>,
    /// Requests in flight on a lossy session when it was reset: never to be answered, so no
    /// longer counted against the window.
    written_off: Vec<AtomicU64>,
    progress: Notify,
}

impl Shared {
    /// Sends connection `c`'s next requests on `conn` while fewer than the window are in
    /// flight; false when the session refused one (closed).
    fn fill(&self, c: usize, conn: &Connection) -> bool {
        let mut sent = self.sent[c].lock().unwrap();
        while *sent < self.per_conn[c] && *sent < self.settled(c) + self.depth {
            let stamp = BenchStamp {
                conn: c as u32,
                index: *sent,
                sent_ns: self.start.elapsed().as_nanos() as u64,
                data_crc: self.data_crc,
            };
            let msg = Message::from_payload(&BenchRequest {
                stamp,
                data: self.data[c].clone(),
            });
            if conn.send_message(msg).is_err() {
                self.broken[c].store(true, Ordering::Relaxed);
                self.progress.notify_one();
                return false;
            }
            *sent += 1;
        }
        true
    }

    /// Requests of connection `c` that have their answer, or never will.
    fn settled(&self, c: usize) -> u64 {
        self.replies[c].load(Ordering::Relaxed) + self.written_off[c].load(Ordering::Relaxed)
    }

    /// A lossy session of connection `c` was reset: what it had in flight is lost.
    fn write_off_in_flight(&self, c: usize) {
        let sent = *self.sent[c].lock().unwrap();
        let lost = sent.saturating_sub(self.settled(c));
        self.written_off[c].fetch_add(lost, Ordering::Relaxed);
    }

    fn sent(&self) -> u64 {
        self.sent.iter().map(|s| *s.lock().unwrap()).sum()
    }

    fn replies(&self) -> u64 {
        self.replies.iter().map(|r| r.load(Ordering::Relaxed)).sum()
    }
}

struct Replies(Arc<Shared>);

impl Dispatcher for Replies {
    /// Replies are handled on the connection's own shard thread, as the harness's client does:
    /// through the dispatch queue each would cost a hand-off to the dispatch thread and back.
    fn ms_can_fast_dispatch(&self, msg: &Message) -> bool {
        msg.msg_type == BENCH_REPLY
    }

    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        if msg.msg_type != BENCH_REPLY {
            return false;
        }
        let Ok(reply) = msg.decode_payload::<BenchReply>() else {
            tracing::warn!("undecodable bench reply");
            return true;
        };
        let s = &self.0;
        let idx = reply.stamp.conn as usize;
        let Some(state) = s.conns.get(idx) else {
            return true;
        };
        let now = s.start.elapsed().as_nanos() as u64;
        {
            let mut st = state.lock().unwrap();
            let _ = st
                .hist
                .record((now.saturating_sub(reply.stamp.sent_ns) / 1000).max(1));
            if s.verify {
                if !reply.intact {
                    st.corrupt += 1;
                }
                match reply.stamp.index.cmp(&st.next) {
                    std::cmp::Ordering::Less => st.duplicates += 1,
                    std::cmp::Ordering::Greater => {
                        st.reordered += 1;
                        st.next = reply.stamp.index + 1;
                    }
                    std::cmp::Ordering::Equal => st.next += 1,
                }
            }
        }
        let replied = s.replies[idx].fetch_add(1, Ordering::Relaxed) + 1;
        s.fill(idx, conn);
        if replied == s.per_conn[idx] {
            s.progress.notify_one();
        }
        true
    }
}

/// Why the peer refused a session outright (a redial would only be refused again).
fn refused(conn: &Connection) -> Option<String> {
    let e = conn.last_error()?;
    let refusal = match &*e {
        PipeError::Handshake(h) => {
            h.refusal_tag().is_some()
                || matches!(h, HandshakeError::Cephx(_))
                || matches!(h, HandshakeError::V2(e) if matches!(**e,
                    V2Error::BadMethod { .. } | V2Error::MissingFeatures(_) | V2Error::Cephx(_) | V2Error::Mode(_)))
        }
        _ => false,
    };
    refusal.then(|| e.to_string())
}

pub async fn run(args: Args, config: Config) -> Result<(), String> {
    let summary = bench(&args, config).await?;
    let lossless = !Policy::preset(&args.policy)
        .map(|p| p.lossy)
        .unwrap_or(true);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{} msgs in {:.2} s: {:.0} msg/s, {:.1} MB/s, latency p50 {} us p99 {} us max {} us; CPU {:.2} s ({:.1} us/msg); lost {} dup {} reordered {} corrupt {} reconnects {}",
            summary.replies, summary.seconds, summary.msgs_per_sec, summary.mb_per_sec, summary.lat_p50_us,
            summary.lat_p99_us, summary.lat_max_us, summary.cpu_seconds, summary.cpu_us_per_msg,
            summary.lost, summary.duplicates, summary.reordered, summary.corrupt, summary.reconnects
        );
    }
    let bad = summary.lost + summary.duplicates + summary.reordered + summary.corrupt;
    if lossless && bad > 0 {
        return Err(format!(
            "lossless run lost {} / duplicated {} / reordered {} / corrupted {}",
            summary.lost, summary.duplicates, summary.reordered, summary.corrupt
        ));
    }
    Ok(())
}

/// Runs the load and returns its summary (also used by the benchmark harness).
pub async fn bench(args: &Args, config: Config) -> Result<Summary, String> {
    let policy =
        Policy::preset(&args.policy).ok_or_else(|| format!("unknown policy {:?}", args.policy))?;
    let conns = args.conns.max(1);
    let per_conn: Vec<u64> = (0..conns as u64)
        .map(|c| args.count / conns as u64 + u64::from(c < args.count % conns as u64))
        .collect();
    let total: u64 = per_conn.iter().sum();
    let payload: Vec<u8> = (0..args.size).map(|i| (i * 7 + 3) as u8).collect();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        verify: args.verify,
        conns: (0..conns)
            .map(|_| {
                Mutex::new(ConnState {
                    next: 0,
                    duplicates: 0,
                    reordered: 0,
                    corrupt: 0,
                    hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
                })
            })
            .collect(),
        replies: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..conns).map(|_| Mutex::new(0)).collect(),
        per_conn,
        depth: args.depth.max(1),
        data: (0..conns).map(|_| Bytes::from(payload.clone())).collect(),
        // The server checks each request's data against this only with --verify: without it,
        // that extra CRC pass over every message is not the load being measured.
        data_crc: if args.verify {
            ceph_crc32c(0, &payload)
        } else {
            0
        },
        broken: (0..conns).map(|_| AtomicBool::new(false)).collect(),
        written_off: (0..conns).map(|_| AtomicU64::new(0)).collect(),
        progress: Notify::new(),
    });

    let auth = args.auth.client_setup(EntityType::OSD)?;
    // One messenger per connection (each its own session), all on the first one's threads.
    let mut messengers: Vec<Messenger> = Vec::new();
    let mut connections = Vec::new();
    for c in 0..conns {
        let mut config = config.clone();
        if c > 0 {
            // One admin socket for the run: the first messenger's (it owns the threads).
            config.admin_socket.clear();
        }
        let mut b = Messenger::builder(EntityName::new(EntityType::CLIENT, c as i64))
            .auth(auth.clone())
            .config(config)
            .default_policy(policy)
            .dispatcher(Arc::new(Replies(shared.clone())));
        if let Some(first) = messengers.first() {
            b = b.share_threads_with(first);
        }
        let m = b.build().map_err(|e| e.to_string())?;
        connections.push(args.peer.connect(&m, EntityType::OSD).await?);
        messengers.push(m);
    }
    // The clock and the CPU count start once every connection is open, as in the harness:
    // set-up (handshakes, cephx) is not the load being measured.
    let began = Instant::now();
    let cpu_at_start = process_cpu_seconds();
    // The first windows; the replies keep them full from then on.
    for (c, conn) in connections.iter().enumerate() {
        shared.fill(c, conn);
    }
    let progress_line = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let mut last_count = 0;
    let mut stalled_since = Instant::now();
    loop {
        let notified = shared.progress.notified();
        for c in 0..conns as usize {
            if shared.broken[c].swap(false, Ordering::Relaxed) || connections[c].is_closed() {
                // Refused outright: a new session would be refused again.
                if let Some(why) = refused(&connections[c]) {
                    return Err(format!("{} refused the session: {why}", args.peer));
                }
                // A lossy session was reset: what it had in flight is lost; go on with a new one.
                shared.write_off_in_flight(c);
                connections[c] = args.peer.connect(&messengers[c], EntityType::OSD).await?;
                shared.fill(c, &connections[c]);
            }
        }
        if let Some(why) = connections.iter().find_map(refused) {
            return Err(format!("{} refused the session: {why}", args.peer));
        }
        let replies = shared.replies();
        if (0..conns as usize).all(|c| shared.settled(c) >= shared.per_conn[c]) {
            break;
        }
        if replies != last_count {
            last_count = replies;
            stalled_since = Instant::now();
        } else if stalled_since.elapsed() > Duration::from_secs(args.stall_secs) {
            tracing::warn!(
                replies,
                total,
                "no progress; giving up on the missing replies"
            );
            break;
        }
        if progress_line && last_progress.elapsed() > Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\r{replies}/{total} replies, {:.0} msg/s   ",
                replies as f64 / began.elapsed().as_secs_f64()
            );
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
    if progress_line {
        eprintln!();
    }
    let seconds = began.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_at_start;
    let mut s = Summary {
        sent: shared.sent(),
        replies: shared.replies(),
        seconds,
        ..Default::default()
    };
    s.lost = s.sent.saturating_sub(s.replies);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for c in &shared.conns {
        let st = c.lock().unwrap();
        s.duplicates += st.duplicates;
        s.reordered += st.reordered;
        s.corrupt += st.corrupt;
        let _ = hist.add(&st.hist);
    }
    s.reconnects = messengers.iter().map(|m| m.counters().reconnects).sum();
    s.msgs_per_sec = s.replies as f64 / seconds;
    s.mb_per_sec = s.replies as f64 * args.size as f64 / seconds / 1e6;
    s.lat_p50_us = hist.value_at_quantile(0.5);
    s.lat_p99_us = hist.value_at_quantile(0.99);
    s.lat_max_us = hist.max();
    s.cpu_seconds = cpu_seconds;
    s.cpu_us_per_msg = s.cpu_seconds * 1e6 / s.replies.max(1) as f64;
    // Shut down the sharers first: the first messenger owns the threads.
    for m in messengers.iter().skip(1) {
        m.shutdown().await;
    }
    if let Some(m) = messengers.first() {
        m.shutdown().await;
    }
    Ok(s)
}

/// CPU time (user + system) of this whole process so far, in seconds (0 where unknown).
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the struct we pass, which is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
