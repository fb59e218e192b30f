//! An OSD: boots with the monitor, follows the OSD map, heartbeats its peers over a lossy
//! messenger of its own, reports failures, and replicates client writes to the other OSDs of
//! the object's acting set over lossless_peer sessions, acking the client only when every
//! replica has acked. Its store survives a restart of its messengers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use msgr::{EntityAddr, EntityName, EntityType, Message, Payload, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};

use super::proto::*;
use super::{daemon_config, sim_config, LossTracker, Stamper};

/// Heartbeat cadence and how long a silent peer is tolerated before a failure report.
pub const HEARTBEAT: Duration = Duration::from_millis(300);
pub const HEARTBEAT_GRACE: Duration = Duration::from_millis(1500);

struct Pending {
    client_conn: Connection,
    waiting: HashSet<u32>,
    stored_on: Vec<u32>,
    oid: String,
    data: Bytes,
}

#[derive(Default)]
struct MapView {
    epoch: u32,
    osds: Vec<OsdInfo>,
}

pub struct OsdInner {
    pub id: u32,
    mon_addr: EntityAddr,
    /// The IP both messengers bind (each on a free port).
    bind_ip: std::net::IpAddr,
    inject: u64,
    running: AtomicBool,
    /// The newest map epoch that marked us down while we ran, and made us boot again.
    rebooted_in: AtomicU32,
    /// oid → (client, tid, data): the newest write wins; older tids are ignored.
    store: Mutex<HashMap<String, (u64, u64, Bytes)>>,
    map: Mutex<MapView>,
    pending: Mutex<HashMap<(u64, u64), Pending>>,
    hb_last: Mutex<HashMap<u32, Instant>>,
    reported: Mutex<HashSet<(u32, u32)>>,
    msgrs: Mutex<Option<(Messenger, Messenger, Connection)>>,
    stamper: Stamper,
    pub loss: LossTracker,
}

/// A simulated OSD.
#[derive(Clone)]
pub struct Osd {
    pub inner: Arc<OsdInner>,
}

struct Public(Arc<OsdInner>);
struct Heartbeat(Arc<OsdInner>);

impl OsdInner {
    fn public(&self) -> Option<Messenger> {
        self.msgrs.lock().unwrap().as_ref().map(|m| m.0.clone())
    }

    fn info(&self, id: u32) -> Option<OsdInfo> {
        self.map
            .lock()
            .unwrap()
            .osds
            .iter()
            .find(|o| o.id == id)
            .copied()
    }

    /// Applies a write if it is not older than what we have.
    fn apply(&self, oid: &str, client: u64, tid: u64, data: Bytes) {
        let mut store = self.store.lock().unwrap();
        let e = store
            .entry(oid.to_string())
            .or_insert((client, 0, Bytes::new()));
        if (client, tid) >= (e.0, e.1) {
            *e = (client, tid, data);
        }
    }

    async fn peer_conn(&self, id: u32) -> Option<Connection> {
        let info = self.info(id)?;
        let m = self.public()?;
        super::connect(&m, info.addr.0, EntityType::OSD).await.ok()
    }

    /// Sends RepOps for a pending write to `targets`, then finishes it if nothing is awaited.
    async fn replicate(self: &Arc<Self>, key: (u64, u64), targets: Vec<u32>) {
        let (oid, data) = {
            let p = self.pending.lock().unwrap();
            let Some(w) = p.get(&key) else { return };
            (w.oid.clone(), w.data.clone())
        };
        for t in targets {
            if let Some(c) = self.peer_conn(t).await {
                let (oid, data) = (oid.clone(), data.clone());
                self.stamper.send(&c, |env| RepOp {
                    env,
                    client: key.0,
                    tid: key.1,
                    oid,
                    data,
                });
            }
        }
        self.finish_if_done(key);
    }

