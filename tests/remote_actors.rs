//! Remote actors over the messenger: typed tell and ask between actix actors on two
//! messengers, exactly once and in order on lossless sessions under injected socket failures;
//! typed errors for unknown names, wrong types and silent peers; pending asks fail at once when
//! the peer restarts; the bound on asks in flight holds.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::*;
use msgr::{Config, EntityType, Policy};
use msgr_actors::remote::{
    ActorNode, AskError, DownReason, NodeOptions, PeerReset, RemoteDown, RemoteMessage,
};
use msgr_actors::{Connection, Messenger};
use serde::{Deserialize, Serialize};

/// Adds to a counter; the reply is the running total.
#[derive(Serialize, Deserialize, actix::Message, Debug, Clone)]
#[rtype(result = "u64")]
struct Add {
    from: u32,
    n: u64,
}

impl RemoteMessage for Add {
    const TYPE_NAME: &'static str = "test.Add/1";
    type Reply = u64;
}

/// Another type, for the mismatch test.
#[derive(Serialize, Deserialize, actix::Message, Debug, Clone)]
#[rtype(result = "String")]
struct Greet(String);

impl RemoteMessage for Greet {
    const TYPE_NAME: &'static str = "test.Greet/1";
    type Reply = String;
}

/// Never answers: its replies are futures that never finish.
#[derive(Serialize, Deserialize, actix::Message, Debug, Clone)]
#[rtype(result = "u64")]
struct Hang;

impl RemoteMessage for Hang {
    const TYPE_NAME: &'static str = "test.Hang/1";
    type Reply = u64;
}

/// Records each Add's number in arrival order.
#[derive(Default)]
struct Counter {
    seen: Arc<Mutex<Vec<u64>>>,
    total: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Add> for Counter {
    type Result = u64;
    fn handle(&mut self, m: Add, _: &mut Context<Self>) -> u64 {
        self.seen.lock().unwrap().push(m.n);
        self.total += m.n;
        self.total
    }
}

/// Stops the actor that gets it.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Quit;

impl Handler<Quit> for Counter {
    type Result = ();
    fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

struct Silent;

impl Actor for Silent {
    type Context = Context<Self>;
}

impl Handler<Hang> for Silent {
    type Result = ResponseFuture<u64>;
    fn handle(&mut self, _: Hang, _: &mut Context<Self>) -> Self::Result {
        Box::pin(std::future::pending())
    }
}

/// Keeps the watch and reset notices it is told.
#[derive(Default, Clone)]
struct Notes {
    downs: Arc<Mutex<Vec<RemoteDown>>>,
    resets: Arc<Mutex<Vec<PeerReset>>>,
}

impl Actor for Notes {
    type Context = Context<Self>;
}

impl Handler<RemoteDown> for Notes {
    type Result = ();
    fn handle(&mut self, d: RemoteDown, _: &mut Context<Self>) {
        self.downs.lock().unwrap().push(d);
    }
}

impl Handler<PeerReset> for Notes {
    type Result = ();
    fn handle(&mut self, r: PeerReset, _: &mut Context<Self>) {
        self.resets.lock().unwrap().push(r);
    }
}

impl Notes {
    fn downs(&self) -> Vec<(String, DownReason)> {
        let downs = self.downs.lock().unwrap();
        downs.iter().map(|d| (d.name.clone(), d.reason)).collect()
    }
}

/// A server node (an OSD, stateful server) with a Counter as "counter" and a Silent actor as
/// "silent", and its messenger bound on the wire in use.
struct Server {
    m: Messenger,
    node: ActorNode,
    seen: Arc<Mutex<Vec<u64>>>,
}

async fn server_node(config: Config) -> Server {
    server_node_with(config, NodeOptions::default()).await
}

async fn server_node_with(config: Config, opts: NodeOptions) -> Server {
    let node = ActorNode::new(opts);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        seen: seen.clone(),
        total: 0,
    }
    .start();
    node.register::<Add>("counter", counter.recipient());
    node.register::<Hang>("silent", Silent.start().recipient());
    let m = server_with(
        osd(0),
        Policy::stateful_server(0),
        node.dispatcher(),
        config,
    )
    .await;
    Server { m, node, seen }
}

async fn client_node(
    srv: &Messenger,
    opts: NodeOptions,
    config: Config,
) -> (Messenger, ActorNode, Connection) {
    let node = ActorNode::new(opts);
    let m = test_builder(client_name(1))
        .config(config)
        .default_policy(Policy::lossless_client(0))
        .dispatcher(node.dispatcher())
        .build()
        .unwrap();
    // By IP and port: the server's nonce is learned, so a restarted server is met as such.
    let at = dial_addr(srv).addr.unwrap();
    let conn = connect_any_nonce(&m, at, EntityType::OSD).await;
    (m, node, conn)
}

#[actix_rt::test]
async fn tells_and_asks_arrive_exactly_once_and_in_order_under_socket_failures() {
    init_tracing();
    let faulty = test_config().ms_inject_socket_failures(200);
    let srv = server_node(faulty.clone()).await;
    let (cli, node, conn) = client_node(&srv.m, NodeOptions::default(), faulty).await;
    let counter = node.remote::<Add>(&conn, "counter");
    const TELLS: u64 = 5_000;
    const ASKS: u64 = 500;
    let mut expected_total = 0;
    for i in 0..TELLS {
        counter.tell(&Add { from: 1, n: i }).unwrap();
        expected_total += i;
    }
    // Asks interleaved with the tells' tail: each answer is the running total, so it proves
    // every earlier message arrived once before it.
    let mut answers = Vec::new();
    for i in TELLS..TELLS + ASKS {
        expected_total += i;
        let total = counter.ask(&Add { from: 1, n: i }).await.unwrap();
        answers.push(total);
        assert_eq!(total, expected_total, "the running total after {i}");
    }
    let seen = srv.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        (0..TELLS + ASKS).collect::<Vec<_>>(),
        "each once, in order"
    );
    let c = cli.counters();
    assert!(
        c.faults > 0 && c.reconnects > 0,
        "the faults happened: {c:?}"
    );
    let s = srv.node.stats();
    assert_eq!((s.tells_in, s.asks_in, s.refused_in), (TELLS, ASKS, 0));
    assert_eq!(node.stats().asks_pending, 0);
    cli.shutdown().await;
    srv.m.shutdown().await;
}

