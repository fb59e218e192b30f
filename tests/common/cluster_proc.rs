//! Running the cluster example as a test: where cargo built it, and its JSON summaries.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Output};

/// The example binary cargo built for this test run (target/<profile>/examples/cluster).
pub fn cluster_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("cluster");
    assert!(
        bin.exists(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    bin
}

pub fn last_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::from_str(line).unwrap()
}

/// The JSON summary of a run that must have exited successfully (else its stderr is shown).
pub fn succeeded_json(out: &std::process::Output) -> serde_json::Value {
    let has_json = String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with('{'));
    assert!(
        has_json,
        "the cluster printed no summary ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = last_json(&out.stdout);
    assert!(
        out.status.success(),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// A child process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `--role client` arguments of the multi-process tests: a 4 s workload of 64 objects
/// under socket failures 1 in 500, against the mon at `mon_addr`.
pub fn client_args(mon_addr: &str) -> Vec<String> {
    [
        "--role",
        "client",
        "--mon",
        mon_addr,
        "--duration",
        "4",
        "--objects",
        "64",
        "--inject-socket-failures",
        "500",
    ]
    .map(String::from)
    .to_vec()
}

/// The client's summary, checked: nothing lost or failed, writes acked, and both OSDs hold a
/// replica of every object.
pub fn checked_client_summary(out: &Output) -> serde_json::Value {
    let s = succeeded_json(out);
    assert_eq!(s["verify_failures"], 0, "{s}");
    assert_eq!(s["lost_lossless"], 0, "{s}");
    assert!(s["writes_acked"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(
        s["replica_reads_verified"].as_u64().unwrap(),
        2 * s["objects"].as_u64().unwrap(),
        "two replicas of every object: {s}"
    );
    s
}

/// Waits for each OSD process to finish its run and checks it exited well, losing nothing.
pub fn check_osds_exit_clean(osds: Vec<Proc>) {
    for mut o in osds {
        let status = o.0.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(o.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(status.success(), "osd: {out}");
        assert_eq!(last_json(out.as_bytes())["lost_lossless"], 0);
    }
}
