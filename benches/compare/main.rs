//! msgr against two same-run baselines: (a) raw tokio TCP with the same framing cost, and (b) a
//! thread-per-connection messenger modelled on SimpleMessenger. Every (system, scenario) runs in
//! a child process of its own, back to back, so RSS and thread counts are its own.
//!
//! `cargo bench --bench compare` (about three minutes) writes the table to stdout, the raw
//! results to target/perf/results.json, and the size sweep chart to docs/performance.svg.
//! `cargo bench --bench compare -- --quick` runs smaller counts; `-- --runs N` runs every
//! (system, scenario) N times, alternating systems, and reports the median run.

mod chart;
mod child;
mod common;
mod idle;
mod msgr_sys;
mod pin;
mod raw_tokio;
mod threaded;
mod xproc;

use std::process::Command;

use common::Load;
use serde_json::{json, Value};

const SYSTEMS: [&str; 3] = ["msgr", "tokio", "threaded"];
pub const SIZES: [usize; 6] = [64, 512, 4096, 32768, 262144, 4 << 20];

/// The load of a scenario. A name ending in `_xproc` is the same load with the client in a
/// process of its own (see [`xproc`]).
fn scenario(name: &str, quick: bool) -> Option<Load> {
    let q = |full: u64| if quick { full / 4 } else { full };
    let load = |conns, size, depth, count| Load {
        conns,
        size,
        depth,
        count: q(count),
        threads: 2,
    };
    Some(match name.strip_suffix("_xproc").unwrap_or(name) {
        "stream_4k" | "inject_1000" => load(1, 4096, 128, 200_000),
        "stream_4m" => load(1, 4 << 20, 4, 400),
        "pingpong_4k" | "pingpong_4k_busypoll" => load(1, 4096, 1, 20_000),
        "conns_1000" => load(1000, 4096, 8, 400_000),
        // Numbered tells through a proxy that resets connections (the peers' binary only).
        "resets" => load(1, 0, 0, 10_000),
        // Scaling: 8 connections, depth 64, on T threads in each of the two processes.
        s if s.starts_with("scale_") => Load {
            threads: s[6..].strip_suffix('t')?.parse().ok()?,
            ..load(8, 4096, 64, 400_000)
        },
        s if s.starts_with("size_") => {
            let size: usize = s[5..].parse().ok()?;
            let depth = (64usize << 20)
                .checked_div(size)
                .unwrap_or(128)
                .clamp(2, 128);
            let count = ((512u64 << 20) / size as u64).clamp(200, 200_000);
            Load {
                count: q(count).max(50),
                ..load(1, size, depth, 0)
            }
        }
        _ => return None,
    })
}

/// Runs one (system, scenario) in this process and prints its JSON.
fn child(system: &str, name: &str, quick: bool, remote: Option<std::net::SocketAddr>) {
    if name == "idle" {
        let conns = if system == "threaded" { 2000 } else { 10_000 };
        let r = idle::measure(system, conns);
        println!(
            "{}",
            json!({ "system": system, "scenario": name, "conns": r.conns, "rss_per_conn_kib": r.rss_per_conn_kib,
                    "threads_before": r.threads_before, "threads_after": r.threads_after })
        );
        return;
    }
    let load = scenario(name, quick).expect("known scenario");
    let pinned = pin::for_scenario(name, load.threads, remote.is_some());
    if name.ends_with("_xproc") && remote.is_none() {
        return println!("{}", xproc::run(system, name, load, quick));
    }
    let inject = if name == "inject_1000" { 1000 } else { 0 };
    let busy_poll = if name.ends_with("_busypoll") {
        msgr_sys::BUSY_POLL_US
    } else {
        0
    };
    let sampler = common::PeakSampler::start();
    let mut o = match system {
        "msgr" => msgr_sys::run(load, inject, busy_poll, remote),
        "tokio" => raw_tokio::run(load, remote),
        _ => threaded::run(load, remote),
    };
    let (threads, rss) = sampler.finish();
    o.threads = threads;
    o.rss_kib = rss;
    println!(
        "{}",
        json!({
            "system": system, "scenario": name, "size": load.size, "conns": load.conns, "msgs": o.msgs, "secs": o.secs,
            "msgs_per_sec": o.msgs_per_sec(), "gb_per_sec": o.gb_per_sec(load.size),
            "p50_us": o.lat.value_at_quantile(0.5), "p99_us": o.lat.value_at_quantile(0.99), "max_us": o.lat.max(),
            "rss_kib": o.rss_kib, "threads": o.threads, "replayed": o.replayed, "cpu_pct": o.cpu_pct,
            "cpu_secs": o.cpu_pct / 100.0 * o.secs, "io_threads": load.threads, "pinned": pinned,
        })
    );
}

fn run_child(system: &str, name: &str, quick: bool) -> Value {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--child", system, name]);
    if quick {
        cmd.arg("--quick");
    }
    child::result(system, name, &cmd.output().expect("child"))
}

