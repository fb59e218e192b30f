//! msgr2.1 against a real ceph-mon 16.2.15 in its default shape (dual-bound
//! `[v2:127.0.0.1:P2,v1:127.0.0.1:P1]`, cephx required): our sans-IO connector, driven over a
//! plain TCP socket, authenticates as client.admin in secure mode and in crc mode, and the
//! monitor answers MMonGetMap and MPing over the encrypted (or CRC'd) frames; a wrong key is
//! refused with AUTH_BAD_METHOD(-13). The messenger's own v2 support builds on this.

mod ceph_harness;
mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use ceph_harness::{CephMon, MonOpts};
use msgr::auth::cephx::MonAuthClient;
use msgr::auth::{AuthName, CryptoKey, Keyring};
use msgr::features::CEPH_FEATURES_ALL;
use msgr::messages::{MMonMap, MonPingReply, CEPH_MSG_MON_MAP, CEPH_MSG_PING};
use msgr::v2::connector::{
    unbound_addrs, ClientAuth, V2Connector, V2ConnectorEvent, V2ConnectorParams,
};
use msgr::v2::frame::TAG_MESSAGE;
use msgr::v2::message::{decode_message, encode_header2};
use msgr::v2::{FrameLimits, FrameReader, FrameWriter, TypedAddr, V2Error};
use msgr::{EntityAddr, EntityName, EntityType, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A mon as deployed: dual-bound, cephx required.
fn default_mon() -> Option<CephMon> {
    CephMon::start_opts(MonOpts {
        cephx: true,
        msgr2: true,
        ..MonOpts::default()
    })
}

fn admin_key(mon: &CephMon) -> CryptoKey {
    let ring = Keyring::parse(&std::fs::read_to_string(mon.admin_keyring()).unwrap()).unwrap();
    ring.get(&"client.admin".parse().unwrap()).unwrap().clone()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Runs the handshake on a fresh socket; the codec and session on success.
async fn handshake(
    mon: &CephMon,
    key: CryptoKey,
    modes: Vec<u32>,
) -> Result<(TcpStream, BytesMut, FrameReader, FrameWriter, u32), V2Error> {
    let port = mon.v2_port.unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name: AuthName = "client.admin".parse().unwrap();
    let mut c = V2Connector::new(V2ConnectorParams {
        my_type: EntityType::CLIENT,
        my_addrs: unbound_addrs(rand::random()),
        target: TypedAddr::v2(EntityAddr::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
            0,
        )),
        check_peer_nonce: true,
        peer_type: EntityType::MON,
        gid: -1,
        global_seq: 1,
        features_supported: CEPH_FEATURES_ALL,
        features_required: 0,
        lossy: true,
        client_cookie: 0,
        modes,
        auth: ClientAuth::Mon {
            client: Box::new(MonAuthClient::new(name, key, 0x35)),
            client_challenge: rand::random(),
        },
        learn_addr: true,
        resume: None,
        limits: FrameLimits::default(),
        now: now(),
    });
    let mut inbuf = BytesMut::new();
    loop {
        if let Some(out) = c.take_output() {
            s.write_all(&out).await.unwrap();
        }
        match c.handle_input(&mut inbuf)? {
            Some(V2ConnectorEvent::Ready(est)) => {
                assert!(est.lossy);
                assert!(est.global_id > 0);
                let mode = est.con_mode;
                let tickets = c.mon_auth().unwrap().tickets();
                for service in [0x01, 0x04, 0x10, 0x20] {
                    assert!(
                        tickets.get(service).is_some(),
                        "ticket {service:#x} from AUTH_DONE"
                    );
                }
                let (r, w) = c.into_codec();
                return Ok((s, inbuf, r, w, mode));
            }
            Some(ev) => panic!("unexpected {ev:?}"),
            None => {
                if let Some(out) = c.take_output() {
                    s.write_all(&out).await.unwrap();
                }
                let n = s.read_buf(&mut inbuf).await.unwrap();
                assert!(n > 0, "the mon closed the socket during the handshake");
            }
        }
    }
}

/// Sends `m` and reads frames until a message of `want_type` arrives.
async fn ask(
    s: &mut TcpStream,
    inbuf: &mut BytesMut,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    m: &Message,
    want_type: u16,
) -> Message {
    let mut out = Vec::new();
    let head = encode_header2(m, 0);
    let segs: [&[u8]; 2] = [&head, &m.front];
    let n = if m.front.is_empty() { 1 } else { 2 };
    writer.write(TAG_MESSAGE, &segs[..n], &mut out).unwrap();
    for b in out {
        s.write_all(&b).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(f) = reader.decode(inbuf).unwrap() {
            if f.tag != TAG_MESSAGE {
                continue;
            }
            let (msg, _) =
                decode_message(&f.segments, EntityName::new(EntityType::MON, 0)).unwrap();
            if msg.msg_type == want_type {
                return msg;
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read_buf(inbuf))
            .await
            .expect("the mon's answer within 20 s")
            .unwrap();
        assert!(n > 0, "the mon closed the session");
    }
}

#[tokio::test]
async fn secure_and_crc_sessions_with_a_real_mon() {
    let Some(mon) = default_mon() else {
        return;
    };
    for (modes, expect) in [(vec![2, 1], 2), (vec![1], 1)] {
        let (mut s, mut inbuf, mut r, mut w, mode) =
            handshake(&mon, admin_key(&mon), modes).await.unwrap();
        assert_eq!(
            mode, expect,
            "secure when offered first, crc when only crc is"
        );
        let mut get = Message::new(msgr::messages::CEPH_MSG_MON_GET_MAP, Bytes::new());
        (get.seq, get.priority, get.version, get.compat_version) = (1, 127, 1, 1);
        let map = ask(&mut s, &mut inbuf, &mut r, &mut w, &get, CEPH_MSG_MON_MAP).await;
        let map = map.decode_payload::<MMonMap>().unwrap().summary().unwrap();
        assert_eq!(map.fsid_string(), mon.fsid);
        let mut ping = Message::from_payload(&msgr::messages::MPing);
        ping.seq = 2;
        let reply = ask(&mut s, &mut inbuf, &mut r, &mut w, &ping, CEPH_MSG_PING).await;
        let doc = reply.decode_payload::<MonPingReply>().unwrap().json;
        assert!(doc.contains("\"quorum\""), "{doc}");
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_eacces() {
    let Some(mon) = default_mon() else {
        return;
    };
    let wrong = CryptoKey::new((0, 0), &[7; 16]).unwrap();
    match handshake(&mon, wrong, vec![2, 1]).await {
        Err(V2Error::BadMethod {
            method: 2,
            result: -13,
            ..
        }) => {}
        Err(e) => panic!("refused, but not as expected: {e:?}"),
        Ok(_) => panic!("a wrong key was accepted"),
    }
}

mod messenger {
    //! The same through the messenger: a lossy client session over msgr2.
    use std::sync::Arc;

    use common::Inbox;
    use msgr::messages::{MMonGetMap, MPing};
    use msgr::{Config, Policy};
    use msgr_actors::{AuthSetup, Messenger};

    use super::*;

    async fn wait(secs: u64, what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[actix_rt::test]
    async fn a_messenger_pings_and_gets_the_monmap_over_msgr2_secure_and_crc() {
        let Some(mon) = default_mon() else {
            return;
        };
        for mode in ["secure crc", "crc"] {
            let inbox = Inbox::default();
            let config = Config {
                ms_mon_client_mode: mode.into(),
                ..Config::default()
            };
            let m = Messenger::builder(EntityName::anonymous_client())
                .config(config)
                .default_policy(Policy::lossy_client(0))
                .auth(AuthSetup {
                    mon_identity: Some(("client.admin".parse().unwrap(), admin_key(&mon), 0x35)),
                    ..AuthSetup::default()
                })
                .dispatcher(Arc::new(inbox.clone()))
                .build()
                .unwrap();
            let addr: EntityAddr = format!("127.0.0.1:{}/0", mon.v2_port.unwrap())
                .parse()
                .unwrap();
            let conn = m.get_connection_v2(addr, EntityType::MON).await.unwrap();
            for _ in 0..10 {
                conn.send_message(Message::from_payload(&MPing)).unwrap();
            }
            conn.send_message(Message::from_payload(&MMonGetMap))
                .unwrap();
            wait(20, "ten ping replies and the monmap", || {
                inbox.count(CEPH_MSG_PING) == 10 && inbox.count(CEPH_MSG_MON_MAP) >= 1
            })
            .await;
            let c = m.counters();
            assert_eq!((c.faults, c.reconnects), (0, 0), "{mode}");
            let replies: Vec<i64> = inbox
                .of_type(CEPH_MSG_PING)
                .iter()
                .map(|m| m.src.num)
                .collect();
            assert!(replies.iter().all(|&n| n == 0), "from mon.0: {replies:?}");
            m.shutdown().await;
        }
    }
}

mod peer_monitor {
    //! The mon dials us as its peer `mon.b` at a msgr2 address: cephx authorizer (the `mon.`
    //! key) in secure mode, a lossless session, its probes delivered.
    use common::{peer_mon, Inbox};
    use msgr::messages::MSG_MON_PROBE;
    use msgr_actors::AuthSetup;

    use super::*;

    #[actix_rt::test]
    async fn a_real_mon_dials_us_over_msgr2_with_cephx_and_probes_us() {
        let our_port = ceph_harness::free_port();
        let Some(mon) = CephMon::start_opts(MonOpts {
            cephx: true,
            msgr2: true,
            peers: vec![("b".into(), our_port)],
            peers_v2: true,
            ..MonOpts::default()
        }) else {
            return;
        };
        let ring = Keyring::parse(&std::fs::read_to_string(mon.mon_keyring()).unwrap()).unwrap();
        let key = ring.get(&"mon.".parse().unwrap()).unwrap().clone();
        let inbox = Inbox::default();
        let m = peer_mon(&inbox, our_port, true, |b| {
            b.auth(AuthSetup::shared_service_key("mon.".parse().unwrap(), key))
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if inbox.count(MSG_MON_PROBE) >= 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no three probes within 60 s; counters {:?}",
                m.counters()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let c = m.counters();
        assert_eq!((c.bad_authorizers, c.faults_decode), (0, 0));
        let conns = m.connections().await;
        assert_eq!(conns.len(), 1);
        assert!(
            !conns[0].info().await.unwrap().lossy,
            "mon to mon is lossless"
        );
        m.shutdown().await;
    }
}
