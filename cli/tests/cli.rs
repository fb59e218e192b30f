//! The `msgr` command, run as a user would: ping a real ceph-mon, serve, bench, and the exit
//! codes and JSON they promise.

#[path = "../../tests/ceph_harness/mod.rs"]
mod ceph_harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn msgr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgr"))
}

/// The standard output of a run that must have succeeded (else its standard error is shown).
fn stdout_of_success(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `msgr ping ADDR -n NAME -k KEYRING ARGS...`, as the user would type it.
fn ping_as(
    addr: &str,
    name: &str,
    keyring: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    msgr()
        .args(["ping", addr, "-n", name, "-k"])
        .arg(keyring)
        .args(args)
        .output()
        .unwrap()
}

/// The mon status a `--json` ping with that keyring printed.
fn ping_status(addr: &str, keyring: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = ping_as(addr, "client.admin", keyring, &[&["--json"], args].concat());
    serde_json::from_str(stdout_of_success(out).trim()).unwrap()
}

/// The one line of standard error of a run that must have failed.
fn one_line_failure(out: std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

#[test]
fn ping_a_real_mon_prints_one_json_document_per_reply() {
    let Some(mon) = ceph_harness::CephMon::start() else {
        return;
    };
    let out = msgr()
        .args([
            "ping",
            &format!("v1:127.0.0.1:{}/0", mon.port),
            "--count",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = stdout_of_success(out);
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    assert!(docs
        .iter()
        .all(|d| d["mon_status"]["quorum"] == serde_json::json!([0])));

    let out = msgr()
        .args(["ping", &format!("127.0.0.1:{}", mon.port)])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("state leader"));
}

/// A keyring with a client.admin key the mon never saw, made by ceph-authtool.
fn stranger_keyring(mon: &ceph_harness::CephMon) -> std::path::PathBuf {
    let stranger = mon.dir().join("stranger.keyring");
    let made = Command::new("ceph-authtool")
        .arg("--create-keyring")
        .arg(&stranger)
        .args(["--gen-key", "-n", "client.admin"])
        .output()
        .unwrap();
    assert!(made.status.success());
    stranger
}

#[test]
fn ping_with_cephx_authenticates_and_a_key_the_mon_does_not_know_is_refused() {
    let Some(mon) = ceph_harness::CephMon::start_cephx() else {
        return;
    };
    let addr = format!("127.0.0.1:{}", mon.port);
    let keyring = mon.admin_keyring();
    let doc = ping_status(&addr, &keyring, &[]);
    assert_eq!(doc["mon_status"]["quorum"], serde_json::json!([0]), "{doc}");

    // The same name with another key (a keyring ceph-authtool made, which the mon never saw).
    let stranger = stranger_keyring(&mon);
    let err = one_line_failure(ping_as(&addr, "client.admin", &stranger, &[]));
    assert!(
        err.contains("client.admin") && err.contains("EACCES"),
        "{err}"
    );

    // A keyring without the name asked for is a one-line error too, before any connection.
    let err = one_line_failure(ping_as(&addr, "client.nobody", &keyring, &[]));
    assert!(err.contains("no key for client.nobody"), "{err}");
}

#[test]
fn ping_failures_exit_non_zero_with_one_line_saying_why() {
    let port = ceph_harness::free_port();
    let out = msgr()
        .args(["ping", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("refused"), "{err}");

    let out = msgr()
        .args(["ping", "127.0.0.1:1", "--ms-crc-data", "perhaps"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad option value is a usage error"
    );
}

#[test]
fn serve_and_bench_verify_under_injected_faults_then_serve_summarizes_on_sigterm() {
    let port = ceph_harness::free_port();
    let mut serve = msgr()
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--ms-inject-socket-failures",
            "500",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");

    let out = msgr()
        .args([
            "bench",
            "--peer",
            &format!("127.0.0.1:{port}"),
            "--count",
            "20000",
            "--size",
            "1024",
        ])
        .args([
            "--conns",
            "4",
            "--depth",
            "64",
            "--verify",
            "--json",
            "--ms-inject-socket-failures",
            "300",
        ])
        .output()
        .unwrap();
    let stdout = stdout_of_success(out);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in [
        "sent",
        "replies",
        "lost",
        "duplicates",
        "reordered",
        "corrupt",
        "reconnects",
        "seconds",
        "msgs_per_sec",
        "mb_per_sec",
        "lat_p50_us",
        "lat_p99_us",
        "lat_max_us",
        "cpu_seconds",
        "cpu_us_per_msg",
    ] {
        assert!(summary.get(key).is_some(), "missing {key} in {summary}");
    }
    assert!(
        summary["cpu_seconds"].as_f64().unwrap() > 0.0,
        "the bench used CPU: {summary}"
    );
    assert_eq!(summary["replies"], 20000);
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["reordered"], 0);
    assert_eq!(summary["corrupt"], 0);

    let exit = terminate(&mut serve);
    assert!(exit.success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut serve.stdout.take().unwrap(), &mut out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let peers = summary["peers"].as_array().unwrap();
    let bench_msgs: u64 = peers
        .iter()
        .map(|p| p["messages_by_type"]["57344"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(bench_msgs, 20000, "{summary}");
    let gaps: u64 = peers
        .iter()
        .map(|p| p["bench"]["gaps"].as_u64().unwrap())
        .sum();
    let dups: u64 = peers
        .iter()
        .map(|p| p["bench"]["duplicates"].as_u64().unwrap())
        .sum();
    assert_eq!((gaps, dups), (0, 0));
}

/// Sends SIGTERM to `child` and waits (at most 20 s) for it to exit.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "no exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `child`'s stderr on a thread, line by line, into a channel.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (at most `secs`) for a line that contains `needle`; returns it, or every line seen.
fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    secs: u64,
) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen)
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// docs/ceph-interop.md's peer-monitor scenario from the command line: a real ceph-mon whose
/// monmap lists `mon.b` at `v1:127.0.0.1:Q/0`, and `msgr serve --entity mon.1 --policy
/// lossless_peer` on Q. Ceph monitors always have nonce 0 and the mon refuses a peer that
/// claims another one; `msgr serve` used to pick a random nonce, so the mon never got through.
/// Now a monitor entity defaults to nonce 0, and the mon's probes (type 67) arrive.
#[test]
fn serve_as_a_monitor_entity_has_nonce_0_and_a_real_mon_probes_it() {
    let our_port = ceph_harness::free_port();
    let Some(_mon) = ceph_harness::CephMon::start_with(&[("b", our_port)]) else {
        return;
    };
    let mut serve = msgr()
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{our_port}"),
            "--entity",
            "mon.1",
            "--policy",
            "lossless_peer",
            "--log",
            "info",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut serve);
    let listening = wait_for_line(&lines, "listening", 30);
    let probe = wait_for_line(&lines, "msg_type=67", 90);
    stop(serve);
    let listening = listening.expect("serve starts");
    assert!(
        listening.contains(&format!("advertising v1:127.0.0.1:{our_port}/0")),
        "{listening}"
    );
    if let Err(seen) = probe {
        panic!(
            "no mon_probe from the real mon within 90 s; serve said:\n{}",
            seen.join("\n")
        );
    }
}

/// `--nonce` sets any entity's nonce; an OSD's is random without it.
#[test]
fn serve_takes_a_nonce() {
    let advertised = |extra: &[&str]| {
        let port = ceph_harness::free_port();
        let mut serve = msgr()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut serve);
        let line = wait_for_line(&lines, "listening", 30);
        stop(serve);
        let line = line.expect("serve starts");
        let addr = line.rsplit("advertising ").next().unwrap().to_string();
        (port, addr)
    };
    let (port, addr) = advertised(&["--nonce", "4242"]);
    assert_eq!(addr, format!("v1:127.0.0.1:{port}/4242"));
    let (port, addr) = advertised(&["--entity", "osd.3"]);
    assert!(addr.starts_with(&format!("v1:127.0.0.1:{port}/")), "{addr}");
    assert!(!addr.ends_with("/0"), "an OSD's nonce is random: {addr}");
}

/// `msgr serve --admin-socket`: the real ceph CLI raises the messenger's log level at run time
/// (`config set debug_ms 5`): debug lines appear for the next session. The socket file goes
/// when serve exits.
#[test]
fn serve_admin_socket_changes_the_log_level_at_run_time() {
    if Command::new("ceph").arg("--version").output().is_err() {
        assert!(
            !ceph_harness::required(),
            "MSGR_REQUIRE_CEPH=1 but the ceph command is missing"
        );
        eprintln!("SKIPPED (admin socket): the ceph command is missing");
        return;
    }
    let port = ceph_harness::free_port();
    let asok = std::env::temp_dir().join(format!("msgr-cli-{port}.asok"));
    let mut serve = msgr()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--admin-socket")
        .arg(&asok)
        .args(["--log", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut serve);
    wait_for_line(&lines, "listening", 30).expect("serve starts");
    let set = Command::new("ceph")
        .arg("--admin-daemon")
        .arg(&asok)
        .args(["config", "set", "debug_ms", "5"])
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&set.stdout);
    assert!(reply.contains("success"), "{reply}");
    let bench = msgr()
        .args([
            "bench",
            "--peer",
            &format!("127.0.0.1:{port}"),
            "--count",
            "10",
        ])
        .output()
        .unwrap();
    assert!(bench.status.success());
    let debug = wait_for_line(&lines, "DEBUG", 30);
    terminate(&mut serve);
    assert!(debug.is_ok(), "no debug line after debug_ms 5: {debug:?}");
    assert!(!asok.exists(), "the admin socket is removed at exit");
}

/// `msgr serve` verifying cephx with an OSD service key, bound to a v1 and a v2 address,
/// `msgr bench` presenting tickets sealed with it: the runs verify, over v1 and over msgr2; with another key the bench exits non-zero at once with one line
/// naming BADAUTHORIZER, and a bench without a keyring (auth none) is refused the same way.
#[test]
fn serve_and_bench_with_cephx_and_a_wrong_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("msgr-cli-cephx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keyring = |name: &str, file: &str| {
        let path = dir.join(file);
        let made = Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&path)
            .args(["--gen-key", "-n", name])
            .output();
        match made {
            Ok(o) if o.status.success() => Some(path),
            _ => None,
        }
    };
    let (Some(good), Some(other)) = (
        keyring("osd.", "osd.keyring"),
        keyring("osd.", "other.keyring"),
    ) else {
        assert!(!ceph_harness::required(), "ceph-authtool is needed");
        eprintln!("SKIPPED: ceph-authtool is not installed");
        return;
    };
    let (port, port2) = (ceph_harness::free_port(), ceph_harness::free_port());
    let bind = format!("[v2:127.0.0.1:{port2},v1:127.0.0.1:{port}]");
    let mut serve = msgr()
        .args(["serve", "--bind", &bind, "--keyring"])
        .arg(&good)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut serve);
    wait_for_line(&lines, "listening", 20).expect("serve starts");
    let bench = |keyring: Option<&std::path::Path>| {
        let mut cmd = msgr();
        cmd.args(["bench", "--peer", &format!("127.0.0.1:{port}")])
            .args(["--count", "2000", "--size", "512", "--verify", "--json"]);
        if let Some(k) = keyring {
            cmd.arg("--keyring").arg(k);
        }
        cmd.output().unwrap()
    };
    let out = bench(Some(&good));
    let summary: serde_json::Value =
        serde_json::from_str(stdout_of_success(out).lines().last().unwrap()).unwrap();
    assert_eq!(summary["replies"], 2000);
    assert_eq!(summary["corrupt"], 0);
    // The same server over msgr2, in secure mode, a lossless session (the bench's default).
    let out = msgr()
        .args(["bench", "--peer", &format!("v2:127.0.0.1:{port2}")])
        .args(["--count", "2000", "--size", "512", "--verify", "--json"])
        .args([
            "--policy",
            "lossy_client",
            "--ms-client-mode",
            "secure",
            "--keyring",
        ])
        .arg(&good)
        .output()
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(stdout_of_success(out).lines().last().unwrap()).unwrap();
    assert_eq!(
        (summary["replies"].as_u64(), summary["corrupt"].as_u64()),
        (Some(2000), Some(0))
    );
    for refused in [bench(Some(&other)), bench(None)] {
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("BADAUTHORIZER"), "{err}");
    }
    stop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `msgr ping v2:...` against a mon in its default shape (dual-bound, cephx): the status comes
