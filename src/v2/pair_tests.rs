//! Our msgr2 connector against our msgr2 acceptor, in memory: cephx authorizers (challenge,
//! reply, session key) in secure and crc mode, auth none, refusals, and a man in the middle who
//! downgrades the offered modes (caught by AUTH_SIGNATURE).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::acceptor::{IdentReply, IdentRequest, V2Acceptor, V2AcceptorEvent, V2AcceptorParams};
use super::connector::{
    unbound_addrs, ClientAuth, V2Connector, V2ConnectorEvent, V2ConnectorParams,
};
use super::frame::{FrameLimits, TAG_MESSAGE};
use super::message::{decode_message, encode_header2};
use super::*;
use crate::auth::cephx::types::{AuthTicket, CapsInfo, ServiceTicketInfo, UTime};
use crate::auth::cephx::{self_made_ticket, ClientAuthorizer, ServiceKeys};
use crate::auth::{AuthMethod, AuthMethods, CryptoKey};
use crate::entity::{EntityAddr, EntityName, EntityType};
use crate::features::CEPH_FEATURES_ALL;
use crate::handshake::ServerAuth;
use crate::message::Message;

const NOW: Duration = Duration::from_secs(1_800_000_000);

fn key(fill: u8) -> CryptoKey {
    CryptoKey::new((0, 0), &[fill; 16]).unwrap()
}

fn server_addr() -> EntityAddr {
    EntityAddr::new("127.0.0.1:6800".parse().unwrap(), 42)
}

fn authorizer(service_key: &CryptoKey) -> ClientAuthorizer {
    let info = ServiceTicketInfo {
        ticket: AuthTicket {
            name: "client.x".parse().unwrap(),
            global_id: 4100,
            created: UTime::from_duration(NOW),
            expires: UTime::from_duration(NOW + Duration::from_secs(600)),
            caps: CapsInfo::default(),
            flags: 0,
        },
        session_key: key(7),
    };
    ClientAuthorizer::new(&self_made_ticket(service_key, 4, &info, NOW), 4100, 99)
}

fn client(auth: ClientAuth, modes: Vec<u32>) -> V2Connector {
    V2Connector::new(V2ConnectorParams {
        my_type: EntityType::CLIENT,
        my_addrs: unbound_addrs(5),
        target: TypedAddr::v2(server_addr()),
        check_peer_nonce: true,
        peer_type: EntityType::OSD,
        gid: 3,
        global_seq: 1,
        features_supported: CEPH_FEATURES_ALL,
        features_required: 0,
        lossy: false,
        client_cookie: 77,
        modes,
        auth,
        learn_addr: true,
        resume: None,
        limits: FrameLimits::default(),
        now: NOW,
    })
}

fn server(methods: &str, modes: Vec<u32>) -> V2Acceptor {
    let m = AuthMethods::parse(methods).unwrap();
    V2Acceptor::new(V2AcceptorParams {
        my_type: EntityType::OSD,
        my_addrs: AddrVec(vec![TypedAddr::v2(server_addr())]),
        gid: 0,
        socket_peer: "127.0.0.1:41000".parse().unwrap(),
        rules: Arc::new(ServerAuth {
            cluster: m.clone(),
            service: m,
            keys: ServiceKeys {
                service_id: 4,
                own: Some(key(1)),
                rotating: vec![],
            },
        }),
        cluster_modes: modes.clone(),
        service_modes: modes,
        now: NOW,
        challenge: 0x5151,
        connection_secret: [9; 64],
        limits: FrameLimits::default(),
    })
}

/// Carries bytes both ways until both sides are done or one fails; `tamper` may change what
/// the client sends (a man in the middle). Returns the events and the two sides.
struct Run {
    c: V2Connector,
    s: V2Acceptor,
    client_result: Result<Option<V2ConnectorEvent>, V2Error>,
    server_result: Result<Option<V2AcceptorEvent>, V2Error>,
}

fn run(mut c: V2Connector, mut s: V2Acceptor, tamper: impl Fn(&mut BytesMut)) -> Run {
    let (mut to_s, mut to_c) = (BytesMut::new(), BytesMut::new());
    let mut client_result = Ok(None);
    let mut server_result = Ok(None);
    for _ in 0..20 {
        if let Some(b) = c.take_output() {
            let mut b = BytesMut::from(&b[..]);
            tamper(&mut b);
            to_s.extend_from_slice(&b);
        }
        if let Some(b) = s.take_output() {
            to_c.extend_from_slice(&b);
        }
        if server_result.is_ok() && !matches!(server_result, Ok(Some(_))) {
            server_result = s.handle_input(&mut to_s);
            if let Ok(Some(V2AcceptorEvent::Ident(ev))) = &server_result {
                let IdentRequest::Fresh(id) = &ev.request else {
                    panic!("a fresh session")
                };
                assert_eq!(id.cookie, 77);
                s.respond(IdentReply::Open {
                    features_supported: CEPH_FEATURES_ALL,
                    features_required: 0,
                    global_seq: 8,
                    lossy: false,
                    server_cookie: 1234,
                })
                .unwrap();
            }
        }
        if client_result.is_ok() && !matches!(client_result, Ok(Some(_))) {
            client_result = c.handle_input(&mut to_c);
        }
    }
    Run {
        c,
        s,
        client_result,
        server_result,
    }
}

