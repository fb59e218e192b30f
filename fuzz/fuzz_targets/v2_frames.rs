//! msgr2.1 frames from arbitrary bytes, in crc mode and in secure mode (with the spec's A.1
//! secret), through the session decoder: typed errors, never a panic, never an allocation past
//! the caps.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::framing::{SessionDecoder, V2Decoder};
use msgr::v2::crypto::GcmStream;
use msgr::v2::{FrameLimits, FrameReader};
use msgr::EntityName;

const SECRET: [u8; 40] = [
    0xee, 0x4d, 0xcd, 0xfe, 0xd5, 0xe9, 0x3b, 0x84, 0xef, 0xca, 0xc2, 0xfc, 0x60, 0x74, 0xb6,
    0x3f, 0x40, 0xa8, 0x7b, 0x75, 0xa0, 0x69, 0x46, 0x0c, 0xc4, 0xb4, 0xa5, 0x18, 0xf9, 0xf0,
    0xd8, 0x10, 0x5a, 0xe0, 0x37, 0xb1, 0xa4, 0xf5, 0x5f, 0x87,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = FrameLimits {
        max_message: 1 << 20,
        max_control: 64 * 1024,
    };
    let mut reader = FrameReader::crc(limits);
    if mode & 1 == 1 {
        reader.set_secure(GcmStream::pair(&SECRET, false).unwrap().1);
    }
    let mut dec = SessionDecoder::V2(Box::new(V2Decoder::new(
        reader,
        EntityName::anonymous_client(),
    )));
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(usize::from(mode >> 1).max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            if let Some(n) = dec.pending_payload() {
                assert!(n <= 1 << 20);
                dec.admit_body();
            }
            match dec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) if dec.pending_payload().is_some() => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
