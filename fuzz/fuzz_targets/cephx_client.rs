//! The mon client's cephx exchange on arbitrary MAuthReplies (up to three rounds), and the
//! client's handling of a service's challenge and reply: typed errors, never a panic, never
//! an allocation the input does not pay for.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use msgr::auth::cephx::{parse_ticket_reply, ClientAuthorizer, MonAuthClient, MonAuthStep, Ticket};
use msgr::auth::cephx::types::TicketBlob;
use msgr::auth::CryptoKey;
use msgr::denc::Reader;
use msgr::messages::{MAuthReply, CEPH_MSG_AUTH_REPLY};
use msgr::Message;

const NOW: Duration = Duration::from_secs(1_800_000_000);

fuzz_target!(|data: &[u8]| {
    let key = CryptoKey::new((0, 0), &[0x11; 16]).unwrap();
    // Replies are separated by the byte 0xfe (the seeds use it).
    let mut client = MonAuthClient::new("client.admin".parse().unwrap(), key.clone(), 0x35);
    client.start();
    for front in data.split(|&b| b == 0xfe).take(3) {
        let msg = Message::new(CEPH_MSG_AUTH_REPLY, bytes::Bytes::copy_from_slice(front));
        let Ok(reply) = msg.decode_payload::<MAuthReply>() else {
            break;
        };
        match client.handle_reply(&reply, NOW, 7) {
            Ok(MonAuthStep::Send(_)) => {}
            Ok(MonAuthStep::Done) | Err(_) => break,
        }
    }
    let _ = client.renew(NOW + Duration::from_secs(1 << 20), 9);
    let _ = parse_ticket_reply(&mut Reader::new(data), &key, Some(&key), NOW);
    let ticket = Ticket {
        service_id: 4,
        session_key: key.clone(),
        blob: TicketBlob::default(),
        expires: NOW,
        renew_after: NOW,
    };
    let mut a = ClientAuthorizer::new(&ticket, 1, 2);
    let _ = a.answer_challenge(data);
    let _ = a.verify_reply(data);
});
