//! Helpers shared by the integration tests: a recording dispatcher, messenger setup, and
//! bounded polling (never a bare sleep that races).

#![allow(dead_code)]

pub mod chaos;
pub mod peers;
pub mod raw;
#[allow(unused_imports)] // each test binary uses its own part
pub use peers::{peer_mon, Inbox};
#[allow(unused_imports)]
pub use raw::raw_handshake;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use msgr::{Config, EntityName, EntityType, Message, Policy};
use msgr_actors::{AuthSetup, ConnEvent, Connection, Dispatcher, Messenger};

/// Message type used by the tests (in the private range the examples document).
pub const TEST_MSG: u16 = 0xEF00;
/// Replies.
pub const TEST_REPLY: u16 = 0xEF01;

/// What a recording dispatcher saw.
#[derive(Default)]
pub struct Record {
    /// Payload numbers received per connection id.
    pub msgs: HashMap<u64, Vec<u64>>,
    /// Events per connection id.
    pub events: HashMap<u64, Vec<ConnEvent>>,
    /// Connections seen, by id.
    pub conns: HashMap<u64, Connection>,
}

/// Records everything; optionally echoes TEST_MSG back as TEST_REPLY.
#[derive(Default, Clone)]
pub struct Recorder {
    pub rec: Arc<Mutex<Record>>,
    pub echo: bool,
}

impl Recorder {
    pub fn echoing() -> Self {
        Recorder {
            echo: true,
            ..Default::default()
        }
    }

    pub fn total(&self) -> usize {
        self.rec.lock().unwrap().msgs.values().map(Vec::len).sum()
    }

    pub fn events(&self, ev: ConnEvent) -> usize {
        self.rec
            .lock()
            .unwrap()
            .events
            .values()
            .flatten()
            .filter(|e| **e == ev)
            .count()
    }

    pub fn all_msgs(&self) -> Vec<(u64, Vec<u64>)> {
        let r = self.rec.lock().unwrap();
        let mut v: Vec<_> = r.msgs.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort();
        v
    }
}

pub fn payload(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}

pub fn numbered(n: u64) -> Message {
    Message::new(TEST_MSG, payload(n))
}

pub fn number_of(m: &Message) -> u64 {
    u64::from_le_bytes(m.front[..8].try_into().expect("8-byte payload"))
}

impl Dispatcher for Recorder {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        let n = number_of(&msg);
        {
            let mut r = self.rec.lock().unwrap();
            r.msgs.entry(conn.id()).or_default().push(n);
            r.conns.entry(conn.id()).or_insert_with(|| conn.clone());
        }
        if self.echo && msg.msg_type == TEST_MSG {
            let _ = conn.send_message(Message::new(TEST_REPLY, msg.front));
        }
        true
    }
    fn ms_handle_connect(&self, c: &Connection) {
        self.ev(c, ConnEvent::Connect)
    }
    fn ms_handle_accept(&self, c: &Connection) {
        self.ev(c, ConnEvent::Accept)
    }
    fn ms_handle_reset(&self, c: &Connection) -> bool {
        self.ev(c, ConnEvent::Reset);
        true
    }
    fn ms_handle_remote_reset(&self, c: &Connection) {
        self.ev(c, ConnEvent::RemoteReset)
    }
    fn ms_handle_refused(&self, c: &Connection) -> bool {
        self.ev(c, ConnEvent::Refused);
        true
    }
}

impl Recorder {
    fn ev(&self, c: &Connection, ev: ConnEvent) {
        let mut r = self.rec.lock().unwrap();
        r.events.entry(c.id()).or_default().push(ev);
        r.conns.entry(c.id()).or_insert_with(|| c.clone());
    }
}

/// A config for tests: fast backoff, 2 shards; over `MSGR_WIRE=v2-secure`, every msgr2
/// session in secure mode.
pub fn test_config() -> Config {
    let c = Config::default()
        .ms_initial_backoff(Duration::from_millis(10))
        .ms_max_backoff(Duration::from_millis(200))
        .ms_threads(2);
    if secure() {
        c.ms_modes("secure")
    } else {
        c
    }
}

/// The suites run over msgr v1, or over msgr2 when `MSGR_WIRE` is `v2` (crc mode) or
/// `v2-secure` (`scripts/test` runs the scenario suites each way).
pub fn v2() -> bool {
    std::env::var("MSGR_WIRE").is_ok_and(|v| v == "v2" || v == "v2-secure")
}

/// What [`msgr_actors::PipeInfo::wire`] says of an open session on the wire in use.
pub fn wire_name() -> &'static str {
    match (v2(), secure()) {
        (false, _) => "v1",
        (true, false) => "msgr2-crc",
        (true, true) => "msgr2-secure",
    }
}

/// `MSGR_WIRE=v2-secure`: msgr2 in secure mode, which needs cephx: every messenger of a test
/// holds one cluster key ([`wire_auth`]).
pub fn secure() -> bool {
    std::env::var("MSGR_WIRE").is_ok_and(|v| v == "v2-secure")
}

/// `Messenger::builder(name)` with the authentication of the wire in use.
pub fn test_builder(name: EntityName) -> msgr_actors::MessengerBuilder {
    Messenger::builder(name).auth(wire_auth(name))
}

/// The authentication a test messenger named `name` uses on the wire in use: none, or over
/// `v2-secure` cephx with a key every messenger of the test shares.
pub fn wire_auth(name: EntityName) -> AuthSetup {
    if !secure() {
        return AuthSetup::default();
    }
    let key = msgr::auth::CryptoKey::new((0, 0), &[0x5e; 16]).expect("a 16-byte key");
    AuthSetup::cluster_key(name.into(), key)
}

