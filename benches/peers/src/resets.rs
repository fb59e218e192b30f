//! Behaviour through a proxy that resets connections: the client sends `count` numbered
//! one-way messages (tells) to the server through a TCP proxy that cuts every connection it
//! carries every [`CUT_EVERY`]; the server records what arrives. Each system's client does
//! what its API offers a user after a reset (see each system's `client_tells`). The result
//! counts delivered, missing, duplicated and reordered messages.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How often the proxy cuts every connection it carries.
pub const CUT_EVERY: Duration = Duration::from_millis(25);
/// The client pauses this long after every [`BURST`] messages, so the run spans many cuts.
pub const PAUSE: Duration = Duration::from_millis(1);
pub const BURST: u64 = 100;

/// What the server received, in arrival order (one server per process).
pub fn received() -> &'static Mutex<Vec<u64>> {
    static R: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// A proxy on loopback to `upstream`; returns its address and its count of cuts.
pub fn proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let cuts = Arc::new(AtomicU64::new(0));
    let (l2, c2) = (live.clone(), cuts.clone());
    std::thread::spawn(move || loop {
        std::thread::sleep(CUT_EVERY);
        let mut live = l2.lock().unwrap();
        if !live.is_empty() {
            c2.fetch_add(1, Ordering::Relaxed);
        }
        for s in live.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    });
    std::thread::spawn(move || {
        for down in listener.incoming().flatten() {
            let Ok(up) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = (down.set_nodelay(true), up.set_nodelay(true));
            let mut l = live.lock().unwrap();
            l.push(down.try_clone().unwrap());
            l.push(up.try_clone().unwrap());
            drop(l);
            let (d2, u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || pump(down, up));
            std::thread::spawn(move || pump(u2, d2));
        }
    });
    (addr, cuts)
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Paces a client's sends: call after each message.
pub async fn pace(sent: u64) {
    if sent.is_multiple_of(BURST) {
        tokio::time::sleep(PAUSE).await;
    }
}

/// Waits until `count` messages arrived or none has for `quiet`, then summarises what the
/// server received.
pub fn summary(system: &str, count: u64, client: &Value, cuts: u64, quiet: Duration) -> Value {
    let mut last = (0, Instant::now());
    loop {
        let n = received().lock().unwrap().len();
        if n as u64 >= count || (n == last.0 && last.1.elapsed() > quiet) {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = received().lock().unwrap().clone();
    let mut seen = std::collections::HashSet::new();
    let (mut duplicated, mut reordered, mut highest) = (0u64, 0u64, None::<u64>);
    for &n in &got {
        if !seen.insert(n) {
            duplicated += 1;
            continue;
        }
        if highest.is_some_and(|h| n < h) {
            reordered += 1;
        }
        highest = highest.max(Some(n));
    }
    json!({
        "system": system, "scenario": "resets_xproc", "sent": count,
        "delivered": seen.len(), "missing": count - seen.len() as u64,
        "duplicated": duplicated, "reordered": reordered, "cuts": cuts,
        "send_errors": client["send_errors"], "reconnects": client["reconnects"],
    })
}
