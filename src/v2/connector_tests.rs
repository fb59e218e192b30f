//! Our connector replays `ceph -s`'s side of the spec's A.1 (secure) and A.2 (crc) sessions
//! with a live mon: given the mon's bytes and the same random values, it writes every byte the
//! real client wrote, and the message phase's first frames encode and decode the same.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::connector::{
    unbound_addrs, ClientAuth, V2Connector, V2ConnectorEvent, V2ConnectorParams,
};
use super::frame::FrameLimits;
use super::message::{decode_message, encode_header2};
use super::vectors::{A1_SECURE, A2_CRC};
use super::*;
use crate::auth::cephx::MonAuthClient;
use crate::auth::CryptoKey;
use crate::entity::{EntityAddr, EntityName, EntityType};
use crate::features::CEPH_FEATURES_ALL;
use crate::message::Message;
use crate::wire::hex;

#[derive(Clone)]
struct Replay {
    session: &'static [(&'static str, &'static str, &'static str)],
    nonce: u32,
    cookie: u64,
    modes: Vec<u32>,
    client_challenge: u64,
}

fn params(r: &Replay) -> V2ConnectorParams {
    let key = CryptoKey::from_base64("AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==").unwrap();
    let client = MonAuthClient::new("client.admin".parse().unwrap(), key, 0x20);
    V2ConnectorParams {
        my_type: EntityType::CLIENT,
        my_addrs: unbound_addrs(r.nonce),
        target: TypedAddr::v2(EntityAddr::new("127.0.0.1:13300".parse().unwrap(), 0)),
        check_peer_nonce: true,
        peer_type: EntityType::MON,
        gid: -1,
        global_seq: 1,
        features_supported: CEPH_FEATURES_ALL,
        features_required: 0,
        lossy: false,
        client_cookie: r.cookie,
        modes: r.modes.clone(),
        auth: ClientAuth::Mon {
            client: Box::new(client),
            client_challenge: r.client_challenge,
        },
        learn_addr: true,
        resume: None,
        limits: FrameLimits::default(),
        now: Duration::from_secs(1_800_000_000),
    }
}

fn frames(r: &Replay, dir: &str) -> Vec<(&'static str, Vec<u8>)> {
    r.session
        .iter()
        .filter(|(d, _, _)| *d == dir)
        .map(|(_, n, h)| (*n, hex(h)))
        .collect()
}

fn replay(r: Replay) {
    let mut c = V2Connector::new(params(&r));
    let ours = frames(&r, "C->S");
    let theirs = frames(&r, "S->C");
    let expected: Vec<u8> = ours
        .iter()
        .take_while(|(n, _)| *n != "MESSAGE")
        .flat_map(|(_, b)| b.clone())
        .collect();
    let mut written = c.take_output().unwrap().to_vec();
    let mut inbuf = BytesMut::new();
    let mut established = None;
    for (name, bytes) in theirs.iter().take_while(|(n, _)| *n != "MESSAGE") {
        // In pieces of 7 bytes, as a socket may deliver them: what AUTH_SIGNATURE covers
        // must not depend on how the bytes arrived.
        let mut ev = None;
        for piece in bytes.chunks(7) {
            inbuf.extend_from_slice(piece);
            let e = c
                .handle_input(&mut inbuf)
                .unwrap_or_else(|e| panic!("in {name}: {e}"));
            ev = ev.or(e);
        }
        if let Some(out) = c.take_output() {
            written.extend_from_slice(&out);
        }
        assert_eq!(
            &written[..],
            &expected[..written.len()],
            "our bytes after the mon's {name}"
        );
        if let Some(V2ConnectorEvent::Ready(est)) = ev {
            established = Some(est);
        }
    }
    assert_eq!(written, expected, "every byte the real client wrote");
    let est = established.expect("READY after SERVER_IDENT");
    assert_eq!(est.peer_gid, 0);
    assert!(est.lossy, "the mon makes a client's session lossy");
    assert!(est.session_key.is_some());
    assert_eq!(
        est.my_addrs.0[0].addr.addr,
        Some("127.0.0.1:0".parse().unwrap()),
        "our IP learned from the mon's HELLO"
    );
    assert!(c.mon_auth().unwrap().is_authenticated());
    let global_id = est.global_id;
    let (mut reader, mut writer) = c.into_codec();
    // Our MMonGetMap, as the real client's first message.
    let mut m = Message::new(5, Bytes::new());
    (m.seq, m.priority, m.version, m.compat_version) = (1, 127, 1, 1);
    let mut out = Vec::new();
    writer
        .write(frame::TAG_MESSAGE, &[&encode_header2(&m, 0)], &mut out)
        .unwrap();
    let msg_frame: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
    assert_eq!(
        msg_frame,
        ours.iter().find(|(n, _)| *n == "MESSAGE").unwrap().1
    );
    // The mon's MMonMap.
    let (_, mon_msg) = theirs.iter().find(|(n, _)| *n == "MESSAGE").unwrap();
    let f = reader
        .decode(&mut BytesMut::from(&mon_msg[..]))
        .unwrap()
        .unwrap();
    let (msg, ack) = decode_message(&f.segments, EntityName::new(EntityType::MON, 0)).unwrap();
    assert_eq!((msg.msg_type, msg.seq, msg.front.len()), (4, 1, 205));
    let _ = (ack, global_id);
}

#[test]
fn we_write_every_byte_ceph_s_wrote_in_secure_mode() {
    replay(Replay {
        session: A1_SECURE,
        nonce: 0x94d5_c6da,
        cookie: 0xdfb4_78e4_040b_5582,
        modes: vec![2, 1],
        client_challenge: 0xa9da_67ce_5c43_689b,
    });
}

#[test]
fn we_write_every_byte_ceph_s_wrote_in_crc_mode() {
    replay(Replay {
        session: A2_CRC,
        nonce: 0x390a_21b9,
        cookie: 0xe03b_7250_bcb1_f4e9,
        modes: vec![1],
        client_challenge: 0x4efd_68b8_01d7_c4ce,
    });
}

#[test]
fn a_forged_server_signature_or_a_mode_we_did_not_offer_fails() {
    // The crc session, with the mon's AUTH_SIGNATURE changed (and its CRC fixed up).
    let r = Replay {
        session: A2_CRC,
        nonce: 0x390a_21b9,
        cookie: 0xe03b_7250_bcb1_f4e9,
        modes: vec![1],
        client_challenge: 0x4efd_68b8_01d7_c4ce,
    };
    let mut c = V2Connector::new(params(&r));
    let mut inbuf = BytesMut::new();
    let mut result = Ok(None);
    for (name, bytes) in frames(&r.clone(), "S->C") {
        let bytes = if name == "AUTH_SIGNATURE" {
            let mut w = FrameWriter::crc();
            let mut out = Vec::new();
            w.write(7, &[&[0x5a; 32]], &mut out).unwrap();
            out.iter().flat_map(|b| b.to_vec()).collect()
        } else {
            bytes
        };
        inbuf.extend_from_slice(&bytes);
        result = c.handle_input(&mut inbuf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err(), V2Error::AuthSignature);
    // Offering only secure to a mon that answers crc.
    let only_secure = Replay {
        modes: vec![2],
        ..r.clone()
    };
    let mut c = V2Connector::new(params(&only_secure));
    let mut inbuf = BytesMut::new();
    let mut result = Ok(None);
    for (_, bytes) in frames(&only_secure, "S->C") {
        inbuf.extend_from_slice(&bytes);
        result = c.handle_input(&mut inbuf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err(), V2Error::Mode(1));
}
