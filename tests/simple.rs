//! Ceph's SimpleTest over the wire in use (MSGR_WIRE): round trips, mark_down, a dead server, the local connection.

mod common;

use common::*;
use msgr_actors::ConnEvent;

#[actix_rt::test]
async fn round_trip_lossless_client_to_stateful_server() {
    round_trip(test_config()).await;
}

/// The same with shard threads that busy-poll after reads: order and counts unchanged, and
/// shutdown still completes with the spinners running.
#[actix_rt::test]
async fn round_trip_with_busy_polling() {
    round_trip(test_config().ms_busy_poll_us(200)).await;
}

async fn round_trip(config: msgr::Config) {
    init_tracing();
    let LosslessPair {
        srv,
        srv_rec,
        cli,
        cli_rec,
        conn,
    } = lossless_pair_with(config).await;
    for i in 0..1000 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "1000 echoes", || cli_rec.total() == 1000).await;
    let got = cli_rec.all_msgs();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, (0..1000).collect::<Vec<_>>());
    assert_eq!(srv_rec.all_msgs()[0].1, (0..1000).collect::<Vec<_>>());
    assert!(conn.is_connected());
    assert_eq!(conn.peer_name(), osd(0));
    assert_eq!(cli_rec.events(ConnEvent::Connect), 1);
    assert_eq!(srv_rec.events(ConnEvent::Accept), 1);
    // The session ran on the wire the suite was asked for (MSGR_WIRE).
    let info = conn.info().await.expect("the client's Pipe");
    assert_eq!(info.wire, Some(wire_name()), "{info:?}");
    cli.shutdown().await;
    srv.shutdown().await;
}
