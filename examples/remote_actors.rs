//! Remote actors between two processes: this process starts a second copy of itself as the
//! server, whose `ledger` actor records numbered tells and answers asks; this one tells and
//! asks it over a lossless session while both messengers inject socket failures. At the end the
//! ledger reports what it got, and one line says whether every tell arrived once, in order, and
//! every ask was answered.
//!
//! `cargo run --release --example remote_actors -- --tells 10000 --asks 1000 --json`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::prelude::*;
use clap::Parser;
use msgr::{Config, EntityName, EntityType, Policy};
use msgr_actors::remote::{ActorNode, NodeOptions, RemoteMessage};
use msgr_actors::Messenger;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    /// Numbered tells to send.
    #[arg(long, default_value_t = 10_000)]
    tells: u64,
    /// Asks to send (interleaved with the tells).
    #[arg(long, default_value_t = 1_000)]
    asks: u64,
    /// ms_inject_socket_failures on both messengers (one socket failure in N operations).
    #[arg(long, default_value_t = 200)]
    inject_socket_failures: u64,
    /// Print one JSON summary as the last line.
    #[arg(long)]
    json: bool,
    /// Run as the server process (started by the client; prints its port).
    #[arg(long, hide = true)]
    serve: bool,
}

/// One numbered tell.
#[derive(Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
struct Record(u64);

impl RemoteMessage for Record {
    const TYPE_NAME: &'static str = "example.Record/1";
    type Reply = ();
}

/// An ask: how many records so far? (`n` numbers the ask itself.)
#[derive(Serialize, Deserialize, actix::Message)]
#[rtype(result = "u64")]
struct HowMany(u64);

impl RemoteMessage for HowMany {
    const TYPE_NAME: &'static str = "example.HowMany/1";
    type Reply = u64;
}

/// The final ask: what the ledger saw.
#[derive(Serialize, Deserialize, actix::Message)]
#[rtype(result = "Report")]
struct GetReport;

/// What the ledger saw, and its process's socket faults.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Report {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    highest: Option<u64>,
    asks: u64,
    faults: u64,
}

impl RemoteMessage for GetReport {
    const TYPE_NAME: &'static str = "example.GetReport/1";
    type Reply = Report;
}

/// Records every number once and notices duplicates and gaps.
struct Ledger {
    seen: std::collections::HashSet<u64>,
    next: u64,
    report: Report,
    messenger: Option<Messenger>,
}

impl Actor for Ledger {
    type Context = Context<Self>;
}

impl Handler<Record> for Ledger {
    type Result = ();
    fn handle(&mut self, Record(n): Record, _: &mut Context<Self>) {
        self.report.received += 1;
        if !self.seen.insert(n) {
            self.report.duplicates += 1;
        }
        if n != self.next {
            self.report.out_of_order += 1;
        }
        self.next = n + 1;
        self.report.highest = Some(n);
    }
}

impl Handler<HowMany> for Ledger {
    type Result = u64;
    fn handle(&mut self, _: HowMany, _: &mut Context<Self>) -> u64 {
        self.report.asks += 1;
        self.report.received
    }
}

impl Handler<GetReport> for Ledger {
    type Result = MessageResult<GetReport>;
    fn handle(&mut self, _: GetReport, _: &mut Context<Self>) -> Self::Result {
        let mut r = self.report.clone();
        r.faults = self.messenger.as_ref().map_or(0, |m| m.counters().faults);
        MessageResult(r)
    }
}

fn config(inject: u64) -> Config {
    Config::default()
        .ms_inject_socket_failures(inject)
        .ms_initial_backoff(Duration::from_millis(10))
        .ms_max_backoff(Duration::from_millis(200))
}

