//! Child processes of the bench and what they report: the JSON line a run prints last, the
//! marks around its measured phase, and the CPU a process uses. Shared, by path, with the
//! peers' bench (`benches/peers`), which measures the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// Printed on stdout when a measured phase begins and ends, so that the process serving a
/// cross-process run can count its own CPU over the same span.
pub const PHASE_BEGIN: &str = "phase-begin";
/// See [`PHASE_BEGIN`].
pub const PHASE_END: &str = "phase-end";

/// Prints a phase mark ([`PHASE_BEGIN`] or [`PHASE_END`]) at once.
pub fn mark(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// CPU seconds (user + system) this process has used so far.
pub fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Runs a client process to its end; returns its output (phase marks left out) and the CPU
/// this process, the server, used between the client's phase marks (NaN without them).
pub fn run_client(mut cmd: Command) -> (Output, f64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = stderr.read_to_end(&mut e);
        e
    });
    let (mut stdout, mut began, mut server_cpu) = (Vec::new(), None, f64::NAN);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        match line.as_str() {
            PHASE_BEGIN => began = Some(cpu_secs()),
            PHASE_END => server_cpu = began.map_or(f64::NAN, |c| cpu_secs() - c),
            _ => stdout.extend_from_slice(format!("{line}\n").as_bytes()),
        }
    }
    let status = child.wait().expect("client process");
    let stderr = errors.join().unwrap_or_default();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        server_cpu,
    )
}

/// The JSON line a run printed last, or a `failed` record (its stderr printed) when it
/// failed or printed none.
pub fn result(system: &str, name: &str, out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .filter(|_| out.status.success())
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    parsed.unwrap_or_else(|| {
        eprintln!(
            "{system} {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json!({ "system": system, "scenario": name, "failed": true })
    })
}

/// Adds the server's CPU over the client's phase to a client's result, and the CPU of both
/// per round trip.
pub fn add_server_cpu(v: &mut Value, server_cpu: f64) {
    if v.get("failed").is_some() {
        return;
    }
    let msgs = v["msgs"].as_f64().unwrap_or(f64::NAN);
    let client_cpu = v["cpu_secs"].as_f64().unwrap_or(f64::NAN);
    v["server_cpu_secs"] = json!(server_cpu);
    v["cpu_us_per_msg"] = json!((client_cpu + server_cpu) / msgs * 1e6);
}
