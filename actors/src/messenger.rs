//! `Messenger`: the user's entry point. Built from an entity name, a `Config`, policies and
//! dispatchers; binds, starts accepting, hands out `Connection`s, and shuts down gracefully.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use actix_rt::Arbiter;
use msgr::handshake::Authorizer;
use msgr::{Config, EntityAddr, EntityName, EntityType, Policy};
use tokio::sync::Notify;

use crate::accepter::Accepter;
use crate::admin_socket::{expand_path, AdminSocket};
use crate::auth::{AuthSetup, RuntimeAuth};
use crate::connection::{Connection, LocalTarget, Target};
use crate::counters::CountersSnapshot;
use crate::dispatch::DispatchQueue;
use crate::dispatcher::Dispatcher;
use crate::error::MessengerError;
use crate::msgs::{GetConnection, ListConnections, MarkDownAll, StopAccepting, WhenEmpty};
use crate::net;
use crate::registry::Registry;
use crate::shared::{Routes, Shared};

/// How long [`Messenger::shutdown`] waits for its sessions to flush and close, by default.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// How a [`Messenger::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownOutcome {
    /// Every session closed and every graceful close finished writing.
    Clean,
    /// The flush limit ([`MessengerBuilder::shutdown_flush_limit`]) ran out first: the threads were stopped with sessions
    /// still registered or sockets still being written.
    FlushLimitReached,
    /// This messenger was already shut down (or shutting down) by an earlier call.
    AlreadyShutDown,
}

/// Builds a [`Messenger`].
pub struct MessengerBuilder {
    name: EntityName,
    config: Config,
    default_policy: Policy,
    policies: HashMap<EntityType, Policy>,
    dispatchers: Vec<Arc<dyn Dispatcher>>,
    authorizer: Option<Authorizer>,
    auth: AuthSetup,
    nonce: Option<u32>,
    shutdown_flush_limit: Duration,
    shared_shards: Option<(
        Vec<actix_rt::ArbiterHandle>,
        Arc<std::sync::atomic::AtomicUsize>,
    )>,
}

impl MessengerBuilder {
    /// Runs this messenger's connections on `other`'s shard threads instead of starting its
    /// own (many messengers in one process, as simulators and load generators use, then cost
    /// no extra threads). `other` owns the threads: shut it down last.
    pub fn share_threads_with(mut self, other: &Messenger) -> Self {
        self.shared_shards = Some(other.shared.shard_set());
        self
    }

