//! The mon client's exchange against spec Appendix A.3, and against replies built here with
//! the service's own structures (round trips, tampering, refusals).

use std::time::Duration;

use bytes::Bytes;

use super::types::*;
use super::*;
use crate::auth::{encode_encrypt, AuthName, CryptoKey};
use crate::denc::{to_vec, Encode};
use crate::entity::EntityType;
use crate::message::Message;
use crate::messages::{MAuth, MAuthReply};
use crate::wire::hex;

const NOW: Duration = Duration::from_secs(1_800_000_000);

fn admin() -> (AuthName, CryptoKey) {
    let key = CryptoKey::from_base64("AQBJDg5r+ic3JBAA47KFiDc9Mks+jDahkHAxOg==").unwrap();
    ("client.admin".parse().unwrap(), key)
}

fn reply(global_id: u64, result_bl: Vec<u8>) -> MAuthReply {
    MAuthReply {
        protocol: 2,
        result: 0,
        global_id,
        result_bl: result_bl.into(),
        result_msg: String::new(),
    }
}

fn front(m: &MAuth) -> Vec<u8> {
    Message::from_payload(m).front.to_vec()
}

/// Rounds 1 and 2 of spec A.3, byte for byte: the proof of key the live mon accepted.
#[test]
fn rounds_one_and_two_match_what_the_live_mon_accepted() {
    let (name, key) = admin();
    let mut c = MonAuthClient::new(name, key, 0x35);
    assert_eq!(
        front(&c.start()),
        hex(
            "0000000000000000ffff0000000000000000 00000000 1e000000 01 01000000 02000000 \
             08000000 05000000 61646d696e 0000000000000000 00000000"
        )
    );
    let r1 = reply(4098, hex("01 95cfd48b28b5be33"));
    let MonAuthStep::Send(m2) = c.handle_reply(&r1, NOW, 0xccf3_ce83_012a_1d95).unwrap() else {
        panic!("round 2 expected")
    };
    assert_eq!(
        front(&m2),
        hex(
            "0000000000000000ffff0000000000000000 02000000 24000000 0001 03 951d2a0183cef3cc \
             e387f7f9170af8be 01 0000000000000000 00000000 35000000 00000000"
        )
    );
    assert_eq!(c.global_id(), 4098);
}

/// What a mon would seal: a ticket for `service` with `session_key`, for `holder_key`.
fn ticket_entry(
    service: u32,
    session_key: &CryptoKey,
    holder_key: &CryptoKey,
    service_key: &CryptoKey,
    validity: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    service.encode(&mut out);
    out.push(1);
    let msg_a = ServiceTicket {
        session_key: session_key.clone(),
        validity: UTime {
            sec: validity,
            nsec: 0,
        },
    };
    Bytes::from(encode_encrypt(holder_key, &to_vec(&msg_a), false)).encode(&mut out);
    out.push(0);
    let info = ServiceTicketInfo {
        ticket: AuthTicket {
            name: "client.admin".parse().unwrap(),
            global_id: 4098,
            created: UTime::from_duration(NOW),
            expires: UTime::from_duration(NOW + Duration::from_secs(validity.into())),
            caps: CapsInfo::default(),
            flags: 0,
        },
        session_key: session_key.clone(),
    };
    let blob = TicketBlob {
        secret_id: 2,
        blob: encode_encrypt(service_key, &to_vec(&info), false).into(),
    };
    Bytes::from(to_vec(&blob)).encode(&mut out);
    out
}

fn key(fill: u8) -> CryptoKey {
    CryptoKey::new((0, 0), &[fill; 16]).unwrap()
}

