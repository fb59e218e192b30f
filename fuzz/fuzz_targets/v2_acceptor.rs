//! The msgr2 server handshake on arbitrary client bytes (after a well-formed banner half the
//! time), with cephx required and the A.5 `mon.` key (so a seeded authorizer opens): every
//! verdict is answered, typed errors, never a panic.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::auth::cephx::ServiceKeys;
use msgr::auth::{AuthMethods, CryptoKey};
use msgr::handshake::ServerAuth;
use msgr::v2::acceptor::{IdentReply, V2Acceptor, V2AcceptorEvent, V2AcceptorParams};
use msgr::v2::{AddrVec, FrameLimits, TypedAddr};
use msgr::{EntityAddr, EntityType};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = CryptoKey::from_base64("AQCvDQ5rUS5/ABAABJ9Xvm4oLJG/nYIZP377Mw==").unwrap();
    let methods = AuthMethods::parse(if mode & 2 == 0 { "cephx" } else { "cephx, none" }).unwrap();
    let mut a = V2Acceptor::new(V2AcceptorParams {
        my_type: EntityType::MON,
        my_addrs: AddrVec(vec![TypedAddr::v2(EntityAddr::new(
            "127.0.0.1:3300".parse().unwrap(),
            0,
        ))]),
        gid: 0,
        socket_peer: "127.0.0.1:5000".parse().unwrap(),
        rules: Arc::new(ServerAuth {
            cluster: methods.clone(),
            service: methods,
            keys: ServiceKeys {
                service_id: 1,
                own: Some(key),
                rotating: vec![],
            },
        }),
        cluster_modes: vec![2, 1],
        service_modes: vec![2, 1],
        now: Duration::from_secs(1_700_000_100),
        challenge: 0xc5b8_10c6_5254_96dc,
        connection_secret: [7; 64],
        limits: FrameLimits::default(),
    });
    let mut buf = BytesMut::new();
    if mode & 1 == 1 {
        buf.extend_from_slice(&msgr::v2::banner::encode_banner());
    }
    for chunk in rest.chunks(usize::from(mode >> 2).max(1)) {
        buf.extend_from_slice(chunk);
        let _ = a.take_output();
        match a.handle_input(&mut buf) {
            Ok(Some(V2AcceptorEvent::Ident(_))) => {
                let reply = match mode % 3 {
                    0 => IdentReply::Reset { full: true },
                    1 => IdentReply::Retry(3),
                    _ => IdentReply::Open {
                        features_supported: 1,
                        features_required: 0,
                        global_seq: 1,
                        lossy: true,
                        server_cookie: 0,
                    },
                };
                if a.respond(reply).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
});