/// The server process: a ledger registered under three message types, until stdin closes.
async fn serve(args: &Args) {
    let node = ActorNode::new(NodeOptions::default());
    let m = Messenger::builder(EntityName::new(EntityType::OSD, 0))
        .config(config(args.inject_socket_failures))
        .default_policy(Policy::stateful_server(0))
        .dispatcher(node.dispatcher())
        .build()
        .expect("build");
    let addr = m.bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    m.start().expect("start");
    let ledger = Ledger {
        seen: Default::default(),
        next: 0,
        report: Report::default(),
        messenger: Some(m.clone()),
    }
    .start();
    // One actor, one name, three message types.
    node.register::<Record>("ledger", ledger.clone().recipient());
    node.register::<HowMany>("ledger", ledger.clone().recipient());
    node.register::<GetReport>("ledger", ledger.recipient());
    println!("PORT {}", addr.port());
    // Until the client closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await
    .ok();
    m.shutdown().await;
}

#[actix::main]
async fn main() {
    let args = Args::parse();
    if args.serve {
        serve(&args).await;
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("our own path"))
        .args([
            "--serve",
            "--inject-socket-failures",
            &args.inject_socket_failures.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    lines.read_line(&mut first).expect("the server's port");
    let port: u16 = first
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .expect("PORT <n> from the server");

    let node = ActorNode::new(NodeOptions::default());
    let m = Messenger::builder(EntityName::new(EntityType::CLIENT, 1))
        .config(config(args.inject_socket_failures))
        .default_policy(Policy::lossless_client(0))
        .dispatcher(node.dispatcher())
        .build()
        .expect("build");
    let conn = m
        .connect(
            format!("127.0.0.1:{port}").parse().unwrap(),
            EntityType::OSD,
        )
        .await
        .expect("connection");
    let ledger = node.remote::<Record>(&conn, "ledger");
    let count = node.remote::<HowMany>(&conn, "ledger");
    let started = Instant::now();
    let every = (args.tells / args.asks.max(1)).max(1);
    let (mut asks, mut replies, mut ask_errors) = (0u64, 0u64, 0u64);
    for n in 0..args.tells {
        ledger.tell(&Record(n)).expect("the connection is open");
        if n % every == every - 1 && asks < args.asks {
            asks += 1;
            match count.ask(&HowMany(asks)).await {
                // Everything told before the ask arrived before it was answered.
                Ok(seen) if seen == n + 1 => replies += 1,
                Ok(seen) => panic!("the ask after tell {n} saw {seen} records"),
                Err(e) => {
                    ask_errors += 1;
                    eprintln!("ask {asks} failed: {e}");
                }
            }
        }
    }
    while asks < args.asks {
        asks += 1;
        match count.ask(&HowMany(asks)).await {
            Ok(_) => replies += 1,
            Err(_) => ask_errors += 1,
        }
    }
    let report = node
        .remote::<GetReport>(&conn, "ledger")
        .ask(&GetReport)
        .await
        .expect("the ledger's report");
    let secs = started.elapsed().as_secs_f64();
    let faults = m.counters().faults + report.faults;
    let lost = args.tells - (report.received - report.duplicates);
    let ok = lost == 0
        && report.duplicates == 0
        && report.out_of_order == 0
        && replies == args.asks
        && ask_errors == 0
        && (args.inject_socket_failures == 0 || faults > 0);
    println!(
        "{} tells sent, {} received ({} duplicates, {} out of order, {lost} lost); {asks} asks, {replies} replies; {faults} socket faults; {secs:.2} s",
        args.tells, report.received, report.duplicates, report.out_of_order
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "tells_sent": args.tells, "tells_received": report.received, "asks": asks,
                "replies": replies, "duplicates": report.duplicates, "lost": lost,
                "out_of_order": report.out_of_order, "faults": faults, "processes": 2,
                "seconds": secs, "ok": ok,
            })
        );
    }
    m.shutdown().await;
    drop(child.stdin.take());
    let _ = child.wait();
    if !ok {
        eprintln!("FAILED: something was lost, duplicated, reordered or unanswered, or no fault was injected");
        std::process::exit(1);
    }
}