    fn finish_if_done(&self, key: (u64, u64)) {
        let mut p = self.pending.lock().unwrap();
        if p.get(&key).is_some_and(|w| w.waiting.is_empty()) {
            let w = p.remove(&key).expect("checked");
            let stored_on = w.stored_on;
            self.stamper.send(&w.client_conn, |env| OsdOpReply {
                env,
                tid: key.1,
                ok: true,
                stored_on,
                data: Bytes::new(),
            });
        }
    }

    /// A new map: forget sessions to addresses that changed, and re-target pending writes.
    async fn on_map(self: &Arc<Self>, new: OsdMap) {
        let old = {
            let mut map = self.map.lock().unwrap();
            if new.epoch <= map.epoch {
                return;
            }
            let old = std::mem::take(&mut map.osds);
            map.epoch = new.epoch;
            map.osds = new.osds.clone();
            old
        };
        self.boot_if_wrongly_marked_down(&new);
        if let Some(m) = self.public() {
            super::mark_down_stale(&m, &old, &new.osds).await;
        }
        // A peer that came back (or moved) starts a fresh heartbeat grace.
        {
            let mut hb = self.hb_last.lock().unwrap();
            for n in &new.osds {
                if !old
                    .iter()
                    .any(|o| o.id == n.id && o.up == n.up && o.hb_addr == n.hb_addr)
                {
                    hb.remove(&n.id);
                }
            }
        }
        let up: HashSet<u32> = new.osds.iter().filter(|o| o.up).map(|o| o.id).collect();
        let mut resend = vec![];
        {
            let mut p = self.pending.lock().unwrap();
            for (key, w) in p.iter_mut() {
                w.waiting.retain(|id| up.contains(id));
                let acting = acting_set(&w.oid, &new.osds);
                let fresh: Vec<u32> = acting
                    .into_iter()
                    .filter(|id| {
                        *id != self.id && !w.stored_on.contains(id) && !w.waiting.contains(id)
                    })
                    .collect();
                w.waiting.extend(fresh.iter().copied());
                resend.push((*key, fresh));
            }
        }
        for (key, fresh) in resend {
            self.replicate(key, fresh).await;
        }
    }

    /// Ceph's "wrongly marked me down": a running OSD that a map shows down (failure reports
    /// from peers whose heartbeats were lost to injected faults, say) boots again, once per such
    /// epoch, so the map heals instead of keeping a live OSD down for good.
    fn boot_if_wrongly_marked_down(&self, map: &OsdMap) {
        let down = map.osds.iter().any(|o| o.id == self.id && !o.up);
        if !down || !self.running.load(Ordering::SeqCst) {
            return;
        }
        if self.rebooted_in.fetch_max(map.epoch, Ordering::SeqCst) >= map.epoch {
            return;
        }
        let Some((public, hb, mon)) = self.msgrs.lock().unwrap().clone() else {
            return;
        };
        tracing::info!(
            osd = self.id,
            epoch = map.epoch,
            "wrongly marked me down; booting again"
        );
        self.stamper.send(&mon, |env| OsdBoot {
            env,
            osd: self.id,
            addr: Addr(super::my_addr(&public)),
            hb_addr: Addr(super::my_addr(&hb)),
        });
    }

    fn heartbeat_tick(self: &Arc<Self>) {
        let Some((_, hb, mon)) = self.msgrs.lock().unwrap().clone() else {
            return;
        };
        let (epoch, peers): (u32, Vec<OsdInfo>) = {
            let m = self.map.lock().unwrap();
            (
                m.epoch,
                m.osds
                    .iter()
                    .filter(|o| o.up && o.id != self.id)
                    .copied()
                    .collect(),
            )
        };
        let me = self.clone();
        tokio::spawn(async move {
            for p in peers {
                if let Ok(c) = super::connect(&hb, p.hb_addr.0, EntityType::OSD).await {
                    let stamp = Instant::now().elapsed().as_nanos() as u64;
                    me.stamper.send(&c, |env| OsdPing {
                        env,
                        from: me.id,
                        stamp,
                        reply: false,
                    });
                }
                let last = *me
                    .hb_last
                    .lock()
                    .unwrap()
                    .entry(p.id)
                    .or_insert_with(Instant::now);
                if last.elapsed() > HEARTBEAT_GRACE
                    && me.reported.lock().unwrap().insert((p.id, epoch))
                {
                    tracing::info!(osd = me.id, target = p.id, "reporting failed peer");
                    me.stamper.send(&mon, |env| OsdFailure {
                        env,
                        reporter: me.id,
                        target: p.id,
                        epoch,
                    });
                }
            }
        });
    }
}

