//! The main job: a small Ceph-like cluster in one process — one monitor, N OSDs and a client,
//! each with its own messenger and port — under injected socket failures. The client writes and
//! reads back a workload of objects while one OSD's messengers are stopped and started again,
//! and the map converges. A status line every second; a summary at the end. Exits non-zero if a
//! lossless session lost anything or a write could not be verified on every replica.
//!
//! `cargo run --release --example cluster -- --duration 20 --osds 4 --inject-socket-failures 500`
//!
//! The same code runs as separate processes:
//! `--role mon --port P`, `--role osd --id N --mon 127.0.0.1:P`, `--role client --mon 127.0.0.1:P`;
//! `--bind-ip IP` makes a mon or OSD bind another address (tests/netns.rs runs the roles on three
//! network namespaces).

#[path = "sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use msgr::EntityAddr;
use msgr_actors::{CountersSnapshot, Messenger};
use sim::client::Client;
use sim::mon::Mon;
use sim::osd::Osd;

#[derive(Parser, Clone)]
struct Args {
    /// Seconds of workload.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// OSDs.
    #[arg(long, default_value_t = 4)]
    osds: u32,
    /// ms_inject_socket_failures on every messenger (0 disables).
    #[arg(long, default_value_t = 500)]
    inject_socket_failures: u64,
    /// Print one JSON summary as the last line.
    #[arg(long)]
    json: bool,
    /// Every messenger speaks msgr2 instead of msgr v1: `--msgr2` (or `--msgr2 secure`)
    /// encrypts every session (AES-GCM), authenticated with cephx under one cluster key;
    /// `--msgr2 crc` checks each frame's CRC only, with auth none.
    #[arg(long, num_args = 0..=1, default_missing_value = "secure", value_parser = ["secure", "crc"])]
    msgr2: Option<String>,
    /// The cluster key for `--msgr2 secure`: the first key in this Ceph keyring (each process
    /// of a multi-process cluster must be given the same); without it a random key is made,
    /// which only a whole cluster in one process can share.
    #[arg(long)]
    keyring: Option<std::path::PathBuf>,
    /// Run one role of a multi-process cluster instead of the whole cluster.
    #[arg(long, value_parser = ["all", "mon", "osd", "client"], default_value = "all")]
    role: String,
    /// OSD id (with --role osd).
    #[arg(long, default_value_t = 0)]
    id: u32,
    /// The monitor's address (with --role osd / client).
    #[arg(long)]
    mon: Option<String>,
    /// The monitor's port (with --role mon; 0 picks one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The IP this process's messengers bind (with --role mon / osd): another host's address
    /// when the roles run on different hosts or network namespaces.
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: std::net::IpAddr,
    /// Objects in the workload.
    #[arg(long, default_value_t = 256)]
    objects: u32,
    /// An admin socket for every daemon (mon, OSDs, client) at this path, `$name` expanded
    /// (e.g. `/tmp/$cluster-$name.asok`), for `ceph --admin-daemon PATH perf dump`.
    #[arg(long)]
    admin_socket: Option<String>,
    /// Any messenger option by its Ceph name, for every messenger (repeatable), e.g.
    /// `--ms ms_inject_internal_delays=0.005`.
    #[arg(long = "ms", value_name = "NAME=VALUE", value_parser = parse_option)]
    ms: Vec<(String, String)>,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// The first key of a Ceph keyring.
fn cluster_key_from(path: &std::path::Path) -> Result<msgr::auth::CryptoKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ring = msgr::auth::Keyring::parse(&text).map_err(|e| e.to_string())?;
    let first = ring.entities().next().ok_or("no key in it")?;
    Ok(ring.get(first).expect("listed").clone())
}

/// A fresh random cluster key.
fn random_key() -> msgr::auth::CryptoKey {
    let secret: [u8; 16] = rand::random();
    msgr::auth::CryptoKey::new((0, 0), &secret).expect("a 16-byte AES key")
}

fn object_data(tid: u64, oid: &str) -> Bytes {
    let seed = msgr::wire::ceph_crc32c(tid as u32, oid.as_bytes()) as u64;
    (0..4096u64)
        .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 31) >> 5) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// How many sessions of these messengers have a socket open, by its framing (`v1`,
/// `msgr2-crc`, `msgr2-secure`).
async fn open_wires(ms: &[Messenger]) -> std::collections::BTreeMap<&'static str, usize> {
    let mut wires = std::collections::BTreeMap::new();
    for m in ms {
        for c in m.connections().await {
            if let Some(wire) = c.info().await.and_then(|i| i.wire) {
                *wires.entry(wire).or_default() += 1;
            }
        }
    }
    wires
}

fn totals(ms: &[Messenger]) -> CountersSnapshot {
    let mut t = CountersSnapshot::default();
    for m in ms {
        t += m.counters();
    }
    t
}

