//! # msgr: Ceph's msgr v1 wire protocol, sans-IO
//!
//! This crate is a deterministic state machine: it owns no sockets, spawns no tasks and reads no
//! clock. Bytes and events go in; bytes, messages and decisions come out. The `msgr-actors` crate
//! drives it over TCP with actix actors; tests drive it in memory.
//!
//! * [`entity`]: entity types, names, the legacy 136-byte address.
//! * [`features`]: feature bits.
//! * [`wire`]: banner, connect structs, header / footer, CRC, frame encoder and decoder.
//! * [`denc`]: Ceph's payload encoding; [`message`] and [`messages`]: messages and typed payloads.
//! * [`handshake`]: connector and acceptor state machines (spec §2).
//! * [`session`]: sequence numbers, priority queues, acks, requeue and replay (spec §4).
//! * [`pipe`]: a session's whole lifecycle (dial / accept / adopt decisions, races, faults,
//!   standby, backoff, keepalives) as one state machine driven with the time passed in.
//! * [`auth`]: cephx keys, keyrings and crypto (RustCrypto underneath).
//! * [`policy`] and [`config`]: Ceph's policy presets and `ms_*` options.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod auth;
pub mod config;
pub mod denc;
pub mod entity;
pub mod error;
pub mod features;
pub mod framing;
pub mod handshake;
pub mod message;
pub mod messages;
pub mod pipe;
pub mod policy;
pub mod session;
pub mod v2;
pub mod wire;

pub use config::Config;
pub use entity::{EntityAddr, EntityName, EntityType};
pub use error::{DecodeError, DencError};
pub use message::{Message, Payload};
pub use policy::Policy;
