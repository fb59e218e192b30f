//! A connection's read buffer: adaptive read-ahead, and buffers that are reused instead of
//! allocated per read.
//!
//! Decoded sections are slices of this buffer (no copy), so right after a read the buffer is
//! shared with messages the Pipe has not dispatched yet, and the next read cannot reuse it in
//! place. Allocating a fresh buffer every read costs page faults (a large allocation is a fresh
//! mmap) and cold cache lines. So the buffer a read left behind becomes the *spare*: by the
//! time the new one fills up, the spare's messages are usually dispatched and gone (the reader
//! yields to its Pipe after a read that filled its buffer, see [`ReadBuffer::more_waiting`]),
//! and it is reused whole. Two buffers take turns; a new one is allocated only when both are
//! still held (a dispatcher keeping messages, say).
//!
//! Read-ahead starts at `ms_tcp_prefetch_max_size`, doubles while reads fill it (a busy
//! connection makes few syscalls) and halves back once reads keep coming in under `prefetch`, and a connection
//! back at the small size drops its big buffers, so a connection that went quiet keeps about
//! `prefetch` bytes.

use bytes::BytesMut;

/// Largest read-ahead: a busy connection reads this much per syscall.
pub(crate) const MAX_READ_AHEAD: usize = 64 * 1024;

/// The read buffer of one connection.
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    buf: BytesMut,
    spare: Option<BytesMut>,
    read_ahead: usize,
    prefetch: usize,
    /// Free space when the last read started.
    offered: usize,
    /// Reads in a row smaller than `prefetch`.
    small_reads: u32,
    /// The last read filled the room offered.
    filled: bool,
}

/// Small reads in a row after which a connection counts as quiet and its read-ahead halves.
const QUIET_READS: u32 = 16;

impl ReadBuffer {
    /// A buffer holding `initial` (bytes read past the handshake), with `prefetch` read-ahead.
    pub(crate) fn new(initial: BytesMut, prefetch: usize) -> Self {
        ReadBuffer {
            buf: initial,
            spare: None,
            read_ahead: prefetch,
            prefetch,
            offered: 0,
            small_reads: 0,
            filled: false,
        }
    }

    /// The buffered bytes, for the decoder (which consumes from the front).
    pub(crate) fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Makes room for the next read: at least `need` bytes (what the decoder still lacks) and
    /// the read-ahead. Returns the buffer to read into.
    pub(crate) fn prepare(&mut self, need: usize) -> &mut BytesMut {
        let want = need.max(self.read_ahead);
        if self.read_ahead == self.prefetch {
            self.shrink();
        }
        if !self.buf.try_reclaim(want) {
            self.replace(want);
        }
        self.offered = self.buf.capacity() - self.buf.len();
        &mut self.buf
    }

    /// The current buffer is still shared: continue in the spare if it is free again, else in
    /// a new buffer. The partial frame at the front moves over; the old buffer becomes the spare.
    fn replace(&mut self, want: usize) {
        let len = self.buf.len();
        let mut next = self.spare.take();
        if !next
            .as_mut()
            .is_some_and(|spare| spare.try_reclaim(len + want))
        {
            // Still held by messages (or none yet): let it go, it is freed with them. The new
            // one has room for a partial frame besides the read-ahead, so that it fits the
            // next turn as the spare; buffers of ever-different sizes would never be reused
            // and every read would land in fresh pages.
            let size = (len + want).max(self.read_ahead + self.read_ahead / 2);
            next = Some(BytesMut::with_capacity(size));
        }
        let next = next.expect("set above");
        let mut old = std::mem::replace(&mut self.buf, next);
        self.buf.extend_from_slice(&old);
        old.clear();
        // Only a busy connection keeps a spare; a quiet one lets the memory go.
        if self.read_ahead > self.prefetch {
            self.spare = Some(old);
        }
    }

    /// True when the last read filled all the room it was offered: more is probably waiting
    /// in the socket.
    pub(crate) fn more_waiting(&self) -> bool {
        self.filled
    }

