//! Delivery to the user: the `Dispatcher` trait, an adapter for actix actors, and the
//! `DispatchQueue` actor (one per shard) that delivers in priority order across connections while
//! keeping each connection's messages and events in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use msgr::Message;

use crate::connection::Connection;
use crate::msgs::{Deliver, DispatchItem};
use crate::shared::Shared;

/// Receives messages and connection events. Called on the shard thread that owns the
/// connection: keep it quick, or hand work to another actor.
pub trait Dispatcher: Send + Sync + 'static {
    /// A message arrived. Return true if handled; unhandled messages go to the next dispatcher.
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool;
    /// Whether `msg` may skip the dispatch queue (called on the connection's own thread).
    fn ms_can_fast_dispatch(&self, _msg: &Message) -> bool {
        false
    }
    /// Fast path for messages `ms_can_fast_dispatch` accepted.
    fn ms_fast_dispatch(&self, conn: &Connection, msg: Message) {
        self.ms_dispatch(conn, msg);
    }
    /// An outgoing connection completed its handshake.
    fn ms_handle_connect(&self, _conn: &Connection) {}
    /// An incoming connection completed its handshake.
    fn ms_handle_accept(&self, _conn: &Connection) {}
    /// A lossy connection faulted and was marked down; messages in flight may be lost.
    fn ms_handle_reset(&self, _conn: &Connection) -> bool {
        false
    }
    /// The peer reset our session (it restarted or lost our state); queued messages were dropped.
    fn ms_handle_remote_reset(&self, _conn: &Connection) {}
    /// The peer refused the TCP connection.
    fn ms_handle_refused(&self, _conn: &Connection) -> bool {
        false
    }
}

/// A connection event, in order with the connection's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent {
    /// ms_handle_connect.
    Connect,
    /// ms_handle_accept.
    Accept,
    /// ms_handle_reset.
    Reset,
    /// ms_handle_remote_reset.
    RemoteReset,
    /// ms_handle_refused.
    Refused,
}

/// What an actix actor receives through [`RecipientDispatcher`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum Dispatched {
    /// A message.
    Message(Connection, Message),
    /// A connection event.
    Event(Connection, ConnEvent),
}

/// Lets an actix actor be a dispatcher: everything is forwarded to its `Recipient`.
pub struct RecipientDispatcher(pub Recipient<Dispatched>);

