//! The admin socket: a Unix socket that Ceph's `ceph --admin-daemon PATH CMD` talks to, with
//! Ceph's framing (learned from src/common/admin_socket.cc and the CLI's ceph_daemon.py): the
//! client writes a command (JSON, `{"prefix": "perf dump", ...}`, or plain words) ended by a NUL
//! byte; the daemon answers with a 4-byte big-endian length and that many bytes, then closes.
//! The CLI first asks for `get_command_descriptions` and checks the user's words against them.
//!
//! One task accepts; each client is served by a task of its own, with a size cap and a deadline
//! on its request, so garbage, huge or half requests and many clients never stall the
//! messenger. The socket file is created 0600 and removed when the messenger shuts down.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use msgr::{Config, EntityName};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore};

use crate::connection::Connection;
use crate::counters::CountersSnapshot;
use crate::msgs::ListConnections;
use crate::runtime_config::Live;
use crate::shared::Shared;

/// Longest request accepted (Ceph's commands are a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;
/// A client has this long to send its whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Clients served at once; more are closed at once.
const MAX_CLIENTS: usize = 16;

/// A command's named string arguments: (name, required).
type Args = &'static [(&'static str, bool)];

/// The commands: (words, arguments, help).
const COMMANDS: &[(&str, Args, &str)] = &[
    ("help", &[], "list available commands"),
    ("version", &[], "get the messenger's version"),
    (
        "get_command_descriptions",
        &[],
        "list available commands, for the ceph CLI",
    ),
    ("perf dump", &[], "dump the perf counters"),
    ("perf schema", &[], "dump the perf counters' schema"),
    ("config show", &[], "dump every option's current value"),
    ("config get", &[("var", true)], "get one option's value"),
    (
        "config diff",
        &[],
        "options whose value differs from the default",
    ),
    (
        "config set",
        &[("var", true), ("val", true)],
        "set one option that may change at run time",
    ),
    (
        "perf reset",
        &[("var", true)],
        "set the counters back to zero (\"all\" or \"msgr\")",
    ),
    (
        "dump_connections",
        &[],
        "every session: peer, state, sequence numbers, queues, faults",
    ),
];

/// Ceph's names for the messenger counters it has, beside ours.
const CEPH_NAMES: &[(&str, &str, &str)] = &[
    ("msgr_recv_messages", "msgs_in", "Network received messages"),
    ("msgr_send_messages", "msgs_out", "Network sent messages"),
    ("msgr_recv_bytes", "bytes_in", "Network received bytes"),
    ("msgr_send_bytes", "bytes_out", "Network sent bytes"),
    (
        "msgr_created_connections",
        "connections_created",
        "Created connection number",
    ),
];

/// A running admin socket; dropping it does not stop it, [`AdminSocket::stop`] does.
pub(crate) struct AdminSocket {
    path: PathBuf,
    stop: Arc<Notify>,
}

impl AdminSocket {
    /// Binds `path` (0600; a stale file left by a dead process is replaced) and serves it on
    /// the current runtime.
    pub(crate) fn start(path: PathBuf, shared: Arc<Shared>) -> std::io::Result<AdminSocket> {
        if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
            let _ = std::fs::remove_file(&path);
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
            loop {
                let client = tokio::select! {
                    _ = stopped.notified() => break,
                    c = listener.accept() => c,
                };
                let Ok((stream, _)) = client else { continue };
                // Past the limit the client is closed at once (dropping the stream).
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    serve_client(stream, &shared).await;
                    drop(slot);
                });
            }
        });
        tracing::info!(path = %path.display(), "admin socket listening");
        Ok(AdminSocket { path, stop })
    }

    /// Stops accepting and removes the socket file.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `admin_socket` with Ceph's metavariables expanded for entity `name`.
pub(crate) fn expand_path(template: &str, name: EntityName) -> PathBuf {
    let out = template
        .replace("$name", &name.to_string())
        .replace("$type", name.ty.name())
        .replace("$id", &name.num.to_string())
        .replace("$cluster", "ceph")
        .replace("$pid", &std::process::id().to_string());
    Path::new(&out).to_path_buf()
}

async fn serve_client(mut stream: UnixStream, shared: &Arc<Shared>) {
    let request = match tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut stream)).await {
        Ok(Some(r)) => r,
        // Too big, cut short or too slow: close without an answer.
        _ => return,
    };
    let reply = match parse(&request) {
        Ok(cmd) => execute(&cmd, shared).await,
        Err(e) => Err(e),
    };
    let value = reply.unwrap_or_else(|e| json!({ "error": e }));
    // Ceph's default output is json-pretty; `--format json` asks for one line.
    let body = match request_format(&request).as_deref() {
        Some("json") => value.to_string(),
        _ => serde_json::to_string_pretty(&value).expect("JSON values serialize"),
    };
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    let _ = stream.write_all(&out).await;
}