/// Drives a whole exchange: challenge, AUTH ticket, then two service tickets asked with it.
#[test]
fn a_whole_exchange_yields_every_wanted_ticket_and_renews() {
    let (name, secret) = admin();
    let auth_session = key(1);
    let mut c = MonAuthClient::new(name, secret.clone(), 0x15);
    c.start();
    c.handle_reply(&reply(4098, hex("01 95cfd48b28b5be33")), NOW, 7)
        .unwrap();
    let mut r2 = Vec::new();
    CEPHX_GET_AUTH_SESSION_KEY.encode(&mut r2);
    0i32.encode(&mut r2);
    r2.push(1);
    1u32.encode(&mut r2);
    r2.extend(ticket_entry(0x20, &auth_session, &secret, &key(9), 7200));
    0u32.encode(&mut r2); // cbl
    0u32.encode(&mut r2); // extra
    let MonAuthStep::Send(m3) = c.handle_reply(&reply(4098, r2), NOW, 0x55).unwrap() else {
        panic!("round 3 expected")
    };
    // The authorizer carries the AUTH ticket, and asks for MON | OSD | MGR.
    assert_eq!(&m3.auth_payload[..3], &hex("0002 01")[..]);
    assert_eq!(
        &m3.auth_payload[m3.auth_payload.len() - 5..],
        &hex("01 15000000")[..]
    );
    let mut r3 = Vec::new();
    CEPHX_GET_PRINCIPAL_SESSION_KEY.encode(&mut r3);
    0i32.encode(&mut r3);
    r3.push(1);
    3u32.encode(&mut r3);
    for svc in [1, 4, 0x10] {
        r3.extend(ticket_entry(
            svc,
            &key(svc as u8 + 1),
            &auth_session,
            &key(9),
            3600,
        ));
    }
    assert_eq!(
        c.handle_reply(&reply(4098, r3), NOW, 0).unwrap(),
        MonAuthStep::Done
    );
    assert!(c.is_authenticated());
    let osd = c.tickets().get(4).unwrap();
    assert_eq!(osd.session_key, key(5));
    assert_eq!(osd.expires, NOW + Duration::from_secs(3600));
    assert_eq!(osd.renew_after, NOW + Duration::from_secs(2700));
    assert_eq!(c.next_renewal(), Some(NOW + Duration::from_secs(2700)));
    assert_eq!(c.renew(NOW + Duration::from_secs(2699), 1), None);
    // Past the renewal time the service tickets are asked for again, with the AUTH ticket.
    let renewal = c.renew(NOW + Duration::from_secs(2701), 1).unwrap();
    assert_eq!(&renewal.auth_payload[..2], &hex("0002")[..]);
    // Debug output of the client and its tickets holds no secret.
    let dbg = format!("{c:?}");
    assert!(dbg.contains("global_id: 4098"), "{dbg}");
    assert!(
        !dbg.contains("session_key") && !dbg.contains("227, 178"),
        "{dbg}"
    );
}

#[test]
fn refusals_and_damage_are_typed_errors() {
    let (name, secret) = admin();
    let mut c = MonAuthClient::new(name.clone(), secret.clone(), 0x35);
    c.start();
    let mut refused = reply(0, vec![]);
    refused.result = -13;
    let err = c.handle_reply(&refused, NOW, 1).unwrap_err();
    assert_eq!(err, CephxError::Refused { result: -13 });
    assert!(err.to_string().contains("EACCES"), "{err}");
    // After a failure nothing more is accepted.
    assert!(c
        .handle_reply(&reply(1, hex("01 0100000000000000")), NOW, 1)
        .is_err());

    let mut c = MonAuthClient::new(name.clone(), secret.clone(), 0x35);
    c.start();
    let mut none = reply(5, hex("01 0100000000000000"));
    none.protocol = 1;
    assert_eq!(c.handle_reply(&none, NOW, 1), Err(CephxError::Method(1)));

    // A ticket sealed for someone else's key: the envelope's magic fails, no panic.
    let mut c = MonAuthClient::new(name, secret, 0x35);
    c.start();
    c.handle_reply(&reply(4098, hex("01 95cfd48b28b5be33")), NOW, 7)
        .unwrap();
    let mut r2 = Vec::new();
    CEPHX_GET_AUTH_SESSION_KEY.encode(&mut r2);
    0i32.encode(&mut r2);
    r2.push(1);
    1u32.encode(&mut r2);
    r2.extend(ticket_entry(0x20, &key(1), &key(3), &key(9), 7200));
    let err = c
        .handle_reply(&reply(4098, r2.clone()), NOW, 1)
        .unwrap_err();
    assert!(matches!(err, CephxError::Crypto(_)), "{err:?}");
    // Every truncation of a reply is an error, never a panic.
    for cut in 0..r2.len() {
        let (name, secret) = admin();
        let mut c = MonAuthClient::new(name, secret, 0x35);
        c.start();
        c.handle_reply(&reply(4098, hex("01 95cfd48b28b5be33")), NOW, 7)
            .unwrap();
        assert!(c
            .handle_reply(&reply(4098, r2[..cut].to_vec()), NOW, 1)
            .is_err());
    }
}

