//! Property tests of the wire layer: every struct round-trips; any message survives encode →
//! decode in any split of the stream; arbitrary bytes in arbitrary splits never panic the decoder
//! or the handshake state machines, and never make them allocate past the configured cap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use msgr::entity::{EntityAddr, EntityName, EntityType};
use msgr::handshake::{Acceptor, Connector, ConnectorParams};
use msgr::wire::decoder::DecoderLimits;
use msgr::wire::{
    ConnectMsg, ConnectReply, Footer, FooterFlags, Frame, FrameDecoder, FrameEncoder, Header,
};
use msgr::{Message, Policy};
use proptest::prelude::*;

/// Records the largest single allocation made by the current thread while armed.
struct TrackingAlloc;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    // try_with: the thread-locals may be gone during thread teardown.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    LARGEST.with(|l| l.get())
}

fn arb_name() -> impl Strategy<Value = EntityName> {
    (any::<u8>(), any::<i64>()).prop_map(|(t, n)| EntityName::new(EntityType(t), n))
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        ),
        arb_name(),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u8>(), 0..50),
        proptest::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(
            |((seq, tid, ty, prio, v, cv, off), src, front, middle, data)| Message {
                seq,
                tid,
                msg_type: ty,
                priority: prio,
                version: v,
                compat_version: cv,
                data_off: off,
                src,
                front: Bytes::from(front),
                middle: Bytes::from(middle),
                data: Bytes::from(data),
            },
        )
}

/// Splits `bytes` into chunks at the given (sorted, deduplicated) cut points.
fn split(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.retain(|&c| c > 0 && c < bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = vec![];
    let mut at = 0;
    for c in cuts {
        out.push(&bytes[at..c]);
        at = c;
    }
    out.push(&bytes[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn connect_structs_round_trip(f in any::<u64>(), t in any::<u8>(), gs in any::<u32>(), cs in any::<u32>(),
                                  pv in any::<u32>(), ap in any::<u32>(), al in any::<u32>(), fl in any::<u8>()) {
        let c = ConnectMsg { features: f, host_type: EntityType(t), global_seq: gs, connect_seq: cs,
                             protocol_version: pv, authorizer_protocol: ap, authorizer_len: al, flags: fl };
        prop_assert_eq!(ConnectMsg::decode(&c.encode()).unwrap(), c);
        let r = ConnectReply { tag: t, features: f, global_seq: gs, connect_seq: cs, protocol_version: pv,
                               authorizer_len: al, flags: fl };
        prop_assert_eq!(ConnectReply::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn header_and_footer_round_trip(m in arb_message(), auth in any::<bool>(), fl in any::<u8>(), sig in any::<u64>()) {
        let h = Header { seq: m.seq, tid: m.tid, msg_type: m.msg_type, priority: m.priority, version: m.version,
                         front_len: 1, middle_len: 2, data_len: 3, data_off: m.data_off, src: m.src,
                         compat_version: m.compat_version, crc: 0 };
        let (back, computed) = Header::decode(&h.encode());
        prop_assert_eq!(back.crc, computed);
        prop_assert_eq!(Header { crc: 0, ..back }, h);
        let f = Footer { front_crc: 1, middle_crc: 2, data_crc: 3, sig: if auth { sig } else { 0 }, flags: FooterFlags(fl) };
        let mut buf = [0u8; 21];
        let n = f.encode_into(auth, &mut buf);
        prop_assert_eq!(Footer::decode(&buf[..n], auth), f);
    }

    #[test]
    fn entity_addrs_round_trip(nonce in any::<u32>(), port in any::<u16>(), v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(), six in any::<bool>()) {
        let ip: std::net::IpAddr = if six { v6.into() } else { v4.into() };
        let a = EntityAddr::new(std::net::SocketAddr::new(ip, port), nonce);
        prop_assert_eq!(EntityAddr::decode_legacy(&a.encode_legacy()).unwrap(), a);
        prop_assert_eq!(a.to_string().parse::<EntityAddr>().unwrap(), a);
    }

    #[test]
    fn messages_survive_any_split(msgs in proptest::collection::vec(arb_message(), 1..4), auth in any::<bool>(),
                                  cuts in proptest::collection::vec(0usize..10_000, 0..40)) {
        let mut enc = FrameEncoder::new(auth, true);
        let mut stream = vec![];
        for m in &msgs {
            stream.extend_from_slice(&enc.encode_message(m).to_vec());
        }
        let mut dec = FrameDecoder::new(auth, DecoderLimits::default());
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for chunk in split(&stream, cuts) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, msgs.into_iter().map(Frame::Message).collect::<Vec<_>>());
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decoder_never_panics_or_allocates_past_the_cap(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(0usize..600, 0..20),
        lens in any::<(u32, u32, u32)>(),
    ) {
        const CAP: u64 = 64 * 1024;
        // Half the inputs start with a valid tag and a header with hostile lengths and a valid crc,
        // so the length checks are reached, not just the tag check.
        let mut stream = vec![];
        if lens.0 % 2 == 0 {
            let h = Header { seq: 1, tid: 0, msg_type: 1, priority: 1, version: 1, front_len: lens.0,
                             middle_len: lens.1, data_len: lens.2, data_off: 0,
                             src: EntityName::anonymous_client(), compat_version: 0, crc: 0 };
            stream.push(7u8);
            stream.extend_from_slice(&h.encode());
        }
        stream.extend_from_slice(&bytes);
        let limits = DecoderLimits { max_message_bytes: CAP, crc_header: true, crc_data: true };
        let largest = largest_allocation(|| {
            let mut dec = FrameDecoder::new(true, limits);
            let mut buf = BytesMut::new();
            'feed: for chunk in split(&stream, cuts) {
                buf.extend_from_slice(chunk);
                loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                assert!(dec.wanted() as u64 <= CAP + 21);
            }

        });
        prop_assert!((largest as u64) < CAP, "largest allocation {largest} bytes");
    }

    #[test]
    fn handshakes_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..700),
                                         cuts in proptest::collection::vec(0usize..700, 0..10)) {
        let mut acc = Acceptor::new("127.0.0.1:6800/1".parse().unwrap(), "127.0.0.1:5000".parse().unwrap());
        let mut conn = Connector::new(ConnectorParams {
            my_addr: EntityAddr::blank(1), my_type: EntityType::CLIENT,
            peer_addr: "127.0.0.1:6800/1".parse().unwrap(), check_peer_nonce: false,
            policy: Policy::lossy_client(0), global_seq: 1, connect_seq: 0, in_seq: 0,
            protocol_version: 0, authorizer: None, cephx: None, learn_addr: true,
        });
        let largest = largest_allocation(|| {
            let (mut a, mut c) = (BytesMut::new(), BytesMut::new());
            let (mut a_dead, mut c_dead) = (false, false);
            for chunk in split(&bytes, cuts) {
                a.extend_from_slice(chunk);
                c.extend_from_slice(chunk);
                a_dead = a_dead || acc.handle_input(&mut a).is_err();
                c_dead = c_dead || conn.handle_input(&mut c).is_err();
                if a_dead && c_dead { break; }
            }
        });
        prop_assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
    }
}