#[actix_rt::test]
async fn unknown_names_and_wrong_types_are_typed_errors() {
    init_tracing();
    let srv = server_node(test_config()).await;
    let (cli, node, conn) = client_node(&srv.m, NodeOptions::default(), test_config()).await;
    let nobody = node.remote::<Add>(&conn, "nobody");
    assert_eq!(
        nobody.ask(&Add { from: 1, n: 1 }).await,
        Err(AskError::UnknownName("nobody".into()))
    );
    let wrong = node.remote::<Greet>(&conn, "counter");
    assert_eq!(
        wrong.ask(&Greet("hi".into())).await,
        Err(AskError::TypeMismatch("test.Greet/1"))
    );
    // A tell to nobody cannot be answered; the peer's refusal is counted here.
    nobody.tell(&Add { from: 1, n: 1 }).unwrap();
    wait_for(20, "the tell's refusal", || node.stats().tells_refused == 1).await;
    assert!(
        srv.seen.lock().unwrap().is_empty(),
        "nothing reached the counter"
    );
    assert_eq!(srv.node.stats().refused_in, 3);
    cli.shutdown().await;
    srv.m.shutdown().await;
}

#[actix_rt::test]
async fn a_silent_actor_times_out_and_the_bound_on_asks_in_flight_holds() {
    init_tracing();
    let srv = server_node(test_config()).await;
    let opts = NodeOptions {
        max_asks_in_flight: 4,
        ..NodeOptions::default()
    };
    let (cli, node, conn) = client_node(&srv.m, opts, test_config()).await;
    let silent = node.remote::<Hang>(&conn, "silent");
    // Twenty asks at once: four go out, sixteen wait for a slot; none may outgrow the bound.
    let asks: Vec<_> = (0..20)
        .map(|_| {
            let s = silent.clone();
            actix::spawn(async move { s.ask_within(&Hang, Duration::from_secs(2)).await })
        })
        .collect();
    // Watch the pending asks the whole time.
    let most = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let (node, most) = (node.clone(), most.clone());
        actix::spawn(async move {
            loop {
                most.fetch_max(
                    node.stats().asks_pending,
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    wait_for(20, "four asks pending", || node.stats().asks_pending == 4).await;
    for a in asks {
        assert_eq!(a.await.unwrap(), Err(AskError::Timeout));
    }
    watcher.abort();
    let most = most.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(most, 4, "at most four asks pending at once");
    assert_eq!(node.stats().asks_pending, 0, "timed-out asks are forgotten");
    // Waiting asks take the slots freed as others time out (all twenty share one deadline
    // here), so more than four may reach the peer over the run: never more than four at once.
    assert!(srv.node.stats().asks_in >= 4);
    cli.shutdown().await;
    srv.m.shutdown().await;
}

#[actix_rt::test]
async fn pending_asks_fail_at_once_when_the_peer_restarts() {
    init_tracing();
    let srv = server_node(test_config()).await;
    let (cli, node, conn) = client_node(&srv.m, NodeOptions::default(), test_config()).await;
    let notes = Notes::default();
    let watcher = notes.clone().start();
    node.on_peer_reset(watcher.clone().recipient());
    let counter = node.remote::<Add>(&conn, "counter");
    for n in 1..=3 {
        counter.tell(&Add { from: 1, n }).unwrap();
    }
    // The answer confirms the three tells before it; the five after it stay unconfirmed.
    assert_eq!(counter.ask(&Add { from: 1, n: 5 }).await, Ok(11));
    for n in 0..5 {
        counter.tell(&Add { from: 1, n }).unwrap();
    }
    node.watch(&conn, "counter", watcher.clone().recipient())
        .unwrap();
    let silent = node.remote::<Hang>(&conn, "silent");
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let s = silent.clone();
            actix::spawn(async move { s.ask_within(&Hang, Duration::from_secs(120)).await })
        })
        .collect();
    wait_for(20, "three asks pending", || node.stats().asks_pending == 3).await;
    // The server restarts: same port, new nonce, no sessions. The client's next dial meets
    // it, learns of the reset, and every pending ask fails with PeerReset, long before 120 s.
    let addr = dial_addr(&srv.m);
    srv.m.shutdown().await;
    let srv2 = {
        let node2 = ActorNode::new(NodeOptions::default());
        node2.register::<Add>("counter", Counter::default().start().recipient());
        let m = test_builder(osd(0))
            .config(test_config())
            .default_policy(Policy::stateful_server(0))
            .dispatcher(node2.dispatcher())
            .build()
            .unwrap();
        bind_wire(&m, addr.addr.unwrap()).await;
        m.start().unwrap();
        m
    };
    conn.send_keepalive();
    let started = tokio::time::Instant::now();
    for p in pending {
        assert_eq!(p.await.unwrap(), Err(AskError::PeerReset));
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed at the reset, not at the timeout"
    );
    wait_for(20, "the reset notice and the watch's end", || {
        !notes.resets.lock().unwrap().is_empty() && !notes.downs().is_empty()
    })
    .await;
    let reset = notes.resets.lock().unwrap()[0].clone();
    assert_eq!((reset.conn, reset.tells_unconfirmed), (conn.id(), 5));
    assert_eq!(
        notes.downs(),
        [("counter".to_string(), DownReason::PeerReset)]
    );
    // The session carries on with the new incarnation.
    assert_eq!(counter.ask(&Add { from: 1, n: 7 }).await, Ok(7));
    cli.shutdown().await;
    srv2.shutdown().await;
}

#[actix_rt::test]
async fn a_watch_ends_when_the_remote_actor_stops_or_was_never_there() {
    init_tracing();
    let srv = server_node(test_config()).await;
    let (cli, node, conn) = client_node(&srv.m, NodeOptions::default(), test_config()).await;
    let notes = Notes::default();
    let watcher = notes.clone().start();
    node.watch(&conn, "nobody", watcher.clone().recipient())
        .unwrap();
    wait_for(20, "nobody's down", || notes.downs().len() == 1).await;
    assert_eq!(
        notes.downs()[0],
        ("nobody".to_string(), DownReason::NoSuchActor)
    );
    // A live actor: nothing until it is gone. Then one RemoteDown, Stopped.
    node.watch(&conn, "counter", watcher.clone().recipient())
        .unwrap();
    let counter = node.remote::<Add>(&conn, "counter");
    assert_eq!(counter.ask(&Add { from: 1, n: 2 }).await, Ok(2));
    assert_eq!(notes.downs().len(), 1, "the counter still runs");
    srv.node.unregister("counter");
    wait_for(20, "the counter's down", || notes.downs().len() == 2).await;
    assert_eq!(
        notes.downs()[1],
        ("counter".to_string(), DownReason::Stopped)
    );
    // An actor that stops by itself is noticed too.
    let quitter = Counter::default().start();
    srv.node
        .register::<Add>("quitter", quitter.clone().recipient());
    node.watch(&conn, "quitter", watcher.clone().recipient())
        .unwrap();
    let q = node.remote::<Add>(&conn, "quitter");
    assert_eq!(q.ask(&Add { from: 1, n: 1 }).await, Ok(1));
    quitter.do_send(Quit);
    wait_for(20, "the quitter's down", || notes.downs().len() == 3).await;
    assert_eq!(
        notes.downs()[2],
        ("quitter".to_string(), DownReason::Stopped)
    );
    assert_eq!(
        q.ask(&Add { from: 1, n: 1 }).await,
        Err(AskError::ActorStopped),
        "a stopped actor is a typed error"
    );
    cli.shutdown().await;
    srv.m.shutdown().await;
}

/// Through a proxy that cuts the connection now and then (the cutting proxy of the chaos
/// suite): every tell once, in order, every ask answered with the running total.
#[actix_rt::test]
async fn through_a_cutting_proxy_every_tell_arrives_once_and_every_ask_is_answered() {
    init_tracing();
    let bound: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let chaos = chaos::Chaos {
        cut_one_in: 40,
        ..chaos::Chaos::none(0xac7)
    };
    let proxy = chaos::ChaosProxy::start("127.0.0.1:0".parse().unwrap(), bound, chaos).await;
    let advertised = advertising(test_config(), proxy.addr, v2());
    let node = ActorNode::new(NodeOptions::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        seen: seen.clone(),
        total: 0,
    };
    node.register::<Add>("counter", counter.start().recipient());
    let srv = test_builder(osd(0))
        .config(advertised)
        .default_policy(Policy::stateful_server(0))
        .dispatcher(node.dispatcher())
        .build()
        .unwrap();
    bind_wire(&srv, bound).await;
    srv.start().unwrap();
    let (cli, cnode, conn) = client_node(&srv, NodeOptions::default(), test_config()).await;
    let remote = cnode.remote::<Add>(&conn, "counter");
    let (mut sent, mut total) = (0u64, 0u64);
    for round in 0..100u64 {
        for _ in 0..20 {
            remote.tell(&Add { from: 1, n: sent }).unwrap();
            total += sent;
            sent += 1;
        }
        total += round;
        let got = remote.ask(&Add { from: 1, n: round }).await.unwrap();
        assert_eq!(got, total, "round {round}");
    }
    let mut expected = Vec::new();
    let mut n = 0;
    for round in 0..100u64 {
        expected.extend(n..n + 20);
        n += 20;
        expected.push(round);
    }
    assert_eq!(*seen.lock().unwrap(), expected, "each once, in order");
    assert!(
        proxy.counts().cuts > 0,
        "the proxy cut: {:?}",
        proxy.counts()
    );
    cli.shutdown().await;
    srv.shutdown().await;
}

/// On a lossy session (a lossy client toward a stateless server) under socket failures: at
/// most once. Tells may be lost but never duplicated or reordered; each ask ends in its reply or
/// one typed error (PeerReset, or ConnectionClosed once the session is gone).
#[actix_rt::test]
async fn on_a_lossy_session_at_most_once_with_the_same_errors() {
    init_tracing();
    let faulty = test_config().ms_inject_socket_failures(100);
    let node = ActorNode::new(NodeOptions::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Counter {
        seen: seen.clone(),
        total: 0,
    };
    node.register::<Add>("counter", counter.start().recipient());
    let srv = server_with(
        osd(0),
        Policy::stateless_server(0),
        node.dispatcher(),
        faulty.clone(),
    )
    .await;
    let (mut replies, mut errors, mut sessions) = (0, 0, 0);
    // A lossy session ends at its first fault: open new ones until enough were tried.
    while sessions < 20 && replies + errors < 400 {
        sessions += 1;
        let cnode = ActorNode::new(NodeOptions::default());
        let cli = test_builder(client_name(sessions))
            .config(faulty.clone())
            .default_policy(Policy::lossy_client(0))
            .dispatcher(cnode.dispatcher())
            .build()
            .unwrap();
        let conn = connect_to(&cli, dial_addr(&srv), EntityType::OSD).await;
        let remote = cnode.remote::<Add>(&conn, "counter");
        for i in 0..50u64 {
            let _ = remote.tell(&Add {
                from: sessions as u32,
                n: sessions as u64 * 1_000_000 + i,
            });
            match remote
                .ask_within(
                    &Add {
                        from: sessions as u32,
                        n: 0,
                    },
                    Duration::from_secs(20),
                )
                .await
            {
                Ok(_) => replies += 1,
                Err(AskError::PeerReset | AskError::ConnectionClosed) => errors += 1,
                Err(e) => panic!("an ask on a lossy session ended in {e:?}"),
            }
        }
        cli.shutdown().await;
    }
    let seen = seen.lock().unwrap().clone();
    let told: Vec<u64> = seen.iter().copied().filter(|n| *n >= 1_000_000).collect();
    let mut sorted = told.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(told, sorted, "tells never duplicated or reordered");
    assert!(
        replies > 0 && errors > 0,
        "{replies} replies, {errors} errors: the faults hit asks"
    );
    srv.shutdown().await;
}

/// A peer that asks more than we serve at once is refused (`Busy`), so its asks cannot grow
/// our memory either; the asks being served are not disturbed.
#[actix_rt::test]
async fn asks_past_the_servers_bound_are_refused_busy() {
    init_tracing();
    let served = NodeOptions {
        max_asks_served: 2,
        ..NodeOptions::default()
    };
    let srv = server_node_with(test_config(), served).await;
    let (cli, node, conn) = client_node(&srv.m, NodeOptions::default(), test_config()).await;
    let silent = node.remote::<Hang>(&conn, "silent");
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let s = silent.clone();
            actix::spawn(async move { s.ask_within(&Hang, Duration::from_secs(60)).await })
        })
        .collect();
    wait_for(20, "two asks served", || srv.node.stats().asks_in == 2).await;
    for _ in 0..5 {
        assert_eq!(
            silent.ask_within(&Hang, Duration::from_secs(20)).await,
            Err(AskError::Busy)
        );
    }
    assert_eq!(
        srv.node.stats().asks_in,
        2,
        "the refused asks reached no actor"
    );
    // Other actors' asks are refused too while the connection is at its bound...
    let counter = node.remote::<Add>(&conn, "counter");
    assert_eq!(
        counter.ask(&Add { from: 1, n: 1 }).await,
        Err(AskError::Busy)
    );
    // ...and served again once a slot frees: the two hanging asks end at the reset below.
    for h in hanging {
        h.abort();
    }
    cli.shutdown().await;
    srv.m.shutdown().await;
}