/// The A.5 authorizer: our client builds the bytes the live mon accepted, and our service
/// side challenges, checks the answer and replies as the mon did.
#[test]
fn the_a5_authorizer_round_trips_through_our_service_side() {
    let mon_key = CryptoKey::from_base64("AQCvDQ5rUS5/ABAABJ9Xvm4oLJG/nYIZP377Mw==").unwrap();
    let session =
        CryptoKey::new((1_700_000_000, 0), &hex("000102030405060708090a0b0c0d0e0f")).unwrap();
    let info = ServiceTicketInfo {
        ticket: AuthTicket {
            name: AuthName {
                ty: EntityType::MON,
                id: String::new(),
            },
            global_id: 0,
            created: UTime {
                sec: 1_700_000_000,
                nsec: 0,
            },
            expires: UTime {
                sec: 1_700_003_600,
                nsec: 0,
            },
            caps: CapsInfo::default(),
            flags: 0,
        },
        session_key: session,
    };
    let then = Duration::from_secs(1_700_000_100);
    let ticket = self_made_ticket(&mon_key, 1, &info, then);
    let mut client = ClientAuthorizer::new(&ticket, 0, 0x0123_4567_89ab_cdef);
    let first = client.encode();
    assert_eq!(
        first.to_vec(),
        hex("01 0000000000000000 01000000 01 ffffffffffffffff 60000000 \
             c7674bc36dbb4fb420c8dd6763f720c812e7b73a23a477b212d85ec1cfba1beabc4c1c0c2df5a856\
             1651e7d3cb68177de1bc6b26d5431ace94a0aa919a7e2759d47cd866db496d9efd8c88e43978972d\
             6c68f6e916f9f1ba90405120c579b9e6 20000000 \
             ce7342e4e5066d5bc0bb50014f77b4adb94ae328a894e85348cce71ba4816d27")
    );
    let keys = ServiceKeys {
        service_id: 1,
        own: Some(mon_key),
        rotating: vec![],
    };
    let AuthorizerVerdict::Challenge { challenge, sealed } = verify_authorizer(
        &first,
        &keys,
        None,
        0xc5b8_10c6_5254_96dc,
        then,
        Bytes::new(),
    )
    .unwrap() else {
        panic!("a first authorizer is challenged")
    };
    // The mon's challenge of A.5, byte for byte.
    assert_eq!(
        sealed.to_vec(),
        hex("0d79f907b3f9a9339b4da63b1e886518bdb76b4506f3233ab2473b81cd1b16fb")
    );
    client.answer_challenge(&sealed).unwrap();
    let second = client.encode();
    assert_eq!(
        second[second.len() - 36..].to_vec(),
        hex("20000000 ce7342e4e5066d5bc0bb50014f77b4ad 03b4d40783e1204297f8e9eb94bb3513")
    );
    let AuthorizerVerdict::Authorized(peer) =
        verify_authorizer(&second, &keys, Some(challenge), 1, then, Bytes::new()).unwrap()
    else {
        panic!("the answered authorizer is accepted")
    };
    assert_eq!(
        peer.reply.to_vec(),
        hex("20000000 22fc92bd883a492a38eef8bec6348e30c97be89886b12d0deb3b66b9ebe05250")
    );
    assert!(client.verify_reply(&peer.reply).unwrap().is_empty());
    assert_eq!(peer.name.to_string(), "mon.");

    // Replayed on a new connection (no challenge issued there): challenged again, and the
    // old answer to a new challenge fails.
    let AuthorizerVerdict::Challenge {
        challenge: fresh, ..
    } = verify_authorizer(&second, &keys, None, 99, then, Bytes::new()).unwrap()
    else {
        panic!("a replay is challenged")
    };
    assert_eq!(
        verify_authorizer(&second, &keys, Some(fresh), 5, then, Bytes::new()).unwrap_err(),
        CephxError::ChallengeMismatch
    );
    // Expired, wrong key, tampered: refused.
    let later = Duration::from_secs(1_700_003_601);
    assert_eq!(
        verify_authorizer(&second, &keys, Some(challenge), 1, later, Bytes::new()).unwrap_err(),
        CephxError::Expired
    );
    let wrong = ServiceKeys {
        service_id: 1,
        own: Some(key(4)),
        rotating: vec![],
    };
    assert!(matches!(
        verify_authorizer(&second, &wrong, Some(challenge), 1, then, Bytes::new()),
        Err(CephxError::Crypto(_))
    ));
    let mut tampered = second.to_vec();
    tampered[40] ^= 1;
    assert!(verify_authorizer(&tampered, &keys, Some(challenge), 1, then, Bytes::new()).is_err());
    for cut in 0..second.len() {
        assert!(verify_authorizer(
            &second[..cut],
            &keys,
            Some(challenge),
            1,
            then,
            Bytes::new()
        )
        .is_err());
    }
}
