//! The OSD / monitor simulators shared by the `cluster`, `mon_sim` and `osd_sim` examples.
//! Only the public API of msgr and msgr-actors is used, the way an application would.

#![allow(dead_code)]

pub mod client;
pub mod mon;
pub mod osd;
pub mod proto;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use msgr::{Config, Payload};
use msgr_actors::Connection;

use proto::Envelope;

/// Stamps outgoing messages with the connection's id and a per-connection sequence number.
/// Stamping and queueing happen under one lock, so the stamps are in queue order even when
/// several threads send on one connection.
#[derive(Default)]
pub struct Stamper {
    seqs: Mutex<HashMap<u64, u64>>,
}

impl Stamper {
    /// Builds the message with a fresh envelope and queues it; false if the connection is closed.
    pub fn send<P: Payload>(&self, conn: &Connection, build: impl FnOnce(Envelope) -> P) -> bool {
        let mut seqs = self.seqs.lock().unwrap();
        let seq = seqs.entry(conn.id()).or_insert(0);
        let env = Envelope {
            conn: conn.id(),
            seq: *seq,
        };
        *seq += 1;
        conn.send_message(msgr::Message::from_payload(&build(env)))
            .is_ok()
    }
}

/// Receiver-side proof of the lossless guarantee: per (our connection, sender's connection),
/// envelope sequences must be contiguous. A reset event on our connection starts it over.
#[derive(Default)]
pub struct LossTracker {
    next: Mutex<HashMap<(u64, u64), u64>>,
    pub lost: AtomicU64,
    pub misordered: AtomicU64,
    pub received: AtomicU64,
}

impl LossTracker {
    /// Accounts one received envelope; `msgr_seq` (the session seq it arrived with) is only
    /// reported, to tell a gap in the session from one above it.
    pub fn observe(&self, conn: &Connection, env: Envelope, msgr_seq: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let mut next = self.next.lock().unwrap();
        let n = next.entry((conn.id(), env.conn)).or_insert(env.seq);
        if env.seq < *n {
            self.misordered.fetch_add(1, Ordering::Relaxed);
        } else {
            if env.seq > *n {
                // Rare by design (a lossless session must never skip): say exactly where, so a
                // failing run can be traced.
                eprintln!(
                    "loss: on connection {} (peer {}) from sender connection {}: expected seq {}, got {} (session seq {})",
                    conn.id(),
                    conn.peer_name(),
                    env.conn,
                    *n,
                    env.seq,
                    msgr_seq
                );
            }
            self.lost.fetch_add(env.seq - *n, Ordering::Relaxed);
            *n = env.seq + 1;
        }
    }