/// Reads up to the NUL that ends a request (or EOF after some bytes); None for an oversized
/// or empty request.
async fn read_request(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!buf.is_empty()).then_some(buf);
        }
        if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
            buf.extend_from_slice(&chunk[..end]);
            return Some(buf);
        }
        if buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The `format` a JSON request asks for, if any.
fn request_format(request: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(request).ok()?;
    v.get("format")?.as_str().map(str::to_string)
}

/// A command: its prefix and its named arguments.
struct Command {
    prefix: String,
    args: Map<String, Value>,
}

fn parse(request: &[u8]) -> Result<Command, String> {
    let text = std::str::from_utf8(request).map_err(|_| "the request is not UTF-8".to_string())?;
    let text = text.trim();
    if text.starts_with('{') {
        let Value::Object(mut args) =
            serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?
        else {
            unreachable!("text starting with '{{' parses only as an object");
        };
        let Some(Value::String(prefix)) = args.remove("prefix") else {
            return Err("the request has no \"prefix\"".into());
        };
        return Ok(Command { prefix, args });
    }
    // The old plain form: the command's words.
    Ok(Command {
        prefix: text.split_whitespace().collect::<Vec<_>>().join(" "),
        args: Map::new(),
    })
}

fn arg<'a>(cmd: &'a Command, name: &str) -> Result<&'a str, String> {
    cmd.args
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: missing argument {name:?}", cmd.prefix))
}

async fn execute(cmd: &Command, shared: &Arc<Shared>) -> Result<Value, String> {
    let config = &shared
        .runtime
        .current(&shared.config, &shared.dispatch_throttle);
    Ok(match cmd.prefix.as_str() {
        "get_command_descriptions" => descriptions(),
        "help" => Value::Object(
            COMMANDS
                .iter()
                .map(|(words, args, help)| (signature(words, args), json!(help)))
                .collect(),
        ),
        "version" => json!({
            "version": env!("CARGO_PKG_VERSION"),
            "release": "msgr",
            "release_type": "stable",
            "entity": shared.name.to_string(),
        }),
        "perf dump" => perf_dump(shared.counters.snapshot(), shared).await,
        "perf schema" => perf_schema(),
        "config show" => Value::Object(
            Config::OPTION_NAMES
                .iter()
                .map(|n| (n.to_string(), json!(config.get(n).unwrap_or_default())))
                .collect(),
        ),
        "config get" => {
            let var = arg(cmd, "var")?.replace('-', "_");
            let value = config
                .get(&var)
                .ok_or_else(|| format!("unrecognized config option '{var}'"))?;
            json!({ var: value })
        }
        "config diff" => {
            let defaults = Config::default();
            let diff: Map<String, Value> = Config::OPTION_NAMES
                .iter()
                .filter(|n| config.get(n) != defaults.get(n))
                .map(|n| {
                    let entry = json!({ "default": defaults.get(n), "final": config.get(n) });
                    (n.to_string(), entry)
                })
                .collect();
            json!({ "diff": diff })
        }
        "config set" => {
            let (var, val) = (arg(cmd, "var")?, arg(cmd, "val")?);
            let live = Live {
                injector: &shared.injector,
                dispatch_throttle: &shared.dispatch_throttle,
            };
            shared.runtime.set(&shared.config, &live, var, val)?;
            json!({ "success": format!("{} = {val}", var.replace('-', "_")) })
        }
        "perf reset" => match arg(cmd, "var")? {
            "all" | "msgr" => {
                shared.counters.reset();
                for c in connections(shared).await {
                    c.reset_counters();
                }
                json!({ "success": "perf reset" })
            }
            other => return Err(format!("perf reset: no counters named {other:?}")),
        },
        "dump_connections" => dump_connections(shared).await,
        other => return Err(format!("unknown command {other:?}; try \"help\"")),
    })
}

/// `words` and arguments as Ceph's help shows them: `config get <var>`.
fn signature(words: &str, args: &[(&str, bool)]) -> String {
    let mut s = words.to_string();
    for (name, required) in args {
        if *required {
            s.push_str(&format!(" <{name}>"));
        } else {
            s.push_str(&format!(" [<{name}>]"));
        }
    }
    s
}

