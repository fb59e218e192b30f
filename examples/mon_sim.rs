//! A simulated monitor on its own: keeps the OSD map and publishes it.
//!
//! `cargo run --example mon_sim -- --port 16800 --duration 60`, then start OSDs with
//! `cargo run --example osd_sim -- --id 0 --mon 127.0.0.1:16800` (see docs/simulators.md).

#[path = "sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port to listen on (0 picks one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// ms_inject_socket_failures.
    #[arg(long, default_value_t = 0)]
    inject_socket_failures: u64,
}

#[actix::main]
async fn main() {
    let args = Args::parse();
    let mon = sim::mon::Mon::start(
        format!("127.0.0.1:{}", args.port).parse().unwrap(),
        args.inject_socket_failures,
    )
    .await;
    println!("mon.0 listening on {}", mon.addr());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (up, inn, total) = mon.inner.counts();
        println!(
            "epoch {} osds up {up} in {inn} of {total}",
            mon.inner.epoch()
        );
    }
    mon.stop().await;
}
