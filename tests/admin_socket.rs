//! The admin socket, driven by the real `ceph` CLI (Debian's ceph-common) as an operator would:
//! `ceph --admin-daemon PATH help | perf dump | config get | config diff | config set |
//! dump_connections`, plus hostile clients on the socket.
//!
//! Without the `ceph` command these tests print why and pass, unless MSGR_REQUIRE_CEPH=1.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msgr::Policy;
use msgr_actors::{Messenger, ShutdownOutcome};
use serde_json::Value;

fn ceph_cli() -> bool {
    let ok = Command::new("ceph")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("MSGR_REQUIRE_CEPH").is_ok_and(|v| v == "1") {
            panic!("MSGR_REQUIRE_CEPH=1 but the ceph command (ceph-common) is missing");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (admin socket): the ceph command is missing; install ceph-common"
        );
    }
    ok
}

/// `ceph --admin-daemon PATH words...`, parsed as JSON (run off the async thread).
async fn ceph_daemon(path: &Path, words: &[&str]) -> Value {
    let (path, words): (PathBuf, Vec<String>) =
        (path.into(), words.iter().map(|w| w.to_string()).collect());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ceph")
            .arg("--admin-daemon")
            .arg(&path)
            .args(&words)
            .output()
            .expect("run ceph")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ceph --admin-daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Speaks the admin socket's framing by hand: sends `bytes`, ends its side, and returns all
/// that comes back (nothing when the socket is closed without an answer).
async fn talk(path: &Path, bytes: Vec<u8>) -> Vec<u8> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // The peer may close before reading everything: a failed write is an answer too.
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
    .await
    .unwrap()
}