impl Dispatcher for Public {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let me = self.0.clone();
        match msg.msg_type {
            OsdMap::TYPE => {
                let Some(m) = me.loss.receive::<OsdMap>(conn, &msg) else {
                    return true;
                };
                tokio::spawn(async move { me.on_map(m).await });
            }
            OsdOp::TYPE => {
                let Some(op) = me.loss.receive::<OsdOp>(conn, &msg) else {
                    return true;
                };
                if !op.write {
                    let data = me.store.lock().unwrap().get(&op.oid).map(|e| e.2.clone());
                    let ok = data.is_some();
                    me.stamper.send(conn, |env| OsdOpReply {
                        env,
                        tid: op.tid,
                        ok,
                        stored_on: vec![me.id],
                        data: data.unwrap_or_default(),
                    });
                    return true;
                }
                me.apply(&op.oid, op.client, op.tid, op.data.clone());
                let acting = acting_set(&op.oid, &me.map.lock().unwrap().osds);
                let replicas: Vec<u32> = acting.into_iter().filter(|id| *id != me.id).collect();
                let key = (op.client, op.tid);
                me.pending.lock().unwrap().insert(
                    key,
                    Pending {
                        client_conn: conn.clone(),
                        waiting: replicas.iter().copied().collect(),
                        stored_on: vec![me.id],
                        oid: op.oid,
                        data: op.data,
                    },
                );
                tokio::spawn(async move { me.replicate(key, replicas).await });
            }
            RepOp::TYPE => {
                let Some(r) = me.loss.receive::<RepOp>(conn, &msg) else {
                    return true;
                };
                me.apply(&r.oid, r.client, r.tid, r.data);
                me.stamper.send(conn, |env| RepOpReply {
                    env,
                    client: r.client,
                    tid: r.tid,
                    osd: me.id,
                });
            }
            RepOpReply::TYPE => {
                let Some(r) = me.loss.receive::<RepOpReply>(conn, &msg) else {
                    return true;
                };
                let key = (r.client, r.tid);
                if let Some(w) = me.pending.lock().unwrap().get_mut(&key) {
                    w.waiting.remove(&r.osd);
                    if !w.stored_on.contains(&r.osd) {
                        w.stored_on.push(r.osd);
                    }
                }
                me.finish_if_done(key);
            }
            _ => return false,
        }
        true
    }

    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.0.loss.reset(conn);
    }
}

impl Dispatcher for Heartbeat {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let Ok(p) = msg.decode_payload::<OsdPing>() else {
            return false;
        };
        let me = &self.0;
        if p.reply {
            me.hb_last.lock().unwrap().insert(p.from, Instant::now());
        } else {
            me.stamper.send(conn, |env| OsdPing {
                env,
                from: me.id,
                stamp: p.stamp,
                reply: true,
            });
        }
        true
    }
}

impl Osd {
    pub fn new(id: u32, mon_addr: EntityAddr, inject: u64) -> Osd {
        Self::bound_to(id, mon_addr, inject, [127, 0, 0, 1].into())
    }

    /// An OSD whose messengers bind `bind_ip` (another host's address, in a network namespace).
    pub fn bound_to(id: u32, mon_addr: EntityAddr, inject: u64, bind_ip: std::net::IpAddr) -> Osd {
        Osd {
            inner: Arc::new(OsdInner {
                id,
                mon_addr,
                bind_ip,
                inject,
                running: AtomicBool::new(false),
                rebooted_in: AtomicU32::new(0),
                store: Mutex::default(),
                map: Mutex::default(),
                pending: Mutex::default(),
                hb_last: Mutex::default(),
                reported: Mutex::default(),
                msgrs: Mutex::new(None),
                stamper: Stamper::default(),
                loss: LossTracker::default(),
            }),
        }
    }

