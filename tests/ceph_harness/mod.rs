//! Starts a real ceph-mon 16.2.15 on loopback (msgr v1 only; auth none, or cephx with keyrings
//! made by `ceph-authtool`) in a temporary directory, and stops it and removes its files
//! afterwards (the v1 spec §6's recipe; the cephx spec §11's for keys).
//!
//! No ceph-mon on this machine: the tests that need one print why and skip, unless
//! MSGR_REQUIRE_CEPH=1 (set by CI), which makes them fail instead.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running (or stopped) test monitor.
pub struct CephMon {
    pub dir: PathBuf,
    pub port: u16,
    /// The msgr2 port, when the mon binds both (`MonOpts::msgr2`).
    pub v2_port: Option<u16>,
    pub fsid: String,
    opts: MonOpts,
    child: Option<Child>,
}

/// How the test monitor is set up.
#[derive(Default, Clone)]
pub struct MonOpts {
    /// More monitors in its monmap (name, port) that the test itself plays.
    pub peers: Vec<(String, u16)>,
    /// cephx required everywhere, with `mon.` and `client.admin` keys made by ceph-authtool.
    pub cephx: bool,
    /// Extra `[global]` settings, one per line.
    pub extra_conf: String,
    /// Bind msgr2 too, as a default mon does: `[v2:127.0.0.1:P2,v1:127.0.0.1:P1]`.
    pub msgr2: bool,
    /// The test's peer monitors are at msgr2 addresses (`[v2:127.0.0.1:PORT]`), not v1.
    pub peers_v2: bool,
}

/// True when CI demands that interop tests run.
pub fn required() -> bool {
    std::env::var("MSGR_REQUIRE_CEPH").is_ok_and(|v| v == "1")
}

