//! A client: follows the OSD map, writes objects to their primaries (one write in flight per
//! object), resends what a map change or a timeout strands, and at the end reads every
//! acknowledged object back from every OSD that acknowledged storing it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use msgr::{EntityAddr, EntityName, EntityType, Message, Payload, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};

use super::proto::*;
use super::{daemon_config, LossTracker, Stamper};

struct Op {
    oid: String,
    data: Bytes,
    write: bool,
    /// For verification reads: the OSD that must answer.
    pinned: Option<u32>,
    target: u32,
    sent: Instant,
}

#[derive(Default)]
pub struct Verify {
    pub objects: u64,
    pub verified: u64,
    pub failures: u64,
}

pub struct ClientInner {
    pub id: u64,
    messenger: Messenger,
    map: Mutex<(u32, Vec<OsdInfo>)>,
    ops: Mutex<HashMap<u64, Op>>,
    next_tid: AtomicU64,
    /// oid → (data, OSDs that stored it) of the newest acknowledged write.
    acked: Mutex<HashMap<String, (Bytes, Vec<u32>)>>,
    busy: Mutex<HashSet<String>>,
    pub writes_acked: AtomicU64,
    pub resent: AtomicU64,
    running: std::sync::atomic::AtomicBool,
    verify: Mutex<Verify>,
    stamper: Stamper,
    pub loss: LossTracker,
}

#[derive(Clone)]
pub struct Client {
    pub inner: Arc<ClientInner>,
}

struct ClientDispatch(Arc<ClientInner>);

impl ClientInner {
    pub fn epoch(&self) -> u32 {
        self.map.lock().unwrap().0
    }

    fn addr_of(&self, id: u32) -> Option<EntityAddr> {
        self.map
            .lock()
            .unwrap()
            .1
            .iter()
            .find(|o| o.id == id && o.up)
            .map(|o| o.addr.0)
    }

    /// Where an op goes now: its pinned OSD, or the object's primary.
    fn route(&self, op: &Op) -> Option<u32> {
        if let Some(p) = op.pinned {
            return Some(p);
        }
        acting_set(&op.oid, &self.map.lock().unwrap().1)
            .first()
            .copied()
    }

    async fn send(self: &Arc<Self>, tid: u64) {
        let (msg_oid, data, write, target) = {
            let mut ops = self.ops.lock().unwrap();
            let Some(op) = ops.get_mut(&tid) else { return };
            let Some(target) = self.route(op) else { return };
            op.target = target;
            op.sent = Instant::now();
            (op.oid.clone(), op.data.clone(), op.write, target)
        };
        let Some(addr) = self.addr_of(target) else {
            return;
        };
        if let Ok(conn) = super::connect(&self.messenger, addr, EntityType::OSD).await {
            let client = self.id;
            self.stamper.send(&conn, |env| OsdOp {
                env,
                client,
                tid,
                oid: msg_oid,
                write,
                data,
            });
        }
    }

    /// Resends ops stranded by a map change (target down or no longer primary) or a timeout.
    async fn resend_stranded(self: &Arc<Self>) {
        let stale: Vec<u64> = {
            let ops = self.ops.lock().unwrap();
            ops.iter()
                .filter(|(_, op)| {
                    let now_target = self.route(op);
                    now_target != Some(op.target)
                        || self.addr_of(op.target).is_none()
                        || op.sent.elapsed() > Duration::from_secs(3)
                })
                .map(|(tid, _)| *tid)
                .collect()
        };
        for tid in stale {
            self.resent.fetch_add(1, Ordering::Relaxed);
            self.send(tid).await;
        }
    }

    async fn on_map(self: &Arc<Self>, m: OsdMap) {
        let old = {
            let mut map = self.map.lock().unwrap();
            if m.epoch <= map.0 {
                return;
            }
            let old = std::mem::replace(&mut map.1, m.osds.clone());
            map.0 = m.epoch;
            old
        };
        super::mark_down_stale(&self.messenger, &old, &m.osds).await;
        self.resend_stranded().await;
    }

    fn submit(self: &Arc<Self>, oid: String, data: Bytes, write: bool, pinned: Option<u32>) -> u64 {
        let tid = self.next_tid.fetch_add(1, Ordering::Relaxed) + 1;
        self.ops.lock().unwrap().insert(
            tid,
            Op {
                oid,
                data,
                write,
                pinned,
                target: u32::MAX,
                sent: Instant::now(),
            },
        );
        let me = self.clone();
        tokio::spawn(async move { me.send(tid).await });
        tid
    }

    pub fn in_flight(&self) -> usize {
        self.ops.lock().unwrap().len()
    }

    /// Starts a write of `oid` unless one is already in flight for it.
    pub fn try_write(self: &Arc<Self>, oid: String, data: Bytes) -> bool {
        if !self.busy.lock().unwrap().insert(oid.clone()) {
            return false;
        }
        self.submit(oid, data, true, None);
        true
    }
}

