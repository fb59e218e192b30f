//! The accept task of a msgr2 socket: the V2Acceptor greets, authenticates and reads the
//! client's ident; the session's Pipe decides on it with the same rules as a v1 connect (the
//! ident becomes a connect: a fresh CLIENT_IDENT is connect_seq 0); an Open moves the socket
//! into the Pipe, which answers SERVER_IDENT. SESSION_RECONNECT is answered with a full
//! SESSION_RESET for now: msgr2 sessions are not resumed yet, so the client starts afresh and
//! hears of the reset (no silent loss).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use msgr::handshake::{AuthOutcome, ConnectRequest, Decision};
use msgr::v2::acceptor::{IdentReply, IdentRequest, V2Acceptor, V2AcceptorEvent, V2AcceptorParams};
use msgr::v2::control::Ident;
use msgr::v2::FrameLimits;
use msgr::wire::ConnectMsg;
use msgr::{EntityAddr, EntityType};
use rand::RngCore;

use crate::accepter::decide_via_pipe;
use crate::auth::wall_clock;
use crate::error::PipeError;
use crate::handshake_io::{next_event, write_output};
use crate::msgs::{AcceptingSide, Adopt};
use crate::net::{self, SocketSlot};
use crate::shared::Shared;

fn params(shared: &Shared, socket_peer: SocketAddr) -> V2AcceptorParams {
    let cfg = &shared.config;
    let modes = |text: &str| msgr::config::parse_modes(text).unwrap_or_else(|_| vec![1, 2]);
    let mon = shared.name.ty == EntityType::MON;
    let (cluster, service) = if mon {
        (&cfg.ms_mon_cluster_mode, &cfg.ms_mon_service_mode)
    } else {
        (&cfg.ms_cluster_mode, &cfg.ms_service_mode)
    };
    let mut secret = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    V2AcceptorParams {
        my_type: shared.name.ty,
        my_addrs: shared.my_addrvec(),
        gid: shared.name.num,
        socket_peer,
        rules: shared.auth.server.clone(),
        cluster_modes: modes(cluster),
        service_modes: modes(service),
        now: wall_clock(),
        challenge: rand::rngs::OsRng.next_u64(),
        connection_secret: secret,
        limits: FrameLimits {
            max_message: cfg.ms_max_message_bytes,
            ..FrameLimits::default()
        },
    }
}

/// The ident as the connect the session rules decide on.
fn as_connect(
    id: &Ident,
    peer_type: EntityType,
    socket_peer: SocketAddr,
    shared: &Shared,
) -> ConnectRequest {
    // The peer's address: its first listed, with a blank IP filled from the socket (a client
    // that never bound lists type ANY, its nonce, no IP).
    let mut peer_addr = id.addrs.0.first().map_or(EntityAddr::blank(0), |a| a.addr);
    if peer_addr.is_blank_ip() {
        peer_addr.addr = Some(SocketAddr::new(socket_peer.ip(), peer_addr.port()));
    }
    ConnectRequest {
        connect: ConnectMsg {
            features: id.features_supported,
            host_type: peer_type,
            global_seq: id.global_seq as u32,
            connect_seq: 0,
            protocol_version: shared.protocol_version(peer_type, false),
            authorizer_protocol: 0,
            authorizer_len: 0,
            flags: (id.flags & 1) as u8,
        },
        authorizer: Default::default(),
        peer_addr,
        auth: AuthOutcome::default(),
    }
}

/// Greets, authenticates, reads idents and gets each decided by the peer's Pipe, until one
/// opens (the socket then moves into the Pipe) or the socket fails.
pub(crate) async fn accept_handshake_v2(
    std_stream: std::net::TcpStream,
    shared: Arc<Shared>,
    shard: usize,
    slot: SocketSlot,
) -> Result<(), PipeError> {
    let mut stream = net::attach(std_stream)?;
    let peer = stream.peer_addr()?;
    let mut acceptor = V2Acceptor::new(params(&shared, peer));
    let mut inbuf = BytesMut::with_capacity(1024);
    let deadline = shared.config.ms_connection_ready_timeout;
    let handed = tokio::time::timeout(deadline, async {
        loop {
            let V2AcceptorEvent::Ident(ev) =
                next_event(&mut stream, &mut acceptor, &mut inbuf).await?;
            let id = match &ev.request {
                IdentRequest::Fresh(id) => id.clone(),
                IdentRequest::Reconnect(_) => {
                    acceptor
                        .respond(IdentReply::Reset { full: true })
                        .map_err(v2)?;
                    write_output(&mut stream, &mut acceptor).await?;
                    continue;
                }
            };
            let req = as_connect(&id, ev.peer_type, peer, &shared);
            let Some((pipe, (decision, decided_at))) = decide_via_pipe(&shared, &req, shard).await
            else {
                return Err(PipeError::Io(std::io::Error::other(
                    "messenger is shutting down",
                )));
            };
            let policy = shared.policy_for(ev.peer_type);
            let reply = match decision {
                Decision::Open { .. } => return Ok((pipe, decision, decided_at, req, id.gid)),
                Decision::RetryGlobal { peer_global_seq } => {
                    IdentReply::RetryGlobal(u64::from(peer_global_seq))
                }
                Decision::RetrySession { connect_seq } => {
                    IdentReply::Retry(u64::from(connect_seq.saturating_sub(1)))
                }
                Decision::ResetSession => IdentReply::Reset { full: true },
                Decision::Wait => IdentReply::Wait,
                Decision::Features => {
                    IdentReply::MissingFeatures(policy.features_required & !id.features_supported)
                }
                // Versions and authorizers are settled before the ident in msgr2.
                Decision::BadProtoVer | Decision::BadAuthorizer => {
                    return Err(v2(msgr::v2::V2Error::OutOfOrder("CLIENT_IDENT")));
                }
            };
            tracing::debug!(%peer, ?reply, "msgr2 ident refused or retried");
            acceptor.respond(reply.clone()).map_err(v2)?;
            write_output(&mut stream, &mut acceptor).await?;
            if reply == IdentReply::Wait {
                return Err(PipeError::Wait);
            }
        }
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)??;
    let (pipe, decision, decided_at, req, peer_gid) = handed;
    pipe.adopt.do_send(Adopt {
        stream: net::detach(stream)?,
        acceptor: AcceptingSide::V2 {
            acceptor: Box::new(acceptor),
            peer_gid,
        },
        inbuf,
        decision,
        decided_at,
        req,
        slot: Some(slot),
    });
    Ok(())
}

fn v2(e: msgr::v2::V2Error) -> PipeError {
    PipeError::Handshake(msgr::handshake::HandshakeError::V2(Box::new(e)))
}
