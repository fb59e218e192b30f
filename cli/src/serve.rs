//! `msgr serve --bind ADDR`: accept, answer MPing and bench requests, log other messages; on
//! SIGINT / SIGTERM print a JSON summary per peer and exit 0.

use crate::auth::AuthArgs;
use crate::common::BindAddrs;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use msgr_actors::msgr::messages::{
    BenchReply, BenchRequest, MonPingReply, BENCH_REQUEST, CEPH_MSG_PING,
};
use msgr_actors::msgr::{Config, EntityName, Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: the first free one in ms_bind_port_min..max): `IP:PORT`
    /// (msgr v1), `v2:IP:PORT` (msgr2), or both as `[v2:IP:PORT,v1:IP:PORT]`. Default:
    /// `--public-bind-addr`, else `--public-addr`. Peers are told `--public-addr` when it is
    /// given (NAT, a container, a proxy in front), the bound address otherwise.
    #[arg(long)]
    bind: Option<BindAddrs>,
    /// Our entity name.
    #[arg(long, default_value = "osd.0")]
    entity: EntityName,
    /// Policy toward every peer type (a Ceph preset name).
    #[arg(long, default_value = "stateful_server")]
    policy: String,
    /// Our address nonce (default: 0 for a monitor entity, as in a monmap; random otherwise).
    #[arg(long)]
    nonce: Option<u32>,
    /// cephx: verify authorizers with the service key (`[<type>.]` in the keyring, else the
    /// `--name` entity's key); auth_cluster_required / auth_service_required decide who must.
    #[command(flatten)]
    auth: AuthArgs,
}

/// What one peer session did, as the summary reports it.
#[derive(Default, Serialize)]
struct PeerStats {
    peer: String,
    addr: String,
    /// Messages by type number.
    messages_by_type: BTreeMap<u16, u64>,
    bytes: u64,
    bench: BenchCheck,
    #[serde(skip)]
    conn: Option<Connection>,
    duplicates_dropped: u64,
    faults: u64,
    reconnects: u64,
}

/// Order and integrity of bench requests, per bench connection index.
#[derive(Default, Serialize)]
struct BenchCheck {
    received: u64,
    duplicates: u64,
    gaps: u64,
    corrupt: u64,
    #[serde(skip)]
    next: HashMap<u32, u64>,
}

struct Server {
    peers: Mutex<HashMap<u64, PeerStats>>,
    me: String,
}

impl Dispatcher for Server {
    /// Bench requests are answered on the connection's shard thread (as `msgr bench` takes the
    /// replies), not handed to the dispatch thread and back.
    fn ms_can_fast_dispatch(&self, msg: &Message) -> bool {
        msg.msg_type == BENCH_REQUEST
    }

    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(conn.id()).or_default();
        p.conn.get_or_insert_with(|| conn.clone());
        *p.messages_by_type.entry(msg.msg_type).or_default() += 1;
        p.bytes += msg.payload_len();
        match msg.msg_type {
            BENCH_REQUEST => match msg.decode_payload::<BenchRequest>() {
                Ok(req) => {
                    let b = &mut p.bench;
                    b.received += 1;
                    let intact = req.data_intact();
                    if !intact {
                        b.corrupt += 1;
                    }
                    let next = b.next.entry(req.stamp.conn).or_default();
                    if req.stamp.index < *next {
                        b.duplicates += 1;
                    } else {
                        b.gaps += req.stamp.index - *next;
                        *next = req.stamp.index + 1;
                    }
                    let _ = conn.send_message(Message::from_payload(&BenchReply {
                        stamp: req.stamp,
                        intact,
                    }));
                }
                Err(e) => tracing::warn!(error = %e, "undecodable bench request"),
            },
            CEPH_MSG_PING => {
                let status =
                    serde_json::json!({ "msgr_status": { "name": self.me, "peers": peers.len() } });
                let mut reply = Message::from_payload(&MonPingReply::new(status.to_string()));
                reply.tid = msg.tid;
                let _ = conn.send_message(reply);
            }
            _ => tracing::info!(
                msg_type = msg.msg_type,
                seq = msg.seq,
                src = %msg.src,
                front = msg.front.len(),
                middle = msg.middle.len(),
                data = msg.data.len(),
                "message"
            ),
        }
        true
    }
}

pub async fn run(args: Args, config: Config) -> Result<(), String> {
    let policy = Policy::preset(&args.policy).ok_or_else(|| {
        format!(
            "unknown policy {:?} (one of {:?})",
            args.policy,
            Policy::PRESETS
        )
    })?;
    let server = Arc::new(Server {
        peers: Mutex::new(HashMap::new()),
        me: args.entity.to_string(),
    });
    let bind = args
        .bind
        .clone()
        .or_else(|| {
            let v1 = config.public_bind_addr.or(config.public_addr)?;
            Some(BindAddrs {
                v1: Some(v1),
                v2: None,
            })
        })
        .ok_or("nothing to bind: give --bind (or --public-bind-addr / --public-addr)")?;
    let auth = args.auth.server_setup(args.entity.ty)?;
    let mut builder = Messenger::builder(args.entity)
        .auth(auth)
        .config(config)
        .default_policy(policy)
        .dispatcher(server.clone());
    if let Some(nonce) = args.nonce {
        builder = builder.nonce(nonce);
    }
    let m = builder.build().map_err(|e| e.to_string())?;
    let mut listening = Vec::new();
    let mut advertised = Vec::new();
    if let Some(v2) = bind.v2 {
        let a = m.bind_v2(v2).await.map_err(|e| e.to_string())?;
        let a = format!("v2:{}", a.to_string().trim_start_matches("v1:"));
        listening.push(format!("v2:{v2}, advertising {a}"));
        advertised.push(a);
    }
    if let Some(v1) = bind.v1 {
        let a = m.bind(v1).await.map_err(|e| e.to_string())?;
        listening.push(format!("{v1}, advertising {a}"));
        advertised.push(a.to_string());
    }
    let addr = advertised.join(",");
    m.start().map_err(|e| e.to_string())?;
    eprintln!(
        "msgr serve: {} listening on {}",
        args.entity,
        listening.join("; ")
    );
    wait_for_signal().await;
    let summary = {
        let mut peers = server.peers.lock().unwrap();
        let mut list = vec![];
        for p in peers.values_mut() {
            if let Some(c) = &p.conn {
                let k = c.counters();
                p.peer = c.peer_name().to_string();
                p.addr = c.peer_addr().to_string();
                p.duplicates_dropped = k.duplicates;
                p.faults = k.faults;
                p.reconnects = k.reconnects;
            }
            list.push(serde_json::to_value(&*p).map_err(|e| e.to_string())?);
        }
        serde_json::json!({ "entity": args.entity.to_string(), "addr": addr.to_string(), "peers": list, "totals": m.counters() })
    };
    m.shutdown().await;
    println!("{summary}");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
