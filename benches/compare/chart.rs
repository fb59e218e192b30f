//! The comparison table (markdown) and the size-sweep chart (SVG).

use plotters::prelude::*;
use serde_json::Value;

use crate::SIZES;

fn find<'a>(r: &'a [Value], system: &str, scenario: &str) -> Option<&'a Value> {
    r.iter()
        .find(|v| v["system"] == system && v["scenario"] == scenario && v.get("failed").is_none())
}

fn f(v: Option<&Value>, key: &str) -> f64 {
    v.and_then(|v| v[key].as_f64()).unwrap_or(f64::NAN)
}

/// The peers' binary's systems (`xproc::PEERS`) and their names in the tables.
const PEER_LABELS: [(&str, &str); 4] = [
    ("msgr_actors", "msgr remote actors"),
    ("ractor_cluster", "ractor_cluster"),
    ("telepathy", "actix-telepathy"),
    ("kameo", "kameo"),
];

/// The cross-process table: msgr, the two baselines and the actor-messaging peers (those that
/// ran), one row per measure.
fn cross_process(r: &[Value], s: &mut String) {
    let mut systems = vec![
        ("msgr", "msgr"),
        ("tokio", "(a) raw tokio"),
        ("threaded", "(b) thread-per-conn"),
    ];
    for (sys, label) in PEER_LABELS {
        if r.iter().any(|v| v["system"] == sys) {
            systems.push((sys, label));
        }
    }
    s.push_str("| scenario |");
    for (_, label) in &systems {
        s.push_str(&format!(" {label} |"));
    }
    s.push_str(" msgr / (a) | msgr / (b) |\n|---|");
    s.push_str(&"---|".repeat(systems.len() + 2));
    s.push('\n');
    let rows: [(&str, &str, &str, f64); 12] = [
        (
            "1. 1 conn, 4 KiB, depth 128 (k msgs/s)",
            "stream_4k_xproc",
            "msgs_per_sec",
            1e-3,
        ),
        (
            "1. CPU of both processes (µs per round trip)",
            "stream_4k_xproc",
            "cpu_us_per_msg",
            1.0,
        ),
        ("1. p99 (µs)", "stream_4k_xproc", "p99_us", 1.0),
        (
            "2. 1 conn, 4 MiB (GB/s)",
            "stream_4m_xproc",
            "gb_per_sec",
            1.0,
        ),
        (
            "3. ping-pong 4 KiB, p50 (µs)",
            "pingpong_4k_xproc",
            "p50_us",
            1.0,
        ),
        (
            "3. ping-pong 4 KiB, p99 (µs)",
            "pingpong_4k_xproc",
            "p99_us",
            1.0,
        ),
        (
            "3. ping-pong 4 KiB, max (µs)",
            "pingpong_4k_xproc",
            "max_us",
            1.0,
        ),
        (
            "3. CPU (µs per round trip)",
            "pingpong_4k_xproc",
            "cpu_us_per_msg",
            1.0,
        ),
        (
            "4. 1,000 conns x 4 KiB, depth 8 (k msgs/s)",
            "conns_1000_xproc",
            "msgs_per_sec",
            1e-3,
        ),
        (
            "4. CPU (µs per round trip)",
            "conns_1000_xproc",
            "cpu_us_per_msg",
            1.0,
        ),
        (
            "4. client process peak RSS (MiB)",
            "conns_1000_xproc",
            "rss_kib",
            1.0 / 1024.0,
        ),
        (
            "4. client process threads",
            "conns_1000_xproc",
            "threads",
            1.0,
        ),
    ];
    for (label, scenario, key, scale) in rows {
        let vals: Vec<f64> = systems
            .iter()
            .map(|(sys, _)| f(find(r, sys, scenario), key) * scale)
            .collect();
        s.push_str(&format!("| {label} |"));
        for v in &vals {
            if v.is_nan() {
                s.push_str(" — |");
            } else {
                s.push_str(&format!(" {v:.1} |"));
            }
        }
        s.push_str(&format!(
            " {:.2} | {:.2} |\n",
            vals[0] / vals[1],
            vals[0] / vals[2]
        ));
    }
}