/// A message each way through the two codecs.
fn exchange_messages(r: Run) {
    let (mut cr, mut cw) = r.c.into_codec();
    let (mut sr, mut sw) = r.s.into_codec();
    let mut m = Message::new(0xE000, Bytes::from_static(b"hello over msgr2"));
    m.seq = 1;
    m.data = Bytes::from(vec![3u8; 5000]);
    for (w, rd) in [(&mut cw, &mut sr), (&mut sw, &mut cr)] {
        let head = encode_header2(&m, 0);
        let mut out = Vec::new();
        w.write(
            TAG_MESSAGE,
            &[&head, &m.front, &m.middle, &m.data],
            &mut out,
        )
        .unwrap();
        let mut buf = BytesMut::new();
        for b in out {
            buf.extend_from_slice(&b);
        }
        let f = rd.decode(&mut buf).unwrap().unwrap();
        let (got, _) = decode_message(&f.segments, EntityName::new(EntityType::OSD, 0)).unwrap();
        assert_eq!((got.front, got.data.len()), (m.front.clone(), 5000));
    }
}

#[test]
fn a_cephx_authorizer_session_in_secure_and_in_crc_mode() {
    for (client_modes, server_modes, expect) in [
        (vec![2, 1], vec![2, 1], 2),
        (vec![1, 2], vec![2, 1], 1),
        (vec![2, 1], vec![1], 1),
    ] {
        let c = client(ClientAuth::Authorizer(authorizer(&key(1))), client_modes);
        let r = run(c, server("cephx", server_modes), |_| {});
        let Ok(Some(V2ConnectorEvent::Ready(est))) = &r.client_result else {
            panic!("client ready: {:?}", r.client_result)
        };
        assert_eq!(est.con_mode, expect);
        assert_eq!(
            (est.server_cookie, est.peer_global_seq, est.lossy),
            (1234, 8, false)
        );
        assert_eq!(est.session_key, Some(key(7)));
        let Ok(Some(V2AcceptorEvent::Ident(ev))) = &r.server_result else {
            panic!("server ident: {:?}", r.server_result)
        };
        assert_eq!(ev.method, AuthMethod::Cephx);
        assert_eq!(ev.name.as_ref().unwrap().to_string(), "client.x");
        assert_eq!(ev.global_id, 4100);
        exchange_messages(r);
    }
}

#[test]
fn auth_none_where_allowed() {
    let c = client(
        ClientAuth::None {
            name: "client.x".parse().unwrap(),
            global_id: 0,
        },
        vec![1],
    );
    let r = run(c, server("none", vec![1, 2]), |_| {});
    assert!(matches!(
        r.client_result,
        Ok(Some(V2ConnectorEvent::Ready(_)))
    ));
    let Ok(Some(V2AcceptorEvent::Ident(ev))) = &r.server_result else {
        panic!("{:?}", r.server_result)
    };
    assert_eq!(ev.method, AuthMethod::None);
    exchange_messages(r);
}

#[test]
fn refusals_reach_the_client_as_bad_method() {
    // A ticket sealed with another key: -13.
    let c = client(ClientAuth::Authorizer(authorizer(&key(2))), vec![2, 1]);
    let r = run(c, server("cephx", vec![2, 1]), |_| {});
    assert!(matches!(
        r.client_result,
        Err(V2Error::BadMethod { result: -13, .. })
    ));
    assert!(r.server_result.is_err());
    // auth none where cephx is required (a downgrade): -95, and the methods we allow.
    let c = client(
        ClientAuth::None {
            name: "client.x".parse().unwrap(),
            global_id: 0,
        },
        vec![1],
    );
    let r = run(c, server("cephx", vec![2, 1]), |_| {});
    let Err(V2Error::BadMethod {
        result: -95,
        allowed_methods,
        ..
    }) = &r.client_result
    else {
        panic!("{:?}", r.client_result)
    };
    assert_eq!(allowed_methods, &[2]);
    // Only secure offered, only crc allowed.
    let c = client(ClientAuth::Authorizer(authorizer(&key(1))), vec![2]);
    let r = run(c, server("cephx", vec![1]), |_| {});
    assert!(matches!(
        r.client_result,
        Err(V2Error::BadMethod { result: -95, .. })
    ));
}

/// A man in the middle rewrites the client's AUTH_REQUEST to offer crc only (fixing its
/// CRCs): the server agrees to crc, but its AUTH_SIGNATURE covers the forged request, and the
/// client, which signed what it really sent, refuses the session.
#[test]
fn a_downgrade_of_the_offered_modes_is_caught_by_auth_signature() {
    let downgrade = |b: &mut BytesMut| {
        let mut r = FrameReader::crc(FrameLimits::default());
        let mut copy = b.clone();
        let Ok(Some(f)) = r.decode(&mut copy) else {
            return;
        };
        if f.tag != Tag::AuthRequest as u8 {
            return;
        }
        let Ok(Control::AuthRequest {
            method, payload, ..
        }) = Control::decode(f.tag, &f.segments[0])
        else {
            return;
        };
        let forged = Control::AuthRequest {
            method,
            modes: vec![1],
            payload,
        };
        let mut out = Vec::new();
        FrameWriter::crc()
            .write(f.tag, &[&forged.encode()], &mut out)
            .unwrap();
        b.clear();
        for o in out {
            b.extend_from_slice(&o);
        }
        b.extend_from_slice(&copy);
    };
    let c = client(ClientAuth::Authorizer(authorizer(&key(1))), vec![2, 1]);
    let r = run(c, server("cephx", vec![2, 1]), downgrade);
    assert_eq!(r.client_result.unwrap_err(), V2Error::AuthSignature);
    // The server's signature covers the forged bytes, the client's covers what the server
    // sent (untouched): the client refuses, and the server never hears an ident.
    assert!(matches!(r.server_result, Ok(None)));
}