impl Dispatcher for ClientDispatch {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let me = self.0.clone();
        match msg.msg_type {
            OsdMap::TYPE => {
                let Some(m) = me.loss.receive::<OsdMap>(conn, &msg) else {
                    return true;
                };
                tokio::spawn(async move { me.on_map(m).await });
            }
            OsdOpReply::TYPE => {
                let Some(r) = me.loss.receive::<OsdOpReply>(conn, &msg) else {
                    return true;
                };
                let Some(op) = me.ops.lock().unwrap().remove(&r.tid) else {
                    return true;
                };
                if op.write {
                    me.writes_acked.fetch_add(1, Ordering::Relaxed);
                    me.acked
                        .lock()
                        .unwrap()
                        .insert(op.oid.clone(), (op.data, r.stored_on));
                    me.busy.lock().unwrap().remove(&op.oid);
                } else {
                    let mut v = me.verify.lock().unwrap();
                    if r.ok && r.data == op.data {
                        v.verified += 1;
                    } else {
                        v.failures += 1;
                        tracing::warn!(oid = op.oid, osd = ?op.pinned, "replica does not hold the acknowledged data");
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.0.loss.reset(conn);
    }
}

impl Client {
    pub async fn start(
        id: u64,
        mon: EntityAddr,
        inject: u64,
        threads_of: Option<&Messenger>,
    ) -> Client {
        let stamper = Stamper::default();
        let mut b = super::builder(EntityName::new(EntityType::CLIENT, id as i64))
            .config(daemon_config(inject))
            .default_policy(Policy::lossless_client(0));
        if let Some(t) = threads_of {
            b = b.share_threads_with(t);
        }
        // The dispatcher needs the inner state, which needs the messenger: tie them with a cell.
        let cell: Arc<std::sync::OnceLock<Arc<ClientInner>>> = Arc::default();
        let late = cell.clone();
        struct Late(Arc<std::sync::OnceLock<Arc<ClientInner>>>);
        impl Dispatcher for Late {
            fn ms_dispatch(&self, c: &Connection, m: Message) -> bool {
                self.0
                    .get()
                    .is_some_and(|i| ClientDispatch(i.clone()).ms_dispatch(c, m))
            }
            fn ms_handle_remote_reset(&self, c: &Connection) {
                if let Some(i) = self.0.get() {
                    i.loss.reset(c);
                }
            }
        }
        let messenger = b
            .dispatcher(Arc::new(Late(late)))
            .build()
            .expect("client messenger");
        let inner = Arc::new(ClientInner {
            id,
            messenger: messenger.clone(),
            map: Mutex::default(),
            ops: Mutex::default(),
            next_tid: AtomicU64::new(0),
            acked: Mutex::default(),
            busy: Mutex::default(),
            writes_acked: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            running: true.into(),
            verify: Mutex::default(),
            stamper,
            loss: LossTracker::default(),
        });
        let _ = cell.set(inner.clone());
        let mon_conn = super::connect(&messenger, mon, EntityType::MON)
            .await
            .expect("mon connection");
        inner.stamper.send(&mon_conn, |env| Subscribe {
            env,
            what: "osdmap".into(),
        });
        let r = inner.clone();
        tokio::spawn(async move {
            while r.running.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                r.resend_stranded().await;
            }
        });
        Client { inner }
    }

    pub async fn stop(&self) {
        self.inner.running.store(false, Ordering::Relaxed);
        self.inner.messenger.shutdown().await;
    }

    pub fn messenger(&self) -> &Messenger {
        &self.inner.messenger
    }

    /// Waits (bounded) until no op is in flight.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.inner.in_flight() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Reads every acknowledged object back from each OSD that stored it.
    pub async fn verify(&self, limit: Duration) -> Verify {
        let acked: Vec<(String, Bytes, Vec<u32>)> = self
            .inner
            .acked
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (d, s))| (k.clone(), d.clone(), s.clone()))
            .collect();
        let objects = acked.len() as u64;
        for (oid, data, stored_on) in acked {
            for osd in stored_on {
                self.inner
                    .submit(oid.clone(), data.clone(), false, Some(osd));
            }
        }
        let drained = self.drain(limit).await;
        let v = self.inner.verify.lock().unwrap();
        let unanswered = if drained {
            0
        } else {
            self.inner.in_flight() as u64
        };
        Verify {
            objects,
            verified: v.verified,
            failures: v.failures + unanswered,
        }
    }

    pub fn read_count_expected(&self) -> u64 {
        self.inner
            .acked
            .lock()
            .unwrap()
            .values()
            .map(|(_, s)| s.len() as u64)
            .sum()
    }
}
