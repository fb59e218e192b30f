//! The socket side of handshakes: drives `msgr::handshake` state machines over a TCP stream,
//! within `ms_connection_ready_timeout`. Protocol decisions stay in the state machines.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use msgr::handshake::{
    Accepted, Acceptor, AcceptorEvent, Connector, ConnectorEvent, ConnectorParams, Decision,
    Established, ReplyContext,
};
use tokio::net::TcpStream;

use crate::error::PipeError;
use crate::handshake_io::{next_event, write_output};
use crate::net;
use crate::shared::Shared;

/// A completed outgoing handshake.
pub(crate) struct ConnectOutcome {
    pub(crate) stream: TcpStream,
    pub(crate) inbuf: BytesMut,
    pub(crate) est: Established,
}

/// A dial under way, paused for the session to hear of something.
pub(crate) struct Dialling {
    stream: TcpStream,
    conn: Connector,
    inbuf: BytesMut,
    deadline: tokio::time::Instant,
}

/// Where a dial stands when it hands control back to the Pipe.
pub(crate) enum DialStep {
    /// READY: the session may open.
    Ready(Box<ConnectOutcome>),
    /// The peer answered RESETSESSION; the connector already asked again with connect_seq 0.
    /// The session must reset now, then the dial goes on ([`resume_connect`]).
    SessionReset(Box<Dialling>),
}

/// Dials `peer` and runs the connector to READY, or until the session must hear of a reset.
pub(crate) async fn connect(
    peer: SocketAddr,
    params: ConnectorParams,
    shared: Arc<Shared>,
) -> Result<DialStep, PipeError> {
    if let Some(d) = shared.injector.internal_delay() {
        tokio::time::sleep(d).await;
    }
    let deadline = tokio::time::Instant::now() + shared.config.ms_connection_ready_timeout;
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(peer))
        .await
        .map_err(|_| PipeError::HandshakeTimeout)??;
    net::tune(&stream, &shared.config)?;
    let dialling = Dialling {
        stream,
        conn: Connector::new(params),
        inbuf: BytesMut::with_capacity(512),
        deadline,
    };
    resume_connect(Box::new(dialling), shared).await
}

/// Runs a dial's connector on, within the dial's deadline.
pub(crate) async fn resume_connect(
    d: Box<Dialling>,
    shared: Arc<Shared>,
) -> Result<DialStep, PipeError> {
    let deadline = d.deadline;
    let mut d = *d;
    tokio::time::timeout_at(deadline, async move {
        loop {
            let ev = next_event(&mut d.stream, &mut d.conn, &mut d.inbuf).await?;
            tracing::trace!(?ev, buffered = d.inbuf.len(), "connector step");
            match ev {
                ConnectorEvent::Ready(est) => {
                    return Ok(DialStep::Ready(Box::new(ConnectOutcome {
                        stream: d.stream,
                        inbuf: d.inbuf,
                        est,
                    })));
                }
                // The retry is written by the next step.
                ConnectorEvent::NeedGlobalSeq { peer_global_seq } => d
                    .conn
                    .retry_global(shared.next_global_seq(peer_global_seq))?,
                ConnectorEvent::SessionReset => return Ok(DialStep::SessionReset(Box::new(d))),
                ConnectorEvent::Wait => return Err(PipeError::Wait),
            }
        }
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)?
}

/// Writes the open reply on an adopted socket and, after SEQ, reads the peer's in_seq.
pub(crate) async fn finish_accept(
    mut stream: TcpStream,
    mut acceptor: Acceptor,
    mut inbuf: BytesMut,
    decision: Decision,
    reply: ReplyContext,
    shared: Arc<Shared>,
) -> Result<(TcpStream, BytesMut, Accepted), PipeError> {
    tokio::time::timeout(shared.config.ms_connection_ready_timeout, async {
        let ready = match acceptor.respond(decision, &reply)? {
            Some(AcceptorEvent::Ready(a)) => {
                write_output(&mut stream, &mut acceptor).await?;
                a
            }
            _ => match next_event(&mut stream, &mut acceptor, &mut inbuf).await? {
                AcceptorEvent::Ready(a) => a,
                AcceptorEvent::Connect(_) => {
                    return Err(
                        msgr::handshake::HandshakeError::OutOfOrder("connect after open").into(),
                    )
                }
            },
        };
        Ok((stream, inbuf, ready))
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)?
}
