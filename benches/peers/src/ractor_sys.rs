//! ractor with ractor_cluster: the server actor joins a process group that the node servers
//! synchronise; the client finds it there and `call`s it (ractor's RPC: a reply port per
//! request), from `depth` tasks at once. The wire is ractor_cluster's raw TCP (no encryption),
//! length-prefixed protobuf frames.

use std::time::Duration;

use ractor::concurrency::Duration as RDuration;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, RactorClusterMessage};

use crate::stats::Load;

const GROUP: &str = "msgr_bench";
const COOKIE: &str = "msgr-bench-cookie";

#[derive(RactorClusterMessage)]
pub enum BenchMsg {
    #[rpc]
    Request(Vec<u8>, RpcReplyPort<Vec<u8>>),
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
        let BenchMsg::Request(data, reply) = msg;
        let _ = reply.send(data[..16].to_vec());
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn serve(ready: std::sync::mpsc::Sender<Vec<String>>) {
    runtime().block_on(async move {
        let port = free_port();
        let node = NodeServer::new(
            port,
            COOKIE.into(),
            "server".into(),
            "localhost".into(),
            None,
            None,
        )
        .with_listen_addr("127.0.0.1".parse().unwrap());
        let (_node, _) = Actor::spawn(None, node, ()).await.expect("node server");
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
        let node = NodeServer::new(
            free_port(),
            COOKIE.into(),
            "client".into(),
            "localhost".into(),
            None,
            None,
        )
        .with_listen_addr("127.0.0.1".parse().unwrap());
        let (node, _) = Actor::spawn(None, node, ()).await.expect("node server");
        ractor_cluster::client_connect(&node, peer[0].as_str())
            .await
            .expect("connect");
        let server: ActorRef<BenchMsg> = loop {
            if let Some(cell) = pg::get_members(&GROUP.to_string())
                .into_iter()
                .find(|c| !c.get_id().is_local())
            {
                break cell.into();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
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