    /// A read of `n` bytes completed: adapt the read-ahead.
    pub(crate) fn did_read(&mut self, n: usize) {
        self.filled = n >= self.offered;
        if n >= self.prefetch {
            self.small_reads = 0;
            if n >= self.offered {
                self.read_ahead = (self.read_ahead * 2).min(MAX_READ_AHEAD);
            }
            return;
        }
        // A lone small read (an ACK, one reply) says nothing: a busy connection has them
        // between its big ones, and shrinking then would split its next burst over two reads.
        self.small_reads += 1;
        if self.small_reads >= QUIET_READS && self.read_ahead > self.prefetch {
            self.small_reads = 0;
            self.read_ahead = (self.read_ahead / 2).max(self.prefetch);
        }
    }

    /// Back at the small read-ahead: give big buffers back (a quiet connection should not keep
    /// a busy one's memory). A buffer holding a partial frame is kept until it is consumed.
    fn shrink(&mut self) {
        self.spare = None;
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.prefetch {
            self.buf = BytesMut::with_capacity(self.prefetch);
        }
    }

    /// Capacity held, the spare included (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity() + self.spare.as_ref().map_or(0, BytesMut::capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFETCH: usize = 4096;

    /// Simulates a read of `n` bytes.
    fn read(rb: &mut ReadBuffer, need: usize, n: usize) {
        let buf = rb.prepare(need);
        assert!(buf.capacity() - buf.len() >= n, "room for the read");
        buf.extend_from_slice(&vec![7u8; n]);
        rb.did_read(n);
    }

    #[test]
    fn read_ahead_grows_while_reads_fill_it_and_shrinks_when_quiet() {
        let mut rb = ReadBuffer::new(BytesMut::new(), PREFETCH);
        for _ in 0..10 {
            let room = rb.prepare(0).capacity() - rb.bytes().len();
            read(&mut rb, 0, room);
            rb.bytes().clear();
        }
        assert_eq!(rb.read_ahead, MAX_READ_AHEAD);
        // A few small reads (ACKs between bursts) leave it alone.
        for _ in 0..QUIET_READS - 1 {
            read(&mut rb, 0, 10);
            rb.bytes().clear();
        }
        assert_eq!(rb.read_ahead, MAX_READ_AHEAD);
        for _ in 0..QUIET_READS * 8 {
            read(&mut rb, 0, 10);
            rb.bytes().clear();
        }
        assert_eq!(rb.read_ahead, PREFETCH);
        assert!(
            rb.held() <= 4 * PREFETCH,
            "quiet connection keeps {} bytes",
            rb.held()
        );
    }

    #[test]
    fn a_buffer_freed_by_its_messages_is_reused_not_reallocated() {
        let mut rb = ReadBuffer::new(BytesMut::new(), PREFETCH);
        rb.read_ahead = 64 * 1024;
        read(&mut rb, 0, 60 * 1024);
        // The decoder hands out a message slice; a partial frame stays behind.
        let first = rb.bytes().split_to(50 * 1024).freeze();
        let first_ptr = first.as_ptr();
        // Next read while the message is alive: a second buffer, partial frame moved over.
        read(&mut rb, 0, 40 * 1024);
        assert_ne!(rb.bytes().as_ptr(), first_ptr);
        assert_eq!(rb.bytes().len(), 10 * 1024 + 40 * 1024);
        let second = rb.bytes().split().freeze();
        // The first message is dispatched and dropped; the next read reuses its buffer.
        drop(first);
        read(&mut rb, 0, 1024);
        assert_eq!(rb.bytes().as_ptr(), first_ptr, "the spare was reused");
        drop(second);
    }

    #[test]
    fn buffers_still_held_by_messages_are_never_written() {
        let mut rb = ReadBuffer::new(BytesMut::new(), PREFETCH);
        let mut kept = Vec::new();
        for i in 0..20u8 {
            let buf = rb.prepare(0);
            buf.extend_from_slice(&[i; 1000]);
            rb.did_read(1000);
            kept.push(rb.bytes().split_to(1000).freeze());
        }
        for (i, k) in kept.iter().enumerate() {
            assert!(k.iter().all(|&b| b == i as u8), "message {i} intact");
        }
    }
}
