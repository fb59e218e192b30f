//! The actor-messaging peers of msgr, measured as `cargo bench --bench compare` measures msgr:
//! a server in this process, its client in a child process, request / reply over one
//! connection, `depth` requests in flight. Prints one JSON line in the compare bench's schema.
//!
//! `msgr-peer-bench SYSTEM SCENARIO SIZE DEPTH COUNT`, SYSTEM one of ractor_cluster, telepathy,
//! kameo. The compare bench runs it; by hand it prints the same line.

#[path = "../../compare/child.rs"]
mod child;
mod kameo_sys;
mod ractor_sys;
mod stats;
mod telepathy_sys;

use std::process::Command;

use stats::Load;

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
    if client {
        let peer = &a[5..];
        let v = match system {
            "ractor_cluster" => ractor_sys::client(peer, load),
            "telepathy" => telepathy_sys::client(peer, load),
            "kameo" => kameo_sys::client(peer, load),
            _ => panic!("unknown system {system}"),
        };
        let (msgs, secs, cpu, lat) = v;
        println!(
            "{}",
            stats::report(system, scenario, load, msgs, secs, cpu, &lat)
        );
        return;
    }
    // The server runs on a thread of this process until the process exits.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Vec<String>>();
    let sys = system.to_string();
    std::thread::spawn(move || match sys.as_str() {
        "ractor_cluster" => ractor_sys::serve(ready_tx),
        "telepathy" => telepathy_sys::serve(ready_tx),
        "kameo" => kameo_sys::serve(ready_tx),
        _ => panic!("unknown system {sys}"),
    });
    let peer = ready_rx.recv().expect("server ready");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--client").args(a).args(&peer);
    let (out, server_cpu) = child::run_client(cmd);
    let mut v = child::result(system, scenario, &out);
    if v.get("failed").is_some() {
        std::process::exit(1);
    }
    child::add_server_cpu(&mut v, server_cpu);
    println!("{v}");
    // The servers' runtimes have no clean stop; the process's exit ends them.
    std::process::exit(0);
}
