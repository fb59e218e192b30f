//! The node: actors registered under names, asks waiting for their answers, and the
//! dispatcher that routes envelopes between them and the sessions.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix::Recipient;
use bytes::Bytes;
use msgr::messages::{Envelope, EnvelopeKind, Refusal, REMOTE_ENVELOPE};
use msgr::Message;
use tokio::sync::{oneshot, Semaphore};

use super::watch::{DownReason, PeerReset, RemoteDown, TellCount, Watches};
use super::{RemoteMessage, RemoteRecipient};
use crate::{Connection, Dispatcher};

/// A node's limits.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// How long an ask waits for its answer unless told otherwise.
    pub ask_timeout: Duration,
    /// Asks in flight per connection; further callers wait for a slot (within their timeout).
    pub max_asks_in_flight: usize,
    /// Asks from one connection our actors serve at once; more are refused with
    /// [`super::AskError::Busy`] (a sender keeping to its own `max_asks_in_flight` at or below
    /// this never sees it). What a peer that asks without end can cost us.
    pub max_asks_served: usize,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            ask_timeout: Duration::from_secs(30),
            max_asks_in_flight: 1024,
            max_asks_served: 4096,
        }
    }
}

/// What a node has done, for tests and tools.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    /// Tells delivered to our actors.
    pub tells_in: u64,
    /// Asks delivered to our actors.
    pub asks_in: u64,
    /// Envelopes we refused (unknown name, wrong type, bad body, actor stopped).
    pub refused_in: u64,
    /// Our tells a peer refused (no ask waits for those, so they are only counted and logged).
    pub tells_refused: u64,
    /// Asks waiting for an answer now.
    pub asks_pending: u64,
}

/// How one of our asks ended, as the dispatcher learns it.
pub(super) enum CallEnd {
    Reply(Bytes),
    Refused(Refusal),
    PeerReset,
}

/// What an actor did with an envelope.
enum Delivery {
    Told,
    Refused(Refusal),
    Answer(Pin<Box<dyn Future<Output = Result<Bytes, Refusal>>>>),
}

/// Decodes a body and hands it to the registered actor.
type Deliver = Box<dyn Fn(EnvelopeKind, &Bytes) -> Delivery + Send + Sync>;

struct Entry {
    type_name: &'static str,
    deliver: Deliver,
    /// The actor still runs.
    alive: Box<dyn Fn() -> bool + Send + Sync>,
}

struct Pending {
    conn: u64,
    done: oneshot::Sender<CallEnd>,
}

#[derive(Default)]
struct Counters {
    tells_in: AtomicU64,
    asks_in: AtomicU64,
    refused_in: AtomicU64,
    tells_refused: AtomicU64,
}

pub(super) struct NodeInner {
    pub(super) opts: NodeOptions,
    /// By name, then one entry per message type the actor takes.
    actors: RwLock<HashMap<String, Vec<Entry>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    slots: Mutex<HashMap<u64, Arc<Semaphore>>>,
    next_call: AtomicU64,
    counters: Counters,
    pub(super) watches: Mutex<Watches>,
    tells: Mutex<HashMap<u64, TellCount>>,
    reset_listeners: Mutex<Vec<Recipient<PeerReset>>>,
    /// Asks being served, by connection.
    serving: Mutex<HashMap<u64, usize>>,
}

/// Actors reachable from other nodes, and the asks we are waiting on. Give
/// [`ActorNode::dispatcher`] to the messenger's builder; cheap to clone.
#[derive(Clone)]
pub struct ActorNode {
    pub(super) inner: Arc<NodeInner>,
}

impl ActorNode {
    /// A node with these limits.
    pub fn new(opts: NodeOptions) -> Self {
        ActorNode {
            inner: Arc::new(NodeInner {
                opts,
                actors: RwLock::default(),
                pending: Mutex::default(),
                slots: Mutex::default(),
                next_call: AtomicU64::new(1),
                counters: Counters::default(),
                watches: Mutex::default(),
                tells: Mutex::default(),
                reset_listeners: Mutex::default(),
                serving: Mutex::default(),
            }),
        }
    }