impl Dispatcher for RecipientDispatcher {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        self.0.do_send(Dispatched::Message(conn.clone(), msg));
        true
    }
    fn ms_handle_connect(&self, conn: &Connection) {
        self.0
            .do_send(Dispatched::Event(conn.clone(), ConnEvent::Connect));
    }
    fn ms_handle_accept(&self, conn: &Connection) {
        self.0
            .do_send(Dispatched::Event(conn.clone(), ConnEvent::Accept));
    }
    fn ms_handle_reset(&self, conn: &Connection) -> bool {
        self.0
            .do_send(Dispatched::Event(conn.clone(), ConnEvent::Reset));
        true
    }
    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.0
            .do_send(Dispatched::Event(conn.clone(), ConnEvent::RemoteReset));
    }
    fn ms_handle_refused(&self, conn: &Connection) -> bool {
        self.0
            .do_send(Dispatched::Event(conn.clone(), ConnEvent::Refused));
        true
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

#[derive(Message)]
#[rtype(result = "()")]
struct Release(u64);

struct ConnQueue {
    conn: Connection,
    items: VecDeque<DispatchItem>,
    /// Held back by an injected delivery delay.
    held: bool,
}

/// Delivers one shard's received messages and events to the dispatchers.
pub struct DispatchQueue {
    shared: Arc<Shared>,
    queues: HashMap<u64, ConnQueue>,
    /// Connections with something to deliver, by the priority of their head item, then arrival.
    ready: BinaryHeap<(u16, Reverse<u64>, u64)>,
    ticket: u64,
    draining: bool,
}

/// Items delivered per turn before the actor yields to its mailbox.
const DRAIN_BATCH: usize = 128;

impl DispatchQueue {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        DispatchQueue {
            shared,
            queues: HashMap::new(),
            ready: BinaryHeap::new(),
            ticket: 0,
            draining: false,
        }
    }

    fn mark_ready(&mut self, id: u64) {
        if let Some(q) = self.queues.get(&id) {
            if let Some(head) = q.items.front() {
                if !q.held {
                    self.ticket += 1;
                    self.ready.push((head.priority(), Reverse(self.ticket), id));
                }
            }
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if !self.draining && !self.ready.is_empty() {
            self.draining = true;
            ctx.notify(Drain);
        }
    }

    fn deliver(&self, conn: &Connection, item: DispatchItem) {
        let ds = &self.shared.dispatchers;
        match item {
            DispatchItem::Message(msg, _guard) => {
                let (ty, seq) = (msg.msg_type, msg.seq);
                let Some((last, first)) = ds.split_last() else {
                    tracing::debug!(msg_type = ty, seq, peer = %conn.peer_name(), "unhandled message (no dispatcher)");
                    return;
                };
                // Every dispatcher but the last gets a copy (sections are shared, not copied),
                // so the message is still there if it declines; the last one takes it.
                for d in first {
                    if d.ms_dispatch(conn, msg.clone()) {
                        return;
                    }
                }
                if last.ms_dispatch(conn, msg) {
                    return;
                }
                tracing::debug!(msg_type = ty, seq, peer = %conn.peer_name(), "unhandled message");
            }
            DispatchItem::Event(ev) => {
                for d in ds {
                    match ev {
                        ConnEvent::Connect => d.ms_handle_connect(conn),
                        ConnEvent::Accept => d.ms_handle_accept(conn),
                        ConnEvent::Reset => {
                            d.ms_handle_reset(conn);
                        }
                        ConnEvent::RemoteReset => d.ms_handle_remote_reset(conn),
                        ConnEvent::Refused => {
                            d.ms_handle_refused(conn);
                        }
                    }
                }
            }
        }
    }
}

impl Actor for DispatchQueue {
    type Context = Context<Self>;
}

impl Handler<Deliver> for DispatchQueue {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        let id = msg.conn.id();
        let q = self.queues.entry(id).or_insert_with(|| ConnQueue {
            conn: msg.conn.clone(),
            items: VecDeque::new(),
            held: false,
        });
        let was_empty = q.items.is_empty();
        q.items.extend(msg.items);
        if was_empty {
            self.mark_ready(id);
        }
        self.schedule(ctx);
    }
}

impl Handler<Drain> for DispatchQueue {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        for _ in 0..DRAIN_BATCH {
            let Some((_, _, id)) = self.ready.pop() else {
                break;
            };
            let Some(q) = self.queues.get_mut(&id) else {
                continue;
            };
            let Some(item) = q.items.pop_front() else {
                continue;
            };
            if let DispatchItem::Message(_, _) = &item {
                if let Some(delay) = self.shared.injector.delivery_delay(q.conn.peer_type()) {
                    // Hold the whole connection so its order is kept.
                    q.items.push_front(item);
                    q.held = true;
                    ctx.notify_later(Release(id), delay);
                    continue;
                }
            }
            let conn = q.conn.clone();
            self.deliver(&conn, item);
            match self.queues.get(&id) {
                Some(q) if q.items.is_empty() => {
                    self.queues.remove(&id);
                }
                Some(_) => self.mark_ready(id),
                None => {}
            }
        }
        self.draining = false;
        self.schedule(ctx);
    }
}

impl Handler<Release> for DispatchQueue {
    type Result = ();
    fn handle(&mut self, Release(id): Release, ctx: &mut Context<Self>) {
        if let Some(q) = self.queues.get_mut(&id) {
            q.held = false;
        }
        self.mark_ready(id);
        self.schedule(ctx);
    }
}
