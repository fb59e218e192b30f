//! Frames against the spec's golden sessions (Appendix A.1 secure, A.2 crc): every frame
//! decodes, its payload is what the spec decoded, and encoding it again gives the very bytes
//! the mon and `ceph -s` exchanged.

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::banner::{decode_banner, encode_banner};
use super::crypto::GcmStream;
use super::vectors::{A1_SECURE, A2_CRC};
use super::*;
use crate::wire::hex;

/// The frames one direction sent, after its banner.
fn stream(session: &[(&str, &str, &str)], dir: &str) -> Vec<(String, Vec<u8>)> {
    session
        .iter()
        .filter(|(d, n, _)| *d == dir && *n != "banner")
        .map(|(_, n, h)| (n.to_string(), hex(h)))
        .collect()
}

fn concat(out: Vec<Bytes>) -> Vec<u8> {
    out.iter().flat_map(|b| b.to_vec()).collect()
}

fn reencode(w: &mut FrameWriter, f: &Frame) -> Vec<u8> {
    let segs: Vec<&[u8]> = f.segments.iter().map(|s| &s[..]).collect();
    let mut out = Vec::new();
    w.write(f.tag, &segs, &mut out).unwrap();
    concat(out)
}

#[test]
fn the_crc_session_decodes_and_reencodes_byte_for_byte() {
    for dir in ["C->S", "S->C"] {
        let mut reader = FrameReader::crc(FrameLimits::default());
        let mut writer = FrameWriter::crc();
        for (name, bytes) in stream(A2_CRC, dir) {
            // Fed one byte at a time: the reader never needs more than it says.
            let mut buf = BytesMut::new();
            let mut frame = None;
            for b in &bytes {
                buf.extend_from_slice(&[*b]);
                if let Some(f) = reader.decode(&mut buf).unwrap() {
                    frame = Some(f);
                }
            }
            let frame = frame.unwrap_or_else(|| panic!("{dir} {name} decodes"));
            assert!(buf.is_empty(), "{name}");
            assert_eq!(reencode(&mut writer, &frame), bytes, "{dir} {name}");
        }
    }
}

#[test]
fn the_banner_is_pacifics() {
    let mut b = BytesMut::from(&hex(A2_CRC[0].2)[..]);
    assert_eq!(encode_banner().to_vec(), hex(A2_CRC[0].2));
    assert_eq!(decode_banner(&mut b), Ok(Some(1)));
}

const A1_SECRET: &str = "ee4dcdfed5e93b84efcac2fc6074b63f40a87b75a069460cc4b4a518\
                         f9f0d8105ae037b1a4f55f87ef70f1d77e736fea7d601841b80a8eb565c73e690247293d";

