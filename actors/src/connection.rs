//! `Connection`: the user's handle to one peer session.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix::{Recipient, WeakRecipient};
use msgr::{EntityAddr, EntityName, EntityType, Message};

use crate::counters::{Counters, CountersSnapshot};
use crate::error::PipeError;
#[cfg(feature = "fault-injection")]
use crate::msgs::KillTarget;
use crate::msgs::{Deliver, DispatchItem, GetInfo, PipeControl, PipeInfo, SendMessage};

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection was marked down (or its messenger shut down); the message is dropped.
    #[error("connection is closed")]
    Closed,
}

/// A handle to one peer session. Cheap to clone; every clone names the same session.
///
/// Sending never blocks: the message is queued on the session's Pipe, which numbers, writes,
/// and (on lossless policies) keeps it until the peer acks it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
}

pub(crate) enum Target {
    /// Set right after the Pipe actor is started (its address exists only then).
    Pipe(OnceLock<Box<dyn PipeLink>>),
    /// Our own address: delivered to our dispatchers without a socket.
    Local(LocalTarget),
}

/// How a Connection reaches its session's Pipe. The Pipe's (weak) address implements it
/// (pipe/mod.rs): a trait object, so that this file needs no knowledge of the actor and a send
/// costs no allocation.
pub(crate) trait PipeLink: Send + Sync + 'static {
    /// Queues a message; false once the Pipe is gone.
    fn send(&self, msg: SendMessage) -> bool;
    /// Anything else for the Pipe; false once it is gone.
    fn control(&self, msg: PipeControl) -> bool;
    /// Where to ask for the Pipe's state.
    fn info(&self) -> Option<Recipient<GetInfo>>;
}

/// A connection to our own address: messages go straight to our dispatch queue.
pub(crate) struct LocalTarget {
    /// Our name (the messages' source).
    pub(crate) name: EntityName,
    /// The DispatchQueue of the connection's shard (weak: a stopped messenger closes it).
    pub(crate) queue: WeakRecipient<Deliver>,
}

pub(crate) struct ConnInner {
    pub(crate) id: u64,
    pub(crate) shard: usize,
    pub(crate) peer_type: EntityType,
    pub(crate) peer_addr: Mutex<EntityAddr>,
    pub(crate) peer_num: AtomicI64,
    peer_name_type: AtomicU8,
    pub(crate) connected: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) features: AtomicU64,
    pub(crate) last_error: Mutex<Option<Arc<PipeError>>>,
    pub(crate) counters: Counters,
    pub(crate) target: Target,
    local_seq: AtomicU64,
    /// `SendMessage`s in the Pipe's mailbox, not yet handled.
    pub(crate) in_mailbox: AtomicU64,
}

thread_local! {
    /// While a Pipe runs fast dispatch: its connection id and the messages its dispatchers send
    /// on that same connection, which it queues itself, without a mailbox round trip.
    static ABSORB: RefCell<Option<(u64, Vec<Message>)>> = const { RefCell::new(None) };
}