    /// The dispatcher to add to the messenger (it takes only remote actor envelopes and lets
    /// every other message through to the next dispatcher).
    pub fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        Arc::new(self.clone())
    }

    /// Makes `actor` reachable as `name` for messages of type `M` (an actor taking several
    /// types is registered once per type under one name; registering a type again replaces it).
    pub fn register<M>(&self, name: impl Into<String>, actor: Recipient<M>)
    where
        M: RemoteMessage + actix::Message<Result = <M as RemoteMessage>::Reply>,
    {
        let alive = {
            let actor = actor.clone();
            move || actor.connected()
        };
        let deliver = move |kind: EnvelopeKind, body: &Bytes| -> Delivery {
            let Ok(msg) = postcard::from_bytes::<M>(body) else {
                return Delivery::Refused(Refusal::BadBody);
            };
            if !actor.connected() {
                return Delivery::Refused(Refusal::ActorStopped);
            }
            if kind == EnvelopeKind::Tell {
                actor.do_send(msg);
                return Delivery::Told;
            }
            let answer = actor.send(msg);
            Delivery::Answer(Box::pin(async move {
                let reply = answer.await.map_err(|_| Refusal::ActorStopped)?;
                postcard::to_allocvec(&reply)
                    .map(Bytes::from)
                    .map_err(|_| Refusal::BadBody)
            }))
        };
        let entry = Entry {
            type_name: M::TYPE_NAME,
            deliver: Box::new(deliver),
            alive: Box::new(alive),
        };
        let mut actors = self.inner.actors.write().expect("actors lock");
        let types = actors.entry(name.into()).or_default();
        types.retain(|e| e.type_name != M::TYPE_NAME);
        types.push(entry);
    }

    /// Removes the actor registered as `name` (for every type); later envelopes for it are
    /// refused.
    pub fn unregister(&self, name: &str) {
        self.inner.actors.write().expect("actors lock").remove(name);
    }

    /// Tells `listener` of every peer session reset ([`PeerReset`]).
    pub fn on_peer_reset(&self, listener: Recipient<PeerReset>) {
        let mut l = self.inner.reset_listeners.lock().expect("listeners lock");
        l.push(listener);
    }

    /// Counts a tell sent on `conn`.
    pub(super) fn tell_sent(&self, conn: u64) {
        let mut tells = self.inner.tells.lock().expect("tells lock");
        tells.entry(conn).or_default().sent += 1;
    }

    /// How many tells were sent on `conn` so far.
    pub(super) fn tells_sent(&self, conn: u64) -> u64 {
        let tells = self.inner.tells.lock().expect("tells lock");
        tells.get(&conn).map_or(0, |t| t.sent)
    }

    /// An answer on `conn` came back: the first `upto` tells sent on it arrived.
    pub(super) fn confirm_tells(&self, conn: u64, upto: u64) {
        let mut tells = self.inner.tells.lock().expect("tells lock");
        let t = tells.entry(conn).or_default();
        t.confirmed = t.confirmed.max(upto.min(t.sent));
    }

    /// The actor registered as `name` on the peer at the other end of `conn`.
    pub fn remote<M: RemoteMessage>(&self, conn: &Connection, name: &str) -> RemoteRecipient<M> {
        RemoteRecipient::new(self.clone(), conn.clone(), name.to_string())
    }

    /// What the node has done so far.
    pub fn stats(&self) -> NodeStats {
        let c = &self.inner.counters;
        NodeStats {
            tells_in: c.tells_in.load(Relaxed),
            asks_in: c.asks_in.load(Relaxed),
            refused_in: c.refused_in.load(Relaxed),
            tells_refused: c.tells_refused.load(Relaxed),
            asks_pending: self.inner.pending.lock().expect("pending lock").len() as u64,
        }
    }

    /// The slots for asks in flight on connection `conn`.
    pub(super) fn slots(&self, conn: u64) -> Arc<Semaphore> {
        let mut slots = self.inner.slots.lock().expect("slots lock");
        let n = self.inner.opts.max_asks_in_flight.max(1);
        slots
            .entry(conn)
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone()
    }

    /// A new call id and the receiver its answer will come to.
    pub(super) fn expect(&self, conn: u64) -> (u64, oneshot::Receiver<CallEnd>) {
        let call = self.inner.next_call.fetch_add(1, Relaxed);
        let (done, rx) = oneshot::channel();
        let mut pending = self.inner.pending.lock().expect("pending lock");
        pending.insert(call, Pending { conn, done });
        (call, rx)
    }

    /// Stops waiting for `call` (answered, timed out, or never sent).
    pub(super) fn forget(&self, call: u64) {
        self.inner
            .pending
            .lock()
            .expect("pending lock")
            .remove(&call);
    }

    fn complete(&self, call: u64, end: CallEnd) {
        let p = self
            .inner
            .pending
            .lock()
            .expect("pending lock")
            .remove(&call);
        match p {
            Some(p) => {
                let _ = p.done.send(end);
            }
            // Timed out already: the answer is dropped.
            None => tracing::debug!(call, "an answer nobody waits for"),
        }
    }

    /// The session on `conn` was reset or closed: pending asks fail, watches of the peer's
    /// actors end, the peer's watches of ours are dropped, and listeners learn how many tells
    /// may be lost.
    fn session_reset(&self, conn: &Connection) {
        let id = conn.id();
        self.fail_all(id);
        let downs = {
            let mut w = self.inner.watches.lock().expect("watches lock");
            w.watched.retain(|(c, _)| c.id() != id);
            w.take_watching(id, None)
        };
        for (name, watcher) in downs {
            watcher.do_send(RemoteDown {
                conn: id,
                name,
                reason: DownReason::PeerReset,
            });
        }
        let count = self.inner.tells.lock().expect("tells lock").remove(&id);
        let count = count.unwrap_or_default();
        let notice = PeerReset {
            conn: id,
            peer: conn.peer_name(),
            tells_unconfirmed: count.sent - count.confirmed,
        };
        let listeners = self.inner.reset_listeners.lock().expect("listeners lock");
        for l in listeners.iter() {
            l.do_send(notice.clone());
        }
    }

    /// Fails every ask pending on connection `conn`.
    fn fail_all(&self, conn: u64) {
        let failed: Vec<Pending> = {
            let mut pending = self.inner.pending.lock().expect("pending lock");
            let calls: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.conn == conn)
                .map(|(c, _)| *c)
                .collect();
            calls.iter().filter_map(|c| pending.remove(c)).collect()
        };
        if !failed.is_empty() {
            tracing::info!(
                conn,
                asks = failed.len(),
                "session reset: failing pending asks"
            );
        }
        for p in failed {
            let _ = p.done.send(CallEnd::PeerReset);
        }
    }

    /// Whether an actor is registered as `name` and still runs (any of its types' addresses).
    pub(super) fn is_alive(&self, name: &str) -> bool {
        let actors = self.inner.actors.read().expect("actors lock");
        actors
            .get(name)
            .is_some_and(|types| types.iter().any(|e| (e.alive)()))
    }

    /// Counts an ask served on `conn`, or says there are too many already.
    fn start_serving(&self, conn: u64) -> bool {
        let mut serving = self.inner.serving.lock().expect("serving lock");
        let n = serving.entry(conn).or_default();
        if *n >= self.inner.opts.max_asks_served.max(1) {
            return false;
        }
        *n += 1;
        true
    }

    fn done_serving(&self, conn: u64) {
        let mut serving = self.inner.serving.lock().expect("serving lock");
        if let Some(n) = serving.get_mut(&conn) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                serving.remove(&conn);
            }
        }
    }

    fn deliver(&self, conn: &Connection, env: Envelope) {
        let ask = env.kind == EnvelopeKind::Ask;
        if ask && !self.start_serving(conn.id()) {
            self.inner.counters.refused_in.fetch_add(1, Relaxed);
            answer(conn, &env, Err(Refusal::Busy));
            return;
        }
        let delivery = {
            let actors = self.inner.actors.read().expect("actors lock");
            match actors.get(&env.name) {
                None => Delivery::Refused(Refusal::UnknownName),
                Some(types) => match types.iter().find(|e| e.type_name == env.type_name) {
                    None => Delivery::Refused(Refusal::TypeMismatch),
                    Some(e) => (e.deliver)(env.kind, &env.body),
                },
            }
        };
        let c = &self.inner.counters;
        match delivery {
            Delivery::Told => {
                c.tells_in.fetch_add(1, Relaxed);
            }
            Delivery::Refused(why) => {
                if ask {
                    self.done_serving(conn.id());
                }
                c.refused_in.fetch_add(1, Relaxed);
                tracing::debug!(name = %env.name, type_name = %env.type_name, ?why, "refusing a remote envelope");
                answer(conn, &env, Err(why));
            }
            Delivery::Answer(fut) => {
                c.asks_in.fetch_add(1, Relaxed);
                let (conn, node) = (conn.clone(), self.clone());
                actix::spawn(async move {
                    let result = fut.await;
                    node.done_serving(conn.id());
                    answer(&conn, &env, result);
                });
            }
        }
    }
}

