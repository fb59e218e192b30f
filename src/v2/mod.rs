//! msgr2.1 (cephx spec §2-§7), sans IO: the banner, frames in crc and secure mode, and the
//! secure mode's cipher. v1 and v2 are two framings over one session core (`crate::pipe`).

pub mod acceptor;
pub mod addr;
pub mod banner;
pub mod connector;
#[cfg(test)]
mod connector_tests;
pub mod control;
pub mod crypto;
mod error;
pub mod frame;
mod handshake_io;
pub mod message;
#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use addr::{AddrType, AddrVec, TypedAddr};
pub use control::{Control, Ident, Reconnect, Tag};
pub use error::V2Error;
pub use frame::{Frame, FrameLimits, FrameReader, FrameWriter};
