//! The socket side of handshakes: drives `msgr::handshake` state machines over a TCP stream,
//! within `ms_connection_ready_timeout`. Protocol decisions stay in the state machines.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use msgr::handshake::{
    Accepted, Acceptor, AcceptorEvent, Connector, ConnectorEvent, ConnectorParams, Decision,
    Established, ReplyContext,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::PipeError;
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
    Ready(ConnectOutcome),
    /// The peer answered RESETSESSION; the connector already asked again with connect_seq 0.
    /// The session must reset now, then the dial goes on ([`resume_connect`]).
    SessionReset(Box<Dialling>),
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
            let ev = d.conn.handle_input(&mut d.inbuf)?;
            tracing::trace!(?ev, buffered = d.inbuf.len(), "connector step");
            // Write what this step produced before waiting for the answer to it.
            if let Some(out) = d.conn.take_output() {
                d.stream.write_all(&out).await?;
            }
            match ev {
                None => read_more(&mut d.stream, &mut d.inbuf, d.conn.wanted()).await?,
                Some(ConnectorEvent::Ready(est)) => {
                    return Ok(DialStep::Ready(ConnectOutcome {
                        stream: d.stream,
                        inbuf: d.inbuf,
                        est,
                    }));
                }
                Some(ConnectorEvent::NeedGlobalSeq { peer_global_seq }) => {
                    d.conn
                        .retry_global(shared.next_global_seq(peer_global_seq))?;
                    if let Some(out) = d.conn.take_output() {
                        d.stream.write_all(&out).await?;
                    }
                }
                Some(ConnectorEvent::SessionReset) => {
                    return Ok(DialStep::SessionReset(Box::new(d)))
                }
                Some(ConnectorEvent::Wait) => return Err(PipeError::Wait),
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
        let mut ready = match acceptor.respond(decision, &reply)? {
            Some(AcceptorEvent::Ready(a)) => Some(a),
            _ => None,
        };
        if let Some(out) = acceptor.take_output() {
            stream.write_all(&out).await?;
        }
        while ready.is_none() {
            match acceptor.handle_input(&mut inbuf)? {
                Some(AcceptorEvent::Ready(a)) => ready = Some(a),
                Some(AcceptorEvent::Connect(_)) => {
                    return Err(
                        msgr::handshake::HandshakeError::OutOfOrder("connect after open").into(),
                    )
                }
                None => read_more(&mut stream, &mut inbuf, acceptor.wanted()).await?,
            }
        }
        Ok((stream, inbuf, ready.expect("loop ends when ready")))
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)?
}
