//! `msgr ping ADDR`: MPing a monitor as `client.?` (lossy_client, all features, protocol 15),
//! first authenticating with cephx when given `--name` / `--keyring`.

use std::sync::Arc;
use std::time::Duration;

use msgr_actors::msgr::auth::cephx::MonAuthClient;
use msgr_actors::msgr::messages::{MPing, MonPingReply, CEPH_MSG_PING};
use msgr_actors::msgr::{Config, EntityName, EntityType, Message, Policy};
use msgr_actors::{AuthSetup, Connection, Dispatcher, Messenger, MonAuth, MonAuthError};
use tokio::sync::mpsc;

use crate::auth::{AuthArgs, Identity};
use crate::common::PeerAddr;

/// Tickets asked for, as the `ceph` command asks: MON, OSD, MGR and AUTH.
const WANT_TICKETS: u32 = 0x35;

#[derive(clap::Args)]
pub struct Args {
    /// The monitor: `127.0.0.1:6789`, `v1:127.0.0.1:6789/0`, or `v2:127.0.0.1:3300` (msgr2;
    /// `--ms-mon-client-mode` picks secure or crc).
    addr: PeerAddr,
    /// Pings to send, one after another, on one connection.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Print each reply's JSON document, one per line.
    #[arg(long)]
    json: bool,
    /// The peer's entity type (decides the protocol version: 15 for a mon, 24 for an osd).
    #[arg(long, default_value = "mon")]
    peer_type: String,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[command(flatten)]
    auth: AuthArgs,
}

enum Event {
    Reply(Message),
    Reset,
    Refused,
}

struct Forward(mpsc::UnboundedSender<Event>);

impl Dispatcher for Forward {
    fn ms_dispatch(&self, _: &Connection, msg: Message) -> bool {
        let _ = self.0.send(Event::Reply(msg));
        true
    }
    fn ms_handle_reset(&self, _: &Connection) -> bool {
        let _ = self.0.send(Event::Reset);
        true
    }
    fn ms_handle_refused(&self, _: &Connection) -> bool {
        let _ = self.0.send(Event::Refused);
        true
    }
}

pub async fn run(args: Args, config: Config) -> Result<(), String> {
    let mut identity = args.auth.identity()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mon_auth = MonAuth::new();
    // Over msgr2 authentication is part of the handshake; over v1 it is MAuth afterwards.
    let mut setup = AuthSetup::default();
    if args.addr.v2 {
        if let Some(id) = identity.take() {
            setup.mon_identity = Some((id.name, id.key, WANT_TICKETS));
        }
    }
    let m = Messenger::builder(EntityName::anonymous_client())
        .auth(setup)
        .config(config)
        .default_policy(Policy::lossy_client(0))
        .dispatcher(mon_auth.dispatcher())
        .dispatcher(Arc::new(Forward(tx)))
        .build()
        .map_err(|e| e.to_string())?;
    let result = ping_all(&m, &args, identity, &mon_auth, &mut rx).await;
    m.shutdown().await;
    result
}

async fn ping_all(
    m: &Messenger,
    args: &Args,
    identity: Option<Identity>,
    mon_auth: &MonAuth,
    rx: &mut mpsc::UnboundedReceiver<Event>,
) -> Result<(), String> {
    let ty = EntityType::from_name(&args.peer_type)
        .ok_or_else(|| format!("unknown entity type {:?}", args.peer_type))?;
    let conn = args.addr.connect(m, ty).await?;
    let why = |conn: &Connection| {
        conn.last_error()
            .map_or_else(|| "no error recorded".into(), |e| e.to_string())
    };
    // Held for the pings: it renews the tickets while we are connected.
    let _session = match identity {
        None => None,
        Some(id) => {
            let name = id.name.to_string();
            let client = MonAuthClient::new(id.name, id.key, WANT_TICKETS);
            let timeout = Duration::from_secs_f64(args.timeout);
            let session = mon_auth
                .authenticate(&conn, client, timeout)
                .await
                .map_err(|e| match e {
                    MonAuthError::ConnectionLost => {
                        format!("authentication as {name} failed: {e} ({})", why(&conn))
                    }
                    e => format!("authentication as {name} with {} failed: {e}", args.addr),
                })?;
            tracing::info!(global_id = session.global_id(), "authenticated as {name}");
            Some(session)
        }
    };
    for i in 0..args.count {
        conn.send_message(Message::from_payload(&MPing))
            .map_err(|_| format!("connection to {} closed: {}", args.addr, why(&conn)))?;
        let deadline = tokio::time::sleep(Duration::from_secs_f64(args.timeout));
        tokio::pin!(deadline);
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = &mut deadline => {
                    return Err(format!("ping {} timed out after {} s ({})", i + 1, args.timeout, why(&conn)));
                }
            };
            match ev {
                Some(Event::Reply(msg)) if msg.msg_type == CEPH_MSG_PING => {
                    let reply = msg
                        .decode_payload::<MonPingReply>()
                        .map_err(|e| format!("bad ping reply: {e}"))?;
                    print_reply(&msg, &reply, args.json)?;
                    break;
                }
                Some(Event::Reply(msg)) => {
                    tracing::debug!(msg_type = msg.msg_type, "ignoring message")
                }
                Some(Event::Refused) => return Err(format!("connection to {} refused", args.addr)),
                Some(Event::Reset) => {
                    return Err(format!(
                        "connection to {} failed: {}",
                        args.addr,
                        why(&conn)
                    ))
                }
                None => return Err("messenger stopped".into()),
            }
        }
    }
    Ok(())
}

fn print_reply(msg: &Message, reply: &MonPingReply, json: bool) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(&reply.json).map_err(|e| format!("reply is not JSON: {e}"))?;
    if json {
        println!("{doc}");
        return Ok(());
    }
    let s = &doc["mon_status"];
    if s.is_object() {
        println!(
            "{} ({}): {} rank {} state {} quorum {} election_epoch {}",
            msg.src,
            s["name"].as_str().unwrap_or("?"),
            doc["health"]["status"].as_str().unwrap_or("?"),
            s["rank"],
            s["state"].as_str().unwrap_or("?"),
            s["quorum"],
            s["election_epoch"],
        );
    } else {
        println!("{}: {doc}", msg.src);
    }
    Ok(())
}