/// Runs `f` (fast dispatch on connection `id`), collecting into `sent` what it sends on that
/// connection. `sent` is the Pipe's own buffer, reused so a reply costs no allocation.
pub(crate) fn absorbing_sends(id: u64, sent: &mut Vec<Message>, f: impl FnOnce()) {
    ABSORB.with(|a| *a.borrow_mut() = Some((id, std::mem::take(sent))));
    f();
    if let Some((_, v)) = ABSORB.with(|a| a.borrow_mut().take()) {
        *sent = v;
    }
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        shard: usize,
        peer_type: EntityType,
        peer_addr: EntityAddr,
        target: Target,
    ) -> Self {
        Connection {
            inner: Arc::new(ConnInner {
                id,
                shard,
                peer_type,
                peer_addr: Mutex::new(peer_addr),
                peer_num: AtomicI64::new(EntityName::NEW),
                peer_name_type: AtomicU8::new(peer_type.0),
                connected: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                features: AtomicU64::new(0),
                last_error: Mutex::new(None),
                counters: Counters::default(),
                target,
                local_seq: AtomicU64::new(0),
                in_mailbox: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `msg` for the peer. Priority 0 means the default (127).
    pub fn send_message(&self, msg: Message) -> Result<(), SendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        match &self.inner.target {
            Target::Pipe(w) => {
                // Sent from this connection's own fast dispatch, with nothing of ours still in
                // the mailbox (so order is kept): the Pipe queues it right after the callback,
                // without a mailbox round trip.
                let mut msg = Some(msg);
                ABSORB.with(|a| {
                    if let Some((id, v)) = a.borrow_mut().as_mut() {
                        if *id == self.inner.id
                            && self.inner.in_mailbox.load(Ordering::Acquire) == 0
                        {
                            v.extend(msg.take());
                        }
                    }
                });
                let Some(msg) = msg else { return Ok(()) };
                let link = w.get().ok_or(SendError::Closed)?;
                self.inner.in_mailbox.fetch_add(1, Ordering::AcqRel);
                if !link.send(SendMessage(msg)) {
                    self.inner.in_mailbox.fetch_sub(1, Ordering::AcqRel);
                    return Err(SendError::Closed);
                }
                Ok(())
            }
            Target::Local(local) => {
                let queue = local.queue.upgrade().ok_or(SendError::Closed)?;
                let mut msg = msg;
                msg.src = local.name;
                msg.seq = self.inner.local_seq.fetch_add(1, Ordering::Relaxed) + 1;
                Counters::add(&self.inner.counters.msgs_out, 1);
                Counters::add(&self.inner.counters.msgs_in, 1);
                queue.do_send(Deliver {
                    conn: self.clone(),
                    items: vec![DispatchItem::message(msg, Default::default())],
                });
                Ok(())
            }
        }
    }

    /// Sends a KEEPALIVE2 (or KEEPALIVE to peers without it) soon.
    pub fn send_keepalive(&self) {
        if let Some(p) = self.pipe() {
            p.control(PipeControl::Keepalive);
        }
    }

    /// Closes the session: queued messages are dropped, the socket closed, and the peer sees a
    /// reset. No ms_handle_reset is delivered for a local mark-down.
    pub fn mark_down(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.connected.store(false, Ordering::Release);
        if let Some(p) = self.pipe() {
            p.control(PipeControl::MarkDown { graceful: false });
        }
    }

    /// True while a socket to the peer is open and its session is READY (always for a local connection).
    pub fn is_connected(&self) -> bool {
        match self.inner.target {
            Target::Local(_) => !self.inner.closed.load(Ordering::Acquire),
            Target::Pipe(_) => self.inner.connected.load(Ordering::Acquire),
        }
    }

    /// True once marked down (by us, or by a lossy fault).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The peer's address (its nonce learned at the first handshake).
    pub fn peer_addr(&self) -> EntityAddr {
        *self.inner.peer_addr.lock().expect("peer_addr lock")
    }

    /// The peer's entity type.
    pub fn peer_type(&self) -> EntityType {
        self.inner.peer_type
    }

    /// The peer's name, as learned from the messages it sent (`type.?` until then).
    pub fn peer_name(&self) -> EntityName {
        EntityName::new(
            EntityType(self.inner.peer_name_type.load(Ordering::Relaxed)),
            self.inner.peer_num.load(Ordering::Relaxed),
        )
    }

    /// Features negotiated with the peer (0 before the first handshake).
    pub fn features(&self) -> u64 {
        self.inner.features.load(Ordering::Relaxed)
    }

    /// Why the last socket of this session failed (a handshake refusal names the reply tag).
    pub fn last_error(&self) -> Option<Arc<PipeError>> {
        self.inner
            .last_error
            .lock()
            .expect("last_error lock")
            .clone()
    }

    /// Sets this connection's perf counters back to zero (`perf reset`).
    pub(crate) fn reset_counters(&self) {
        self.inner.counters.reset();
    }

    /// This connection's perf counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.inner.counters.snapshot()
    }

    /// A process-unique id for this connection.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// True for the socket-less connection to our own address.
    pub fn is_local(&self) -> bool {
        matches!(self.inner.target, Target::Local(_))
    }

    /// Fault injection for supervision tests: stops this connection's reader, writer or Pipe.
    /// The session recovers per its policy (lossless sessions replay; nothing is lost).
    /// Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn inject_actor_fault(&self, target: KillTarget) {
        if let Some(p) = self.pipe() {
            p.control(PipeControl::Kill(target));
        }
    }

    /// The session's state as its Pipe sees it (None for a local or finished connection).
    pub async fn info(&self) -> Option<PipeInfo> {
        self.pipe()?.info()?.send(GetInfo).await.ok()
    }

    fn pipe(&self) -> Option<&dyn PipeLink> {
        match &self.inner.target {
            Target::Pipe(w) => w.get().map(|b| &**b),
            Target::Local(_) => None,
        }
    }

    pub(crate) fn set_peer_name(&self, name: EntityName) {
        self.inner
            .peer_name_type
            .store(name.ty.0, Ordering::Relaxed);
        self.inner.peer_num.store(name.num, Ordering::Relaxed);
    }

    pub(crate) fn set_peer_addr(&self, addr: EntityAddr) {
        *self.inner.peer_addr.lock().expect("peer_addr lock") = addr;
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("peer", &self.peer_name())
            .field("addr", &self.peer_addr().to_string())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Connection {}
