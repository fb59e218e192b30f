//! Baseline (a): raw tokio TCP with the same framing cost (length + CRC-32C) and batched writes,
//! on a 2-worker runtime. No sessions, no acks, no replay: the practical limit of the machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::common::*;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads frames, answers each with a reply, writes all replies of one read at once.
async fn serve_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some((payload, len)) = parse(&buf[at..]) {
            reply(&buf[at + payload.start..at + payload.end], &mut out);
            at += len;
        }
        buf.drain(..at);
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

pub async fn server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_conn(s));
        }
    });
    addr
}

/// Runs the load; with `remote`, only the client side, against a server in another process.
pub fn run(load: Load, remote: Option<std::net::SocketAddr>) -> Outcome {
    let rt = runtime(load.threads);
    rt.block_on(async move {
        let addr = match remote {
            Some(a) => a,
            None => server().await,
        };
        let lat = Arc::new(Latencies::new());
        let done = Arc::new(AtomicU64::new(0));
        let per_conn = load.count / load.conns as u64;
        let data = Arc::new(vec![0x5au8; load.size]);
        // Every connection exists before the clock starts, as in the other systems.
        let mut streams = Vec::with_capacity(load.conns);
        for _ in 0..load.conns {
            let s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            streams.push(s);
        }
        let start = Instant::now();
        let phase = Phase::start();
        let mut tasks = vec![];
        for s in streams {
            let (mut r, mut w) = s.into_split();
            let window = Arc::new(Semaphore::new(load.depth));
            let (lat, done, data, win2) = (lat.clone(), done.clone(), data.clone(), window.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut i = 0;
                while i < per_conn {
                    // Batch every request the window allows into one write.
                    let permit = win2.acquire().await.unwrap();
                    permit.forget();
                    let mut batch = 1;
                    while let Ok(p) = win2.try_acquire() {
                        p.forget();
                        batch += 1;
                    }
                    for _ in 0..batch {
                        if i < per_conn {
                            request(i, start.elapsed().as_nanos() as u64, &data, &mut out);
                            i += 1;
                        }
                    }
                    w.write_all(&out).await.unwrap();
                    out.clear();
                }
            }));
            tasks.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let mut got = 0;
                while got < per_conn {
                    let n = r.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "server closed");
                    buf.extend_from_slice(&chunk[..n]);
                    let mut at = 0;
                    while let Some((p, len)) = parse(&buf[at..]) {
                        let (_, sent) = stamp(&buf[at + p.start..at + p.end]);
                        lat.record(sent, start.elapsed().as_nanos() as u64);
                        at += len;
                        got += 1;
                        window.add_permits(1);
                    }
                    buf.drain(..at);
                }
                done.fetch_add(got, Ordering::Relaxed);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut outcome = phase.finish(done.load(Ordering::Relaxed));
        outcome.lat = lat.merged();
        outcome
    })
}

/// A raw tokio server for the idle measurement.
pub fn idle_server(
    threads: usize,
    ready: std::sync::mpsc::Sender<std::net::SocketAddr>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    runtime(threads).block_on(async move {
        ready.send(server().await).unwrap();
        while stop.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}
