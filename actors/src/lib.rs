//! # msgr-actors: Ceph's SimpleMessenger as actix actors
//!
//! The runtime that drives the sans-IO [`msgr`] protocol over TCP. Per peer session there is a
//! Pipe actor (the session, supervised), a PipeReader and a PipeWriter; per shard thread a
//! DispatchQueue; per messenger an Accepter and a Registry (docs/architecture.md has the map).
//! A connection's actors all live on one shard, so the hot path never hops threads.
//!
//! The public surface is the [`Messenger`] (built with [`MessengerBuilder`]), the [`Connection`]
//! handle, the [`Dispatcher`] trait, counters and errors. Supervision fault hooks
//! (`Connection::inject_actor_fault`, `KillTarget`) exist only with the `fault-injection`
//! feature, which the tests enable.
//!
//! ```no_run
//! use std::sync::Arc;
//! use msgr_actors::{Connection, Dispatcher, Messenger};
//! use msgr_actors::msgr::{EntityName, EntityType, Message, Policy};
//!
//! struct Echo;
//! impl Dispatcher for Echo {
//!     fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
//!         let _ = conn.send_message(Message::new(msg.msg_type, msg.front));
//!         true
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() {
//!     let server = Messenger::builder(EntityName::new(EntityType::OSD, 0))
//!         .default_policy(Policy::stateful_server(0))
//!         .dispatcher(Arc::new(Echo))
//!         .build()
//!         .unwrap();
//!     server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!     server.start().unwrap();
//! }
//! ```
#![deny(missing_docs)]

mod accept_v2;
mod accepter;
mod admin_socket;
mod auth;
mod busy_poll;
mod closing;
mod connection;
mod counters;
mod dispatch;
mod dispatcher;
mod error;
mod handshake_io;
mod inject;
mod messenger;
mod mon_auth;
mod msgs;
mod net;
mod pipe;
mod read_buffer;
mod reader;
mod recycle;
mod registry;
pub mod remote;
mod runtime_config;
mod shared;
mod throttle;
mod writer;

pub use auth::{AuthSetup, ClusterKey, SharedServiceKey, TicketSource};
pub use connection::{Connection, SendError};
pub use counters::CountersSnapshot;
pub use dispatcher::{ConnEvent, Dispatched, Dispatcher, RecipientDispatcher};
pub use error::{MessengerError, PipeError};
pub use messenger::{Messenger, MessengerBuilder, ShutdownOutcome};
pub use mon_auth::{MonAuth, MonAuthError, MonSession};
pub use msgr;
#[cfg(feature = "fault-injection")]
pub use msgs::KillTarget;
pub use msgs::PipeInfo;
pub use runtime_config::{apply_debug_ms, set_log_level_hook};
