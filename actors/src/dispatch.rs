//! The `DispatchQueue` actor (one per shard): delivers to the dispatchers in priority order across
//! connections while keeping each connection's messages and events in order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;

use crate::connection::Connection;
use crate::dispatcher::ConnEvent;
use crate::msgs::{Deliver, DispatchItem};
use crate::shared::Shared;

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
