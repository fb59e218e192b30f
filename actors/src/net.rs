//! Sockets the way Ceph sets them up (spec §7): bind in a port range with retries, SO_REUSEADDR,
//! optional SO_RCVBUF, a listen backlog, TCP_NODELAY.

use std::io;
use std::net::SocketAddr;

use msgr::Config;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr`. Port 0 means "the first free port in ms_bind_port_min..=max"; an explicit port
/// is bound as given. Each failure is retried `ms_bind_retry_count` times,
/// `ms_bind_retry_delay` apart. The listener comes back detached (std, non-blocking) so that the
/// accepter's arbiter can register it with its own reactor.
pub async fn bind(addr: SocketAddr, cfg: &Config) -> io::Result<std::net::TcpListener> {
    let mut attempt = 0;
    loop {
        match bind_once(addr, cfg) {
            Ok(l) => return Ok(l),
            Err(e) if attempt < cfg.ms_bind_retry_count => {
                attempt += 1;
                tracing::warn!(%addr, error = %e, attempt, "bind failed; retrying");
                tokio::time::sleep(cfg.ms_bind_retry_delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn bind_once(addr: SocketAddr, cfg: &Config) -> io::Result<std::net::TcpListener> {
    if addr.port() != 0 {
        return listen_on(addr, cfg);
    }
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no port in range");
    for port in cfg.ms_bind_port_min..=cfg.ms_bind_port_max {
        match listen_on(SocketAddr::new(addr.ip(), port), cfg) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn listen_on(addr: SocketAddr, cfg: &Config) -> io::Result<std::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if cfg.ms_tcp_rcvbuf > 0 {
        sock.set_recv_buffer_size(cfg.ms_tcp_rcvbuf)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(cfg.ms_tcp_listen_backlog.min(i32::MAX as u32) as i32)?;
    Ok(sock.into())
}

/// Registers a detached listener with the current thread's reactor.
pub fn attach_listener(l: std::net::TcpListener) -> io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

/// Applies per-socket options to a connected or accepted socket.
pub fn tune(stream: &TcpStream, cfg: &Config) -> io::Result<()> {
    stream.set_nodelay(cfg.ms_tcp_nodelay)?;
    if cfg.ms_tcp_rcvbuf > 0 {
        socket2::SockRef::from(stream).set_recv_buffer_size(cfg.ms_tcp_rcvbuf)?;
    }
    Ok(())
}

/// Moves a tokio socket off this thread's reactor so another arbiter can adopt it.
pub fn detach(stream: TcpStream) -> io::Result<std::net::TcpStream> {
    let s = stream.into_std()?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Registers a detached socket with the current thread's reactor.
pub fn attach(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// Counts an accepted socket while it lives (for `ms_max_connections`).
#[derive(Debug)]
pub(crate) struct SocketSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl SocketSlot {
    pub(crate) fn new(open: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        open.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        SocketSlot(open.clone())
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
