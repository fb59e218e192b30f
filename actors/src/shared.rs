//! What every actor of one messenger shares: identity, configuration, policies, dispatchers,
//! counters, the global_seq counter, and the addresses of the per-shard actors.
//! Everything here is either immutable after start or an atomic; no locks on the hot path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use actix::Recipient;
use actix_rt::ArbiterHandle;
use msgr::handshake::protocol_version;
use msgr::{Config, EntityAddr, EntityName, EntityType, Policy};

use crate::auth::RuntimeAuth;
use crate::closing::ClosingSockets;
use crate::counters::ShardedCounters;
use crate::dispatcher::Dispatcher;
use crate::inject::Injector;
use crate::msgs::{Deliver, ListConnections, RouteAccept, Unregister};
use crate::runtime_config::RuntimeConfig;
use crate::throttle::Throttle;

/// Shared state of one messenger.
pub(crate) struct Shared {
    pub(crate) name: EntityName,
    /// The configuration as built; see `runtime` for the options that may change since.
    pub(crate) config: Config,
    /// The options that may change at run time, with their current values.
    pub(crate) runtime: RuntimeConfig,
    pub(crate) default_policy: Policy,
    pub(crate) policies: HashMap<EntityType, Policy>,
    pub(crate) dispatchers: Vec<Arc<dyn Dispatcher>>,
    /// Authentication: incoming checks, what dials present.
    pub(crate) auth: RuntimeAuth,
    pub(crate) counters: ShardedCounters,
    pub(crate) injector: Injector,
    pub(crate) dispatch_throttle: Throttle,
    /// Writers still finishing a graceful close (see `closing.rs`).
    pub(crate) closing: Arc<ClosingSockets>,
    pub(crate) nonce: u32,
    global_seq: AtomicU32,
    /// Our address; its IP may be learned from the first peer (written rarely).
    my_addr: RwLock<EntityAddr>,
    /// Our msgr2 address, when bound.
    my_addr_v2: RwLock<Option<EntityAddr>>,
    pub(crate) shards: Vec<ArbiterHandle>,
    /// Round-robin cursor over `shards`, shared by every messenger on these threads, so that
    /// their connections (outgoing and accepted alike) spread evenly over the threads.
    next_shard: Arc<AtomicUsize>,
    /// Where the messenger-wide actors are reached, set once they are started.
    pub(crate) routes: OnceLock<Routes>,
}

/// The messenger-wide actors, as the per-connection actors reach them: recipients of the
/// messages they send, so that those actors need not know the receivers' types.
pub(crate) struct Routes {
    /// Each shard's DispatchQueue.
    pub(crate) dispatch: Vec<Recipient<Deliver>>,
    /// The Registry, for a Pipe that closes.
    pub(crate) unregister: Recipient<Unregister>,
    /// The Registry, for an accept task looking for its Pipe.
    pub(crate) route_accept: Recipient<RouteAccept>,
    /// The Registry, for the admin socket's list of sessions.
    pub(crate) list_connections: Recipient<ListConnections>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: EntityName,
        config: Config,
        default_policy: Policy,
        policies: HashMap<EntityType, Policy>,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
        auth: RuntimeAuth,
        nonce: u32,
        shards: Vec<ArbiterHandle>,
        next_shard: Arc<AtomicUsize>,
    ) -> Self {
        Shared {
            name,
            injector: Injector::from_config(&config),
            dispatch_throttle: Throttle::new(config.ms_dispatch_throttle_bytes),
            closing: Arc::default(),
            runtime: RuntimeConfig::new(&config),
            config,
            default_policy,
            policies,
            dispatchers,
            auth,
            counters: ShardedCounters::new(shards.len()),
            nonce,
            global_seq: AtomicU32::new(0),
            my_addr: RwLock::new(EntityAddr::blank(nonce)),
            my_addr_v2: RwLock::new(None),
            shards,
            next_shard,
            routes: OnceLock::new(),
        }
    }

    /// Our policy toward peers of type `ty`.
    pub(crate) fn policy_for(&self, ty: EntityType) -> Policy {
        self.policies
            .get(&ty)
            .copied()
            .unwrap_or(self.default_policy)
    }

    /// A fresh global_seq above `hint` (Ceph's `get_global_seq`).
    pub(crate) fn next_global_seq(&self, hint: u32) -> u32 {
        let prev = self
            .global_seq
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |g| {
                Some(g.max(hint).wrapping_add(1))
            })
            .expect("closure always returns Some");
        prev.max(hint).wrapping_add(1)
    }

    /// A process-unique id for a new connection (unique across messengers, so that an
    /// application with several messengers can key state by it).
    pub(crate) fn next_conn_id(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// The protocol version to use with (connecting) or expect from (accepting) `peer`.
    pub(crate) fn protocol_version(&self, peer: EntityType, connecting: bool) -> u32 {
        protocol_version(self.name.ty, peer, connecting)
    }

    pub(crate) fn my_addr(&self) -> EntityAddr {
        *self.my_addr.read().expect("my_addr lock")
    }

    pub(crate) fn set_my_addr(&self, addr: EntityAddr) {
        *self.my_addr.write().expect("my_addr lock") = addr;
    }

    /// Our msgr2 address, when bound.
    pub(crate) fn my_addr_v2(&self) -> Option<EntityAddr> {
        *self.my_addr_v2.read().expect("my_addr lock")
    }

    pub(crate) fn set_my_addr_v2(&self, addr: EntityAddr) {
        *self.my_addr_v2.write().expect("my_addr lock") = Some(addr);
    }

    /// Our addresses as msgr2 lists them: v2 first, then v1 (as a monitor's monmap does).
    pub(crate) fn my_addrvec(&self) -> msgr::v2::AddrVec {
        use msgr::v2::{AddrType, TypedAddr};
        let mut v = Vec::new();
        if let Some(a) = self.my_addr_v2() {
            v.push(TypedAddr::v2(a));
        }
        let v1 = self.my_addr();
        if v1.port() != 0 {
            v.push(TypedAddr {
                ty: AddrType::Legacy,
                addr: v1,
            });
        }
        msgr::v2::AddrVec(v)
    }

    /// Adopts the IP a peer saw us at, if ours is still blank (ms_learn_addr_from_peer).
    pub(crate) fn learn_addr(&self, learned: EntityAddr) {
        let mut a = self.my_addr.write().expect("my_addr lock");
        if a.is_blank_ip() && !learned.is_blank_ip() {
            if let Some(ip) = learned.addr.map(|s| s.ip()) {
                a.addr = Some(std::net::SocketAddr::new(ip, a.port()));
                tracing::info!(addr = %*a, "learned our address from a peer");
            }
        }
    }

    /// The shard for a new connection (round-robin across all messengers on these threads).
    pub(crate) fn pick_shard(&self) -> usize {
        self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }

    /// The shard threads and their round-robin cursor, for a messenger that shares them.
    pub(crate) fn shard_set(&self) -> (Vec<ArbiterHandle>, Arc<AtomicUsize>) {
        (self.shards.clone(), self.next_shard.clone())
    }

    pub(crate) fn routes(&self) -> &Routes {
        self.routes.get().expect("routes set at build")
    }

    pub(crate) fn dispatch_queue(&self, shard: usize) -> &Recipient<Deliver> {
        &self.routes().dispatch[shard]
    }
}
