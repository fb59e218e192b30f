//! msgr's remote actors (`msgr_actors::remote`), under the same loads as the peers: an actix
//! actor registered with an `ActorNode` on a server messenger, asked through a
//! `RemoteRecipient` from `depth` tasks at once, over one lossless v1 session (crc, no auth).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use msgr::{Config, EntityName, EntityType, Policy};
use msgr_actors::remote::{ActorNode, NodeOptions, RemoteMessage};
use msgr_actors::Messenger;
use serde::{Deserialize, Serialize};

use crate::stats::Load;

const NAME: &str = "msgr_bench";

/// A request; the reply is its first 16 bytes.
#[derive(Serialize, Deserialize, actix::Message)]
#[rtype(result = "Vec<u8>")]
pub struct BenchAsk(#[serde(with = "serde_bytes")] Vec<u8>);

impl RemoteMessage for BenchAsk {
    const TYPE_NAME: &'static str = "bench.Ask/1";
    type Reply = Vec<u8>;
}

/// A numbered one-way message (the resets scenario).
#[derive(Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct BenchTell(u64);

impl RemoteMessage for BenchTell {
    const TYPE_NAME: &'static str = "bench.Tell/1";
    type Reply = ();
}

struct Server;

impl Actor for Server {
    type Context = Context<Self>;
}

impl Handler<BenchAsk> for Server {
    type Result = MessageResult<BenchAsk>;
    fn handle(&mut self, m: BenchAsk, _: &mut Context<Self>) -> Self::Result {
        MessageResult(m.0[..16].to_vec())
    }
}

impl Handler<BenchTell> for Server {
    type Result = ();
    fn handle(&mut self, m: BenchTell, _: &mut Context<Self>) {
        crate::resets::received().lock().unwrap().push(m.0);
    }
}

fn config() -> Config {
    Config::default()
        .ms_initial_backoff(Duration::from_millis(10))
        .ms_max_backoff(Duration::from_millis(100))
}

/// The server; with `behind` (the resets scenario) it listens on that port and advertises the
/// proxy's address, as a server behind a proxy does.
pub fn serve(ready: std::sync::mpsc::Sender<Vec<String>>, behind: Option<(u16, SocketAddr)>) {
    actix::System::new().block_on(async move {
        let node = ActorNode::new(NodeOptions::default());
        let mut config = config();
        if let Some((_, proxy)) = behind {
            config = config.public_addr(Some(proxy));
        }
        let m = Messenger::builder(EntityName::new(EntityType::OSD, 0))
            .config(config)
            .default_policy(Policy::stateful_server(0))
            .dispatcher(node.dispatcher())
            .build()
            .expect("messenger");
        let port = behind.map_or(0, |(p, _)| p);
        let addr = m
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind");
        m.start().expect("start");
        let server = Server.start();
        node.register::<BenchAsk>(NAME, server.clone().recipient());
        node.register::<BenchTell>(NAME, server.recipient());
        ready
            .send(vec![addr.addr.expect("bound").to_string()])
            .unwrap();
        std::future::pending::<()>().await;
    })
}

/// A client messenger and node, connected to `peer`.
async fn connect(peer: &str) -> (Messenger, ActorNode, msgr_actors::Connection) {
    let node = ActorNode::new(NodeOptions::default());
    let m = Messenger::builder(EntityName::new(EntityType::CLIENT, 1))
        .config(config())
        .default_policy(Policy::lossless_client(0))
        .dispatcher(node.dispatcher())
        .build()
        .expect("messenger");
    let conn = m
        .connect(peer.parse().unwrap(), EntityType::OSD)
        .await
        .expect("connect");
    (m, node, conn)
}

pub fn client(peer: &[String], load: Load) -> (u64, f64, f64, hdrhistogram::Histogram<u64>) {
    actix::System::new().block_on(async move {
        let (_m, node, conn) = connect(&peer[0]).await;
        let server = Arc::new(node.remote::<BenchAsk>(&conn, NAME));
        crate::stats::run_asks(load, move |req| {
            let server = server.clone();
            async move { server.ask(&BenchAsk(req)).await.expect("ask") }
        })
        .await
    })
}

/// The resets scenario's client: tells on a lossless session, which reconnects and replays
/// by itself; nothing is resent by hand.
pub fn client_tells(peer: &[String], count: u64) -> serde_json::Value {
    actix::System::new().block_on(async move {
        let (m, node, conn) = connect(&peer[0]).await;
        let server = node.remote::<BenchTell>(&conn, NAME);
        let mut errors = 0u64;
        for n in 0..count {
            if server.tell(&BenchTell(n)).is_err() {
                errors += 1;
            }
            crate::resets::pace(n + 1).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        serde_json::json!({ "send_errors": errors, "reconnects": m.counters().reconnects })
    })
}