/// Binds `m` on the wire in use.
pub async fn bind_wire(m: &Messenger, addr: std::net::SocketAddr) -> msgr::EntityAddr {
    if v2() {
        m.bind_v2(addr).await.expect("bind v2")
    } else {
        m.bind(addr).await.expect("bind")
    }
}

/// The address `m` is dialled at on the wire in use.
pub fn dial_addr(m: &Messenger) -> msgr::EntityAddr {
    if v2() {
        m.my_addr_v2().expect("bound v2")
    } else {
        m.my_addr()
    }
}

/// `config` for a server reached through a proxy at `addr`: it advertises that address on msgr2
/// (`public_addrv`) or on v1 (`public_addr`).
pub fn advertising(config: Config, addr: std::net::SocketAddr, v2: bool) -> Config {
    if v2 {
        config.public_addrv(format!("[v2:{addr}]"))
    } else {
        config.public_addr(Some(addr))
    }
}

/// Sends `conn` rounds of 200 numbered messages, each round waiting (up to `secs`) for all
/// echoes so far, until `cli` has reconnected `reconnects` times, so the faults a test is
/// about surely happen; returns how many were sent (0, 1, 2, ...).
pub async fn rounds_until_reconnects(
    cli: &Messenger,
    conn: &msgr_actors::Connection,
    echoes: &Recorder,
    reconnects: u64,
    secs: u64,
) -> u64 {
    let mut n = 0u64;
    while cli.counters().reconnects < reconnects {
        assert!(
            n < 200_000,
            "{reconnects} reconnects within 200,000 messages"
        );
        for i in n..n + 200 {
            conn.send_message(numbered(i)).unwrap();
        }
        n += 200;
        let sent = n as usize;
        wait_for(secs, "the round's echoes", || echoes.total() == sent).await;
    }
    n
}

/// The session from `cli` to `addr` on the wire in use.
pub async fn connect_to(
    cli: &Messenger,
    addr: msgr::EntityAddr,
    ty: EntityType,
) -> msgr_actors::Connection {
    if v2() {
        cli.get_connection_v2(addr, ty).await.expect("connection")
    } else {
        cli.get_connection(addr, ty).await.expect("connection")
    }
}

/// The session from `cli` to whatever server listens at `addr` on the wire in use (its nonce
/// is learned).
pub async fn connect_any_nonce(
    cli: &Messenger,
    addr: std::net::SocketAddr,
    ty: EntityType,
) -> msgr_actors::Connection {
    if v2() {
        cli.connect_v2(addr, ty).await.expect("connection")
    } else {
        cli.connect(addr, ty).await.expect("connection")
    }
}

/// A messenger with one policy for every peer type, bound to 127.0.0.1 and started.
pub async fn server(name: EntityName, policy: Policy, rec: Recorder, config: Config) -> Messenger {
    server_with(name, policy, Arc::new(rec), config).await
}

/// [`server`] with any dispatcher.
pub async fn server_with(
    name: EntityName,
    policy: Policy,
    dispatcher: Arc<dyn msgr_actors::Dispatcher>,
    config: Config,
) -> Messenger {
    let m = test_builder(name)
        .config(config)
        .default_policy(policy)
        .dispatcher(dispatcher)
        .build()
        .expect("build");
    bind_wire(&m, "127.0.0.1:0".parse().unwrap()).await;
    m.start().expect("start");
    m
}

/// A messenger that only dials.
pub fn client(name: EntityName, policy: Policy, rec: Recorder, config: Config) -> Messenger {
    test_builder(name)
        .config(config)
        .default_policy(policy)
        .dispatcher(Arc::new(rec))
        .build()
        .expect("build")
}

pub fn osd(n: i64) -> EntityName {
    EntityName::new(EntityType::OSD, n)
}

pub fn client_name(n: i64) -> EntityName {
    EntityName::new(EntityType::CLIENT, n)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 5 ms until it holds or `secs` pass; panics with `what` on timeout.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Like [`wait_for`] with an async condition.
pub async fn wait_for_async<F: Future<Output = bool>>(
    secs: u64,
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The setup most tests start from: an echoing `stateful_server` OSD and a `lossless_client`
/// with its connection to it.
/// `cli`'s session to the OSD messenger `srv`.
pub async fn osd_connection(cli: &Messenger, srv: &Messenger) -> msgr_actors::Connection {
    connect_to(cli, dial_addr(srv), EntityType::OSD).await
}

pub struct LosslessPair {
    pub srv: Messenger,
    pub srv_rec: Recorder,
    pub cli: Messenger,
    pub cli_rec: Recorder,
    pub conn: msgr_actors::Connection,
}

pub async fn lossless_pair() -> LosslessPair {
    lossless_pair_with(test_config()).await
}

/// [`lossless_pair`] with both messengers on `config`.
pub async fn lossless_pair_with(config: Config) -> LosslessPair {
    let srv_rec = Recorder::echoing();
    let srv = server(
        osd(0),
        Policy::stateful_server(0),
        srv_rec.clone(),
        config.clone(),
    )
    .await;
    let cli_rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        cli_rec.clone(),
        config,
    );
    let conn = osd_connection(&cli, &srv).await;
    LosslessPair {
        srv,
        srv_rec,
        cli,
        cli_rec,
        conn,
    }
}