/// Writes while time lasts, keeping 32 writes in flight, one per object.
async fn workload(client: &Client, args: &Args, status: impl Fn(u64)) -> u64 {
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(args.duration) {
        let mut tries = 0;
        while client.inner.in_flight() < 32 && tries < 64 {
            let oid = format!("obj-{}", n % args.objects as u64);
            if client.inner.try_write(oid.clone(), object_data(n, &oid)) {
                n += 1;
            }
            tries += 1;
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            status(start.elapsed().as_secs());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

#[actix::main]
async fn main() {
    let args = Args::parse();
    if let Some(t) = &args.admin_socket {
        sim::set_admin_socket(t.clone());
    }
    if let Err(e) = sim::set_config_overrides(args.ms.clone()) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    if let Some(mode) = &args.msgr2 {
        let secure = match (mode.as_str(), &args.keyring) {
            ("crc", _) => None,
            (_, Some(path)) => match cluster_key_from(path) {
                Ok(key) => Some(key),
                Err(e) => {
                    eprintln!("--keyring {}: {e}", path.display());
                    std::process::exit(2);
                }
            },
            (_, None) if args.role != "all" => {
                eprintln!("--msgr2 secure with --role needs --keyring: every process must share the cluster key");
                std::process::exit(2);
            }
            (_, None) => Some(random_key()),
        };
        sim::use_msgr2(sim::WireSetup { secure });
    }
    // Quiet unless asked: RUST_LOG=msgr_actors=debug traces every fault and handshake.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let code = match args.role.as_str() {
        "mon" => run_mon(&args).await,
        "osd" => run_osd(&args).await,
        "client" => run_client(&args).await,
        _ => run_all(&args).await,
    };
    std::process::exit(code);
}

fn mon_addr(args: &Args) -> EntityAddr {
    let text = args
        .mon
        .clone()
        .expect("--mon ADDR is required for this role");
    let mut a: EntityAddr = text.parse().expect("--mon must be IP:PORT");
    a.nonce = 0;
    a
}

async fn run_mon(args: &Args) -> i32 {
    let mon = Mon::start(
        (args.bind_ip, args.port).into(),
        args.inject_socket_failures,
    )
    .await;
    println!("mon listening on {}", mon.addr());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (up, inn, total) = mon.inner.counts();
        eprintln!(
            "mon: epoch {} osds {up}/{inn}/{total} up/in/total",
            mon.inner.epoch()
        );
    }
    let lost = mon.lost();
    mon.stop().await;
    println!(
        "{}",
        serde_json::json!({ "role": "mon", "lost_lossless": lost })
    );
    i32::from(lost > 0)
}

async fn run_osd(args: &Args) -> i32 {
    let osd = Osd::bound_to(
        args.id,
        mon_addr(args),
        args.inject_socket_failures,
        args.bind_ip,
    );
    osd.start(None).await;
    eprintln!("osd.{} booted", args.id);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let lost = osd
        .inner
        .loss
        .lost
        .load(std::sync::atomic::Ordering::Relaxed);
    osd.stop().await;
    println!(
        "{}",
        serde_json::json!({ "role": "osd", "id": args.id, "lost_lossless": lost })
    );
    i32::from(lost > 0)
}

async fn run_client(args: &Args) -> i32 {
    let client = Client::start(1, mon_addr(args), args.inject_socket_failures, None).await;
    let wait = Instant::now();
    while client.inner.epoch() == 0 && wait.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writes = workload(&client, args, |s| {
        eprintln!(
            "[{s:>3}s] acked {}",
            client
                .inner
                .writes_acked
                .load(std::sync::atomic::Ordering::Relaxed)
        )
    })
    .await;
    let drained = client.drain(Duration::from_secs(30)).await;
    let v = client.verify(Duration::from_secs(30)).await;
    let lost = client
        .inner
        .loss
        .lost
        .load(std::sync::atomic::Ordering::Relaxed);
    let ok = drained && v.failures == 0 && lost == 0;
    println!(
        "{}",
        serde_json::json!({ "role": "client", "writes": writes, "writes_acked": client.inner.writes_acked.load(std::sync::atomic::Ordering::Relaxed),
            "objects": v.objects, "replica_reads_verified": v.verified, "verify_failures": v.failures, "lost_lossless": lost, "drained": drained,
            "my_addr": client.messenger().my_addr().to_string() })
    );
    client.stop().await;
    i32::from(!ok)
}

async fn run_all(args: &Args) -> i32 {
    use std::sync::atomic::Ordering::Relaxed;
    let inject = args.inject_socket_failures;
    let mon = Mon::start("127.0.0.1:0".parse().unwrap(), inject).await;
    let mon_addr = mon.addr();
    let osds: Vec<Osd> = (0..args.osds)
        .map(|i| Osd::new(i, mon_addr, inject))
        .collect();
    for o in &osds {
        o.start(Some(&mon.messenger)).await;
    }
    let client = Client::start(1, mon_addr, inject, Some(&mon.messenger)).await;
    // Wait for every OSD to be up in the client's map.
    let wait = Instant::now();
    while mon.inner.counts().0 < args.osds as usize && wait.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let victim = osds.last().cloned().expect("at least one OSD");
    let (stop_at, start_at) = (args.duration / 3, 2 * args.duration / 3);
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let restarted = std::sync::atomic::AtomicBool::new(false);
    let all_messengers = || {
        let mut v = vec![mon.messenger.clone(), client.messenger().clone()];
        for o in &osds {
            v.extend(o.messengers());
        }
        v
    };
    let status = |secs: u64| {
        let t = totals(&all_messengers());
        let (up, inn, total) = mon.inner.counts();
        let acked = client.inner.writes_acked.load(Relaxed);
        eprintln!(
            "[{secs:>3}s] epoch {:>3}  osds up {up}/{total} in {inn}  writes acked {acked:>7} ({:>5.0}/s)  reconnects {}  replayed {}  faults {}",
            mon.inner.epoch(),
            acked as f64 / start.elapsed().as_secs_f64(),
            t.reconnects,
            t.replayed,
            t.faults,
        );
    };
    let chaos = async {
        tokio::time::sleep(Duration::from_secs(stop_at)).await;
        eprintln!("stopping osd.{}'s messengers", victim.inner.id);
        victim.stop().await;
        stopped.store(true, Relaxed);
        tokio::time::sleep(Duration::from_secs(start_at - stop_at)).await;
        eprintln!("starting osd.{} again", victim.inner.id);
        victim.start(Some(&mon.messenger)).await;
        restarted.store(true, Relaxed);
    };
    let (writes, _) = tokio::join!(workload(&client, args, status), chaos);
    let drained = client.drain(Duration::from_secs(60)).await;
    // Let the map settle before verifying (the restarted OSD back up everywhere).
    let settle = Instant::now();
    while mon.inner.counts().0 < args.osds as usize && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected_reads = client.read_count_expected();
    let v = client.verify(Duration::from_secs(60)).await;
    let t = totals(&all_messengers());
    let lost_mon = mon.lost();
    let lost_osd: u64 = osds.iter().map(|o| o.inner.loss.lost.load(Relaxed)).sum();
    let lost_client = client.inner.loss.lost.load(Relaxed);
    let misordered = mon.inner.loss.misordered.load(Relaxed)
        + osds
            .iter()
            .map(|o| o.inner.loss.misordered.load(Relaxed))
            .sum::<u64>()
        + client.inner.loss.misordered.load(Relaxed);
    let acked = client.inner.writes_acked.load(Relaxed);
    let wires = open_wires(&all_messengers()).await;
    let expected_wire = match args.msgr2.as_deref() {
        None => "v1",
        Some("crc") => "msgr2-crc",
        Some(_) => "msgr2-secure",
    };
    let (up, inn, total) = mon.inner.counts();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "writes: {writes} issued, {acked} acknowledged; objects {} verified on every replica: {} of {} replica reads matched, {} failed",
        v.objects, v.verified, expected_reads, v.failures
    );
    println!(
        "map: epoch {} with {up}/{total} up, {inn} in; messages lost on lossless sessions: mon {lost_mon}, osds {lost_osd}, client {lost_client}; misordered {misordered}",
        mon.inner.epoch()
    );
    println!(
        "messengers: faults {}, reconnects {}, replayed {}, ops resent by the client {}",
        t.faults,
        t.reconnects,
        t.replayed,
        client.inner.resent.load(Relaxed)
    );
    println!("sessions open at the end, by wire: {wires:?}");
    let ok = drained
        && wires.keys().all(|w| *w == expected_wire)
        && v.failures == 0
        && v.verified == expected_reads
        && lost_mon + lost_osd + lost_client == 0
        && misordered == 0
        && stopped.load(Relaxed)
        && restarted.load(Relaxed)
        && up == args.osds as usize;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "seconds": secs, "writes_issued": writes, "writes_acked": acked, "objects": v.objects,
                "replica_reads_expected": expected_reads, "replica_reads_verified": v.verified, "verify_failures": v.failures,
                "lost_lossless_mon": lost_mon, "lost_lossless_osd": lost_osd, "lost_lossless_client": lost_client,
                "misordered": misordered, "epoch": mon.inner.epoch(), "osds_up": up, "osds_total": total,
                "faults": t.faults, "reconnects": t.reconnects, "replayed": t.replayed, "drained": drained, "ok": ok,
                "wires": wires,
            })
        );
    }
    client.stop().await;
    for o in &osds {
        o.stop().await;
    }
    mon.stop().await;
    if !ok {
        eprintln!(
            "FAILED: something was lost, misordered or unverifiable, or the map did not converge"
        );
    }
    i32::from(!ok)
}