/// A directory of this test's own (the tests of this file run at once).
fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msgr-asok-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[actix_rt::test]
async fn the_ceph_cli_reads_counters_config_and_connections() {
    init_tracing();
    if !ceph_cli() {
        return;
    }
    let dir = temp_dir("cli");
    let config = test_config()
        .ms_max_backoff(Duration::from_secs(7))
        .admin_socket(format!("{}/$cluster-$name.asok", dir.display()));
    let srv = server(
        osd(0),
        Policy::stateful_server(0),
        Recorder::echoing(),
        config,
    )
    .await;
    let path = dir.join("ceph-osd.0.asok");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may talk to it");

    let rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        rec.clone(),
        test_config(),
    );
    let conn = osd_connection(&cli, &srv).await;
    for i in 0..100 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "100 echoes", || rec.total() == 100).await;

    let help = ceph_daemon(&path, &["help"]).await;
    for cmd in [
        "perf dump",
        "config get <var>",
        "dump_connections",
        "version",
    ] {
        assert!(help.get(cmd).is_some(), "help lacks {cmd}: {help}");
    }
    let perf = ceph_daemon(&path, &["perf", "dump"]).await;
    assert_eq!(perf["msgr"]["msgr_recv_messages"], 100, "{perf}");
    assert_eq!(perf["msgr"]["msgr_send_messages"], 100, "{perf}");
    assert_eq!(perf["msgr"]["msgr_active_connections"], 1, "{perf}");
    assert_eq!(perf["msgr"]["msgr_created_connections"], 1, "{perf}");
    assert!(perf["msgr_detail"]["acks_out"].as_u64().unwrap() > 0);
    let schema = ceph_daemon(&path, &["perf", "schema"]).await;
    assert_eq!(schema["msgr"]["msgr_recv_bytes"]["metric_type"], "counter");

    assert_eq!(
        ceph_daemon(&path, &["config", "get", "ms_max_backoff"]).await["ms_max_backoff"],
        "7"
    );
    let diff = ceph_daemon(&path, &["config", "diff"]).await;
    assert_eq!(diff["diff"]["ms_max_backoff"]["final"], "7", "{diff}");
    assert_eq!(diff["diff"]["ms_max_backoff"]["default"], "15", "{diff}");
    let show = ceph_daemon(&path, &["config", "show"]).await;
    assert_eq!(show["ms_crc_data"], "true");
    // A run-time option changes at once; one fixed at build time is refused.
    let set = ceph_daemon(&path, &["config", "set", "ms_max_backoff", "3"]).await;
    assert!(set["success"].is_string(), "{set}");
    let now = ceph_daemon(&path, &["config", "get", "ms_max_backoff"]).await;
    assert_eq!(now["ms_max_backoff"], "3");
    let refused = ceph_daemon(&path, &["config", "set", "ms_crc_data", "false"]).await;
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(why.contains("cannot be changed"), "{refused}");
    let set = ceph_daemon(
        &path,
        &["config", "set", "ms_dispatch_throttle_bytes", "1000000"],
    )
    .await;
    assert!(set["success"].is_string(), "{set}");
    assert_eq!(
        srv.dispatch_throttle().1,
        1_000_000,
        "the live throttle's budget"
    );
    let invalid = ceph_daemon(&path, &["config", "set", "ms_initial_backoff", "60"]).await;
    assert!(invalid["error"].is_string(), "initial above max: {invalid}");
    let unknown = ceph_daemon(&path, &["config", "get", "ms_nope"]).await;
    assert!(unknown["error"].as_str().unwrap().contains("ms_nope"));

    let conns = ceph_daemon(&path, &["dump_connections"]).await;
    let list = conns["connections"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{conns}");
    assert_eq!(list[0]["peer"], "client.1");
    assert_eq!(list[0]["in_seq"], 100);
    assert_eq!(list[0]["out_seq"], 100);
    assert_eq!(list[0]["state"], "open");

    // Fault injection switched on at run time reaches the live session: it faults and
    // reconnects, and loses nothing.
    let set = ceph_daemon(&path, &["config", "set", "ms_inject_socket_failures", "5"]).await;
    assert!(set["success"].is_string(), "{set}");
    // In rounds until a fault was injected (batched reads make few socket operations).
    let mut sent = 100;
    for _ in 0..200 {
        for i in sent..sent + 20 {
            conn.send_message(numbered(i)).unwrap();
        }
        sent += 20;
        wait_for(60, "the round's echoes", || rec.total() as u64 == sent).await;
        if srv.counters().faults_injected > 0 {
            break;
        }
    }
    assert_eq!(rec.all_msgs()[0].1, (0..sent).collect::<Vec<_>>());
    let perf = ceph_daemon(&path, &["perf", "dump"]).await;
    let injected = perf["msgr_detail"]["faults_injected"].as_u64().unwrap();
    assert!(injected > 0, "{perf}");
    ceph_daemon(&path, &["config", "set", "ms_inject_socket_failures", "0"]).await;
    let reset = ceph_daemon(&path, &["perf", "reset", "all"]).await;
    assert!(reset["success"].is_string(), "{reset}");
    let perf = ceph_daemon(&path, &["perf", "dump"]).await;
    assert_eq!(perf["msgr"]["msgr_recv_messages"], 0, "{perf}");

    cli.shutdown().await;
    assert_eq!(srv.shutdown().await, ShutdownOutcome::Clean);
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Garbage gets an error reply, an oversized request a closed socket, and the socket still
/// answers a good command afterwards. (Needs no ceph CLI: the framing is spoken by hand.)
#[actix_rt::test]
async fn hostile_admin_clients_get_errors_or_closed_sockets() {
    init_tracing();
    let dir = temp_dir("hostile");
    let path = dir.join("osd.asok");
    let srv = Messenger::builder(osd(0))
        .config(test_config().admin_socket(path.display().to_string()))
        .default_policy(Policy::stateful_server(0))
        .build()
        .unwrap();
    let talk = |bytes: Vec<u8>| talk(&path, bytes);
    let reply_json = |out: Vec<u8>| -> Value {
        assert!(out.len() >= 4, "no reply");
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4, "the length prefix is exact");
        serde_json::from_slice(&out[4..]).unwrap()
    };
    let garbage = reply_json(talk(vec![0xff, 0x00]).await);
    assert!(garbage["error"].is_string(), "{garbage}");
    let unknown = reply_json(talk(b"{\"prefix\": \"rm -rf\"}\0".to_vec()).await);
    assert!(unknown["error"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    let huge = talk(vec![b'x'; 1 << 20]).await;
    assert!(
        huge.is_empty(),
        "an oversized request is closed without a reply"
    );
    let version =
        reply_json(talk(b"{\"prefix\": \"version\", \"format\": \"json\"}\0".to_vec()).await);
    assert_eq!(version["entity"], "osd.0");
    srv.shutdown().await;
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Half requests from many clients at once: the admin socket serves at most 16, closes the
/// rest at once, closes the silent ones after its 5 s deadline, and answers again afterwards;
/// meanwhile the messenger's sessions carry on untouched.
#[actix_rt::test]
async fn many_silent_admin_clients_never_stall_the_messenger() {
    init_tracing();
    let dir = temp_dir("silent");
    let path = dir.join("osd.asok");
    let srv = server_with(
        osd(0),
        Policy::stateful_server(0),
        Arc::new(Recorder::echoing()),
        test_config().admin_socket(path.display().to_string()),
    )
    .await;
    // 40 clients that send half a command and then nothing.
    let silent: Vec<UnixStream> = (0..40)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"{\"prefix\": \"perf").unwrap();
            s
        })
        .collect();
    let rec = Recorder::default();
    let cli = client(
        client_name(1),
        Policy::lossless_client(0),
        rec.clone(),
        test_config(),
    );
    let conn = osd_connection(&cli, &srv).await;
    for i in 0..200 {
        conn.send_message(numbered(i)).unwrap();
    }
    wait_for(20, "200 echoes while the admin socket is flooded", || {
        rec.total() == 200
    })
    .await;
    // Every silent client is closed: at once past the limit, after the deadline otherwise.
    let closed = tokio::task::spawn_blocking(move || {
        silent
            .into_iter()
            .map(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut out = Vec::new();
                // Closed with the request unread, a Unix socket reports a reset.
                match s.read_to_end(&mut out) {
                    Ok(_) => out.is_empty(),
                    Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                }
            })
            .filter(|closed| *closed)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 40, "every half request ends in a closed socket");
    // And it answers again.
    let answer = talk(&path, b"version\0".to_vec()).await;
    assert!(answer.len() > 4, "the socket answers after the flood");
    cli.shutdown().await;
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
