//! msgr itself: a server messenger and C client messengers (one session each, sharing the
//! server's two shard threads), the bench payloads, replies per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use msgr::messages::{BenchReply, BenchRequest, BenchStamp, BENCH_REPLY, BENCH_REQUEST};
use msgr::{Config, EntityName, EntityType, Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};
use tokio::sync::Notify;

use crate::common::*;

struct Server;

impl Dispatcher for Server {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.msg_type == BENCH_REQUEST
    }
    fn ms_dispatch(&self, conn: &Connection, m: Message) -> bool {
        if let Ok(req) = m.decode_payload::<BenchRequest>() {
            let _ = conn.send_message(Message::from_payload(&BenchReply {
                stamp: req.stamp,
                intact: true,
            }));
        }
        true
    }
}

/// The client side runs closed-loop on the shard threads, as Ceph's perf_msgr_client does:
/// every reply sends the connection's next request from inside dispatch.
struct Client {
    start: Instant,
    conns: Vec<ConnProgress>,
    per_conn: u64,
    /// Each connection's own payload buffer, as each client of a real cluster has its own
    /// (one buffer shared by all would make every send bump one refcount from every thread).
    data: Vec<Bytes>,
    crc: u32,
    lat: Latencies,
    progress: Notify,
}

/// One connection's counts, on a cache line of its own: neighbouring connections run on
/// other threads.
#[repr(align(128))]
#[derive(Default)]
struct ConnProgress {
    sent: AtomicU64,
    replies: AtomicU64,
}

impl Client {
    fn send_next(&self, conn: &Connection, c: usize) {
        let index = self.conns[c].sent.fetch_add(1, Ordering::Relaxed);
        if index >= self.per_conn {
            return;
        }
        let stamp = BenchStamp {
            conn: c as u32,
            index,
            sent_ns: self.start.elapsed().as_nanos() as u64,
            data_crc: self.crc,
        };
        let _ = conn.send_message(Message::from_payload(&BenchRequest {
            stamp,
            data: self.data[c].clone(),
        }));
    }
}

impl Dispatcher for Client {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.msg_type == BENCH_REPLY
    }
    fn ms_dispatch(&self, conn: &Connection, m: Message) -> bool {
        if let Ok(r) = m.decode_payload::<BenchReply>() {
            let now = self.start.elapsed().as_nanos() as u64;
            self.lat.record(r.stamp.sent_ns, now);
            let c = r.stamp.conn as usize;
            self.send_next(conn, c);
            if self.conns[c].replies.fetch_add(1, Ordering::Relaxed) + 1 == self.per_conn {
                self.progress.notify_one();
            }
        }
        true
    }
}

/// The busy-polling window of the latency-mode ping-pong run (`ms_busy_poll_us`; every other
/// run uses msgr's default, off).
pub const BUSY_POLL_US: u64 = 50;

/// Runs the load. With `remote`, only the clients run here, against a server in another
/// process; otherwise the server runs here too, on the same shard threads.
pub fn run(load: Load, inject: u64, busy_poll_us: u64, remote: Option<SocketAddr>) -> Outcome {
    actix::System::new().block_on(async move {
        let config = Config::default()
            .ms_threads(load.threads)
            .ms_busy_poll_us(busy_poll_us)
            .ms_inject_socket_failures(inject)
            .ms_initial_backoff(Duration::from_millis(10))
            .ms_max_backoff(Duration::from_millis(100));
        let server = match remote {
            Some(_) => None,
            None => {
                let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
                    .config(config.clone())
                    .default_policy(Policy::stateful_server(0))
                    .dispatcher(Arc::new(Server))
                    .build()
                    .unwrap();
                server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                server.start().unwrap();
                Some(server)
            }
        };
        let data: Bytes = vec![0x5au8; load.size].into();
        let per_conn = load.count / load.conns as u64;
        let client = Arc::new(Client {
            start: Instant::now(),
            conns: (0..load.conns).map(|_| ConnProgress::default()).collect(),
            per_conn,
            crc: msgr::wire::ceph_crc32c(0, &data),
            data: (0..load.conns)
                .map(|_| Bytes::copy_from_slice(&data))
                .collect(),
            lat: Latencies::new(),
            progress: Notify::new(),
        });
        let mut messengers = vec![];
        let mut conns = vec![];
        for c in 0..load.conns {
            let mut b = Messenger::builder(EntityName::new(EntityType::CLIENT, c as i64))
                .config(config.clone())
                .default_policy(Policy::lossless_client(0))
                .dispatcher(client.clone());
            // Every messenger of this process on the same two shard threads.
            if let Some(first) = server.as_ref().or(messengers.first()) {
                b = b.share_threads_with(first);
            }
            let m = b.build().unwrap();
            let conn = match (&server, remote) {
                (Some(s), _) => m.get_connection(s.my_addr(), EntityType::OSD).await,
                (None, Some(a)) => m.connect(a, EntityType::OSD).await,
                (None, None) => unreachable!("a server here or a remote address"),
            };
            conns.push(conn.unwrap());
            messengers.push(m);
        }
        let total = per_conn * load.conns as u64;
        let phase = Phase::start();
        // The first window of every connection; replies keep each window full from then on.
        for (c, conn) in conns.iter().enumerate() {
            for _ in 0..load.depth {
                client.send_next(conn, c);
            }
        }
        loop {
            let notified = client.progress.notified();
            let replied: u64 = client
                .conns
                .iter()
                .map(|c| c.replies.load(Ordering::Relaxed))
                .sum();
            if replied >= total {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        }
        let mut outcome = phase.finish(total);
        outcome.replayed = server.as_ref().map_or(0, |s| s.counters().replayed)
            + messengers
                .iter()
                .map(|m| m.counters().replayed)
                .sum::<u64>();
        for m in &messengers {
            m.shutdown().await;
        }
        if let Some(server) = server {
            server.shutdown().await;
        }
        outcome.lat = client.lat.merged();
        outcome
    })
}

/// An msgr server on `threads` shard threads (for the idle-connection measurement and the
/// cross-process runs), run until `stop` resolves.
pub fn idle_server(
    threads: usize,
    ready: std::sync::mpsc::Sender<std::net::SocketAddr>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    actix::System::new().block_on(async move {
        let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
            .config(Config::default().ms_threads(threads))
            .default_policy(Policy::stateful_server(0))
            .dispatcher(Arc::new(Server))
            .build()
            .unwrap();
        let addr = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        server.start().unwrap();
        ready.send(addr.addr.unwrap()).unwrap();
        while stop.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.shutdown().await;
    })
}
