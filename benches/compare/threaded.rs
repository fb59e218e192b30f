//! Baseline (b): a thread-per-connection messenger modelled on SimpleMessenger. Blocking std
//! sockets; per connection a reader thread and a writer thread on each side; one dispatch
//! thread on the server, as SimpleMessenger's DispatchQueue.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::common::*;

const STACK: usize = 256 * 1024;

fn spawn(f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("thread")
}

/// Reads one frame's payload, or None at EOF.
fn read_frame(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().unwrap());
    let mut p = vec![0u8; len];
    r.read_exact(&mut p).ok()?;
    assert_eq!(msgr::wire::ceph_crc32c(0, &p), crc, "baseline frame crc");
    Some(p)
}

/// A writer thread: writes what it is given, flushing when nothing more is queued.
fn writer(stream: TcpStream) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    spawn(move || {
        let mut w = BufWriter::with_capacity(64 * 1024, stream);
        while let Ok(first) = rx.recv() {
            if w.write_all(&first).is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if w.write_all(&more).is_err() {
                    return;
                }
            }
            if w.flush().is_err() {
                return;
            }
        }
    });
    tx
}

pub fn server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // The dispatch thread: every received request, in order, answered through its connection's writer.
    let (dispatch, queue) = mpsc::channel::<(Vec<u8>, mpsc::Sender<Vec<u8>>)>();
    spawn(move || {
        while let Ok((payload, out)) = queue.recv() {
            let mut r = Vec::with_capacity(24);
            reply(&payload, &mut r);
            let _ = out.send(r);
        }
    });
    spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            let out = writer(s.try_clone().unwrap());
            let dispatch = dispatch.clone();
            spawn(move || {
                let mut r = BufReader::with_capacity(64 * 1024, s);
                while let Some(p) = read_frame(&mut r) {
                    if dispatch.send((p, out.clone())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Runs the load; with `remote`, only the client side, against a server in another process.
pub fn run(load: Load, remote: Option<std::net::SocketAddr>) -> Outcome {
    let addr = remote.unwrap_or_else(server);
    let start = Instant::now();
    let lat = Arc::new(Latencies::new());
    let done = Arc::new(AtomicU64::new(0));
    let per_conn = load.count / load.conns as u64;
    let data = Arc::new(vec![0x5au8; load.size]);
    // Every connection and thread exists before any traffic, as in the other systems.
    let go = Arc::new(std::sync::Barrier::new(load.conns + 1));
    let mut joins = vec![];
    for _ in 0..load.conns {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let out = writer(s.try_clone().unwrap());
        let window = Arc::new((Mutex::new(load.depth), Condvar::new()));
        let (w2, data, go2) = (window.clone(), data.clone(), go.clone());
        joins.push(spawn(move || {
            go2.wait();
            for i in 0..per_conn {
                {
                    let (m, cv) = &*w2;
                    let mut free = cv.wait_while(m.lock().unwrap(), |f| *f == 0).unwrap();
                    *free -= 1;
                }
                let mut f = Vec::with_capacity(data.len() + 24);
                request(i, start.elapsed().as_nanos() as u64, &data, &mut f);
                out.send(f).unwrap();
            }
        }));
        let (lat, done) = (lat.clone(), done.clone());
        joins.push(spawn(move || {
            let mut r = BufReader::with_capacity(64 * 1024, s);
            for _ in 0..per_conn {
                let p = read_frame(&mut r).expect("reply");
                let (_, sent) = stamp(&p);
                lat.record(sent, start.elapsed().as_nanos() as u64);
                let (m, cv) = &*window;
                *m.lock().unwrap() += 1;
                cv.notify_one();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    go.wait();
    let phase = Phase::start();
    for j in joins {
        j.join().unwrap();
    }
    let mut outcome = phase.finish(done.load(Ordering::Relaxed));
    outcome.lat = lat.merged();
    outcome
}

/// The threaded server for the idle measurement (its threads outlive the call; the process exits after).
pub fn idle_server(ready: mpsc::Sender<std::net::SocketAddr>, stop: mpsc::Receiver<()>) {
    ready.send(server()).unwrap();
    let _ = stop.recv();
}