/// Sends the answer to an ask (or the refusal of a tell, with call 0).
fn answer(conn: &Connection, asked: &Envelope, result: Result<Bytes, Refusal>) {
    let (kind, body) = match result {
        Ok(reply) => (EnvelopeKind::Reply, reply),
        Err(why) => (EnvelopeKind::Refusal, Bytes::from(vec![why.code()])),
    };
    let call = if asked.kind == EnvelopeKind::Ask {
        asked.call
    } else {
        0
    };
    let env = Envelope {
        kind,
        call,
        name: asked.name.clone(),
        type_name: asked.type_name.clone(),
        body,
    };
    if conn.send_message(Message::from_payload(&env)).is_err() {
        tracing::debug!(call, "the asker's connection closed before the answer");
    }
}

impl Dispatcher for ActorNode {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        if msg.msg_type != REMOTE_ENVELOPE {
            return false;
        }
        let env = match msg.decode_payload::<Envelope>() {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(peer = %conn.peer_name(), error = %e, "a malformed remote envelope");
                return true;
            }
        };
        match env.kind {
            EnvelopeKind::Tell | EnvelopeKind::Ask => self.deliver(conn, env),
            EnvelopeKind::Reply => self.complete(env.call, CallEnd::Reply(env.body)),
            EnvelopeKind::Watch => self.peer_watches(conn, env.name),
            EnvelopeKind::Down => self.peer_down(conn, &env.name, &env.body),
            EnvelopeKind::Refusal => match Refusal::from_body(&env.body) {
                Ok(why) if env.call == 0 => {
                    self.inner.counters.tells_refused.fetch_add(1, Relaxed);
                    tracing::warn!(peer = %conn.peer_name(), name = %env.name, ?why, "a tell was refused");
                }
                Ok(why) => self.complete(env.call, CallEnd::Refused(why)),
                Err(e) => tracing::warn!(error = %e, "a malformed refusal"),
            },
        }
        true
    }

    fn ms_handle_reset(&self, conn: &Connection) -> bool {
        self.session_reset(conn);
        self.inner
            .slots
            .lock()
            .expect("slots lock")
            .remove(&conn.id());
        false
    }

    fn ms_handle_remote_reset(&self, conn: &Connection) {
        self.session_reset(conn);
    }
}
