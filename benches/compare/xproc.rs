//! Cross-process runs, as every deployment is: the system's server runs in this process (on
//! `load.threads` IO threads), its clients in a child process (`--child SYSTEM NAME --remote
//! ADDR`) on as many. Both processes share this machine's cores, as a client and an OSD on one
//! host do.
//!
//! The actor-messaging peers (ractor_cluster, actix-telepathy, kameo) are built apart, in
//! `benches/peers` (they pull in libp2p and a second actix stack); when its binary exists, or
//! `MSGR_PEER_BENCH` names one, [`peers`] runs it as further systems of the same run.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::child;
use crate::common::Load;
use crate::{msgr_sys, raw_tokio, threaded};

/// A system's server on a thread of this process, on `threads` IO threads (for the cross-process
/// runs and the idle-connection measurement).
pub struct ServerThread {
    pub addr: std::net::SocketAddr,
    system: String,
    stop: std::sync::mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl ServerThread {
    /// Starts it and waits for its address.
    pub fn start(system: &str, threads: usize) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel();
        let sys = system.to_string();
        let handle = std::thread::spawn(move || match sys.as_str() {
            "msgr" => msgr_sys::idle_server(threads, ready_tx, stop_rx),
            "tokio" => raw_tokio::idle_server(threads, ready_tx, stop_rx),
            _ => threaded::idle_server(ready_tx, stop_rx),
        });
        let addr = ready_rx.recv().expect("server address");
        ServerThread {
            addr,
            system: system.to_string(),
            stop,
            handle,
        }
    }

    /// Stops it and waits for its thread, except the thread-per-connection server's, whose
    /// threads block in accept (the process's exit ends them).
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.system != "threaded" {
            let _ = self.handle.join();
        }
    }
}

/// Runs `name` (an `_xproc` scenario) for `system` across two processes; returns the client's
/// JSON with the server's CPU over the client's measured phase added (`server_cpu_secs`) and
/// the CPU of both per round trip (`cpu_us_per_msg`).
pub fn run(system: &str, name: &str, load: Load, quick: bool) -> Value {
    let server = ServerThread::start(system, load.threads);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--child",
        system,
        name,
        "--remote",
        &server.addr.to_string(),
    ]);
    if quick {
        cmd.arg("--quick");
    }
    let (out, server_cpu) = child::run_client(cmd);
    server.stop();
    let mut v = child::result(system, name, &out);
    child::add_server_cpu(&mut v, server_cpu);
    v
}

/// The systems of the peers' bench binary, when it has been built: msgr's own remote actors
/// (`msgr_actors::remote`) and the three actor-messaging layers.
pub const PEERS: [&str; 4] = ["msgr_actors", "ractor_cluster", "telepathy", "kameo"];

/// The scenarios the peers run: request / reply between two processes over one connection,
/// and numbered tells through a proxy that resets the connection every 25 ms.
pub const PEER_SCENARIOS: [&str; 3] = ["stream_4k_xproc", "pingpong_4k_xproc", "resets_xproc"];

/// The peers' bench binary: `MSGR_PEER_BENCH`, else `benches/peers/target/release/msgr-peer-bench`
/// if it has been built (`cargo build --release --manifest-path benches/peers/Cargo.toml`).
pub fn peer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("MSGR_PEER_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("benches/peers/target/release/msgr-peer-bench"));
    path.is_file().then_some(path)
}

/// Runs one peer system on one scenario (its binary starts the server and client processes
/// itself) and returns its JSON, in this bench's schema.
pub fn peers(binary: &PathBuf, system: &str, name: &str, load: Load) -> Value {
    let out = Command::new(binary)
        .args([
            system,
            name,
            &load.size.to_string(),
            &load.depth.to_string(),
            &load.count.to_string(),
        ])
        .output()
        .expect("peer bench");
    child::result(system, name, &out)
}
