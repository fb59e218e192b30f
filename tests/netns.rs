//! The cluster example across three hosts: network namespaces made by this test, joined by veth
//! pairs to a bridge in a fourth, on one subnet (192.0.2.0/24, the documentation range; no
//! packet leaves the namespaces). The mon binds 192.0.2.1, both OSDs 192.0.2.2, and the client
//! on 192.0.2.3 binds nothing and learns its address from the mon. Nothing is on 127.0.0.1, so
//! this shows that binding, advertised addresses and address learning work between hosts.
//!
//! Needs root and `ip netns` (iproute2). Without them it prints why and passes, unless
//! MSGR_REQUIRE_NETNS=1 (as in CI), which makes it fail instead.

#[path = "common/cluster_proc.rs"]
mod cluster_proc;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use cluster_proc::{check_osds_exit_clean, checked_client_summary, client_args, cluster_bin, Proc};

const MON_IP: &str = "192.0.2.1";
const OSD_IP: &str = "192.0.2.2";
const CLIENT_IP: &str = "192.0.2.3";
const MON_PORT: u16 = 6789;

fn required() -> bool {
    std::env::var("MSGR_REQUIRE_NETNS").is_ok_and(|v| v == "1")
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The namespaces of one test run; deleted on drop (their interfaces go with them).
struct Hosts {
    switch: String,
    mon: String,
    osd: String,
    client: String,
}

impl Hosts {
    fn create() -> Result<Hosts, String> {
        let tag = std::process::id();
        let name = |role: &str| format!("msgr-{role}-{tag}");
        let hosts = Hosts {
            switch: name("sw"),
            mon: name("mon"),
            osd: name("osd"),
            client: name("cli"),
        };
        ip(&["netns", "add", &hosts.switch])?;
        ip(&["-n", &hosts.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hosts.switch, "link", "set", "br0", "up"])?;
        for (i, (ns, addr)) in [
            (&hosts.mon, MON_IP),
            (&hosts.osd, OSD_IP),
            (&hosts.client, CLIENT_IP),
        ]
        .into_iter()
        .enumerate()
        {
            let port = format!("p{i}");
            ip(&["netns", "add", ns])?;
            // Both ends are made inside the namespaces: nothing touches the machine's own.
            ip(&[
                "-n",
                ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &hosts.switch,
            ])?;
            ip(&["-n", &hosts.switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hosts.switch, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// `bin args` run inside namespace `ns`.
    fn command(ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(cluster_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.client, &self.osd, &self.mon, &self.switch] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

#[test]
fn cluster_across_three_network_namespaces() {
    let hosts = match Hosts::create() {
        Ok(h) => h,
        Err(e) if required() => panic!("MSGR_REQUIRE_NETNS=1 but no namespaces: {e}"),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (network namespaces): {e}. Run as root with iproute2 to run it."
            );
            return;
        }
    };
    let mon_addr = format!("{MON_IP}:{MON_PORT}");
    let mut mon = Proc(
        Hosts::command(
            &hosts.mon,
            &[
                "--role",
                "mon",
                "--bind-ip",
                MON_IP,
                "--port",
                &MON_PORT.to_string(),
                "--duration",
                "30",
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    // The mon says where it listens before anything else.
    let mut first = String::new();
    BufReader::new(mon.0.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains(&format!("v1:{mon_addr}/0")),
        "the mon binds its own host's address: {first}"
    );
    let osds: Vec<Proc> = (0..2)
        .map(|id| {
            Proc(
                Hosts::command(
                    &hosts.osd,
                    &[
                        "--role",
                        "osd",
                        "--id",
                        &id.to_string(),
                        "--bind-ip",
                        OSD_IP,
                        "--mon",
                        &mon_addr,
                        "--duration",
                        "20",
                        "--inject-socket-failures",
                        "500",
                    ],
                )
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            )
        })
        .collect();
    let start = Instant::now();
    let args = client_args(&mon_addr);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let client = Hosts::command(&hosts.client, &args).output().unwrap();
    let s = checked_client_summary(&client);
    let learned = s["my_addr"].as_str().unwrap();
    assert!(
        learned.starts_with(&format!("v1:{CLIENT_IP}:")),
        "the client learned its own host's address from the mon: {learned}"
    );
    check_osds_exit_clean(osds);
    eprintln!(
        "three-host cluster: {} writes acked, {} replica reads verified, client at {learned}, in {:.1} s",
        s["writes_acked"],
        s["replica_reads_verified"],
        start.elapsed().as_secs_f64()
    );
    drop(mon);
}