    /// Starts (or restarts) the OSD's messengers and boots it with the monitor.
    pub async fn start(&self, threads_of: Option<&Messenger>) {
        let me = &self.inner;
        let name = EntityName::new(EntityType::OSD, me.id as i64);
        let mut b = super::builder(name)
            .config(daemon_config(me.inject))
            .default_policy(Policy::lossless_peer(0))
            .policy(EntityType::CLIENT, Policy::stateful_server(0))
            .policy(EntityType::MON, Policy::lossless_client(0))
            .dispatcher(Arc::new(Public(me.clone())));
        if let Some(t) = threads_of {
            b = b.share_threads_with(t);
        }
        let public = b.build().expect("osd messenger");
        // Heartbeats on a messenger of their own, lossy both ways, as Ceph's OSDs do.
        let hb = super::builder(name)
            .config(sim_config(me.inject))
            .default_policy(Policy::lossy_client(0))
            .dispatcher(Arc::new(Heartbeat(me.clone())))
            .share_threads_with(&public)
            .build()
            .expect("heartbeat messenger");
        let addr = super::bind(&public, (me.bind_ip, 0).into())
            .await
            .expect("bind");
        public.start().expect("start");
        let hb_addr = super::bind(&hb, (me.bind_ip, 0).into())
            .await
            .expect("bind hb");
        hb.start().expect("start hb");
        let mon = super::connect(&public, me.mon_addr, EntityType::MON)
            .await
            .expect("mon connection");
        me.hb_last.lock().unwrap().clear();
        *me.msgrs.lock().unwrap() = Some((public, hb, mon.clone()));
        me.running.store(true, Ordering::SeqCst);
        me.stamper.send(&mon, |env| OsdBoot {
            env,
            osd: me.id,
            addr: Addr(addr),
            hb_addr: Addr(hb_addr),
        });
        me.stamper.send(&mon, |env| Subscribe {
            env,
            what: "osdmap".into(),
        });
        let inner = me.clone();
        tokio::spawn(async move {
            let mut last_beacon = Instant::now();
            while inner.running.load(Ordering::SeqCst) {
                inner.heartbeat_tick();
                if last_beacon.elapsed() > Duration::from_millis(500) {
                    last_beacon = Instant::now();
                    let conn = inner.msgrs.lock().unwrap().as_ref().map(|m| m.2.clone());
                    if let Some(mon) = conn {
                        let epoch = inner.map.lock().unwrap().epoch;
                        inner.stamper.send(&mon, |env| OsdBeacon {
                            env,
                            osd: inner.id,
                            epoch,
                        });
                    }
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
    }

    /// Stops the messengers (the store stays, as a daemon's disk would).
    pub async fn stop(&self) {
        self.inner.running.store(false, Ordering::SeqCst);
        let m = self.inner.msgrs.lock().unwrap().take();
        if let Some((public, hb, _)) = m {
            hb.shutdown().await;
            public.shutdown().await;
        }
        self.inner.pending.lock().unwrap().clear();
    }

    pub fn public(&self) -> Option<Messenger> {
        self.inner.public()
    }

    pub fn messengers(&self) -> Vec<Messenger> {
        self.inner
            .msgrs
            .lock()
            .unwrap()
            .as_ref()
            .map(|m| vec![m.0.clone(), m.1.clone()])
            .unwrap_or_default()
    }

    /// The stored copy of `oid`, if any.
    pub fn read_local(&self, oid: &str) -> Option<Bytes> {
        self.inner
            .store
            .lock()
            .unwrap()
            .get(oid)
            .map(|e| e.2.clone())
    }
}
