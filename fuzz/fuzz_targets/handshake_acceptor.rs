//! The acceptor on arbitrary client bytes; connects that arrive are decided (with and without an
//! existing session) and answered, so every reply path runs.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::handshake::authorizer::verify_auth_none;
use msgr::handshake::{
    decide, AcceptContext, Acceptor, AcceptorEvent, ExistingSession, ExistingState, ReplyContext,
};
use msgr::Policy;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut acc = Acceptor::new(
        "127.0.0.1:6800/1".parse().unwrap(),
        "127.0.0.1:5000".parse().unwrap(),
    );
    let policy = msgr::Policy::preset(Policy::PRESETS[mode as usize % 8]).unwrap();
    let existing = (mode & 0x10 != 0).then_some(ExistingSession {
        connect_seq: (mode >> 5) as u32,
        peer_global_seq: 3,
        state: [
            ExistingState::Connecting,
            ExistingState::Open,
            ExistingState::Standby,
            ExistingState::Replacing,
        ][(mode >> 2) as usize % 4],
        lossy: policy.lossy,
        policy_server: policy.server,
        established: mode & 1 == 0,
    });
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(17) {
        buf.extend_from_slice(chunk);
        loop {
            match acc.handle_input(&mut buf) {
                Ok(Some(AcceptorEvent::Connect(req))) => {
                    let ctx = AcceptContext {
                        policy,
                        protocol_version: 24,
                        authorizer_valid: verify_auth_none(
                            req.connect.authorizer_protocol,
                            &req.authorizer,
                        ),
                        my_addr: "127.0.0.1:6800/1".parse().unwrap(),
                        existing,
                    };
                    let d = decide(&req, &ctx);
                    let reply = ReplyContext {
                        policy,
                        protocol_version: 24,
                        server_global_seq: 9,
                        in_seq: 4,
                    };
                    if acc.respond(d, &reply).is_err() {
                        return;
                    }
                    let _ = acc.take_output();
                }
                Ok(Some(AcceptorEvent::Ready(_))) | Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
