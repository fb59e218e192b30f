//! A raw client socket that completes a real v1 handshake with a server, for tests that then
//! write hand-made (malformed, forged) frames.

use bytes::BytesMut;
use msgr::auth::cephx::ClientAuthorizer;
use msgr::entity::EntityAddr;
use msgr::handshake::{protocol_version, Connector, ConnectorEvent, ConnectorParams, Established};
use msgr::{EntityType, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Dials `server` (an OSD) as a lossy client, presenting `cephx` when given, and runs the
/// handshake to READY; panics if the server refuses or closes.
pub async fn raw_handshake(
    server: EntityAddr,
    cephx: Option<ClientAuthorizer>,
) -> (TcpStream, Established) {
    let mut s = TcpStream::connect(server.addr.unwrap()).await.unwrap();
    let mut conn = Connector::new(ConnectorParams {
        my_addr: EntityAddr::blank(rand::random()),
        my_type: EntityType::CLIENT,
        peer_addr: server,
        check_peer_nonce: true,
        policy: Policy::lossy_client(0),
        global_seq: 1,
        connect_seq: 0,
        in_seq: 0,
        protocol_version: protocol_version(EntityType::CLIENT, EntityType::OSD, true),
        authorizer: None,
        cephx,
        learn_addr: true,
    });
    let mut inbuf = BytesMut::new();
    loop {
        let ev = conn.handle_input(&mut inbuf).unwrap();
        if let Some(out) = conn.take_output() {
            s.write_all(&out).await.unwrap();
        }
        match ev {
            None => assert!(
                s.read_buf(&mut inbuf).await.unwrap() > 0,
                "the server closed during a valid handshake"
            ),
            Some(ConnectorEvent::Ready(est)) => return (s, est),
            Some(ev) => panic!("unexpected {ev:?}"),
        }
    }
}
