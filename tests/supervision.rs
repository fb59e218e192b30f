//! Supervision faults during a long lossless run: the reader, the writer and the Pipe itself
//! are stopped at random, on both sides, and a TCP proxy in the middle cuts connections. Every
//! message must arrive exactly once, in order; the counters must show the restarts and replays.
//! Also: a lossless client whose server restarts gets a remote reset and carries on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::{EntityAddr, EntityType, Policy};
use msgr_actors::{ConnEvent, KillTarget, Messenger};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards `listen` → `target`, rewriting the port in the server's greeting (its own address
/// at bytes 9..145) so the client sees the address it dialled. `cut()` drops every live pair.
struct Proxy {
    port: u16,
    generation: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let gen = generation.clone();
        let stop2 = stop.clone();
        tokio::spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let my_gen = gen.load(Ordering::SeqCst);
                tokio::spawn(pump(client, server, port, target, gen.clone(), my_gen));
            }
        });
        Proxy {
            port,
            generation,
            cuts: Arc::new(AtomicU64::new(0)),
            stop,
        }
    }

    fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    listen: u16,
    target: u16,
    gen: Arc<AtomicU64>,
    mine: u64,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let alive = move || gen.load(Ordering::SeqCst) == mine;
    let alive2 = alive.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while alive() {
            match tokio::time::timeout(Duration::from_millis(20), cr.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0usize;
        while alive2() {
            match tokio::time::timeout(Duration::from_millis(20), sr.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    // The server's own address: banner (9) + type (4) + nonce (4) + family (2), then port BE.
                    let port_at = 9 + 10;
                    for i in 0..n {
                        let abs = seen + i;
                        if abs == port_at
                            && u16::from_be_bytes([buf[i], *buf.get(i + 1).unwrap_or(&0)]) == target
                        {
                            buf[i..i + 2].copy_from_slice(&listen.to_be_bytes());
                        }
                    }
                    seen += n;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    };
    tokio::join!(up, down);
}

#[actix_rt::test]
async fn lossless_run_of_100k_survives_killed_actors_and_cut_connections() {
    init_tracing();
    let srv_rec = Recorder::echoing();
    let srv = server(
        osd(0),
        Policy::stateful_server(0),
        srv_rec.clone(),
        test_config(),
    )
    .await;
    let proxy = Proxy::start(srv.my_addr().port()).await;
    let via_proxy = EntityAddr::new(
        format!("127.0.0.1:{}", proxy.port).parse().unwrap(),
        srv.my_addr().nonce,
    );
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        test_config(),
    );
    let conn = cli
        .get_connection(via_proxy, EntityType::OSD)
        .await
        .unwrap();

    const N: u64 = 100_000;
    const FAULT_EVERY: u64 = 2_000;
    let done = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (conn, srv, done) = (conn.clone(), srv.clone(), done.clone());
        let proxy_gen = proxy.generation.clone();
        let cuts = proxy.cuts.clone();
        let echoes = cli_rec.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
            let mut kills = 0u64;
            // One fault per FAULT_EVERY echoes (plus some jitter), whatever the machine's
            // speed: a time-based schedule let a fast run finish between a handful of faults.
            let mut next_fault_at = FAULT_EVERY;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if (echoes.total() as u64) < next_fault_at {
                    continue;
                }
                next_fault_at += rng.gen_range(FAULT_EVERY / 2..FAULT_EVERY * 3 / 2);
                match rng.gen_range(0..7) {
                    0 => conn.inject_actor_fault(KillTarget::Reader),
                    1 => conn.inject_actor_fault(KillTarget::Writer),
                    2 => conn.inject_actor_fault(KillTarget::Pipe),
                    3..=5 => {
                        let target = [KillTarget::Reader, KillTarget::Writer, KillTarget::Pipe]
                            [rng.gen_range(0..3)];
                        for c in srv.connections().await {
                            c.inject_actor_fault(target);
                        }
                    }
                    _ => {
                        proxy_gen.fetch_add(1, Ordering::SeqCst);
                        cuts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                kills += 1;
            }
            kills
        })
    };
    let mut sent = 0u64;
    while sent < N {
        // Keep at most 2,000 in flight so faults land throughout the run.
        while sent < N && sent < cli_rec.total() as u64 + 2000 {
            conn.send_message(numbered(sent)).unwrap();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    wait_for(120, "every echo", || cli_rec.total() as u64 == N).await;
    done.store(true, Ordering::Relaxed);
    let faults_injected = chaos.await.unwrap();
    let got = cli_rec.all_msgs();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1.iter().copied().eq(0..N),
        "echoes lost, duplicated or reordered"
    );
    let at_server: Vec<u64> = srv_rec
        .all_msgs()
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    assert!(
        at_server.iter().copied().eq(0..N),
        "server saw loss, duplicates or reordering"
    );
    let (c, s) = (cli.counters(), srv.counters());
    eprintln!(
        "100k lossless: {faults_injected} injected faults, {} proxy cuts; client faults {} reconnects {} replayed {}; server faults {} replayed {}",
        proxy.cuts.load(Ordering::Relaxed), c.faults, c.reconnects, c.replayed, s.faults, s.replayed
    );
    assert!(
        c.reconnects > 10 && c.faults_injected > 0 && s.faults > 0,
        "client {c:?}\nserver {s:?}"
    );
    assert!(
        c.replayed + s.replayed > 0,
        "nothing was ever replayed: the faults missed the traffic"
    );
    cli.shutdown().await;
    srv.shutdown().await;
}

#[actix_rt::test]
async fn lossless_client_gets_remote_reset_when_its_server_restarts_and_carries_on() {
    init_tracing();
    let srv_rec = Recorder::echoing();
    let srv = server(
        osd(0),
        Policy::stateful_server(0),
        srv_rec.clone(),
        test_config(),
    )
    .await;
    let port = srv.my_addr().port();
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        test_config(),
    );
    let conn = cli
        .connect(
            format!("127.0.0.1:{port}").parse().unwrap(),
            EntityType::OSD,
        )
        .await
        .unwrap();
    for i in 0..100 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(10, "first echoes", || cli_rec.total() == 100).await;
    // The server process "restarts": a new messenger (new nonce, no sessions) on the same port.
    srv.shutdown().await;
    let srv2_rec = Recorder::echoing();
    let srv2 = Messenger::builder(osd(0))
        .config(test_config())
        .default_policy(Policy::stateful_server(0))
        .dispatcher(Arc::new(srv2_rec.clone()))
        .build()
        .unwrap();
    srv2.bind(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    srv2.start().unwrap();
    conn.send_message(numbered(1000)).unwrap();
    wait_for(10, "remote reset", || {
        cli_rec.events(ConnEvent::RemoteReset) == 1
    })
    .await;
    for i in 2000..2100 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(10, "echoes from the new server", || srv2_rec.total() >= 100).await;
    let new_session: Vec<u64> = srv2_rec
        .all_msgs()
        .into_iter()
        .flat_map(|(_, v)| v)
        .filter(|n| *n >= 2000)
        .collect();
    assert_eq!(
        new_session,
        (2000..2100).collect::<Vec<_>>(),
        "the fresh session delivers in order"
    );
    assert_eq!(
        conn.peer_addr().nonce,
        srv2.my_addr().nonce,
        "the new incarnation's nonce was learned"
    );
    cli.shutdown().await;
    srv2.shutdown().await;
}
