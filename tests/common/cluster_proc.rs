//! Running the cluster example as a test: where cargo built it, and its JSON summaries.

#![allow(dead_code)]

use std::path::PathBuf;

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
