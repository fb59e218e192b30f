//! msgr against two same-run baselines: (a) raw tokio TCP with the same framing cost, and (b) a
//! thread-per-connection messenger modelled on SimpleMessenger. Every (system, scenario) runs in
//! a child process of its own, back to back, so RSS and thread counts are its own.
//!
//! `cargo bench --bench compare` (about three minutes) writes the table to stdout, the raw
//! results to target/perf/results.json, and the size sweep chart to docs/performance.svg.
//! `cargo bench --bench compare -- --quick` runs smaller counts; `-- --runs N` runs every
//! (system, scenario) N times, alternating systems, and reports the median run.

mod chart;
mod common;
mod idle;
mod msgr_sys;
mod raw_tokio;
mod threaded;

use std::process::Command;

use common::Load;
use serde_json::{json, Value};

const SYSTEMS: [&str; 3] = ["msgr", "tokio", "threaded"];
pub const SIZES: [usize; 6] = [64, 512, 4096, 32768, 262144, 4 << 20];

fn scenario(name: &str, quick: bool) -> Option<Load> {
    let q = |full: u64| if quick { full / 4 } else { full };
    Some(match name {
        "stream_4k" => Load {
            conns: 1,
            size: 4096,
            depth: 128,
            count: q(200_000),
        },
        "stream_4m" => Load {
            conns: 1,
            size: 4 << 20,
            depth: 4,
            count: q(400),
        },
        "pingpong_4k" | "pingpong_4k_busypoll" | "pingpong_4k_xproc" => Load {
            conns: 1,
            size: 4096,
            depth: 1,
            count: q(20_000),
        },
        "conns_1000" => Load {
            conns: 1000,
            size: 4096,
            depth: 8,
            count: q(400_000),
        },
        "inject_1000" => Load {
            conns: 1,
            size: 4096,
            depth: 128,
            count: q(200_000),
        },
        s if s.starts_with("size_") => {
            let size: usize = s[5..].parse().ok()?;
            let depth = (64usize << 20)
                .checked_div(size)
                .unwrap_or(128)
                .clamp(2, 128);
            let count = ((512u64 << 20) / size as u64).clamp(200, 200_000);
            Load {
                conns: 1,
                size,
                depth,
                count: q(count).max(50),
            }
        }
        _ => return None,
    })
}

/// Ping-pong between processes: the system's server runs here, its client in a child
/// process (`--remote ADDR`), as a client and a server of a real deployment do. Every hop then
/// wakes a thread of the other process, whichever the system. Returns the client's JSON.
fn cross_process(system: &str, name: &str, quick: bool) -> Value {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let sys = system.to_string();
    let server = std::thread::spawn(move || match sys.as_str() {
        "msgr" => msgr_sys::idle_server(ready_tx, stop_rx),
        "tokio" => raw_tokio::idle_server(ready_tx, stop_rx),
        _ => threaded::idle_server(ready_tx, stop_rx),
    });
    let addr: std::net::SocketAddr = ready_rx.recv().expect("server address");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--child", system, name, "--remote", &addr.to_string()]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().expect("client process");
    let _ = stop_tx.send(());
    if system != "threaded" {
        let _ = server.join();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().rev().find(|l| l.starts_with('{')) {
        Some(l) if out.status.success() => serde_json::from_str(l).unwrap(),
        _ => json!({ "system": system, "scenario": name, "failed": true }),
    }
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
    if name == "pingpong_4k_xproc" && remote.is_none() {
        return println!("{}", cross_process(system, name, quick));
    }
    let load = scenario(name, quick).expect("known scenario");
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
        })
    );
}

fn run_child(system: &str, name: &str, quick: bool) -> Value {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--child", system, name]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().rev().find(|l| l.starts_with('{')) {
        Some(l) if out.status.success() => serde_json::from_str(l).unwrap(),
        _ => {
            eprintln!(
                "{system} {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            json!({ "system": system, "scenario": name, "failed": true })
        }
    }
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
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut results = vec![];
    // Runs of the systems alternate (a, b, c, a, b, c, ...) so that a slow spell on this
    // shared machine does not land on one system only.
    let mut run = |systems: &[&str], name: &str| {
        eprintln!("running {} {name} ({runs} runs) ...", systems.join(", "));
        let mut all: Vec<Vec<Value>> = vec![vec![]; systems.len()];
        for _ in 0..runs {
            for (i, system) in systems.iter().enumerate() {
                all[i].push(run_child(system, name, quick));
            }
        }
        results.extend(all.into_iter().map(median_run));
    };
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
    run(&SYSTEMS, "pingpong_4k_xproc");
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
    chart::svg(&results, "docs/performance.svg");
    eprintln!("wrote target/perf/results.json, target/perf/table.md, docs/performance.svg");
}