/// What the ceph CLI checks a command against: each command's words and typed arguments.
fn descriptions() -> Value {
    let mut out = Map::new();
    for (i, (words, args, help)) in COMMANDS.iter().enumerate() {
        let mut sig: Vec<Value> = words.split(' ').map(|w| json!(w)).collect();
        for (name, required) in *args {
            sig.push(json!({ "name": name, "type": "CephString", "n": 1, "req": required }));
        }
        out.insert(
            format!("cmd{i:03}"),
            json!({ "sig": sig, "help": help, "module": "", "perm": "", "flags": 0 }),
        );
    }
    Value::Object(out)
}

async fn perf_dump(c: CountersSnapshot, shared: &Arc<Shared>) -> Value {
    let all = serde_json::to_value(c).expect("counters serialize");
    let mut ceph = Map::new();
    for (ceph_name, ours, _) in CEPH_NAMES {
        ceph.insert(ceph_name.to_string(), all[*ours].clone());
    }
    let active = connections(shared).await.len();
    ceph.insert("msgr_active_connections".into(), json!(active));
    json!({ "msgr": ceph, "msgr_detail": all })
}

fn perf_schema() -> Value {
    let entry = |description: &str, gauge: bool| {
        json!({
            "type": if gauge { 2 } else { 10 },
            "metric_type": if gauge { "gauge" } else { "counter" },
            "value_type": "integer",
            "description": description,
            "nick": "",
            "priority": 0,
            "units": "none",
        })
    };
    let mut ceph = Map::new();
    for (name, _, description) in CEPH_NAMES {
        ceph.insert(name.to_string(), entry(description, false));
    }
    ceph.insert(
        "msgr_active_connections".into(),
        entry("Active connection number", true),
    );
    let detail: Map<String, Value> = CountersSnapshot::FIELDS
        .iter()
        .map(|(name, description)| (name.to_string(), entry(description, false)))
        .collect();
    json!({ "msgr": ceph, "msgr_detail": detail })
}

async fn connections(shared: &Arc<Shared>) -> Vec<Connection> {
    shared
        .routes()
        .list_connections
        .send(ListConnections)
        .await
        .unwrap_or_default()
}

async fn dump_connections(shared: &Arc<Shared>) -> Value {
    let mut out = Vec::new();
    for c in connections(shared).await {
        let info = c.info().await;
        let k = c.counters();
        out.push(json!({
            "id": c.id(),
            "peer": c.peer_name().to_string(),
            "peer_addr": c.peer_addr().to_string(),
            "policy_lossy": info.as_ref().map(|i| i.lossy),
            "state": info.as_ref().map(|i| i.state),
            "connected": c.is_connected(),
            "connect_seq": info.as_ref().map(|i| i.connect_seq),
            "out_seq": info.as_ref().map(|i| i.out_seq),
            "in_seq": info.as_ref().map(|i| i.in_seq),
            "acked": info.as_ref().map(|i| i.acked),
            "pending": info.as_ref().map(|i| i.pending),
            "unacked": info.as_ref().map(|i| i.unacked),
            "features": format!("{:#x}", c.features()),
            "msgs_in": k.msgs_in,
            "msgs_out": k.msgs_out,
            "faults": k.faults,
            "reconnects": k.reconnects,
            "last_error": c.last_error().map(|e| e.to_string()),
        }));
    }
    json!({ "connections": out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgr::EntityType;

    #[test]
    fn requests_parse_as_json_or_plain_words() {
        let c = parse(br#"{"prefix": "config get", "var": "ms_max_backoff"}"#).unwrap();
        assert_eq!(
            (c.prefix.as_str(), arg(&c, "var")),
            ("config get", Ok("ms_max_backoff"))
        );
        let c = parse(b"  perf   dump ").unwrap();
        assert_eq!(c.prefix, "perf dump");
        assert!(parse(br#"{"var": 1}"#).is_err());
        assert!(parse(b"{not json").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn paths_expand_cephs_metavariables() {
        let p = expand_path(
            "/run/$cluster-$name.asok",
            EntityName::new(EntityType::OSD, 3),
        );
        assert_eq!(p, Path::new("/run/ceph-osd.3.asok"));
        let p = expand_path("/tmp/$type.$id.$pid", EntityName::new(EntityType::MON, 0));
        assert_eq!(p, Path::new(&format!("/tmp/mon.0.{}", std::process::id())));
    }

    #[test]
    fn every_command_is_described_for_the_cli() {
        let d = descriptions();
        assert_eq!(d.as_object().unwrap().len(), COMMANDS.len());
        assert_eq!(
            d["cmd006"]["sig"],
            json!(["config", "get", {"name": "var", "type": "CephString", "n": 1, "req": true}])
        );
    }
}
