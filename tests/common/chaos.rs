//! A seeded chaos proxy: forwards TCP from its own address to a target and, per forwarded
//! chunk, may flip one bit, cut both sides with a reset, stall, or drip the chunk out one byte
//! at a time. Each fault is switched on by giving its rate (1 in N chunks; 0 is off), so a test
//! names exactly the faults it wants; counters say how many of each happened, so a test can
//! make sure its faults did.
//!
//! Every connection draws from its own generator, seeded from the proxy's seed, the
//! connection's number and the direction; what differs between two runs of one seed is only
//! how the kernel happened to chunk the stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which faults, how often.
#[derive(Debug, Clone)]
pub struct Chaos {
    pub seed: u64,
    /// Flip one random bit of the chunk: 1 in N chunks (0: never).
    pub flip_one_in: u64,
    /// Reset both sides of the connection (SO_LINGER 0): 1 in N chunks.
    pub cut_one_in: u64,
    /// Hold the chunk for a random time in `stall`: 1 in N chunks.
    pub stall_one_in: u64,
    /// How long a stall lasts (at least, at most).
    pub stall: (Duration, Duration),
    /// Forward the chunk one byte per write: 1 in N chunks.
    pub drip_one_in: u64,
}

impl Chaos {
    /// A proxy that forwards faithfully.
    pub fn none(seed: u64) -> Self {
        Chaos {
            seed,
            flip_one_in: 0,
            cut_one_in: 0,
            stall_one_in: 0,
            stall: (Duration::from_millis(300), Duration::from_millis(2500)),
            drip_one_in: 0,
        }
    }
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ChaosStats {
    pub connections: AtomicU64,
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
    pub flips: AtomicU64,
    pub cuts: AtomicU64,
    pub stalls: AtomicU64,
    pub drips: AtomicU64,
}

/// A point-in-time copy of [`ChaosStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosCounts {
    pub connections: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub flips: u64,
    pub cuts: u64,
    pub stalls: u64,
    pub drips: u64,
}

impl ChaosStats {
    pub fn counts(&self) -> ChaosCounts {
        ChaosCounts {
            connections: self.connections.load(Relaxed),
            chunks: self.chunks.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            flips: self.flips.load(Relaxed),
            cuts: self.cuts.load(Relaxed),
            stalls: self.stalls.load(Relaxed),
            drips: self.drips.load(Relaxed),
        }
    }
}

/// A running proxy; dropping it stops accepting (live connections end with their peers).
pub struct ChaosProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ChaosStats>,
    calm: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Listens on `listen` (port 0: any) and forwards each connection to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr, chaos: Chaos) -> ChaosProxy {
        let listener = TcpListener::bind(listen).await.expect("proxy bind");
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ChaosStats::default());
        let calm = Arc::new(AtomicBool::new(false));
        let task = {
            let (stats, calm) = (stats.clone(), calm.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Ok((client, _)) = listener.accept().await {
                    n += 1;
                    stats.connections.fetch_add(1, Relaxed);
                    let (chaos, stats, calm) = (chaos.clone(), stats.clone(), calm.clone());
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(target).await {
                            forward(client, server, chaos, n, stats, calm).await;
                        }
                    });
                }
            })
        };
        ChaosProxy {
            addr,
            stats,
            calm,
            task,
        }
    }

    pub fn counts(&self) -> ChaosCounts {
        self.stats.counts()
    }

    /// Stops injecting faults: from now on every connection is forwarded faithfully (live
    /// ones included), so a test can let its traffic settle.
    pub fn calm(&self) {
        self.calm.store(true, Relaxed);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one direction of a connection ended.
enum End {
    /// The source closed (its FIN was passed on).
    Closed,
    /// Chaos cut the connection, or a socket failed: reset both sides.
    Reset,
}

async fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    chaos: Chaos,
    conn: u64,
    stats: Arc<ChaosStats>,
    calm: Arc<AtomicBool>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let seed = |dir: u64| chaos.seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ dir;
    let reset = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let up = pump(&mut cr, &mut sw, &chaos, seed(1), &stats, &calm);
        let down = pump(&mut sr, &mut cw, &chaos, seed(2), &stats, &calm);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
            };
            match end {
                End::Reset => break true,
                End::Closed if up_done && down_done => break false,
                End::Closed => {}
            }
        }
    };
    if reset {
        // SO_LINGER 0: closing sends RST, as a middlebox dropping the flow would look. tokio
        // deprecates set_linger because a non-zero linger blocks the thread on drop; a zero one
        // does not wait at all.
        #[allow(deprecated)]
        let _ = client.set_linger(Some(Duration::ZERO));
        #[allow(deprecated)]
        let _ = server.set_linger(Some(Duration::ZERO));
    }
}

/// Forwards `from` to `to` chunk by chunk, with faults.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    from: &mut R,
    to: &mut W,
    chaos: &Chaos,
    seed: u64,
    stats: &ChaosStats,
    calm: &AtomicBool,
) -> End {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 16 * 1024];
    let hit = |rng: &mut SmallRng, one_in: u64| one_in > 0 && rng.gen_range(0..one_in) == 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Closed;
            }
            Ok(n) => n,
            Err(_) => return End::Reset,
        };
        stats.chunks.fetch_add(1, Relaxed);
        stats.bytes.fetch_add(n as u64, Relaxed);
        let chunk = &mut buf[..n];
        // Every draw is made whether or not its fault is on, so switching one fault off leaves
        // the others' schedule as it was.
        let (cut, flip, stall, drip) = (
            hit(&mut rng, chaos.cut_one_in),
            hit(&mut rng, chaos.flip_one_in),
            hit(&mut rng, chaos.stall_one_in),
            hit(&mut rng, chaos.drip_one_in),
        );
        let bit = rng.gen_range(0..n * 8);
        let stall_for = rng.gen_range(chaos.stall.0..=chaos.stall.1);
        let calm_now = calm.load(Relaxed);
        if cut && !calm_now {
            stats.cuts.fetch_add(1, Relaxed);
            return End::Reset;
        }
        if flip && !calm_now {
            stats.flips.fetch_add(1, Relaxed);
            chunk[bit / 8] ^= 1 << (bit % 8);
        }
        if stall && !calm_now {
            stats.stalls.fetch_add(1, Relaxed);
            tokio::time::sleep(stall_for).await;
        }
        let written = if drip && !calm_now {
            stats.drips.fetch_add(1, Relaxed);
            drip_out(to, chunk).await
        } else {
            to.write_all(chunk).await
        };
        if written.is_err() {
            return End::Reset;
        }
    }
}

/// Writes `chunk` one byte per write (each its own segment, with nodelay set).
async fn drip_out<W: AsyncWrite + Unpin>(to: &mut W, chunk: &[u8]) -> std::io::Result<()> {
    for b in chunk {
        to.write_all(std::slice::from_ref(b)).await?;
        to.flush().await?;
        tokio::task::yield_now().await;
    }
    Ok(())
}