    /// The configuration (default: Ceph's defaults).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The policy for peer types without one of their own (default: Ceph's `Policy()`).
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = policy;
        self
    }

    /// The policy toward peers of type `ty`.
    pub fn policy(mut self, ty: EntityType, policy: Policy) -> Self {
        self.policies.insert(ty, policy);
        self
    }

    /// Adds a dispatcher; each message goes to the first that handles it.
    pub fn dispatcher(mut self, d: Arc<dyn Dispatcher>) -> Self {
        self.dispatchers.push(d);
        self
    }

    /// An authorizer to send with every connect (e.g. AuthNone toward a monitor).
    pub fn authorizer(mut self, a: Authorizer) -> Self {
        self.authorizer = Some(a);
        self
    }

    /// What the messenger authenticates with: service keys that verify the cephx authorizers
    /// presented to it, and where its dials get tickets. The `auth_*_required` options say
    /// which methods are demanded and offered.
    pub fn auth(mut self, setup: AuthSetup) -> Self {
        self.auth = setup;
        self
    }

    /// Our address nonce (default: 0 for a monitor, as Ceph's monitors always have, since
    /// monmaps list them with nonce 0; random for every other entity type).
    pub fn nonce(mut self, nonce: u32) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// How long [`Messenger::shutdown`] waits for sessions to flush and close before it stops
    /// the threads anyway (default two seconds).
    pub fn shutdown_flush_limit(mut self, limit: Duration) -> Self {
        self.shutdown_flush_limit = limit;
        self
    }

    /// Starts the messenger's shards (`ms_threads` arbiters, default one per core) and its
    /// registry and dispatch queues. Must be called inside a running actix `System`.
    pub fn build(self) -> Result<Messenger, MessengerError> {
        self.config.validate()?;
        let auth = RuntimeAuth::resolve(&self.config, self.auth, self.authorizer)?;
        let (arbiters, (handles, next_shard)) = match self.shared_shards {
            Some(set) => (Vec::new(), set),
            None => {
                let threads = match self.config.ms_threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                };
                let events = self.config.ms_io_events_per_tick;
                let arbiters: Vec<Arbiter> = (0..threads).map(|_| shard_arbiter(events)).collect();
                let handles = arbiters.iter().map(Arbiter::handle).collect();
                (arbiters, (handles, Arc::default()))
            }
        };
        let nonce = self.nonce.unwrap_or_else(|| default_nonce(self.name.ty));
        let shared = Arc::new(Shared::new(
            self.name,
            self.config,
            self.default_policy,
            self.policies,
            self.dispatchers,
            auth,
            nonce,
            handles,
            next_shard,
        ));
        let queues: Vec<Addr<DispatchQueue>> = shared
            .shards
            .iter()
            .map(|h| {
                let sh = shared.clone();
                DispatchQueue::start_in_arbiter(h, move |_| DispatchQueue::new(sh))
            })
            .collect();
        let window = Duration::from_micros(shared.config.ms_busy_poll_us);
        if !window.is_zero() {
            for h in &shared.shards {
                h.spawn(async move { crate::busy_poll::start_on_this_thread(window) });
            }
        }
        let sh = shared.clone();
        let registry = Registry::start_in_arbiter(&shared.shards[0], move |_| Registry::new(sh));
        let _ = shared.routes.set(Routes {
            dispatch: queues.into_iter().map(Addr::recipient).collect(),
            unregister: registry.clone().recipient(),
            route_accept: registry.clone().recipient(),
            list_connections: registry.clone().recipient(),
        });
        let admin = match shared.config.admin_socket.as_str() {
            "" => None,
            template => {
                let path = expand_path(template, shared.name);
                let admin = AdminSocket::start(path.clone(), shared.clone()).map_err(|source| {
                    MessengerError::AdminSocket {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
                Some(admin)
            }
        };
        Ok(Messenger {
            shared,
            inner: Arc::new(Inner {
                arbiters: Mutex::new(arbiters),
                admin: Mutex::new(admin),
                shutdown_flush_limit: self.shutdown_flush_limit,
                listener: Mutex::new(None),
                listener_v2: Mutex::new(None),
                accepter: Mutex::new(Vec::new()),
                local: OnceLock::new(),
                registry,
                is_shutdown: AtomicBool::new(false),
                shutdown_finished: AtomicBool::new(false),
                shutdown_done: Notify::new(),
            }),
        })
    }
}

struct Inner {
    arbiters: Mutex<Vec<Arbiter>>,
    /// The admin socket, when `admin_socket` names one; closed (and its file removed) at
    /// shutdown.
    admin: Mutex<Option<AdminSocket>>,
    shutdown_flush_limit: Duration,
    listener: Mutex<Option<std::net::TcpListener>>,
    /// The msgr2 listening socket, until started.
    listener_v2: Mutex<Option<std::net::TcpListener>>,
    /// The accepters (v1, and msgr2 when bound).
    accepter: Mutex<Vec<Addr<Accepter>>>,
    local: OnceLock<Connection>,
    registry: Addr<Registry>,
    is_shutdown: AtomicBool,
    shutdown_finished: AtomicBool,
    shutdown_done: Notify,
}

/// A messenger: one entity's endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Messenger {
    pub(crate) shared: Arc<Shared>,
    inner: Arc<Inner>,
}

