//! A simulated OSD on its own: boots with a monitor, heartbeats its peers, replicates writes.
//!
//! `cargo run --example osd_sim -- --id 0 --mon 127.0.0.1:16800 --duration 60`

#[path = "sim/mod.rs"]
mod sim;

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// OSD id.
    #[arg(long)]
    id: u32,
    /// The monitor's IP:PORT.
    #[arg(long)]
    mon: String,
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
    let mut mon: msgr::EntityAddr = args.mon.parse().expect("--mon IP:PORT");
    mon.nonce = 0;
    let osd = sim::osd::Osd::new(args.id, mon, args.inject_socket_failures);
    osd.start(None).await;
    println!("osd.{} booted", args.id);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    osd.stop().await;
}
