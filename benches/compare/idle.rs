//! Idle connections: the server runs in this process; a child process opens N connections to it
//! (for msgr, each completes a v1 handshake as its own session) and holds them. We report the
//! server process's RSS and thread growth per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use msgr::handshake::{protocol_version, Connector, ConnectorEvent, ConnectorParams};
use msgr::{EntityAddr, EntityType, Policy};

use crate::common::{rss_kib, threads};

/// Result: (connections, RSS growth KiB per connection, threads before, threads after).
pub struct Idle {
    pub conns: usize,
    pub rss_per_conn_kib: f64,
    pub threads_before: u64,
    pub threads_after: u64,
}

pub fn measure(system: &str, conns: usize) -> Idle {
    let server = crate::xproc::ServerThread::start(system, 2);
    let addr = server.addr;
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, th0) = (rss_kib(), threads());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--idle-client",
            system,
            &addr.to_string(),
            &conns.to_string(),
        ])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "idle client: {line}");
    std::thread::sleep(Duration::from_secs(1));
    let (rss1, th1) = (rss_kib(), threads());
    drop(child.stdin.take());
    let _ = child.wait();
    server.stop();
    Idle {
        conns,
        rss_per_conn_kib: (rss1.saturating_sub(rss0)) as f64 / conns as f64,
        threads_before: th0,
        threads_after: th1,
    }
}

/// The child: opens `n` connections and holds them until stdin closes.
pub fn client(system: &str, addr: SocketAddr, n: usize) {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(addr).expect("connect");
        if system == "msgr" {
            handshake(&s, addr, i as u32 + 1);
        }
        held.push(s);
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A blocking msgr v1 handshake as client `nonce` (a distinct session each).
fn handshake(s: &TcpStream, server: SocketAddr, nonce: u32) {
    let mut conn = Connector::new(ConnectorParams {
        my_addr: EntityAddr::blank(nonce),
        my_type: EntityType::CLIENT,
        peer_addr: EntityAddr::new(server, 0),
        check_peer_nonce: false,
        policy: Policy::lossless_client(0),
        global_seq: 1,
        connect_seq: 0,
        in_seq: 0,
        protocol_version: protocol_version(EntityType::CLIENT, EntityType::OSD, true),
        authorizer: None,
        cephx: None,
        learn_addr: true,
    });
    let mut buf = BytesMut::new();
    let mut io = s;
    loop {
        let ev = conn.handle_input(&mut buf).expect("handshake");
        if let Some(out) = conn.take_output() {
            io.write_all(&out).unwrap();
        }
        match ev {
            Some(ConnectorEvent::Ready(_)) => return,
            Some(e) => panic!("unexpected {e:?}"),
            None => {
                let mut chunk = [0u8; 512];
                let n = io.read(&mut chunk).unwrap();
                assert!(n > 0, "server closed the handshake");
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
