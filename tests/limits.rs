//! Receive throttles: a slow dispatcher makes readers wait (bounding memory) without losing or
//! reordering anything.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::{Message, Policy};
use msgr_actors::{Connection, Dispatcher, Messenger};

/// Records, and takes its time about it.
#[derive(Clone, Default)]
struct Slow {
    rec: Recorder,
    bytes: Arc<AtomicU64>,
    /// Largest number of undispatched bytes seen (from inside dispatch).
    peak_in_use: Arc<AtomicU64>,
    messenger: Arc<std::sync::OnceLock<Messenger>>,
}

impl Dispatcher for Slow {
    fn ms_dispatch(&self, conn: &Connection, msg: Message) -> bool {
        std::thread::sleep(Duration::from_micros(300));
        if let Some(m) = self.messenger.get() {
            self.peak_in_use
                .fetch_max(m.dispatch_throttle().0, Ordering::Relaxed);
        }
        self.bytes.fetch_add(msg.payload_len(), Ordering::Relaxed);
        self.rec.ms_dispatch(conn, msg)
    }
}

async fn run(policy: Policy, config: msgr::Config) -> (Slow, Messenger) {
    let slow = Slow::default();
    let srv = server_with(osd(0), policy, Arc::new(slow.clone()), config).await;
    // Before any client connects, so the dispatcher always finds it.
    let _ = slow.messenger.set(srv.clone());
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        Recorder::default(),
        test_config(),
    );
    let conn = osd_connection(&cli, &srv).await;
    for i in 0..1500u64 {
        let mut m = numbered(i);
        m.data = vec![7u8; 16 * 1024].into();
        conn.send_message(m).unwrap();
    }
    wait_for(60, "all 1500 dispatched", || slow.rec.total() == 1500).await;
    assert_eq!(slow.rec.all_msgs()[0].1, (0..1500).collect::<Vec<_>>());
    cli.shutdown().await;
    (slow, srv)
}

#[actix_rt::test]
async fn dispatch_throttle_makes_the_reader_wait_for_a_slow_dispatcher() {
    let config = test_config().ms_dispatch_throttle_bytes(64 * 1024);
    let (slow, srv) = run(Policy::stateful_server(0), config).await;
    let peak = slow.peak_in_use.load(Ordering::Relaxed);
    assert!(
        srv.counters().throttle_waits > 0,
        "the reader never waited (peak in use {peak}): {:?}",
        srv.counters()
    );
    assert!(peak <= 64 * 1024, "more than the throttle was held: {peak}");
    srv.shutdown().await;
}

#[actix_rt::test]
async fn policy_throttles_bound_one_connection() {
    let policy = Policy::stateful_server(0).with_throttles(Some(64 * 1024), Some(4));
    let (_, srv) = run(policy, test_config()).await;
    assert!(srv.counters().throttle_waits > 0, "{:?}", srv.counters());
    srv.shutdown().await;
}

#[actix_rt::test]
async fn without_pressure_nothing_waits() {
    let (_, srv) = run(Policy::stateful_server(0), test_config()).await;
    assert_eq!(
        srv.counters().throttle_waits,
        0,
        "the 100 MiB default throttle was never near full"
    );
    srv.shutdown().await;
}
