//! ractor with ractor_cluster: the server actor joins a process group that the node servers
//! synchronise; the client finds it there and `call`s it (ractor's RPC: a reply port per
//! request), from `depth` tasks at once. The wire is ractor_cluster's raw TCP (no encryption),
//! length-prefixed protobuf frames.

use std::time::Duration;

use ractor::concurrency::Duration as RDuration;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, RactorClusterMessage};

use crate::stats::{free_addr, runtime, Load};

const GROUP: &str = "msgr_bench";
const COOKIE: &str = "msgr-bench-cookie";

#[derive(RactorClusterMessage)]
pub enum BenchMsg {
    #[rpc]
    Request(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A numbered one-way message (the resets scenario).
    Tell(u64),
}

struct Server;

impl Actor for Server {
    type Msg = BenchMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<BenchMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<BenchMsg>,
        msg: BenchMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BenchMsg::Request(data, reply) => {
                let _ = reply.send(data[..16].to_vec());
            }
            BenchMsg::Tell(n) => crate::resets::received().lock().unwrap().push(n),
        }
        Ok(())
    }
}

pub fn serve(ready: std::sync::mpsc::Sender<Vec<String>>) {
    runtime().block_on(async move {
        let port = free_addr().port();
        let _node = node_server("server", port).await;
        let (server, _) = Actor::spawn(None, Server, ()).await.expect("server actor");
        pg::join(GROUP.into(), vec![server.get_cell()]);
        // Let the listener bind before the client dials.
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready.send(vec![format!("127.0.0.1:{port}")]).unwrap();
        std::future::pending::<()>().await;
    })
}

pub fn client(peer: &[String], load: Load) -> (u64, f64, f64, hdrhistogram::Histogram<u64>) {
    runtime().block_on(async move {
        let node = node_server("client", free_addr().port()).await;
        ractor_cluster::client_connect(&node, peer[0].as_str())
            .await
            .expect("connect");
        let server = remote_server(Duration::from_secs(30))
            .await
            .expect("the server in its group");
        crate::stats::run_asks(load, move |req| {
            let server = server.clone();
            async move {
                server
                    .call(
                        |port| BenchMsg::Request(req, port),
                        Some(RDuration::from_secs(60)),
                    )
                    .await
                    .expect("call")
                    .unwrap()
            }
        })
        .await
    })
}

/// A node server named `name` on loopback port `port`.
async fn node_server(name: &str, port: u16) -> ActorRef<ractor_cluster::NodeServerMessage> {
    let node = NodeServer::new(
        port,
        COOKIE.into(),
        name.into(),
        "localhost".into(),
        None,
        None,
    )
    .with_listen_addr("127.0.0.1".parse().unwrap());
    Actor::spawn(None, node, ()).await.expect("node server").0
}

/// The server actor once the node sessions have synchronised its group (None after `wait`).
async fn remote_server(wait: Duration) -> Option<ActorRef<BenchMsg>> {
    let began = std::time::Instant::now();
    while began.elapsed() < wait {
        let members = pg::get_members(&GROUP.to_string());
        if let Some(cell) = members.into_iter().find(|c| !c.get_id().is_local()) {
            return Some(cell.into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// The resets scenario's client: `cast`s numbered tells. When a cast fails (the node session
/// died with its connection, and the remote actor with it), it dials again and finds the
/// server in its group again, as a user of the API would; the failed tell is not resent.
pub fn client_tells(peer: &[String], count: u64) -> serde_json::Value {
    runtime().block_on(async move {
        let node = node_server("client", free_addr().port()).await;
        ractor_cluster::client_connect(&node, peer[0].as_str())
            .await
            .expect("connect");
        let mut server = remote_server(Duration::from_secs(30)).await;
        let (mut errors, mut reconnects) = (0u64, 0u64);
        for n in 0..count {
            let sent = server
                .as_ref()
                .is_some_and(|s| s.cast(BenchMsg::Tell(n)).is_ok());
            if !sent {
                errors += 1;
                reconnects += 1;
                let _ = ractor_cluster::client_connect(&node, peer[0].as_str()).await;
                server = remote_server(Duration::from_millis(500)).await;
            }
            crate::resets::pace(n + 1).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        serde_json::json!({ "send_errors": errors, "reconnects": reconnects })
    })
}
