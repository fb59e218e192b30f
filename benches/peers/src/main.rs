//! The actor-messaging peers of msgr, measured as `cargo bench --bench compare` measures msgr:
//! a server in this process, its client in a child process, request / reply over one
//! connection, `depth` requests in flight. Prints one JSON line in the compare bench's schema.
//!
//! `msgr-peer-bench SYSTEM SCENARIO SIZE DEPTH COUNT`, SYSTEM one of msgr_actors (msgr's own
//! remote actors), ractor_cluster, telepathy, kameo; SCENARIO stream_4k_xproc,
//! pingpong_4k_xproc or resets_xproc (COUNT numbered tells through a proxy that cuts the
//! connection every 25 ms; SIZE and DEPTH unused). The compare bench runs it; by hand it
//! prints the same line.

#[path = "../../compare/child.rs"]
mod child;
mod kameo_sys;
mod msgr_sys;
mod ractor_sys;
mod resets;
mod stats;
mod telepathy_sys;

use std::process::Command;

use stats::Load;

/// How long a run may take before the server gives up on it (and its client with it).
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = args.first().is_some_and(|a| a == "--client");
    let a = if client { &args[1..] } else { &args[..] };
    if a.len() < 5 {
        eprintln!("usage: msgr-peer-bench SYSTEM SCENARIO SIZE DEPTH COUNT");
        std::process::exit(2);
    }
    let (system, scenario) = (a[0].as_str(), a[1].as_str());
    let load = Load {
        size: a[2].parse().expect("SIZE"),
        depth: a[3].parse().expect("DEPTH"),
        count: a[4].parse().expect("COUNT"),
    };
    let resets = scenario == "resets_xproc";
    if client {
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process: if the parent
        // (the server, which gives up on a run after DEADLINE) exits, this client dies too.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let peer = &a[5..];
        if resets {
            let v = match system {
                "msgr_actors" => msgr_sys::client_tells(peer, load.count),
                "ractor_cluster" => ractor_sys::client_tells(peer, load.count),
                "telepathy" => telepathy_sys::client_tells(peer, load.count),
                "kameo" => kameo_sys::client_tells(peer, load.count),
                _ => panic!("unknown system {system}"),
            };
            println!("{v}");
            return;
        }
        let (msgs, secs, cpu, lat) = match system {
            "msgr_actors" => msgr_sys::client(peer, load),
            "ractor_cluster" => ractor_sys::client(peer, load),
            "telepathy" => telepathy_sys::client(peer, load),
            "kameo" => kameo_sys::client(peer, load),
            _ => panic!("unknown system {system}"),
        };
        println!(
            "{}",
            stats::report(system, scenario, load, msgs, secs, cpu, &lat)
        );
        return;
    }
    // The server runs on a thread of this process until the process exits. msgr's server sits
    // behind the resets proxy from the start (it advertises the proxy's address); the others'
    // proxy is put in front of them once they listen.
    let mut proxied = None;
    let mut behind = None;
    if resets && system == "msgr_actors" {
        let port = stats::free_addr().port();
        let p = resets::proxy(([127, 0, 0, 1], port).into());
        behind = Some((port, p.0));
        proxied = Some(p);
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Vec<String>>();
    let sys = system.to_string();
    std::thread::spawn(move || match sys.as_str() {
        "msgr_actors" => msgr_sys::serve(ready_tx, behind),
        "ractor_cluster" => ractor_sys::serve(ready_tx),
        "telepathy" => telepathy_sys::serve(ready_tx),
        "kameo" => kameo_sys::serve(ready_tx),
        _ => panic!("unknown system {sys}"),
    });
    let mut peer = ready_rx.recv().expect("server ready");
    let mut cuts = None;
    if resets {
        let (addr, count) = proxied.unwrap_or_else(|| resets::proxy(upstream(&peer)));
        peer = through(&peer, addr);
        cuts = Some(count);
    }
    let (sys, scen) = (system.to_string(), scenario.to_string());
    std::thread::spawn(move || {
        std::thread::sleep(DEADLINE);
        let why = format!("no result within {} s", DEADLINE.as_secs());
        eprintln!("{sys} {scen}: {why}");
        println!(
            "{}",
            serde_json::json!({ "system": sys, "scenario": scen, "failed": true, "why": why })
        );
        std::process::exit(1);
    });
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--client").args(a).args(&peer);
    let (out, spent) = child::run_client(cmd);
    let mut v = child::result(system, scenario, &out);
    if v.get("failed").is_some() {
        std::process::exit(1);
    }
    if let Some(cuts) = cuts {
        let cuts = cuts.load(std::sync::atomic::Ordering::Relaxed);
        v = resets::summary(
            system,
            load.count,
            &v,
            cuts,
            std::time::Duration::from_secs(2),
        );
    } else {
        child::add_server_cpu(&mut v, spent);
    }
    println!("{v}");
    // The servers' runtimes have no clean stop; the process's exit ends them.
    std::process::exit(0);
}

/// The address the server listens on, from what it reported (kameo: peer id, multiaddr).
fn upstream(peer: &[String]) -> std::net::SocketAddr {
    match peer {
        [addr] => addr.parse().expect("server address"),
        [_, multiaddr] => {
            let port = multiaddr
                .rsplit('/')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("tcp port");
            ([127, 0, 0, 1], port).into()
        }
        _ => panic!("unexpected server report {peer:?}"),
    }
}

/// What the client dials instead: the proxy.
fn through(peer: &[String], proxy: std::net::SocketAddr) -> Vec<String> {
    match peer {
        [_] => vec![proxy.to_string()],
        [id, _] => vec![id.clone(), format!("/ip4/127.0.0.1/tcp/{}", proxy.port())],
        _ => panic!("unexpected server report {peer:?}"),
    }
}