/// Through a proxy that resets every connection every 25 ms: what arrived of the numbered tells.
fn resets(r: &[Value], s: &mut String) {
    s.push_str("| system | sent | cuts | delivered | missing | duplicated | reordered | send errors | reconnects |\n|---|---|---|---|---|---|---|---|---|\n");
    for (sys, label) in PEER_LABELS {
        let Some(v) = r
            .iter()
            .find(|v| v["system"] == sys && v["scenario"] == "resets_xproc")
        else {
            continue;
        };
        if v.get("failed").is_some() {
            s.push_str(&format!(
                "| {label} | failed: no result within the deadline | | | | | | | |\n"
            ));
            continue;
        }
        s.push_str(&format!("| {label} |"));
        for key in [
            "sent",
            "cuts",
            "delivered",
            "missing",
            "duplicated",
            "reordered",
            "send_errors",
            "reconnects",
        ] {
            s.push_str(&format!(" {} |", v[key]));
        }
        s.push('\n');
    }
}

/// The scaling table: T IO threads per process, in one process (client and server on the
/// same T threads) and between two (T each), msgs/s and efficiency (the rate at T over T
/// times the rate at 1).
fn scaling(r: &[Value], s: &mut String) {
    s.push_str("| threads | one process: msgr (k msgs/s) | efficiency | (a) (k msgs/s) | efficiency | two processes: msgr (k msgs/s) | efficiency | (a) (k msgs/s) | efficiency | pinned |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let rate =
        |sys: &str, t: usize, x: &str| f(find(r, sys, &format!("scale_{t}t{x}")), "msgs_per_sec");
    for t in crate::scaling_threads() {
        s.push_str(&format!("| {t} |"));
        for x in ["", "_xproc"] {
            for sys in ["msgr", "tokio"] {
                let v = rate(sys, t, x);
                s.push_str(&format!(
                    " {:.1} | {:.2} |",
                    v / 1e3,
                    v / (t as f64 * rate(sys, 1, x))
                ));
            }
        }
        let pinned = |x: &str| {
            find(r, "msgr", &format!("scale_{t}t{x}")).and_then(|v| v["pinned"].as_bool())
                == Some(true)
        };
        s.push_str(&format!(
            " one: {}, two: {} |\n",
            pinned(""),
            pinned("_xproc")
        ));
    }
}

/// The size sweep of scenarios `size_N{suffix}`.
fn sweep(r: &[Value], s: &mut String, suffix: &str) {
    s.push_str("| size | msgr | (a) | (b) | msgr GB/s | (a) GB/s | (b) GB/s |\n|---|---|---|---|---|---|---|\n");
    for size in SIZES {
        let name = format!("size_{size}{suffix}");
        let v: Vec<Option<&Value>> = ["msgr", "tokio", "threaded"]
            .iter()
            .map(|sys| find(r, sys, &name))
            .collect();
        s.push_str(&format!(
            "| {size} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} |\n",
            f(v[0], "msgs_per_sec"),
            f(v[1], "msgs_per_sec"),
            f(v[2], "msgs_per_sec"),
            f(v[0], "gb_per_sec"),
            f(v[1], "gb_per_sec"),
            f(v[2], "gb_per_sec")
        ));
    }
}

pub fn report(r: &[Value]) -> String {
    let mut s =
        String::from("Between two processes (server here, clients in a child process):\n\n");
    cross_process(r, &mut s);
    s.push_str("\nThrough a proxy that resets the connection every 25 ms (numbered tells):\n\n");
    resets(r, &mut s);
    s.push_str("\nScaling (8 connections, 4 KiB, depth 64):\n\n");
    scaling(r, &mut s);
    s.push_str("\nSize sweep between two processes (1 connection, msgs/s and GB/s):\n\n");
    sweep(r, &mut s, "_xproc");
    s.push_str("\nIn one process (server and clients on the same shard threads):\n\n");
    let row = |s: &mut String, label: &str, key: &str, scale: f64, unit: &str, scenario: &str| {
        let m = f(find(r, "msgr", scenario), key) * scale;
        let a = f(find(r, "tokio", scenario), key) * scale;
        let b = f(find(r, "threaded", scenario), key) * scale;
        s.push_str(&format!(
            "| {label} | {m:.1} {unit} | {a:.1} {unit} | {b:.1} {unit} | {:.2} | {:.2} |\n",
            m / a,
            m / b
        ));
    };
    s.push_str("| scenario | msgr | (a) raw tokio | (b) thread-per-conn | msgr / (a) | msgr / (b) |\n|---|---|---|---|---|---|\n");
    row(
        &mut s,
        "1. 1 conn, 4 KiB, depth 128 (msgs/s)",
        "msgs_per_sec",
        1e-3,
        "k",
        "stream_4k",
    );
    row(
        &mut s,
        "2. 1 conn, 4 MiB (GB/s)",
        "gb_per_sec",
        1.0,
        "",
        "stream_4m",
    );
    row(
        &mut s,
        "3. ping-pong 4 KiB, p50 (µs)",
        "p50_us",
        1.0,
        "",
        "pingpong_4k",
    );
    row(
        &mut s,
        "3. ping-pong 4 KiB, p99 (µs)",
        "p99_us",
        1.0,
        "",
        "pingpong_4k",
    );
    row(
        &mut s,
        "3. ping-pong: CPU (% of one core)",
        "cpu_pct",
        1.0,
        "",
        "pingpong_4k",
    );
    let poll = find(r, "msgr", "pingpong_4k_busypoll");
    let a = find(r, "tokio", "pingpong_4k");
    s.push_str(&format!(
        "| 3. ping-pong, msgr with ms_busy_poll_us {}: p50 / p99 (µs); CPU | {:.0} / {:.0}; {:.0} % | {:.0} / {:.0} | | {:.2} / {:.2} | |\n",
        crate::msgr_sys::BUSY_POLL_US,
        f(poll, "p50_us"),
        f(poll, "p99_us"),
        f(poll, "cpu_pct"),
        f(a, "p50_us"),
        f(a, "p99_us"),
        f(poll, "p50_us") / f(a, "p50_us"),
        f(poll, "p99_us") / f(a, "p99_us"),
    ));
    row(
        &mut s,
        "4. 1,000 conns x 4 KiB, depth 8 (msgs/s)",
        "msgs_per_sec",
        1e-3,
        "k",
        "conns_1000",
    );
    row(
        &mut s,
        "4. 1,000 conns: CPU (% of one core)",
        "cpu_pct",
        1.0,
        "",
        "conns_1000",
    );
    row(
        &mut s,
        "4. 1,000 conns: RSS (MiB)",
        "rss_kib",
        1.0 / 1024.0,
        "",
        "conns_1000",
    );
    row(
        &mut s,
        "4. 1,000 conns: threads",
        "threads",
        1.0,
        "",
        "conns_1000",
    );
    row(
        &mut s,
        "5. idle conns: RSS per conn (KiB)",
        "rss_per_conn_kib",
        1.0,
        "",
        "idle",
    );
    row(
        &mut s,
        "5. idle conns: threads with them open",
        "threads_after",
        1.0,
        "",
        "idle",
    );
    let inj = find(r, "msgr", "inject_1000");
    let base = f(find(r, "msgr", "stream_4k"), "msgs_per_sec");
    s.push_str(&format!(
        "| 6. lossless, ms_inject_socket_failures 1000 (msgs/s; replayed) | {:.1} k; {} replayed | — | — | {:.2} of (1) | |\n",
        f(inj, "msgs_per_sec") / 1e3,
        inj.and_then(|v| v["replayed"].as_u64()).unwrap_or(0),
        f(inj, "msgs_per_sec") / base
    ));
    s.push_str("\nSize sweep in one process (1 connection, msgs/s and GB/s):\n\n");
    sweep(r, &mut s, "");
    s
}

/// The size sweep between two processes, as a chart of msgs/s and GB/s against size.
pub fn svg(r: &[Value], path: &str) {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let (left, right) = root.split_horizontally(500);
    let series = |key: &str, system: &str| -> Vec<(f64, f64)> {
        SIZES
            .iter()
            .filter_map(|s| {
                find(r, system, &format!("size_{s}_xproc"))
                    .map(|v| (*s as f64, v[key].as_f64().unwrap_or(0.0).max(1e-6)))
            })
            .collect()
    };
    for (area, key, title, ymin, ymax) in [
        (&left, "msgs_per_sec", "messages per second", 10.0, 2e6),
        (&right, "gb_per_sec", "GB per second", 1e-3, 20.0),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((48f64..6e6f64).log_scale(), (ymin..ymax).log_scale())
            .unwrap();
        chart
            .configure_mesh()
            .x_desc("message size (bytes)")
            .x_label_formatter(&|x| {
                if *x >= 1048576.0 {
                    format!("{}M", x / 1048576.0)
                } else if *x >= 1024.0 {
                    format!("{}K", x / 1024.0)
                } else {
                    format!("{x}")
                }
            })
            .draw()
            .unwrap();
        for (system, label, color) in [
            ("msgr", "msgr", RED),
            ("tokio", "(a) raw tokio", BLUE),
            ("threaded", "(b) thread-per-conn", GREEN),
        ] {
            let pts = series(key, system);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .unwrap()
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .unwrap();
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .unwrap();
    }
    root.present().unwrap();
}
