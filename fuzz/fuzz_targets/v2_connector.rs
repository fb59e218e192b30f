//! The msgr2 client handshake on arbitrary server bytes (after a well-formed banner half the
//! time), with cephx to a monitor: typed errors, never a panic.
#![no_main]

use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::auth::cephx::MonAuthClient;
use msgr::auth::CryptoKey;
use msgr::v2::connector::{unbound_addrs, ClientAuth, V2Connector, V2ConnectorParams};
use msgr::v2::{FrameLimits, TypedAddr};
use msgr::{EntityAddr, EntityType};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = CryptoKey::from_base64("AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==").unwrap();
    let mut c = V2Connector::new(V2ConnectorParams {
        my_type: EntityType::CLIENT,
        my_addrs: unbound_addrs(1),
        target: TypedAddr::v2(EntityAddr::new("127.0.0.1:3300".parse().unwrap(), 0)),
        check_peer_nonce: true,
        peer_type: EntityType::MON,
        gid: -1,
        global_seq: 1,
        features_supported: msgr::features::CEPH_FEATURES_ALL,
        features_required: 0,
        lossy: true,
        client_cookie: 0,
        modes: vec![2, 1],
        auth: ClientAuth::Mon {
            client: Box::new(MonAuthClient::new("client.admin".parse().unwrap(), key, 0x35)),
            client_challenge: 7,
        },
        learn_addr: true,
        resume: None,
        limits: FrameLimits::default(),
        now: Duration::from_secs(1_800_000_000),
    });
    let mut buf = BytesMut::new();
    if mode & 1 == 1 {
        buf.extend_from_slice(&msgr::v2::banner::encode_banner());
    }
    for chunk in rest.chunks(usize::from(mode >> 1).max(1)) {
        buf.extend_from_slice(chunk);
        let _ = c.take_output();
        match c.handle_input(&mut buf) {
            Ok(_) => {}
            Err(_) => return,
        }
    }
});