fn unavailable(reason: &str) -> Option<CephMon> {
    if required() {
        panic!("MSGR_REQUIRE_CEPH=1 but no ceph-mon can be started: {reason}");
    }
    // Straight to stderr, past the test harness's output capture, so the skip is seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (Ceph interop): {reason}. Install ceph-mon (scripts/test does, as root) to run it."
    );
    None
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl CephMon {
    /// A one-monitor cluster, mon.a, at a free port.
    pub fn start() -> Option<CephMon> {
        Self::start_with(&[])
    }

    /// mon.a at a free port, plus more monitors in its monmap at `peers` (name, port) that the
    /// test itself plays.
    pub fn start_with(peers: &[(&str, u16)]) -> Option<CephMon> {
        Self::start_opts(MonOpts {
            peers: peers.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            ..MonOpts::default()
        })
    }

    /// mon.a with cephx required (auth_cluster/service/client_required = cephx).
    pub fn start_cephx() -> Option<CephMon> {
        Self::start_opts(MonOpts {
            cephx: true,
            ..MonOpts::default()
        })
    }

    /// mon.a set up as `opts` says.
    pub fn start_opts(opts: MonOpts) -> Option<CephMon> {
        let tools: &[&str] = if opts.cephx {
            &["ceph-mon", "monmaptool", "ceph-authtool"]
        } else {
            &["ceph-mon", "monmaptool"]
        };
        for &tool in tools {
            if Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return unavailable(&format!("{tool} is not installed"));
            }
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "msgr-ceph-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fsid = uuid_like();
        let v2_port = opts.msgr2.then(free_port);
        let mut mon = CephMon {
            dir,
            port,
            v2_port,
            fsid,
            opts,
            child: None,
        };
        if let Err(e) = mon.create().and_then(|_| mon.launch()) {
            return unavailable(&e);
        }
        Some(mon)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// The `client.admin` keyring (cephx monitors).
    pub fn admin_keyring(&self) -> PathBuf {
        self.dir.join("admin.keyring")
    }

    /// The `mon.` keyring (cephx monitors).
    pub fn mon_keyring(&self) -> PathBuf {
        self.dir.join("mon.keyring")
    }

    fn create(&self) -> Result<(), String> {
        let d = self.dir.display();
        let auth = if self.opts.cephx { "cephx" } else { "none" };
        let addrs = self.addrs();
        let bind2 = self.v2_port.is_some();
        // The mon refuses to start when its disk is 95 % full (`mon_data_avail_crit`); a test
        // mon's few kilobytes do not care, and a busy build machine can be that full.
        let mut conf = format!(
            "[global]\nfsid = {}\nmon_host = {addrs}\nauth_cluster_required = {auth}\n\
             auth_service_required = {auth}\nauth_client_required = {auth}\nms_bind_msgr2 = {bind2}\n\
             mon_data = {d}/mon-$id\nrun_dir = {d}\nadmin_socket = {d}/$name.asok\n\
             log_file = {d}/$name.log\ndebug_ms = 1\nmon_data_avail_crit = 0\nmon_data_avail_warn = 0\n{}\n",
            self.fsid, self.opts.extra_conf
        );
        if self.opts.cephx {
            conf += &format!(
                "keyring = {d}/admin.keyring\n[mon]\nkeyring = {d}/mon.keyring\ndebug_auth = 10\n"
            );
            self.make_keyrings()?;
        }
        std::fs::write(self.conf(), conf).map_err(|e| e.to_string())?;
        let monmap = self.dir.join("monmap");
        let mut cmd = Command::new("monmaptool");
        cmd.arg("--create").arg("--fsid").arg(&self.fsid);
        cmd.arg("--addv").arg("a").arg(&addrs);
        let kind = if self.opts.peers_v2 { "v2" } else { "v1" };
        for (name, port) in &self.opts.peers {
            cmd.arg("--addv")
                .arg(name)
                .arg(format!("[{kind}:127.0.0.1:{port}]"));
        }
        run(cmd.arg(&monmap))?;
        let mut mkfs = Command::new("ceph-mon");
        mkfs.args(["--mkfs", "-i", "a", "--monmap"])
            .arg(&monmap)
            .arg("-c")
            .arg(self.conf());
        if self.opts.cephx {
            mkfs.arg("--keyring").arg(self.mon_keyring());
        }
        run(&mut mkfs)?;
        Ok(())
    }

    /// `mon.` and `client.admin` keys, as the spec's §11 lab made them.
    fn make_keyrings(&self) -> Result<(), String> {
        let (mon, admin) = (self.mon_keyring(), self.admin_keyring());
        run(Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&mon)
            .args(["--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]))?;
        run(Command::new("ceph-authtool")
            .arg("--create-keyring")
            .arg(&admin)
            .args(["--gen-key", "-n", "client.admin"])
            .args(["--cap", "mon", "allow *", "--cap", "osd", "allow *"])
            .args(["--cap", "mgr", "allow *", "--cap", "mds", "allow *"]))?;
        run(Command::new("ceph-authtool")
            .arg(&mon)
            .arg("--import-keyring")
            .arg(&admin))?;
        Ok(())
    }

    /// mon.a's addresses as a monmap lists them.
    fn addrs(&self) -> String {
        match self.v2_port {
            Some(p2) => format!("[v2:127.0.0.1:{p2},v1:127.0.0.1:{}]", self.port),
            None => format!("[v1:127.0.0.1:{}]", self.port),
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.join("mon.out")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ceph-mon");
        cmd.args(["-f", "-i", "a", "-c"]).arg(self.conf());
        if self.v2_port.is_none() {
            cmd.arg("--public-addr")
                .arg(format!("127.0.0.1:{}", self.port));
        }
        let child = cmd
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run ceph-mon: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("ceph-mon exited with {status}: {}", self.output()));
            }
            if banner_ok(self.port) {
                return self.wait_until_it_authenticates(deadline);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "ceph-mon did not listen within 60 s: {}",
            self.output()
        ))
    }

    /// A cephx mon listens before it can authenticate anyone (its auth service starts after
    /// the first election; until then it closes authenticating sessions): wait for the real
    /// CLI to get through. A mon with peers in its monmap has no quorum until the test's peer
    /// joins, and authenticates nobody before: no wait for it.
    fn wait_until_it_authenticates(&self, deadline: Instant) -> Result<(), String> {
        if !self.opts.cephx || !self.opts.peers.is_empty() {
            return Ok(());
        }
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.ceph(&["health"]) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the cephx mon never authenticated `ceph health`: {last}"
        ))
    }

    /// Kills the monitor (as a crash would) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts the monitor again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch().expect("ceph-mon restarts");
    }

    /// The monitor's log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mon.a.log")).unwrap_or_default()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("mon.out")).unwrap_or_default()
    }

    /// Runs the real `ceph` command against this monitor (with its keyring when cephx).
    pub fn ceph(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("ceph")
            .arg("-c")
            .arg(self.conf())
            .args(["--connect-timeout", "20"])
            .args(args))
    }

    /// `ceph mon getmap` then `monmaptool --print`: the reference view of the monmap.
    pub fn monmaptool_print(&self) -> String {
        let file = self.dir.join("current-monmap");
        run(Command::new("ceph")
            .arg("-c")
            .arg(self.conf())
            .args(["--connect-timeout", "20", "mon", "getmap", "-o"])
            .arg(&file))
        .expect("ceph mon getmap");
        run(Command::new("monmaptool").arg("--print").arg(&file)).expect("monmaptool --print")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for CephMon {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "ceph-mon files kept for inspection in {}",
                self.dir.display()
            );
        }
    }
}

fn banner_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 9];
    s.read_exact(&mut b).is_ok() && &b == b"ceph v027"
}

fn uuid_like() -> String {
    let r: [u8; 16] = rand::random();
    let h: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