impl Messenger {
    /// Starts building a messenger for entity `name`.
    pub fn builder(name: EntityName) -> MessengerBuilder {
        MessengerBuilder {
            name,
            config: Config::default(),
            default_policy: Policy::default_policy(0),
            policies: HashMap::new(),
            dispatchers: Vec::new(),
            authorizer: None,
            auth: AuthSetup::default(),
            nonce: None,
            shutdown_flush_limit: SHUTDOWN_FLUSH_LIMIT,
            shared_shards: None,
        }
    }

    /// Our entity name.
    pub fn name(&self) -> EntityName {
        self.shared.name
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Our address (blank until bound or learned from a peer).
    pub fn my_addr(&self) -> EntityAddr {
        self.shared.my_addr()
    }

    /// Binds the listening socket (spec §7): port 0 takes the first free port in
    /// ms_bind_port_min..=max. Returns the address we advertise: `public_addr` when it is
    /// configured (its port 0 meaning the bound port), the bound address otherwise, whose
    /// unspecified IP (0.0.0.0) is then learned from the first peer.
    pub async fn bind(&self, addr: SocketAddr) -> Result<EntityAddr, MessengerError> {
        self.check_running()?;
        let listener = net::bind(addr, &self.shared.config)
            .await
            .map_err(|source| MessengerError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| MessengerError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let (v1_public, _) =
            msgr::config::parse_addrv(&self.shared.config.public_addrv).unwrap_or_default();
        let public = v1_public.or(self.shared.config.public_addr);
        let me = EntityAddr::new(advertised(public, local), self.shared.nonce);
        self.shared.set_my_addr(me);
        *self.inner.listener.lock().expect("listener lock") = Some(listener);
        Ok(me)
    }

    /// Binds a msgr2 listening socket as well (Ceph's `v2:` address; a monitor's is usually
    /// port 3300 beside its v1 6789). Port 0 takes the first free port in the bind range.
    /// Returns the msgr2 address we advertise, with the same nonce as the v1 one.
    pub async fn bind_v2(&self, addr: SocketAddr) -> Result<EntityAddr, MessengerError> {
        self.check_running()?;
        let bind_err = |source| MessengerError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = net::bind(addr, &self.shared.config)
            .await
            .map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let cfg = &self.shared.config;
        let (_, v2_public) = msgr::config::parse_addrv(&cfg.public_addrv).unwrap_or_default();
        // public_addr's port is the v1 one: only its IP applies to msgr2.
        let public = v2_public.or(cfg.public_addr.map(|p| SocketAddr::new(p.ip(), 0)));
        let me = EntityAddr::new(advertised(public, local), self.shared.nonce);
        self.shared.set_my_addr_v2(me);
        *self.inner.listener_v2.lock().expect("listener lock") = Some(listener);
        Ok(me)
    }

    /// Our msgr2 address, when bound.
    pub fn my_addr_v2(&self) -> Option<EntityAddr> {
        self.shared.my_addr_v2()
    }

    /// All our bound addresses as peers see them (Ceph's `get_myaddrs`): msgr2 first, then
    /// v1; what [`get_connection_addrs`](Self::get_connection_addrs) takes.
    pub fn my_addrs(&self) -> msgr::v2::AddrVec {
        self.shared.my_addrvec()
    }

    /// Starts accepting connections on the bound sockets (a client that never binds need not call it).
    pub fn start(&self) -> Result<(), MessengerError> {
        self.check_running()?;
        let v1 = self.inner.listener.lock().expect("listener lock").take();
        let v2 = self.inner.listener_v2.lock().expect("listener lock").take();
        if v1.is_none() && v2.is_none() {
            return Err(MessengerError::NotBound);
        }
        let mut accepters = self.inner.accepter.lock().expect("accepter lock");
        for (listener, is_v2) in [(v1, false), (v2, true)] {
            let Some(listener) = listener else { continue };
            let sh = self.shared.clone();
            accepters.push(Accepter::start_in_arbiter(
                &self.shared.shards[0],
                move |_| Accepter::new(listener, sh, is_v2),
            ));
        }
        Ok(())
    }

    fn check_running(&self) -> Result<(), MessengerError> {
        if self.inner.is_shutdown.load(Ordering::Acquire) {
            return Err(MessengerError::Shutdown);
        }
        Ok(())
    }

    /// The session to `addr` (a peer of type `peer_type`), created and dialled if there is none.
    /// The server must claim exactly this address, nonce included. Our own address gives a
    /// local connection that delivers to our dispatchers without a socket.
    pub async fn get_connection(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
    ) -> Result<Connection, MessengerError> {
        self.connection(addr, peer_type, true, false).await
    }

    /// Like [`get_connection`](Self::get_connection), speaking msgr2.1 to the peer's msgr2
    /// address (crc or secure, as the `ms_*_mode` options and the peer agree). A lossless
    /// session resumes after a fault with SESSION_RECONNECT.
    pub async fn get_connection_v2(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
    ) -> Result<Connection, MessengerError> {
        self.connection(addr, peer_type, true, true).await
    }

    /// The session to a peer known by all its addresses (Ceph's `entity_addrvec_t`, e.g.
    /// `[v2:IP:3300/0,v1:IP:6789/0]`): over msgr2 when it has a msgr2 address, as Ceph's
    /// clients prefer, else over v1.
    pub async fn get_connection_addrs(
        &self,
        addrs: &msgr::v2::AddrVec,
        peer_type: EntityType,
    ) -> Result<Connection, MessengerError> {
        use msgr::v2::AddrType;
        match addrs.preferred() {
            Some(a) if a.ty == AddrType::Msgr2 => self.get_connection_v2(a.addr, peer_type).await,
            Some(a) => self.get_connection(a.addr, peer_type).await,
            None => Err(MessengerError::BlankAddress(addrs.to_string())),
        }
    }

    /// Like [`connect`](Self::connect), speaking msgr2.1.
    pub async fn connect_v2(
        &self,
        addr: SocketAddr,
        peer_type: EntityType,
    ) -> Result<Connection, MessengerError> {
        self.connection(EntityAddr::new(addr, 0), peer_type, false, true)
            .await
    }

    /// Like [`get_connection`](Self::get_connection) for a bare `IP:port`: whatever nonce the
    /// server has is accepted (and learned).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        peer_type: EntityType,
    ) -> Result<Connection, MessengerError> {
        self.connection(EntityAddr::new(addr, 0), peer_type, false, false)
            .await
    }

    async fn connection(
        &self,
        addr: EntityAddr,
        peer_type: EntityType,
        check_nonce: bool,
        v2: bool,
    ) -> Result<Connection, MessengerError> {
        self.check_running()?;
        if addr.addr.is_none() || addr.port() == 0 {
            return Err(MessengerError::BlankAddress(addr.to_string()));
        }
        let me = self.my_addr();
        let me_v2 = self.shared.my_addr_v2();
        let ours = |m: EntityAddr| m.port() != 0 && addr.same_legacy(&m);
        if ours(me) || me_v2.is_some_and(ours) {
            return Ok(self.local_connection());
        }
        let get = GetConnection {
            addr,
            peer_type,
            check_nonce,
            v2,
        };
        self.inner
            .registry
            .send(get)
            .await
            .ok()
            .flatten()
            .ok_or(MessengerError::Shutdown)
    }

    /// The socket-less connection to ourselves.
    pub fn local_connection(&self) -> Connection {
        self.inner
            .local
            .get_or_init(|| {
                Connection::new(
                    self.shared.next_conn_id(),
                    0,
                    self.shared.name.ty,
                    self.my_addr(),
                    Target::Local(LocalTarget {
                        name: self.shared.name,
                        queue: self.shared.dispatch_queue(0).downgrade(),
                    }),
                )
            })
            .clone()
    }

    /// Every live connection (outgoing and accepted).
    pub async fn connections(&self) -> Vec<Connection> {
        self.inner
            .registry
            .send(ListConnections)
            .await
            .unwrap_or_default()
    }

    /// Marks down every connection at once (queued messages are dropped).
    pub async fn mark_down_all(&self) {
        let _ = self
            .inner
            .registry
            .send(MarkDownAll {
                graceful: false,
                shutting_down: false,
            })
            .await;
    }

    /// Bytes received and not yet dispatched, and the `ms_dispatch_throttle_bytes` budget.
    pub fn dispatch_throttle(&self) -> (u64, u64) {
        let t = &self.shared.dispatch_throttle;
        (t.capacity() - t.available(), t.capacity())
    }

    /// Messenger-wide perf counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// Graceful shutdown: stop accepting, flush what each connection has queued, close every
    /// socket, and stop the shard threads. Waits up to the flush limit (two seconds by default)
    /// for the flushes, and says whether they finished in that time.
    pub async fn shutdown(&self) -> ShutdownOutcome {
        if self.inner.is_shutdown.swap(true, Ordering::AcqRel) {
            return ShutdownOutcome::AlreadyShutDown;
        }
        for a in self.inner.accepter.lock().expect("accepter lock").drain(..) {
            a.do_send(StopAccepting);
        }
        if let Some(admin) = self.inner.admin.lock().expect("admin lock").take() {
            admin.stop();
        }
        let registry = self.inner.registry.clone();
        let _ = registry
            .send(MarkDownAll {
                graceful: true,
                shutting_down: true,
            })
            .await;
        // Bounded wait for the pipes to unregister and for their writers to finish writing
        // what they were handed (a Pipe leaves the registry before its writer is done).
        let flushed = async {
            if let Ok(empty) = registry.send(WhenEmpty).await {
                let _ = empty.await;
            }
            self.shared.closing.all_done().await;
        };
        let limit = self.inner.shutdown_flush_limit;
        let outcome = match tokio::time::timeout(limit, flushed).await {
            Ok(()) => ShutdownOutcome::Clean,
            Err(_) => {
                tracing::warn!(
                    ?limit,
                    "shutdown: sessions were still closing when the flush limit ran out"
                );
                ShutdownOutcome::FlushLimitReached
            }
        };
        for a in self.inner.arbiters.lock().expect("arbiters lock").drain(..) {
            a.stop();
        }
        self.inner.shutdown_finished.store(true, Ordering::Release);
        self.inner.shutdown_done.notify_waiters();
        outcome
    }

    /// Waits until [`shutdown`](Self::shutdown) has finished.
    pub async fn wait(&self) {
        let notified = self.inner.shutdown_done.notified();
        if self.inner.is_shutdown.load(Ordering::Acquire)
            && self
                .inner
                .arbiters
                .lock()
                .expect("arbiters lock")
                .is_empty()
        {
            return;
        }
        notified.await;
    }
}

/// The address to advertise for a socket bound at `bound`: Ceph's `public_addr` when it is set,
/// with the bound port if it names none.
fn advertised(public_addr: Option<SocketAddr>, bound: SocketAddr) -> SocketAddr {
    match public_addr {
        Some(p) if p.port() == 0 => SocketAddr::new(p.ip(), bound.port()),
        Some(p) => p,
        None => bound,
    }
}

/// Ceph's monitors bind with nonce 0 (a monmap names them `v1:IP:PORT/0`, and a monitor
/// refuses a peer monitor that claims another nonce); other daemons pick a random one, so that
/// a restarted daemon on the same port is told apart from its old self.
fn default_nonce(ty: EntityType) -> u32 {
    if ty == EntityType::MON {
        0
    } else {
        rand::random::<u32>() | 1
    }
}

/// One shard thread: a current-thread tokio runtime that takes at most `io_events` readiness
/// events per poll of the OS.
fn shard_arbiter(io_events: usize) -> Arbiter {
    Arbiter::with_tokio_rt(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_io_events_per_tick(io_events)
            .build()
            .expect("a shard thread's tokio runtime")
    })
}
