//! What a messenger's user implements to receive: the `Dispatcher` trait (Ceph's
//! ms_dispatch, fast dispatch and ms_handle_* callbacks), the connection events, and an actix
//! `Recipient` serving as a dispatcher.

use actix::prelude::*;
use msgr::Message;

use crate::connection::Connection;

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
