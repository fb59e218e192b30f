//! `Registry`: the messenger's table of sessions, by peer address. It creates Pipes (for
//! `get_connection` and for accepted sockets) on a shard chosen round-robin, routes an accepted
//! connect to the Pipe of the same peer, and forgets Pipes that close. It makes no protocol
//! decisions: a Pipe decides on connects to its own session, with its own exact state.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use msgr::EntityAddr;

use crate::connection::Connection;
use crate::msgs::{
    AcceptRoute, GetConnection, ListConnections, MarkDown, MarkDownAll, RouteAccept, Unregister,
    WhenEmpty,
};
use crate::pipe::Pipe;
use crate::shared::Shared;

/// The session table.
pub struct Registry {
    shared: Arc<Shared>,
    by_addr: HashMap<EntityAddr, (Addr<Pipe>, Connection)>,
    anonymous: HashMap<u64, (Addr<Pipe>, Connection)>,
    /// The `by_addr` key of each connection id. A session dialled by bare `IP:port` is filed
    /// under nonce 0 and then learns the server's nonce, so the Pipe's own peer address is no
    /// way to find its entry again: before this map, such entries were never removed and every
    /// `shutdown` of a messenger that had used `connect` waited out its whole flush limit.
    keys: HashMap<u64, EntityAddr>,
    shutting_down: bool,
    /// Who waits for the table to empty (a shutting-down messenger).
    empty_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Registry {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Registry {
            shared,
            by_addr: HashMap::new(),
            anonymous: HashMap::new(),
            keys: HashMap::new(),
            shutting_down: false,
            empty_waiters: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.by_addr.is_empty() && self.anonymous.is_empty()
    }

    fn pick_shard(&mut self) -> usize {
        self.shared.pick_shard()
    }

    /// Files a session under `addr` (replacing a closed one there, whose own `Unregister` then
    /// finds another id in its place and leaves it).
    fn file(&mut self, addr: EntityAddr, pipe: Addr<Pipe>, conn: Connection) {
        self.keys.insert(conn.id(), addr);
        self.by_addr.insert(addr, (pipe, conn));
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<GetConnection> for Registry {
    type Result = Option<Connection>;
    fn handle(&mut self, m: GetConnection, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return None;
        }
        if let Some((_, conn)) = self.by_addr.get(&m.addr) {
            if !conn.is_closed() {
                return Some(conn.clone());
            }
        }
        let shard = self.pick_shard();
        let (pipe, conn) = Pipe::start(
            self.shared.clone(),
            shard,
            m.addr,
            m.peer_type,
            m.check_nonce,
            true,
            m.v2,
        );
        self.file(m.addr, pipe, conn.clone());
        Some(conn)
    }
}

impl Handler<RouteAccept> for Registry {
    type Result = Option<AcceptRoute>;
    fn handle(&mut self, m: RouteAccept, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return None;
        }
        let policy = self.shared.policy_for(m.peer_type);
        if policy.skips_session_lookup() {
            let (pipe, conn) = Pipe::start(
                self.shared.clone(),
                m.shard,
                m.peer_addr,
                m.peer_type,
                false,
                false,
                m.v2,
            );
            let route = Pipe::accept_route(&pipe);
            self.anonymous.insert(conn.id(), (pipe, conn));
            return Some(route);
        }
        if let Some((pipe, conn)) = self.by_addr.get(&m.peer_addr) {
            if !conn.is_closed() && pipe.connected() {
                return Some(Pipe::accept_route(pipe));
            }
        }
        let (pipe, conn) = Pipe::start(
            self.shared.clone(),
            m.shard,
            m.peer_addr,
            m.peer_type,
            true,
            false,
            m.v2,
        );
        let route = Pipe::accept_route(&pipe);
        self.file(m.peer_addr, pipe, conn);
        Some(route)
    }
}

impl Handler<Unregister> for Registry {
    type Result = ();
    fn handle(&mut self, m: Unregister, _: &mut Context<Self>) {
        self.anonymous.remove(&m.id);
        if let Some(key) = self.keys.remove(&m.id) {
            if self.by_addr.get(&key).is_some_and(|(_, c)| c.id() == m.id) {
                self.by_addr.remove(&key);
            }
        }
        if self.is_empty() {
            for waiter in self.empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Handler<WhenEmpty> for Registry {
    type Result = MessageResult<WhenEmpty>;
    fn handle(&mut self, _: WhenEmpty, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.is_empty() {
            let _ = tx.send(());
        } else {
            self.empty_waiters.push(tx);
        }
        MessageResult(rx)
    }
}

impl Handler<MarkDownAll> for Registry {
    type Result = ();
    fn handle(&mut self, m: MarkDownAll, _: &mut Context<Self>) {
        self.shutting_down |= m.shutting_down;
        for (pipe, conn) in self.by_addr.values().chain(self.anonymous.values()) {
            conn.inner
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            pipe.do_send(MarkDown {
                graceful: m.graceful,
            });
        }
    }
}

impl Handler<ListConnections> for Registry {
    type Result = Vec<Connection>;
    fn handle(&mut self, _: ListConnections, _: &mut Context<Self>) -> Self::Result {
        self.by_addr
            .values()
            .chain(self.anonymous.values())
            .map(|(_, c)| c.clone())
            .collect()
    }
}