/// back over msgr2 in secure mode and with `--ms-mon-client-mode crc`; a wrong key is refused
/// with a non-zero exit and one line.
#[test]
fn ping_over_msgr2_secure_and_crc_and_a_wrong_key_is_refused() {
    let Some(mon) = ceph_harness::CephMon::start_opts(ceph_harness::MonOpts {
        cephx: true,
        msgr2: true,
        ..Default::default()
    }) else {
        return;
    };
    let addr = format!("v2:127.0.0.1:{}", mon.v2_port.unwrap());
    for extra in [&[][..], &["--ms-mon-client-mode", "crc"][..]] {
        let doc = ping_status(&addr, &mon.admin_keyring(), extra);
        assert_eq!(doc["mon_status"]["quorum"], serde_json::json!([0]), "{doc}");
    }
    // The mon's address vector, as `ceph mon dump` prints it: msgr2 is dialled.
    let addrvec = format!(
        "[v2:127.0.0.1:{},v1:127.0.0.1:{}]",
        mon.v2_port.unwrap(),
        mon.port
    );
    let doc = ping_status(&addrvec, &mon.admin_keyring(), &[]);
    assert_eq!(doc["mon_status"]["quorum"], serde_json::json!([0]), "{doc}");
    let stranger = stranger_keyring(&mon);
    let err = one_line_failure(ping_as(
        &addr,
        "client.admin",
        &stranger,
        &["--timeout", "20"],
    ));
    assert!(err.contains("EACCES"), "{err}");
}
