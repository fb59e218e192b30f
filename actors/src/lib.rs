//! msgr-actors: the actix runtime that drives the sans-IO `msgr` protocol over TCP.
#![deny(missing_docs)]

pub use msgr;
