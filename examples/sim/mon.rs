//! The monitor: keeps the OSD map, publishes every new epoch to its subscribers, and marks OSDs
//! down on two failure reports or missed beacons.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msgr::{EntityAddr, EntityName, EntityType, Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};

use super::proto::*;
use super::{daemon_config, LossTracker, Stamper};

/// How long an OSD may go without a beacon before it is marked down.
pub const BEACON_GRACE: Duration = Duration::from_secs(3);

struct OsdState {
    info: OsdInfo,
    last_beacon: Instant,
}

#[derive(Default)]
struct MonState {
    epoch: u32,
    osds: BTreeMap<u32, OsdState>,
    reports: HashMap<u32, HashSet<u32>>,
    subscribers: HashMap<u64, Connection>,
}

pub struct MonInner {
    running: std::sync::atomic::AtomicBool,
    state: Mutex<MonState>,
    stamper: Stamper,
    pub loss: LossTracker,
}

/// A running monitor.
pub struct Mon {
    pub messenger: Messenger,
    pub inner: Arc<MonInner>,
}

struct MonDispatch(Arc<MonInner>);

impl MonInner {
    fn map(st: &MonState) -> Vec<OsdInfo> {
        st.osds.values().map(|o| o.info).collect()
    }

    /// A new epoch: publish it to every subscriber.
    fn publish(&self, st: &mut MonState) {
        st.epoch += 1;
        let osds = Self::map(st);
        let epoch = st.epoch;
        st.subscribers.retain(|_, c| !c.is_closed());
        for c in st.subscribers.values() {
            self.stamper.send(c, |env| OsdMap {
                env,
                epoch,
                osds: osds.clone(),
            });
        }
    }

    fn mark_down(&self, st: &mut MonState, id: u32, why: &str) {
        if let Some(o) = st.osds.get_mut(&id) {
            if o.info.up {
                o.info.up = false;
                st.reports.remove(&id);
                tracing::info!(osd = id, why, "marking osd down");
                self.publish(st);
            }
        }
    }

    pub fn epoch(&self) -> u32 {
        self.state.lock().unwrap().epoch
    }

    /// (up, in, total)
    pub fn counts(&self) -> (usize, usize, usize) {
        let st = self.state.lock().unwrap();
        let up = st.osds.values().filter(|o| o.info.up).count();
        let inn = st.osds.values().filter(|o| o.info.in_).count();
        (up, inn, st.osds.len())
    }

    fn tick(&self) {
        let mut st = self.state.lock().unwrap();
        let late: Vec<u32> = st
            .osds
            .values()
            .filter(|o| o.info.up && o.last_beacon.elapsed() > BEACON_GRACE)
            .map(|o| o.info.id)
            .collect();
        for id in late {
            self.mark_down(&mut st, id, "beacon grace expired");
        }
    }
}

impl Dispatcher for MonDispatch {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let m = &self.0;
        let mut st = m.state.lock().unwrap();
        match msg.msg_type {
            t if t == <OsdBoot as msgr::Payload>::TYPE => {
                let Some(b) = m.loss.receive::<OsdBoot>(conn, &msg) else {
                    return true;
                };
                let info = OsdInfo {
                    id: b.osd,
                    up: true,
                    in_: true,
                    addr: b.addr,
                    hb_addr: b.hb_addr,
                };
                st.osds.insert(
                    b.osd,
                    OsdState {
                        info,
                        last_beacon: Instant::now(),
                    },
                );
                st.reports.remove(&b.osd);
                st.subscribers.insert(conn.id(), conn.clone());
                tracing::info!(osd = b.osd, addr = %b.addr.0, "osd booted");
                m.publish(&mut st);
            }
            t if t == <OsdBeacon as msgr::Payload>::TYPE => {
                let Some(b) = m.loss.receive::<OsdBeacon>(conn, &msg) else {
                    return true;
                };
                if let Some(o) = st.osds.get_mut(&b.osd) {
                    o.last_beacon = Instant::now();
                }
            }
            t if t == <OsdFailure as msgr::Payload>::TYPE => {
                let Some(f) = m.loss.receive::<OsdFailure>(conn, &msg) else {
                    return true;
                };
                let up = st.osds.values().filter(|o| o.info.up).count();
                let reporters = st.reports.entry(f.target).or_default();
                reporters.insert(f.reporter);
                // Two reporters, or every other up OSD when fewer remain.
                if reporters.len() >= 2.min(up.saturating_sub(1)).max(1) {
                    m.mark_down(&mut st, f.target, "failure reports");
                }
            }
            t if t == <Subscribe as msgr::Payload>::TYPE => {
                let Some(_subscribe) = m.loss.receive::<Subscribe>(conn, &msg) else {
                    return true;
                };
                st.subscribers.insert(conn.id(), conn.clone());
                let osds = MonInner::map(&st);
                let epoch = st.epoch;
                m.stamper.send(conn, |env| OsdMap { env, epoch, osds });
            }
            _ => return false,
        }
        true
    }

    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.0.loss.reset(conn);
    }

    fn ms_handle_reset(&self, conn: &Connection) -> bool {
        self.0.loss.reset(conn);
        true
    }
}

impl Mon {
    /// Starts mon.0 on `bind` (nonce 0, as monitors use).
    pub async fn start(bind: std::net::SocketAddr, inject: u64) -> Mon {
        let inner = Arc::new(MonInner {
            running: true.into(),
            state: Mutex::default(),
            stamper: Stamper::default(),
            loss: LossTracker::default(),
        });
        let messenger = super::builder(EntityName::new(EntityType::MON, 0))
            .config(daemon_config(inject))
            .nonce(0)
            .default_policy(Policy::stateful_server(0))
            .dispatcher(Arc::new(MonDispatch(inner.clone())))
            .build()
            .expect("mon messenger");
        super::bind(&messenger, bind).await.expect("mon bind");
        messenger.start().expect("mon start");
        let ticker = inner.clone();
        tokio::spawn(async move {
            while ticker.running.load(Ordering::Relaxed) {
                ticker.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Mon { messenger, inner }
    }

    pub fn addr(&self) -> EntityAddr {
        super::my_addr(&self.messenger)
    }

    pub async fn stop(&self) {
        self.inner.running.store(false, Ordering::Relaxed);
        self.messenger.shutdown().await;
    }

    pub fn lost(&self) -> u64 {
        self.inner.loss.lost.load(Ordering::Relaxed)
    }
}
