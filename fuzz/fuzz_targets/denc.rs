//! Ceph payload decoding on arbitrary bytes: primitives, containers, versioned structs, and
//! every typed payload msgr decodes.
#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use msgr::denc::{from_slice, Decode, Reader};
use msgr::handshake::AuthNoneAuthorizer;
use msgr::messages::{BenchReply, BenchRequest, MMonMap, MonPingReply};
use msgr::Message;

fuzz_target!(|data: &[u8]| {
    let _ = from_slice::<Vec<String>>(data);
    let _ = from_slice::<BTreeMap<String, Vec<(u32, u64)>>>(data);
    let _ = Reader::new(data).versioned("fuzz", 3, |_, r| Vec::<Bytes>::decode(r));
    let _ = AuthNoneAuthorizer::decode(data);
    let _ = (MMonMap {
        monmap: Bytes::copy_from_slice(data),
    })
    .summary();
    let mut m = Message::new(0, Bytes::copy_from_slice(data));
    for ty in [2u16, 4, 0xE000, 0xE001] {
        m.msg_type = ty;
        let _ = m.decode_payload::<MonPingReply>();
        let _ = m.decode_payload::<MMonMap>();
        let _ = m.decode_payload::<BenchRequest>();
        let _ = m.decode_payload::<BenchReply>();
    }
});