/// Of several runs of one (system, scenario), the one with the median headline number
/// (msgs/s; round-trip p50 for ping-pong; RSS per connection for idle), whole, so that its
/// numbers stay consistent with each other.
fn median_run(mut all: Vec<Value>) -> Value {
    let key = |v: &Value| {
        let s = v["scenario"].as_str().unwrap_or("");
        let k = if s.starts_with("pingpong") {
            "p50_us"
        } else if s == "idle" {
            "rss_per_conn_kib"
        } else {
            "msgs_per_sec"
        };
        v[k].as_f64().unwrap_or(f64::NAN)
    };
    let first = all[0].clone();
    all.retain(|v| v.get("failed").is_none());
    if all.is_empty() {
        return first;
    }
    all.sort_by(|a, b| key(a).total_cmp(&key(b)));
    all.swap_remove(all.len() / 2)
}

/// Thread counts of the scaling scenario: 1, 2, 4, ... up to this machine's cores.
pub fn scaling_threads() -> Vec<usize> {
    let cores = pin::cores();
    let mut t: Vec<usize> = std::iter::successors(Some(1), |t| Some(t * 2))
        .take_while(|t| *t <= cores)
        .collect();
    if *t.last().unwrap() != cores {
        t.push(cores);
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let remote = args
        .iter()
        .position(|a| a == "--remote")
        .map(|i| args[i + 1].parse().expect("--remote IP:PORT"));
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], &args[i + 2], quick, remote);
    }
    if let Some(i) = args.iter().position(|a| a == "--idle-client") {
        return idle::client(
            &args[i + 1],
            args[i + 2].parse().unwrap(),
            args[i + 3].parse().unwrap(),
        );
    }
    // `--report`: the table again from the last run's target/perf/results.json.
    if args.iter().any(|a| a == "--report") {
        let text = std::fs::read_to_string("target/perf/results.json").expect("a previous run");
        let results: Vec<Value> = serde_json::from_str(&text).expect("results.json");
        let report = chart::report(&results);
        std::fs::write("target/perf/table.md", &report).unwrap();
        return println!("{report}");
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    // `--only S` runs just the scenarios whose names contain S (for profiling one of them).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let peer_bin = xproc::peer_binary();
    match &peer_bin {
        Some(p) => eprintln!("peers: {} ({})", xproc::PEERS.join(", "), p.display()),
        None => eprintln!(
            "peers: not built, so msgr's remote actors, ractor_cluster, actix-telepathy and kameo \
             are left out of this run (cargo build --release --manifest-path \
             benches/peers/Cargo.toml)"
        ),
    }
    let mut results = vec![];
    // Runs of the systems alternate (a, b, c, a, b, c, ...) so that a slow spell on this
    // shared machine does not land on one system only.
    let mut run = |systems: &[&str], name: &str| {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            return;
        }
        let mut systems = systems.to_vec();
        if peer_bin.is_some() && xproc::PEER_SCENARIOS.contains(&name) {
            systems.extend(xproc::PEERS);
        }
        // What arrives through the resetting proxy is counted, not timed: one run is the result.
        let runs = if name == "resets_xproc" { 1 } else { runs };
        eprintln!("running {} {name} ({runs} runs) ...", systems.join(", "));
        let mut all: Vec<Vec<Value>> = vec![vec![]; systems.len()];
        for _ in 0..runs {
            for (i, system) in systems.iter().enumerate() {
                all[i].push(
                    match peer_bin.as_ref().filter(|_| xproc::PEERS.contains(system)) {
                        Some(bin) => {
                            xproc::peers(bin, system, name, scenario(name, quick).unwrap())
                        }
                        None => run_child(system, name, quick),
                    },
                );
            }
        }
        results.extend(all.into_iter().map(median_run));
    };
    // Between two processes first: the headline.
    for name in [
        "stream_4k_xproc",
        "stream_4m_xproc",
        "pingpong_4k_xproc",
        "conns_1000_xproc",
    ] {
        run(&SYSTEMS, name);
    }
    run(&[], "resets_xproc");
    for threads in scaling_threads() {
        run(&SYSTEMS[..2], &format!("scale_{threads}t_xproc"));
    }
    for threads in scaling_threads() {
        run(&SYSTEMS[..2], &format!("scale_{threads}t"));
    }
    for size in SIZES {
        run(&SYSTEMS, &format!("size_{size}_xproc"));
    }
    // In one process.
    for name in [
        "stream_4k",
        "stream_4m",
        "pingpong_4k",
        "conns_1000",
        "idle",
    ] {
        run(&SYSTEMS, name);
    }
    run(&["msgr"], "inject_1000");
    run(&["msgr"], "pingpong_4k_busypoll");
    for size in SIZES {
        run(&SYSTEMS, &format!("size_{size}"));
    }
    let report = chart::report(&results);
    println!("{report}");
    std::fs::create_dir_all("target/perf").unwrap();
    std::fs::write(
        "target/perf/results.json",
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    std::fs::write("target/perf/table.md", &report).unwrap();
    if only.is_none() {
        chart::svg(&results, "docs/performance.svg");
        eprintln!("wrote docs/performance.svg");
    }
    eprintln!("wrote target/perf/results.json, target/perf/table.md");
}
