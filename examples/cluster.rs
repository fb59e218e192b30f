//! The main job: several messengers in one process exchange lossless traffic over loopback
//! while sockets fail on purpose, and the run proves nothing was lost, duplicated or reordered.
//!
//! One server (an OSD-like entity, `stateful_server` toward clients) and `--clients` clients
//! (`lossless_client`), each sending numbered messages with checksummed data that the server
//! echoes. A status line every second; a summary at the end. Exits non-zero on any loss.
//!
//! `cargo run --release --example cluster -- --duration 20 --clients 4 --inject-socket-failures 200`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use msgr::{Config, EntityName, EntityType, Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};

/// Message type of the example's requests and echoes (private range, see docs/simulators.md).
const REQ: u16 = 0xE100;
const ECHO: u16 = 0xE101;

#[derive(Parser)]
struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Client messengers.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// ms_inject_socket_failures on every messenger (0 disables).
    #[arg(long, default_value_t = 200)]
    inject_socket_failures: u64,
    /// Print one JSON summary as the last line.
    #[arg(long)]
    json: bool,
}

fn body(client: u32, n: u64) -> Bytes {
    let seed = ((client as u64) << 40) ^ n;
    (0..512u64)
        .map(|i| (seed.wrapping_mul(0x9E37_79B9).wrapping_add(i) >> 3) as u8)
        .collect::<Vec<_>>()
        .into()
}

fn request(client: u32, n: u64) -> Message {
    let mut front = Vec::with_capacity(12);
    front.extend_from_slice(&client.to_le_bytes());
    front.extend_from_slice(&n.to_le_bytes());
    let mut m = Message::new(REQ, front.into());
    m.data = body(client, n);
    m
}

fn parse(m: &Message) -> Option<(u32, u64)> {
    let f = &m.front;
    (f.len() == 12).then(|| {
        (
            u32::from_le_bytes(f[..4].try_into().unwrap()),
            u64::from_le_bytes(f[4..].try_into().unwrap()),
        )
    })
}

struct Server;

impl Dispatcher for Server {
    fn ms_dispatch(&self, conn: &Connection, m: Message) -> bool {
        let mut echo = Message::new(ECHO, m.front.clone());
        echo.data = m.data;
        let _ = conn.send_message(echo);
        true
    }
}

/// Checks every echo a client gets: next in order, intact.
#[derive(Default)]
struct ClientCheck {
    next: Mutex<u64>,
    received: AtomicU64,
    bad: AtomicU64,
}

struct Client(Arc<ClientCheck>);

impl Dispatcher for Client {
    fn ms_dispatch(&self, _: &Connection, m: Message) -> bool {
        let mut next = self.0.next.lock().unwrap();
        match parse(&m) {
            Some((c, n)) if n == *next && m.data == body(c, n) => {
                *next += 1;
                self.0.received.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.0.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

#[actix::main]
async fn main() {
    let args = Args::parse();
    let config = Config::default()
        .ms_inject_socket_failures(args.inject_socket_failures)
        .ms_initial_backoff(Duration::from_millis(20))
        .ms_max_backoff(Duration::from_millis(500));
    let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
        .config(config.clone())
        .default_policy(Policy::stateful_server(0))
        .dispatcher(Arc::new(Server))
        .build()
        .expect("server");
    let addr = server
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    server.start().expect("start");

    let mut clients = vec![];
    for c in 0..args.clients {
        let check = Arc::new(ClientCheck::default());
        let m = Messenger::builder(EntityName::new(EntityType::CLIENT, c as i64))
            .config(config.clone())
            .default_policy(Policy::lossless_client(0))
            .dispatcher(Arc::new(Client(check.clone())))
            .build()
            .expect("client");
        let conn = m
            .get_connection(addr, EntityType::OSD)
            .await
            .expect("connection");
        clients.push((m, conn, check, 0u64));
    }

    let start = Instant::now();
    let mut last_status = Instant::now();
    const WINDOW: u64 = 256; // messages in flight per client
    while start.elapsed() < Duration::from_secs(args.duration) {
        for (c, (_, conn, check, sent)) in clients.iter_mut().enumerate() {
            let done = check.received.load(Ordering::Relaxed);
            while *sent < done + WINDOW {
                conn.send_message(request(c as u32, *sent))
                    .expect("lossless connections never close");
                *sent += 1;
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let echoed: u64 = clients
                .iter()
                .map(|c| c.2.received.load(Ordering::Relaxed))
                .sum();
            let faults: u64 = clients.iter().map(|c| c.0.counters().faults).sum::<u64>()
                + server.counters().faults;
            let replayed: u64 = clients.iter().map(|c| c.0.counters().replayed).sum::<u64>()
                + server.counters().replayed;
            eprintln!(
                "[{:>3}s] echoed {echoed:>9}  {:>8.0} msg/s  faults {faults}  replayed {replayed}",
                start.elapsed().as_secs(),
                echoed as f64 / start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Drain: everything sent must come back.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while clients
        .iter()
        .any(|(_, _, check, sent)| check.received.load(Ordering::Relaxed) < *sent)
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent: u64 = clients.iter().map(|c| c.3).sum();
    let echoed: u64 = clients
        .iter()
        .map(|c| c.2.received.load(Ordering::Relaxed))
        .sum();
    let bad: u64 = clients
        .iter()
        .map(|c| c.2.bad.load(Ordering::Relaxed))
        .sum();
    let mut totals = server.counters();
    for c in &clients {
        totals += c.0.counters();
    }
    let lost = sent - echoed;
    let secs = start.elapsed().as_secs_f64();
    println!("sent {sent}, echoed {echoed}, lost {lost}, out of order or corrupt {bad}");
    println!(
        "faults {}, reconnects {}, replayed {}",
        totals.faults, totals.reconnects, totals.replayed
    );
    if args.json {
        let summary = serde_json::json!({
            "sent": sent, "echoed": echoed, "lost_lossless": lost, "bad": bad,
            "faults": totals.faults, "reconnects": totals.reconnects, "replayed": totals.replayed,
            "seconds": secs,
        });
        println!("{summary}");
    }
    for (m, _, _, _) in &clients {
        m.shutdown().await;
    }
    server.shutdown().await;
    if lost > 0 || bad > 0 {
        eprintln!("FAILED: lossless sessions lost or damaged messages");
        std::process::exit(1);
    }
}
