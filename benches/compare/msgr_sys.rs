//! msgr itself: a server messenger and C client messengers (one session each, sharing the
//! server's two shard threads), the bench payloads, replies per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

struct Client {
    start: Instant,
    replies: Vec<AtomicU64>,
    lat: Mutex<hdrhistogram::Histogram<u64>>,
    progress: Notify,
}

impl Dispatcher for Client {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.msg_type == BENCH_REPLY
    }
    fn ms_dispatch(&self, _: &Connection, m: Message) -> bool {
        if let Ok(r) = m.decode_payload::<BenchReply>() {
            let now = self.start.elapsed().as_nanos() as u64;
            let _ = self
                .lat
                .lock()
                .unwrap()
                .record((now.saturating_sub(r.stamp.sent_ns) / 1000).max(1));
            self.replies[r.stamp.conn as usize].fetch_add(1, Ordering::Relaxed);
            self.progress.notify_one();
        }
        true
    }
}

pub fn run(load: Load, inject: u64) -> Outcome {
    actix::System::new().block_on(async move {
        let config = Config::default()
            .ms_threads(2)
            .ms_inject_socket_failures(inject)
            .ms_initial_backoff(Duration::from_millis(10))
            .ms_max_backoff(Duration::from_millis(100));
        let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
            .config(config.clone())
            .default_policy(Policy::stateful_server(0))
            .dispatcher(Arc::new(Server))
            .build()
            .unwrap();
        let addr = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        server.start().unwrap();
        let client = Arc::new(Client {
            start: Instant::now(),
            replies: (0..load.conns).map(|_| AtomicU64::new(0)).collect(),
            lat: Mutex::new(histogram()),
            progress: Notify::new(),
        });
        let mut messengers = vec![];
        let mut conns = vec![];
        for c in 0..load.conns {
            let m = Messenger::builder(EntityName::new(EntityType::CLIENT, c as i64))
                .config(config.clone())
                .default_policy(Policy::lossless_client(0))
                .dispatcher(client.clone())
                .share_threads_with(&server)
                .build()
                .unwrap();
            conns.push(m.get_connection(addr, EntityType::OSD).await.unwrap());
            messengers.push(m);
        }
        let data: Bytes = vec![0x5au8; load.size].into();
        let crc = msgr::wire::ceph_crc32c(0, &data);
        let per_conn = load.count / load.conns as u64;
        let total = per_conn * load.conns as u64;
        let mut sent = vec![0u64; load.conns];
        let start = Instant::now();
        loop {
            let notified = client.progress.notified();
            let mut replied_total = 0;
            for c in 0..load.conns {
                let replied = client.replies[c].load(Ordering::Relaxed);
                replied_total += replied;
                while sent[c] < per_conn && sent[c] < replied + load.depth as u64 {
                    let stamp = BenchStamp {
                        conn: c as u32,
                        index: sent[c],
                        sent_ns: client.start.elapsed().as_nanos() as u64,
                        data_crc: crc,
                    };
                    conns[c]
                        .send_message(Message::from_payload(&BenchRequest {
                            stamp,
                            data: data.clone(),
                        }))
                        .unwrap();
                    sent[c] += 1;
                }
            }
            if replied_total >= total {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        }
        let secs = start.elapsed().as_secs_f64();
        let rss_kib = rss_kib();
        let threads = threads();
        let mut replayed = server.counters().replayed;
        for m in &messengers {
            replayed += m.counters().replayed;
        }
        for m in &messengers {
            m.shutdown().await;
        }
        server.shutdown().await;
        let lat = client.lat.lock().unwrap().clone();
        Outcome {
            msgs: total,
            secs,
            lat,
            rss_kib,
            threads,
            replayed,
        }
    })
}

/// An msgr server for the idle-connection measurement, run until `stop` resolves.
pub fn idle_server(
    ready: std::sync::mpsc::Sender<std::net::SocketAddr>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    actix::System::new().block_on(async move {
        let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
            .config(Config::default().ms_threads(2))
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
