//! kameo with its remote feature: a libp2p swarm (TCP, noise encryption, yamux multiplexing;
//! libp2p has no unencrypted TCP transport), the server actor registered under a name in
//! kameo's Kademlia registry, the client looking it up and `ask`ing it from `depth` tasks at
//! once. The client dials the server's address directly (no mDNS).

use std::time::Duration;

use futures::StreamExt;
use kameo::prelude::*;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::stats::Load;

const NAME: &str = "msgr_bench";

#[derive(Actor, RemoteActor)]
pub struct BenchServer;

#[derive(Serialize, Deserialize)]
pub struct BenchRequest {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

#[remote_message]
impl Message<BenchRequest> for BenchServer {
    type Reply = Vec<u8>;
    async fn handle(&mut self, msg: BenchRequest, _: &mut Context<Self, Self::Reply>) -> Vec<u8> {
        msg.data[..16].to_vec()
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kameo: remote::Behaviour,
}

/// Builds and runs the swarm; `dial` is the server's (peer, address) on the client. Returns
/// this node's listening address once it has one.
async fn swarm(dial: Option<(PeerId, Multiaddr)>) -> (PeerId, Multiaddr) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            Ok(Behaviour {
                kameo: remote::Behaviour::new(
                    id,
                    // Room for every ask in flight (the default allows 100 streams).
                    remote::messaging::Config::default().with_max_concurrent_streams(4096),
                ),
            })
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    swarm.behaviour().kameo.init_global();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    if let Some((peer, addr)) = dial {
        swarm.add_peer_address(peer, addr.clone());
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .build();
        swarm.dial(opts).expect("dial");
    }
    let id = *swarm.local_peer_id();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(address);
                }
            }
        }
    });
    (id, rx.await.unwrap())
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
        let (id, addr) = swarm(None).await;
        let server = BenchServer::spawn(BenchServer);
        server.register(NAME).await.expect("register");
        ready.send(vec![id.to_string(), addr.to_string()]).unwrap();
        std::future::pending::<()>().await;
    })
}

pub fn client(peer: &[String], load: Load) -> (u64, f64, f64, hdrhistogram::Histogram<u64>) {
    runtime().block_on(async move {
        let server_id: PeerId = peer[0].parse().expect("peer id");
        let server_addr: Multiaddr = peer[1].parse().expect("multiaddr");
        swarm(Some((server_id, server_addr))).await;
        let server = loop {
            match RemoteActorRef::<BenchServer>::lookup(NAME).await {
                Ok(Some(r)) => break r,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        crate::stats::run_asks(load, move |data| {
            let server = server.clone();
            async move { server.ask(&BenchRequest { data }).await.expect("ask") }
        })
        .await
    })
}
