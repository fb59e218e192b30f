//! Criterion benches of the sans-IO hot paths: CRC, frame encode / decode, session queues.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use msgr::session::Session;
use msgr::wire::decoder::DecoderLimits;
use msgr::wire::{ceph_crc32c, FrameDecoder, FrameEncoder};
use msgr::Message;

fn message(size: usize) -> Message {
    let mut m = Message::new(0xE000, Bytes::from_static(&[1u8; 32]));
    m.data = vec![7u8; size].into();
    m.seq = 1;
    m
}

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for size in [13usize, 53, 200, 4096, 4 << 20] {
        let buf = vec![3u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &buf, |b, buf| {
            b.iter(|| ceph_crc32c(0, black_box(buf)))
        });
    }
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for size in [64usize, 4096, 65536] {
        let m = message(size);
        g.throughput(Throughput::Bytes(size as u64));
        let mut enc = FrameEncoder::new(true, true);
        g.bench_with_input(BenchmarkId::new("encode", size), &m, |b, m| {
            b.iter(|| black_box(enc.encode_message(black_box(m))))
        });
        let wire: Vec<u8> = FrameEncoder::new(true, true).encode_message(&m).to_vec();
        g.bench_with_input(BenchmarkId::new("decode", size), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let mut dec = FrameDecoder::new(true, DecoderLimits::default());
                black_box(dec.decode(&mut buf).unwrap())
            })
        });
    }
    g.finish();
}

fn session(c: &mut Criterion) {
    let msgs: Vec<Message> = (0..1024)
        .map(|i| {
            let mut m = message(0);
            m.priority = [64, 127, 196][i % 3];
            m
        })
        .collect();
    c.bench_function("session/enqueue+send+ack 1024", |b| {
        b.iter(|| {
            let mut s = Session::new(false);
            for m in &msgs {
                s.enqueue(m.clone());
            }
            while let Some(m) = s.next_outgoing() {
                black_box(m.seq);
            }
            black_box(s.handle_ack(1024)).expect("acks what was sent");
        })
    });
    c.bench_function("session/requeue+skip 1024", |b| {
        b.iter(|| {
            let mut s = Session::new(false);
            for m in &msgs {
                s.enqueue(m.clone());
            }
            while s.next_outgoing().is_some() {}
            s.requeue_sent();
            black_box(s.skip_acked_by_peer(512)).expect("claims what was sent");
            black_box(s.pending_len())
        })
    });
}

criterion_group!(benches, crc, frames, session);
criterion_main!(benches);
