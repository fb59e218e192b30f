//! actix-telepathy: remote messages are one-way (`RemoteAddr::do_send`; the crate has no remote
//! request / reply), so each request carries the client actor's address and the server sends
//! the reply as a message of its own. The client actor keeps `depth` requests in flight: each
//! reply sends the next request from inside its handler. The wire is telepathy's own TCP
//! framing with its default serialisation (no encryption).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_broker::BrokerSubscribe;
use actix_telepathy::prelude::*;
use actix_telepathy::Node;
use log::warn;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::child::cpu_secs;
use crate::stats::{free_addr, request, sent_ns, Latencies, Load};

#[derive(Serialize, Deserialize, RemoteMessage)]
pub struct BenchRequest {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    reply_to: RemoteAddr,
}

#[derive(Serialize, Deserialize, RemoteMessage)]
pub struct BenchReply {
    #[serde(with = "serde_bytes")]
    head: Vec<u8>,
}

/// The server actor. A `RemoteAddr` arrives without the connection to send on (telepathy does
/// not fill it in), so the server learns its members' connections from the cluster and
/// attaches the sender's before replying; requests from a member it has not heard of yet wait.
/// A numbered one-way message (the resets scenario).
#[derive(Serialize, Deserialize, RemoteMessage)]
pub struct BenchTell {
    n: u64,
}

#[derive(RemoteActor, Default)]
#[remote_messages(BenchRequest, BenchTell)]
pub struct BenchServer {
    members: HashMap<SocketAddr, Node>,
    waiting: Vec<BenchRequest>,
}

impl BenchServer {
    fn reply(&mut self, mut m: BenchRequest) {
        match self.members.get(&m.reply_to.node.socket_addr) {
            Some(node) => {
                m.reply_to.node.network_interface = node.network_interface.clone();
                m.reply_to.do_send(BenchReply {
                    head: m.data[..16].to_vec(),
                });
            }
            None => self.waiting.push(m),
        }
    }
}

impl ClusterListener for BenchServer {}
impl Supervised for BenchServer {}

impl Actor for BenchServer {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.register(ctx.address().recipient());
        self.subscribe_system_async::<ClusterLog>(ctx);
    }
}

impl Handler<ClusterLog> for BenchServer {
    type Result = ();
    fn handle(&mut self, msg: ClusterLog, _: &mut Context<Self>) {
        if let ClusterLog::NewMember(node) = msg {
            self.members.insert(node.socket_addr, node);
            for m in std::mem::take(&mut self.waiting) {
                self.reply(m);
            }
        }
    }
}

impl Handler<BenchTell> for BenchServer {
    type Result = ();
    fn handle(&mut self, m: BenchTell, _: &mut Context<Self>) {
        crate::resets::received().lock().unwrap().push(m.n);
    }
}

impl Handler<BenchRequest> for BenchServer {
    type Result = ();
    fn handle(&mut self, m: BenchRequest, _: &mut Context<Self>) {
        self.reply(m);
    }
}

/// The client actor: learns the server when the cluster reports it, then runs the window.
#[derive(RemoteActor)]
#[remote_messages(BenchReply)]
pub struct BenchClient {
    own_ip: SocketAddr,
    load: Load,
    server: Option<RemoteAddr>,
    me: Option<RemoteAddr>,
    sent: u64,
    replies: u64,
    start: Option<(Instant, f64)>,
    lat: Arc<Latencies>,
    done: Option<oneshot::Sender<(u64, f64, f64)>>,
}

impl BenchClient {
    fn send_next(&mut self) {
        let (Some(server), Some(me), Some((start, _))) = (&self.server, &self.me, self.start)
        else {
            return;
        };
        if self.sent < self.load.count {
            server.do_send(BenchRequest {
                data: request(self.sent, start.elapsed().as_nanos() as u64, self.load.size),
                reply_to: me.clone(),
            });
            self.sent += 1;
        }
    }
}

impl ClusterListener for BenchClient {}
impl Supervised for BenchClient {}

impl Actor for BenchClient {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.register(ctx.address().recipient());
        self.subscribe_system_async::<ClusterLog>(ctx);
    }
}

