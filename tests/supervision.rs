//! Supervision faults during a long lossless run: the reader, the writer and the Pipe itself
//! are stopped at random, on both sides, and a TCP proxy in the middle cuts connections. Every
//! message must arrive exactly once, in order; the counters must show the restarts and replays.
//! Also: a lossless client whose server restarts gets a remote reset and carries on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::{EntityType, Policy};
use msgr_actors::{ConnEvent, KillTarget};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards to the server's port; the server advertises the proxy's address
/// (`public_addr` / `public_addrv`), so the client sees the address it dialled. `cut()` drops
/// every live pair.
struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    generation: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens at once; forwards nothing until [`Proxy::forward_to`].
    async fn bind() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(AtomicU16::new(0));
        let (gen, stop2, target2) = (generation.clone(), stop.clone(), target.clone());
        tokio::spawn(async move {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                let to = target2.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let my_gen = gen.load(Ordering::SeqCst);
                tokio::spawn(pump(client, server, gen.clone(), my_gen));
            }
        });
        Proxy {
            port,
            target,
            generation,
            cuts: Arc::new(AtomicU64::new(0)),
            stop,
        }
    }

    fn forward_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    /// The config that makes a server behind this proxy advertise it, on the wire in use.
    fn advertised(&self, config: msgr::Config) -> msgr::Config {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        advertising(config, addr, v2())
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

async fn pump(client: TcpStream, server: TcpStream, gen: Arc<AtomicU64>, mine: u64) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let alive = move || gen.load(Ordering::SeqCst) == mine;
    tokio::join!(copy_while(cr, sw, alive.clone()), copy_while(sr, cw, alive));
}

/// Copies `from` → `to` while `alive()`, checking it at least every 20 ms.
async fn copy_while(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    alive: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while alive() {
        match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Err(_) => {}
        }
    }
}

#[actix_rt::test]
async fn lossless_run_of_100k_survives_killed_actors_and_cut_connections() {
    init_tracing();
    let srv_rec = Recorder::echoing();
    let proxy = Proxy::bind().await;
    // The server binds a port of our choosing and advertises the proxy's.
    let bound: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    proxy.forward_to(bound.port());
    let srv = test_builder(osd(0))
        .config(proxy.advertised(test_config()))
        .default_policy(Policy::stateful_server(0))
        .dispatcher(Arc::new(srv_rec.clone()))
        .build()
        .unwrap();
    let advertised = bind_wire(&srv, bound).await;
    srv.start().unwrap();
    assert_eq!(
        advertised.port(),
        proxy.port,
        "the server advertises the proxy"
    );
    let via_proxy = advertised;
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        test_config(),
    );
    let conn = connect_to(&cli, via_proxy, EntityType::OSD).await;

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
    let (mut progress, mut last_total) = (tokio::time::Instant::now(), 0);
    while sent < N {
        // Keep at most 2,000 in flight so faults land throughout the run.
        while sent < N && sent < cli_rec.total() as u64 + 2000 {
            conn.send_message(numbered(sent)).unwrap();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        if cli_rec.total() != last_total {
            (progress, last_total) = (tokio::time::Instant::now(), cli_rec.total());
        }
        assert!(
            progress.elapsed() < Duration::from_secs(60),
            "no echo for 60 s at {last_total} of {N}: client {:?} {:?}\nserver {:?}",
            conn.info().await,
            cli.counters(),
            srv.counters()
        );
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
    let port = dial_addr(&srv).port();
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        test_config(),
    );
    // Dialled by IP and port only: the nonce is learned, and a new one later means a restart.
    let by_port = format!("127.0.0.1:{port}").parse().unwrap();
    let conn = connect_any_nonce(&cli, by_port, EntityType::OSD).await;
    for i in 0..100 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(10, "first echoes", || cli_rec.total() == 100).await;
    // The server process "restarts": a new messenger (new nonce, no sessions) on the same port.
    srv.shutdown().await;
    let srv2_rec = Recorder::echoing();
    let srv2 = test_builder(osd(0))
        .config(test_config())
        .default_policy(Policy::stateful_server(0))
        .dispatcher(Arc::new(srv2_rec.clone()))
        .build()
        .unwrap();
    bind_wire(&srv2, format!("127.0.0.1:{port}").parse().unwrap()).await;
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
        dial_addr(&srv2).nonce,
        "the new incarnation's nonce was learned"
    );
    cli.shutdown().await;
    srv2.shutdown().await;
}
