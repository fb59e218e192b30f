//! Addresses: a daemon that binds one address and advertises another (Ceph's `public_addr`),
//! as behind NAT, a container's port mapping or a proxy.

mod common;

use std::net::SocketAddr;

use common::chaos::{Chaos, ChaosProxy};
use common::*;
use msgr::handshake::HandshakeError;
use msgr::{EntityAddr, EntityType, Policy};
use msgr_actors::{Messenger, PipeError};

/// An OSD bound at 127.0.0.1:P whose only way in is a proxy at 127.0.0.2:Q.
async fn osd_behind_proxy(public_addr: bool) -> (Messenger, ChaosProxy) {
    let bound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = ChaosProxy::start("127.0.0.2:0".parse().unwrap(), bound, Chaos::none(1)).await;
    let mut config = test_config();
    if public_addr {
        config = config.public_addr(Some(proxy.addr));
    }
    let srv = Messenger::builder(osd(0))
        .config(config)
        .default_policy(Policy::stateful_server(0))
        .dispatcher(std::sync::Arc::new(Recorder::echoing()))
        .build()
        .unwrap();
    let advertised = srv.bind(bound).await.unwrap();
    assert_eq!(advertised, srv.my_addr());
    srv.start().unwrap();
    (srv, proxy)
}

/// The server advertises the proxy's address; a client that dials it (nonce checked) gets
/// through, sees that address as its peer's, and its messages go both ways.
#[actix_rt::test]
async fn a_server_advertises_its_public_addr_and_peers_reach_it_there() {
    init_tracing();
    let (srv, proxy) = osd_behind_proxy(true).await;
    let advertised = srv.my_addr();
    assert_eq!(
        advertised.addr,
        Some(proxy.addr),
        "bound 127.0.0.1, advertises the proxy"
    );
    let rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        rec.clone(),
        test_config(),
    );
    let conn = cli
        .get_connection(advertised, EntityType::OSD)
        .await
        .unwrap();
    for i in 0..10 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "ten echoes through the proxy", || rec.total() == 10).await;
    assert_eq!(conn.peer_addr(), advertised);
    assert!(
        proxy.counts().connections >= 1,
        "the traffic went through the proxy"
    );
    cli.shutdown().await;
    srv.shutdown().await;
}

/// The control: without `public_addr` the same server claims its bound address, and a
/// client that dialled the proxy refuses it as the wrong peer (what Ceph does too).
#[actix_rt::test]
async fn without_public_addr_a_proxied_server_claims_the_wrong_address() {
    init_tracing();
    let (srv, proxy) = osd_behind_proxy(false).await;
    assert_ne!(srv.my_addr().addr, Some(proxy.addr));
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        Recorder::default(),
        test_config(),
    );
    let via_proxy = EntityAddr::new(proxy.addr, srv.my_addr().nonce);
    let conn = cli
        .get_connection(via_proxy, EntityType::OSD)
        .await
        .unwrap();
    wait_for(20, "the handshake refused as the wrong peer", || {
        conn.last_error()
            .is_some_and(|e| matches!(&*e, PipeError::Handshake(HandshakeError::WrongPeer { .. })))
    })
    .await;
    assert!(!conn.is_connected());
    cli.shutdown().await;
    srv.shutdown().await;
}
