//! The message-phase decoder on arbitrary bytes, fed in arbitrary splits (the first input byte
//! picks the split size). It must never panic, and never ask for more than the cap allows.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msgr::wire::decoder::DecoderLimits;
use msgr::wire::FrameDecoder;

const CAP: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let step = (split as usize % 64) + 1;
    for msg_auth in [true, false] {
        let limits = DecoderLimits {
            max_message_bytes: CAP,
            crc_header: split & 0x80 == 0,
            crc_data: true,
        };
        let mut dec = FrameDecoder::new(msg_auth, limits);
        let mut buf = BytesMut::new();
        'feed: for chunk in rest.chunks(step) {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            assert!(dec.wanted() as u64 <= CAP + 21);
        }
    }
});
