//! The accept task of a msgr2 socket: the V2Acceptor greets, authenticates and reads the
//! client's ident; the session's Pipe decides on it with the same rules as a v1 connect (the
//! ident becomes a connect: a fresh CLIENT_IDENT is connect_seq 0); an Open moves the socket
//! into the Pipe, which answers SERVER_IDENT. A SESSION_RECONNECT is decided by the session's
//! cookies first, then as a connect with its connect_seq; an Open resumes the session
//! (SESSION_RECONNECT_OK with our in_seq).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use msgr::handshake::{AuthOutcome, ConnectRequest, Decision};
use msgr::pipe::{V2Connect, V2Decision};
use msgr::v2::acceptor::{IdentReply, IdentRequest, V2Acceptor, V2AcceptorEvent, V2AcceptorParams};
use msgr::v2::control::{Ident, Reconnect};
use msgr::v2::FrameLimits;
use msgr::wire::ConnectMsg;
use msgr::{EntityAddr, EntityType};
use rand::RngCore;

use crate::accepter::decide_via_pipe;
use crate::auth::wall_clock;
use crate::error::PipeError;
use crate::handshake_io::{next_event, write_output};
use crate::msgs::{AcceptingSide, Adopt, DecideAcceptV2};
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
            let (req, v2, gid, msg_seq) = match &ev.request {
                IdentRequest::Fresh(id) => {
                    let v2 = V2Connect {
                        client_cookie: id.cookie,
                        server_cookie: 0,
                        reconnect: false,
                    };
                    (
                        as_connect(id, ev.peer_type, peer, &shared),
                        v2,
                        id.gid,
                        None,
                    )
                }
                IdentRequest::Reconnect(r) => {
                    let v2 = V2Connect {
                        client_cookie: r.client_cookie,
                        server_cookie: r.server_cookie,
                        reconnect: true,
                    };
                    let req = as_reconnect(r, ev.peer_type, peer, &shared);
                    (req, v2, -1, Some(r.msg_seq))
                }
            };
            let (pipe, (decision, decided_at)) = decide_via_pipe(&shared, &req, shard, true, |p| {
                p.decide_v2.send(DecideAcceptV2(req.clone(), v2))
            })
            .await?;
            let policy = shared.policy_for(ev.peer_type);
            let reply = match decision {
                V2Decision::Rules(Decision::Open { .. }) => {
                    let d = match decision {
                        V2Decision::Rules(d) => d,
                        V2Decision::Reset { .. } => unreachable!("matched Open"),
                    };
                    return Ok((pipe, d, decided_at, req, gid, v2, msg_seq));
                }
                V2Decision::Reset { full } => IdentReply::Reset { full },
                V2Decision::Rules(d) => match d {
                    Decision::RetryGlobal { peer_global_seq } => {
                        IdentReply::RetryGlobal(u64::from(peer_global_seq))
                    }
                    Decision::RetrySession { connect_seq } => {
                        IdentReply::Retry(u64::from(connect_seq.saturating_sub(1)))
                    }
                    Decision::ResetSession => IdentReply::Reset { full: true },
                    Decision::Wait => IdentReply::Wait,
                    Decision::Features => IdentReply::MissingFeatures(
                        policy.features_required & !req.connect.features,
                    ),
                    Decision::Open { .. } => unreachable!("matched above"),
                    // Versions and authorizers are settled before the ident in msgr2.
                    Decision::BadProtoVer | Decision::BadAuthorizer => {
                        return Err(v2_err(msgr::v2::V2Error::OutOfOrder("CLIENT_IDENT")));
                    }
                },
            };
            tracing::debug!(%peer, ?reply, "msgr2 ident refused or retried");
            acceptor.respond(reply.clone()).map_err(v2_err)?;
            write_output(&mut stream, &mut acceptor).await?;
            if reply == IdentReply::Wait {
                return Err(PipeError::Wait);
            }
        }
    })
    .await
    .map_err(|_| PipeError::HandshakeTimeout)??;
    let (pipe, decision, decided_at, req, peer_gid, v2, reconnect_msg_seq) = handed;
    pipe.adopt.do_send(Adopt {
        stream: net::detach(stream)?,
        acceptor: AcceptingSide::V2 {
            acceptor: Box::new(acceptor),
            peer_gid,
            v2,
            reconnect_msg_seq,
        },
        inbuf,
        decision,
        decided_at,
        req,
        slot: Some(slot),
    });
    Ok(())
}

/// A SESSION_RECONNECT as the connect the session rules decide on: its connect_seq and
/// global_seq; features were settled when the session began.
fn as_reconnect(
    r: &Reconnect,
    peer_type: EntityType,
    socket_peer: SocketAddr,
    shared: &Shared,
) -> ConnectRequest {
    let id = Ident {
        addrs: r.addrs.clone(),
        target_addr: None,
        gid: -1,
        global_seq: r.global_seq,
        features_supported: u64::MAX,
        features_required: 0,
        flags: 0,
        cookie: r.client_cookie,
    };
    let mut req = as_connect(&id, peer_type, socket_peer, shared);
    req.connect.connect_seq = r.connect_seq as u32;
    req
}

fn v2_err(e: msgr::v2::V2Error) -> PipeError {
    PipeError::Handshake(msgr::handshake::HandshakeError::V2(Box::new(e)))
}