    /// Decodes a sim message received on `conn` and accounts its envelope; None if undecodable.
    pub fn receive<P: proto::Enveloped>(
        &self,
        conn: &Connection,
        msg: &msgr::Message,
    ) -> Option<P> {
        let p = match msg.decode_payload::<P>() {
            Ok(p) => p,
            Err(e) => {
                // Counted as lost: a message the sim cannot read is one it did not get.
                eprintln!(
                    "undecodable message type {} seq {} on connection {}: {e}",
                    msg.msg_type,
                    msg.seq,
                    conn.id()
                );
                self.lost.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        self.observe(conn, p.envelope(), msg.seq);
        Some(p)
    }

    /// The session on `conn` was reset: what was queued on either side is legitimately gone.
    pub fn reset(&self, conn: &Connection) {
        self.next
            .lock()
            .unwrap()
            .retain(|(c, _), _| *c != conn.id());
    }
}

/// Options every simulated messenger takes on top of [`sim_config`]'s, by Ceph option name
/// (the cluster example's `--ms NAME=VALUE`).
static OVERRIDES: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Sets the [`OVERRIDES`] once, before any messenger starts; each must name a real option with
/// a valid value.
pub fn set_config_overrides(pairs: Vec<(String, String)>) -> Result<(), String> {
    let mut probe = Config::default();
    for (k, v) in &pairs {
        probe.set(k, v).map_err(|e| format!("--ms {k}={v}: {e}"))?;
    }
    OVERRIDES
        .set(pairs)
        .map_err(|_| "config overrides were already set".to_string())
}

/// Every simulated messenger speaks msgr2 instead of msgr v1 (the cluster example's
/// `--msgr2`): in crc mode with auth none, or in secure mode, which needs cephx: then every
/// messenger holds the one cluster key in [`WireSetup::secure`].
static MSGR2: OnceLock<WireSetup> = OnceLock::new();

/// How the simulated messengers talk over msgr2.
pub struct WireSetup {
    /// The cluster key of secure mode (None: crc mode, auth none).
    pub secure: Option<msgr::auth::CryptoKey>,
}

/// Makes every simulated messenger bind and dial msgr2; set once, before any starts.
pub fn use_msgr2(setup: WireSetup) {
    let _ = MSGR2.set(setup);
}

fn msgr2() -> bool {
    MSGR2.get().is_some()
}

fn cluster_key() -> Option<&'static msgr::auth::CryptoKey> {
    MSGR2.get().and_then(|w| w.secure.as_ref())
}

/// `Messenger::builder(name)` with the cluster's authentication: cephx with the cluster key
/// in secure mode, else none.
pub fn builder(name: msgr::EntityName) -> msgr_actors::MessengerBuilder {
    let b = msgr_actors::Messenger::builder(name);
    let Some(key) = cluster_key() else {
        return b;
    };
    b.auth(msgr_actors::AuthSetup::cluster_key(
        name.into(),
        key.clone(),
    ))
}

/// Binds `m` on the wire in use (see [`use_msgr2`]); returns the address peers dial.
pub async fn bind(
    m: &msgr_actors::Messenger,
    addr: std::net::SocketAddr,
) -> Result<msgr::EntityAddr, msgr_actors::MessengerError> {
    if msgr2() {
        m.bind_v2(addr).await
    } else {
        m.bind(addr).await
    }
}

/// The address `m` is dialled at on the wire in use.
pub fn my_addr(m: &msgr_actors::Messenger) -> msgr::EntityAddr {
    if msgr2() {
        m.my_addr_v2().unwrap_or_else(|| m.my_addr())
    } else {
        m.my_addr()
    }
}

/// The session to `addr` on the wire in use.
pub async fn connect(
    m: &msgr_actors::Messenger,
    addr: msgr::EntityAddr,
    ty: msgr::EntityType,
) -> Result<msgr_actors::Connection, msgr_actors::MessengerError> {
    if msgr2() {
        m.get_connection_v2(addr, ty).await
    } else {
        m.get_connection(addr, ty).await
    }
}

/// The admin socket path template (`$name` expanded) that each daemon's main messenger opens.
static ADMIN_SOCKET: OnceLock<String> = OnceLock::new();

/// Gives every daemon (mon, each OSD's public messenger, the client) an admin socket at
/// `template`, which should contain `$name`; set once, before any messenger starts.
pub fn set_admin_socket(template: String) {
    let _ = ADMIN_SOCKET.set(template);
}

/// [`sim_config`] for a daemon's main messenger: with the admin socket, if one was asked for.
/// (An OSD's heartbeat messenger has the same entity name, so it gets none.)
pub fn daemon_config(inject_socket_failures: u64) -> Config {
    let mut c = sim_config(inject_socket_failures);
    if let Some(t) = ADMIN_SOCKET.get() {
        c.admin_socket = t.clone();
    }
    c
}

/// Configuration for every simulated messenger.
pub fn sim_config(inject_socket_failures: u64) -> Config {
    let mut c = Config::default()
        .ms_inject_socket_failures(inject_socket_failures)
        .ms_initial_backoff(Duration::from_millis(20))
        .ms_max_backoff(Duration::from_millis(500))
        .ms_connection_ready_timeout(Duration::from_secs(3));
    if cluster_key().is_some() {
        c = c.ms_modes("secure");
    }
    for (k, v) in OVERRIDES.get().into_iter().flatten() {
        c.set(k, v).expect("checked by set_config_overrides");
    }
    c
}

/// A new map: marks down `m`'s sessions to OSD addresses that went down or changed, as Ceph
/// daemons do (a restarted OSD has a new address; its old sessions can never complete).
pub async fn mark_down_stale(
    m: &msgr_actors::Messenger,
    old: &[proto::OsdInfo],
    new: &[proto::OsdInfo],
) {
    let stale: Vec<msgr::EntityAddr> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.id == o.id && n.up && n.addr == o.addr))
        .map(|o| o.addr.0)
        .collect();
    if stale.is_empty() {
        return;
    }
    for c in m.connections().await {
        if stale.iter().any(|a| a.same_legacy(&c.peer_addr())) {
            c.mark_down();
        }
    }
}
