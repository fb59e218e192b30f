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

use crate::stats::{runtime, Load};

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

/// A numbered one-way message (the resets scenario).
#[derive(Serialize, Deserialize)]
pub struct BenchTell(u64);

#[remote_message]
impl Message<BenchTell> for BenchServer {
    type Reply = ();
    async fn handle(&mut self, msg: BenchTell, _: &mut Context<Self, Self::Reply>) {
        crate::resets::received().lock().unwrap().push(msg.0);
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kameo: remote::Behaviour,
}

/// Builds and runs the swarm; `dial` is the server's (peer, address) on the client. Returns
/// this node's listening address once it has one.
async fn swarm(
    dial: Option<(PeerId, Multiaddr)>,
) -> (PeerId, Multiaddr, tokio::sync::mpsc::UnboundedSender<()>) {
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
    let dial_opts = move |(peer, addr): &(PeerId, Multiaddr)| {
        libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
            .addresses(vec![addr.clone()])
            .build()
    };
    if let Some(d) = &dial {
        swarm.add_peer_address(d.0, d.1.clone());
        swarm.dial(dial_opts(d)).expect("dial");
    }
    let id = *swarm.local_peer_id();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    // Asks to dial the server again (the resets scenario's client, after a failed tell).
    let (redial, mut redials) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::NewListenAddr { address, .. } = event {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(address);
                        }
                    }
                }
                Some(()) = redials.recv() => {
                    if let Some(d) = &dial {
                        let _ = swarm.dial(dial_opts(d));
                    }
                }
            }
        }
    });
    (id, rx.await.unwrap(), redial)
}

pub fn serve(ready: std::sync::mpsc::Sender<Vec<String>>) {
    runtime().block_on(async move {
        let (id, addr, _) = swarm(None).await;
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
        let server = lookup().await;
        crate::stats::run_asks(load, move |data| {
            let server = server.clone();
            async move { server.ask(&BenchRequest { data }).await.expect("ask") }
        })
        .await
    })
}

async fn lookup() -> RemoteActorRef<BenchServer> {
    loop {
        match RemoteActorRef::<BenchServer>::lookup(NAME).await {
            Ok(Some(r)) => break r,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The resets scenario's client: tells with `send_ack` (kameo's delivery-acknowledged tell).
/// A failed one is counted and not resent; the client then dials the server again and looks
/// its actor up again, as a user would (neither happens by itself).
pub fn client_tells(peer: &[String], count: u64) -> serde_json::Value {
    runtime().block_on(async move {
        let server_id: PeerId = peer[0].parse().expect("peer id");
        let server_addr: Multiaddr = peer[1].parse().expect("multiaddr");
        let (_, _, redial) = swarm(Some((server_id, server_addr))).await;
        let mut server = lookup().await;
        let (mut errors, mut reconnects) = (0u64, 0u64);
        for n in 0..count {
            if server.tell(&BenchTell(n)).send_ack().await.is_err() {
                errors += 1;
                reconnects += 1;
                let _ = redial.send(());
                if let Ok(s) = tokio::time::timeout(Duration::from_millis(500), lookup()).await {
                    server = s;
                }
            }
            crate::resets::pace(n + 1).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        serde_json::json!({ "send_errors": errors, "reconnects": reconnects })
    })
}
