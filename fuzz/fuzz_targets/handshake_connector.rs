//! The connector on arbitrary server bytes (greeting, replies of every tag, SEQ).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::handshake::{Connector, ConnectorEvent, ConnectorParams};
use msgr::{EntityAddr, EntityType, Policy};

fuzz_target!(|data: &[u8]| {
    let mut conn = Connector::new(ConnectorParams {
        my_addr: EntityAddr::blank(7),
        my_type: EntityType::CLIENT,
        peer_addr: "127.0.0.1:6789/0".parse().unwrap(),
        check_peer_nonce: data.first().is_some_and(|b| b & 1 == 0),
        policy: Policy::lossless_client(0),
        global_seq: 1,
        connect_seq: 0,
        in_seq: 5,
        protocol_version: 15,
        authorizer: None,
        cephx: None,
        learn_addr: true,
    });
    let mut buf = BytesMut::new();
    for chunk in data.chunks(13) {
        buf.extend_from_slice(chunk);
        loop {
            match conn.handle_input(&mut buf) {
                Ok(Some(ConnectorEvent::NeedGlobalSeq { peer_global_seq })) => {
                    let _ = conn.retry_global(peer_global_seq.wrapping_add(1));
                }
                Ok(Some(ConnectorEvent::SessionReset)) => {}
                Ok(Some(_)) | Ok(None) | Err(_) => break,
            }
            let _ = conn.take_output();
        }
    }
});
