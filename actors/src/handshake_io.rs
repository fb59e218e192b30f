//! The one IO loop under every handshake: a `msgr::handshake` state machine (connector or
//! acceptor) is fed what the socket delivers, and what it produces is written, until it has an
//! event for its caller. The dial, the accept task and the Pipe's finishing of an accept all
//! run their machines through [`next_event`]; the decisions stay in the machines and callers.

use bytes::{Bytes, BytesMut};
use msgr::handshake::{Acceptor, AcceptorEvent, Connector, ConnectorEvent, HandshakeError};
use msgr::v2::acceptor::{V2Acceptor, V2AcceptorEvent};
use msgr::v2::connector::{V2Connector, V2ConnectorEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::PipeError;

/// A handshake state machine, as the IO loop sees it.
pub(crate) trait Handshake {
    /// What it reports to its caller.
    type Event;
    /// Consumes input; an event when it has one.
    fn step(&mut self, input: &mut BytesMut) -> Result<Option<Self::Event>, HandshakeError>;
    /// Bytes to write, if any.
    fn take_output(&mut self) -> Option<Bytes>;
    /// How many bytes it needs before its next step can progress.
    fn wanted(&self) -> usize;
}

impl Handshake for Connector {
    type Event = ConnectorEvent;
    fn step(&mut self, input: &mut BytesMut) -> Result<Option<ConnectorEvent>, HandshakeError> {
        self.handle_input(input)
    }
    fn take_output(&mut self) -> Option<Bytes> {
        Connector::take_output(self)
    }
    fn wanted(&self) -> usize {
        Connector::wanted(self)
    }
}

impl Handshake for V2Connector {
    type Event = V2ConnectorEvent;
    fn step(&mut self, input: &mut BytesMut) -> Result<Option<V2ConnectorEvent>, HandshakeError> {
        self.handle_input(input)
            .map_err(|e| HandshakeError::V2(Box::new(e)))
    }
    fn take_output(&mut self) -> Option<Bytes> {
        V2Connector::take_output(self)
    }
    fn wanted(&self) -> usize {
        // The connector consumes whatever is there: any byte may complete its next step.
        1
    }
}

impl Handshake for V2Acceptor {
    type Event = V2AcceptorEvent;
    fn step(&mut self, input: &mut BytesMut) -> Result<Option<V2AcceptorEvent>, HandshakeError> {
        self.handle_input(input)
            .map_err(|e| HandshakeError::V2(Box::new(e)))
    }
    fn take_output(&mut self) -> Option<Bytes> {
        V2Acceptor::take_output(self)
    }
    fn wanted(&self) -> usize {
        1
    }
}

impl Handshake for Acceptor {
    type Event = AcceptorEvent;
    fn step(&mut self, input: &mut BytesMut) -> Result<Option<AcceptorEvent>, HandshakeError> {
        self.handle_input(input)
    }
    fn take_output(&mut self) -> Option<Bytes> {
        Acceptor::take_output(self)
    }
    fn wanted(&self) -> usize {
        Acceptor::wanted(self)
    }
}

/// Writes what `hs` has to say, then feeds it from `stream` until it reports an event (whose
/// output, such as our in_seq after SEQ, is written before it is returned).
pub(crate) async fn next_event<H: Handshake>(
    stream: &mut TcpStream,
    hs: &mut H,
    input: &mut BytesMut,
) -> Result<H::Event, PipeError> {
    write_output(stream, hs).await?;
    loop {
        let ev = hs.step(input)?;
        // What a step produced goes out before we wait for the answer to it.
        write_output(stream, hs).await?;
        match ev {
            Some(ev) => return Ok(ev),
            None => read_more(stream, input, hs.wanted()).await?,
        }
    }
}

/// Writes what `hs` produced, if anything.
pub(crate) async fn write_output<H: Handshake>(
    stream: &mut TcpStream,
    hs: &mut H,
) -> Result<(), PipeError> {
    if let Some(out) = hs.take_output() {
        stream.write_all(&out).await?;
    }
    Ok(())
}

/// Reads at least one more byte into `buf`, failing on EOF.
pub(crate) async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    wanted: usize,
) -> Result<(), PipeError> {
    buf.reserve(wanted.saturating_sub(buf.len()).max(64));
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}