/// The secure session: frames before AUTH_DONE are crc, then the streams start at the
/// secret's nonces; each side's frames decrypt to the plaintexts the spec lists, and sealing
/// those again with the same nonces gives the captured ciphertext.
#[test]
fn the_secure_session_decrypts_and_reencrypts_byte_for_byte() {
    let secret = hex(A1_SECRET);
    let first_secure = ["AUTH_SIGNATURE", "CLIENT_IDENT", "SERVER_IDENT", "MESSAGE"];
    let mut plain = std::collections::HashMap::new();
    for (dir, is_client) in [("C->S", true), ("S->C", false)] {
        // The reader is the other side; its rx stream is the sender's tx stream.
        let (_, rx) = GcmStream::pair(&secret, !is_client).unwrap();
        let (tx, _) = GcmStream::pair(&secret, is_client).unwrap();
        let mut reader = FrameReader::crc(FrameLimits::default());
        let mut crc_writer = FrameWriter::crc();
        let mut writer = FrameWriter::secure(tx);
        let mut rx = Some(rx);
        for (name, bytes) in stream(A1_SECURE, dir) {
            let secure = first_secure.contains(&name.as_str());
            if secure {
                if let Some(rx) = rx.take() {
                    reader.set_secure(rx);
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let frame = reader.decode(&mut buf).unwrap().expect("a whole frame");
            assert!(buf.is_empty(), "{dir} {name}");
            let w = if secure { &mut writer } else { &mut crc_writer };
            assert_eq!(reencode(w, &frame), bytes, "{dir} {name}");
            plain.insert(format!("{dir} {name}"), frame);
        }
    }
    let seg0 = |k: &str| plain[k].segments[0].to_vec();
    assert_eq!(
        seg0("C->S CLIENT_IDENT"),
        hex(
            "02010000000101011c00000003000000dac6d59410000000020000007f0000010000000000000000 \
             0101011c000000020000000000000010000000020033f47f0000010000000000000000 \
             ffffffffffffffff 0100000000000000 fffffdffbdcf013f 0000000000000008 \
             0000000000000000 82550b04e478b4df"
        )
    );
    assert_eq!(
        seg0("C->S MESSAGE"),
        hex(
            "0100000000000000 0000000000000000 0500 7f00 0100 00000000 0000 0000000000000000 \
             03 0100 0000"
        )
    );
    assert_eq!(plain["S->C MESSAGE"].segments.len(), 2);
    assert_eq!(plain["S->C MESSAGE"].segments[1].len(), 205);
    assert_eq!(
        seg0("C->S AUTH_SIGNATURE"),
        hex("029beb2394b62d4e53f70f0f4259670110af5b7699a9072e3c8827f475f2fc01")
    );
}

/// AUTH_SIGNATURE is HMAC-SHA256 under the session key over every byte the signer received
/// up to AUTH_DONE (spec §6.3): the client's, over the mon's 473 bytes.
#[test]
fn the_auth_signature_is_hmac_sha256_over_the_bytes_received() {
    let received: Vec<u8> = A1_SECURE
        .iter()
        .filter(|(d, _, _)| *d == "S->C")
        .take_while(|(_, n, _)| *n != "AUTH_SIGNATURE")
        .flat_map(|(_, _, h)| hex(h))
        .collect();
    assert_eq!(received.len(), 473);
    let mut mac = Hmac::<Sha256>::new_from_slice(&hex("4cda4199d5572e0398ba581feff5ff4b")).unwrap();
    mac.update(&received);
    assert_eq!(
        mac.finalize().into_bytes().to_vec(),
        hex("029beb2394b62d4e53f70f0f4259670110af5b7699a9072e3c8827f475f2fc01")
    );
}

#[test]
fn damaged_frames_are_typed_errors() {
    let (_, _, hello) = A2_CRC[1];
    let good = hex(hello);
    // Every single bit flip in a crc frame is caught (preamble CRC or segment CRC).
    for i in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let mut r = FrameReader::crc(FrameLimits::default());
        assert!(r.decode(&mut BytesMut::from(&bad[..])).is_err(), "bit {i}");
    }
    // A GCM frame with one bit changed fails its tag.
    let secret = hex(A1_SECRET);
    let sig = A1_SECURE
        .iter()
        .find(|f| f.0 == "C->S" && f.1 == "AUTH_SIGNATURE")
        .unwrap();
    let mut bad = hex(sig.2);
    bad[50] ^= 4;
    let mut r = FrameReader::crc(FrameLimits::default());
    r.set_secure(GcmStream::pair(&secret, false).unwrap().1);
    assert_eq!(r.decode(&mut BytesMut::from(&bad[..])), Err(V2Error::Gcm));
    // A segment over the cap is refused from the preamble alone.
    let tiny = FrameLimits {
        max_message: 16,
        max_control: 16,
    };
    let mut r = FrameReader::crc(tiny);
    let mut b = BytesMut::from(&good[..32]);
    assert!(matches!(
        r.decode(&mut b),
        Err(V2Error::SegmentTooLarge { .. })
    ));
}

/// Every control frame of both sessions decodes to what the spec says and encodes back to the
/// same payload.
#[test]
fn every_control_payload_of_the_sessions_round_trips() {
    let secret = hex(A1_SECRET);
    let mut seen = std::collections::HashMap::new();
    for (session, secure) in [(A1_SECURE, true), (A2_CRC, false)] {
        for (dir, is_client) in [("C->S", true), ("S->C", false)] {
            let mut reader = FrameReader::crc(FrameLimits::default());
            let mut rx = secure.then(|| GcmStream::pair(&secret, !is_client).unwrap().1);
            for (name, bytes) in stream(session, dir) {
                if name == "AUTH_SIGNATURE" {
                    if let Some(rx) = rx.take() {
                        reader.set_secure(rx);
                    }
                }
                let f = reader
                    .decode(&mut BytesMut::from(&bytes[..]))
                    .unwrap()
                    .unwrap();
                if f.tag == frame::TAG_MESSAGE {
                    continue;
                }
                let c = Control::decode(f.tag, &f.segments[0]).unwrap();
                assert_eq!(c.encode(), f.segments[0].to_vec(), "{dir} {name}");
                seen.insert(format!("{secure} {dir} {name}"), c);
            }
        }
    }
    let Control::Hello {
        entity_type,
        peer_addr,
    } = &seen["false C->S HELLO"]
    else {
        panic!()
    };
    assert_eq!(*entity_type, crate::EntityType::CLIENT);
    assert_eq!(
        peer_addr.addr.addr,
        Some("127.0.0.1:13300".parse().unwrap())
    );
    let Control::AuthRequest {
        method,
        modes,
        payload,
    } = &seen["true C->S AUTH_REQUEST"]
    else {
        panic!()
    };
    assert_eq!(
        (*method, modes.as_slice(), payload.len()),
        (2, &[2, 1][..], 22)
    );
    let Control::AuthDone {
        global_id,
        con_mode,
        ..
    } = &seen["true S->C AUTH_DONE"]
    else {
        panic!()
    };
    assert_eq!((*global_id, *con_mode), (4097, 2));
    let Control::ServerIdent(id) = &seen["false S->C SERVER_IDENT"] else {
        panic!()
    };
    assert_eq!(
        (id.flags, id.cookie, id.features_required),
        (1, 0, 0x0c01_0200_0204_0000)
    );
    assert_eq!(id.addrs.0.len(), 2);
    let Control::ClientIdent(id) = &seen["false C->S CLIENT_IDENT"] else {
        panic!()
    };
    assert_eq!((id.gid, id.features_supported), (-1, 0x3f01_cfbd_fffd_ffff));
    assert!(Control::decode(0, &[]).is_err() && Control::decode(17, &[]).is_err());
}