impl Handler<ClusterLog> for BenchClient {
    type Result = ();
    fn handle(&mut self, msg: ClusterLog, _: &mut Context<Self>) {
        if let ClusterLog::NewMember(node) = msg {
            let server = node.get_remote_addr(BenchServer::ACTOR_ID.to_string());
            let mut me = server.clone();
            me.node.socket_addr = self.own_ip;
            me.change_id(BenchClient::ACTOR_ID.to_string());
            self.server = Some(server);
            self.me = Some(me);
            crate::child::mark(crate::child::PHASE_BEGIN);
            self.start = Some((Instant::now(), cpu_secs()));
            for _ in 0..self.load.depth {
                self.send_next();
            }
        }
    }
}

impl Handler<BenchReply> for BenchClient {
    type Result = ();
    fn handle(&mut self, m: BenchReply, _: &mut Context<Self>) {
        let (start, cpu0) = self.start.expect("started");
        self.lat.record(start, sent_ns(&m.head));
        self.replies += 1;
        self.send_next();
        if self.replies == self.load.count {
            let out = (
                self.replies,
                start.elapsed().as_secs_f64(),
                cpu_secs() - cpu0,
            );
            crate::child::mark(crate::child::PHASE_END);
            if let Some(done) = self.done.take() {
                let _ = done.send(out);
            }
        }
    }
}

pub fn serve(ready: std::sync::mpsc::Sender<Vec<String>>) {
    actix::System::new().block_on(async move {
        let addr = free_addr();
        let _cluster = Cluster::new(addr, vec![]);
        let _server = BenchServer::default().start();
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready.send(vec![addr.to_string()]).unwrap();
        std::future::pending::<()>().await;
    })
}

pub fn client(peer: &[String], load: Load) -> (u64, f64, f64, hdrhistogram::Histogram<u64>) {
    actix::System::new().block_on(async move {
        let own_ip = free_addr();
        let (tx, rx) = oneshot::channel();
        let lat = Arc::new(Latencies::new());
        let _client = BenchClient {
            own_ip,
            load,
            server: None,
            me: None,
            sent: 0,
            replies: 0,
            start: None,
            lat: lat.clone(),
            done: Some(tx),
        }
        .start();
        let _cluster = Cluster::new(own_ip, vec![peer[0].parse().unwrap()]);
        let (msgs, secs, cpu) = rx.await.expect("run");
        (msgs, secs, cpu, lat.snapshot())
    })
}

/// The resets scenario's client side: follows the cluster's membership, so the tells go to
/// the server while it is a member (telepathy has no other way to learn that it is back).
struct Membership(
    Arc<std::sync::Mutex<Option<RemoteAddr>>>,
    Arc<std::sync::atomic::AtomicU64>,
);

impl ClusterListener for Membership {}
impl Supervised for Membership {}

impl Actor for Membership {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.subscribe_system_async::<ClusterLog>(ctx);
    }
}

impl Handler<ClusterLog> for Membership {
    type Result = ();
    fn handle(&mut self, msg: ClusterLog, _: &mut Context<Self>) {
        let mut server = self.0.lock().unwrap();
        match msg {
            ClusterLog::NewMember(node) => {
                if server.is_some() {
                    self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                *server = Some(node.get_remote_addr(BenchServer::ACTOR_ID.to_string()));
            }
            ClusterLog::MemberLeft(_) => *server = None,
        }
    }
}

/// The resets scenario's client: `do_send`s numbered tells to the server while the cluster
/// lists it as a member; a tell with no member to go to counts as a send error.
pub fn client_tells(peer: &[String], count: u64) -> serde_json::Value {
    actix::System::new().block_on(async move {
        let server = Arc::new(std::sync::Mutex::new(None::<RemoteAddr>));
        let rejoins = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let _membership = Membership(server.clone(), rejoins.clone()).start();
        let _cluster = Cluster::new(free_addr(), vec![peer[0].parse().unwrap()]);
        let began = Instant::now();
        while server.lock().unwrap().is_none() && began.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut errors = 0u64;
        for n in 0..count {
            match server.lock().unwrap().as_ref() {
                Some(s) => s.do_send(BenchTell { n }),
                None => errors += 1,
            }
            crate::resets::pace(n + 1).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rejoins = rejoins.load(std::sync::atomic::Ordering::Relaxed);
        serde_json::json!({ "send_errors": errors, "reconnects": rejoins })
    })
}
