//! `Accepter`: the listening socket. Each accepted socket is handed to a shard (round-robin),
//! where an accept task greets the peer, reads its connect, and asks the session's Pipe (found or
//! created by the Registry) what to answer. On an Open decision the socket moves into that Pipe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use msgr::handshake::{Acceptor, AcceptorEvent, Decision, ReplyContext};

use crate::counters::Counters;
use crate::error::PipeError;
use crate::handshake_io::next_event;
use crate::msgs::{AcceptRoute, AcceptingSide, Adopt, DecideAccept, RouteAccept, StopAccepting};
use crate::net::{self, SocketSlot};
use crate::shared::Shared;

/// The listener actor.
pub struct Accepter {
    listener: Option<std::net::TcpListener>,
    shared: Arc<Shared>,
    /// The socket speaks msgr2.
    v2: bool,
}

impl Accepter {
    pub(crate) fn new(listener: std::net::TcpListener, shared: Arc<Shared>, v2: bool) -> Self {
        Accepter {
            listener: Some(listener),
            shared,
            v2,
        }
    }
}

impl Actor for Accepter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let shared = self.shared.clone();
        ctx.spawn(
            accept_loop(listener, shared, self.v2)
                .into_actor(self)
                .map(|_, _, ctx| ctx.stop()),
        );
    }
}

impl Handler<StopAccepting> for Accepter {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>, v2: bool) {
    let listener = match net::attach_listener(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    let max = shared.config.ms_max_connections;
    let mut failures = 0;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                failures = 0;
                Counters::add(&shared.counters.unsharded().accepts, 1);
                if max > 0 && open.load(Ordering::Acquire) >= max {
                    Counters::add(&shared.counters.unsharded().accept_refused, 1);
                    tracing::warn!(%peer, max, "connection limit reached; closing the new connection");
                    continue;
                }
                let slot = SocketSlot::new(&open);
                if let Err(e) = net::tune(&stream, &shared.config) {
                    tracing::debug!(%peer, error = %e, "cannot set socket options");
                }
                let shard = shared.pick_shard();
                let std_stream = match net::detach(stream) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot hand the socket to a shard");
                        continue;
                    }
                };
                let sh = shared.clone();
                shared.shards[shard].spawn(async move {
                    let done = if v2 {
                        crate::accept_v2::accept_handshake_v2(std_stream, sh.clone(), shard, slot)
                            .await
                    } else {
                        accept_handshake(std_stream, sh.clone(), shard, slot).await
                    };
                    if let Err(e) = done {
                        tracing::info!(%peer, error = %e, "accept failed");
                        sh.counters.unsharded().fault(e.kind());
                    }
                });
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "accept failed");
                if failures >= shared.config.ms_max_accept_failures {
                    tracing::error!(
                        failures,
                        "too many accept failures in a row; the accepter stops"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Greets, reads connects, and gets each one decided by the peer's Pipe, until one opens.
async fn accept_handshake(
    std_stream: std::net::TcpStream,
    shared: Arc<Shared>,
    shard: usize,
    slot: SocketSlot,
) -> Result<(), PipeError> {
    let mut stream = net::attach(std_stream)?;
    let peer = stream.peer_addr()?;
    let mut acceptor = Acceptor::new(shared.my_addr(), peer).with_auth(shared.auth.socket_auth());
    let mut inbuf = BytesMut::with_capacity(512);
    let deadline = shared.config.ms_connection_ready_timeout;
    let handed_over = tokio::time::timeout(deadline, async {
        // (the type of what the handshake hands over, for `?` below)
        type HandOver = Option<(
            AcceptRoute,
            (Decision, u64),
            msgr::handshake::ConnectRequest,
        )>;
        loop {
            // Writes our banner first, and each refusal before the next connect.
            let req = match next_event(&mut stream, &mut acceptor, &mut inbuf).await? {
                AcceptorEvent::Connect(req) => req,
                AcceptorEvent::Ready(_) => unreachable!("opens are finished by the Pipe"),
            };
            let peer_type = req.connect.host_type;
            tracing::trace!(%peer, ?req.connect, "connect received");
            let (pipe, (decision, decided_at)) = decide_via_pipe(&shared, &req, shard, false, |p| {
                p.decide.send(DecideAccept(req.clone()))
            })
            .await?;
            if let Decision::Open { .. } = decision {
                return Ok::<HandOver, PipeError>(Some((pipe, (decision, decided_at), req)));
            }
            if let (Decision::BadAuthorizer, Some(why)) = (decision, &req.auth.refusal) {
                Counters::add(&shared.counters.unsharded().bad_authorizers, 1);
                tracing::warn!(%peer, host_type = %peer_type, error = %why, "refusing an authorizer");
            }
            if matches!(
                decision,
                Decision::BadProtoVer | Decision::Features | Decision::BadAuthorizer
            ) {
                Counters::add(&shared.counters.unsharded().accept_refused, 1);
                tracing::info!(%peer, ?decision, host_type = %peer_type, "refusing connect");
            }
            let reply = ReplyContext {
                policy: shared.policy_for(peer_type),
                protocol_version: shared.protocol_version(peer_type, false),
                server_global_seq: shared.next_global_seq(0),
                in_seq: 0,
            };
            acceptor.respond(decision, &reply)?;
        }
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)??;
    if let Some((pipe, (decision, decided_at), req)) = handed_over {
        // Where Ceph's accept sleeps for ms_inject_internal_delays too: between the decision
        // to replace and the replacement, the window in which the session can change under it.
        if let Some(d) = shared.injector.internal_delay() {
            tokio::time::sleep(d).await;
        }
        pipe.adopt.do_send(Adopt {
            stream: net::detach(stream)?,
            acceptor: AcceptingSide::V1(Box::new(acceptor)),
            inbuf,
            decision,
            decided_at,
            req,
            slot: Some(slot),
        });
    }
    Ok(())
}

/// Routes a connect (v1) or an ident (`v2`) to its Pipe and returns the Pipe's answer to
/// `ask`. A Pipe that stops between the route and the question is routed around once more.
pub(crate) async fn decide_via_pipe<D, Fut>(
    shared: &Arc<Shared>,
    req: &msgr::handshake::ConnectRequest,
    shard: usize,
    v2: bool,
    ask: impl Fn(&AcceptRoute) -> Fut,
) -> Result<(AcceptRoute, D), PipeError>
where
    Fut: std::future::Future<Output = Result<D, actix::MailboxError>>,
{
    for _ in 0..2 {
        let route = RouteAccept {
            peer_addr: req.peer_addr,
            peer_type: req.connect.host_type,
            shard,
            v2,
        };
        let Some(pipe) = shared
            .routes()
            .route_accept
            .send(route)
            .await
            .ok()
            .flatten()
        else {
            break;
        };
        if let Ok(d) = ask(&pipe).await {
            return Ok((pipe, d));
        }
    }
    Err(PipeError::Io(std::io::Error::other(
        "messenger is shutting down",
    )))
}
