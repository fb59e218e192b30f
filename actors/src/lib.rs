//! # msgr-actors: Ceph's SimpleMessenger as actix actors
//!
//! The runtime that drives the sans-IO [`msgr`] protocol over TCP. Per peer session there is a
//! [`Pipe`](pipe::Pipe) (the session, supervised), a [`PipeReader`](reader::PipeReader) and a
//! [`PipeWriter`](writer::PipeWriter); per shard thread a [`DispatchQueue`](dispatch::DispatchQueue);
//! per messenger an [`Accepter`](accepter::Accepter) and a [`Registry`](registry::Registry).
//! A connection's actors all live on one shard, so the hot path never hops threads.
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

pub mod accepter;
mod busy_poll;
mod closing;
pub mod connection;
pub mod counters;
pub mod dispatch;
pub mod error;
pub mod inject;
pub mod messenger;
mod msgs;
pub mod net;
pub mod pipe;
mod read_buffer;
pub mod reader;
mod recycle;
pub mod registry;
mod shared;
pub mod throttle;
pub mod writer;

pub use connection::{Connection, SendError};
pub use counters::CountersSnapshot;
pub use dispatch::{ConnEvent, Dispatched, Dispatcher, RecipientDispatcher};
pub use error::{MessengerError, PipeError};
pub use messenger::{Messenger, MessengerBuilder, ShutdownOutcome};
pub use msgr;
pub use pipe::{KillTarget, PipeInfo};
