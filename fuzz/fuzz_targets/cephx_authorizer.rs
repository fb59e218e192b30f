//! A service checking arbitrary cephx authorizers: through the acceptor with cephx required
//! (challenge, answer, verdict), and the check itself with and without a challenge issued.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::auth::cephx::{verify_authorizer, ServiceKeys};
use msgr::auth::{AuthMethods, CryptoKey};
use msgr::handshake::{Acceptor, AcceptorEvent, ServerAuth, SocketAuth};

const NOW: Duration = Duration::from_secs(1_700_000_100);

fuzz_target!(|data: &[u8]| {
    // The A.5 `mon.` key, so the seed's authorizer opens and the deep paths run.
    let key = CryptoKey::from_base64("AQCvDQ5rUS5/ABAABJ9Xvm4oLJG/nYIZP377Mw==").unwrap();
    let keys = ServiceKeys {
        service_id: 1,
        own: Some(key),
        rotating: vec![],
    };
    let _ = verify_authorizer(data, &keys, None, 5, NOW, Default::default());
    let _ = verify_authorizer(data, &keys, Some(5), 6, NOW, Default::default());
    let rules = Arc::new(ServerAuth {
        cluster: AuthMethods::parse("cephx").unwrap(),
        service: AuthMethods::parse("cephx").unwrap(),
        keys,
    });
    let mut acc = Acceptor::new(
        "127.0.0.1:6789/0".parse().unwrap(),
        "127.0.0.1:5000".parse().unwrap(),
    )
    .with_auth(SocketAuth::new(rules, NOW, 0xc5b8_10c6_5254_96dc));
    let mut buf = BytesMut::new();
    for chunk in data.chunks(61) {
        buf.extend_from_slice(chunk);
        match acc.handle_input(&mut buf) {
            Ok(Some(AcceptorEvent::Connect(_))) | Err(_) => return,
            Ok(_) => {
                let _ = acc.take_output();
            }
        }
    }
});
