//! Message-phase frames to bytes. A message frame is handed out as chunks so that the payload
//! sections go to the socket as the very `Bytes` the user gave us: no copy, one vectored write.

use bytes::{BufMut, Bytes, BytesMut};

use super::crc::ceph_crc32c;
use super::header::{Footer, FooterFlags, Header, FOOTER_LEN, HEADER_LEN};
use super::{Tag, Timespec};
use crate::auth::{MessageSigner, SignedFields};
use crate::message::Message;

/// One encoded frame: at most five chunks in wire order. Sections up to
/// [`INLINE_MAX`] bytes are copied next to the header (a small copy beats sharing); larger
/// sections go out as the very `Bytes` the message holds.
#[derive(Debug, Clone, Default)]
pub struct FrameChunks {
    chunks: [Bytes; 5],
    len: usize,
}

/// Sections up to this size are copied into the frame's head chunk instead of shared.
pub const INLINE_MAX: usize = 512;

impl Extend<Bytes> for FrameChunks {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.push(b);
        }
    }
}

impl FrameChunks {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.chunks[self.len] = b;
            self.len += 1;
        }
    }

    /// The chunks, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.chunks[..self.len].iter()
    }

    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.iter().map(Bytes::len).sum()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Consumes into the chunks, in wire order.
    pub fn into_chunks(self) -> impl Iterator<Item = Bytes> {
        let len = self.len;
        self.chunks.into_iter().take(len)
    }

    /// Copies all chunks into one contiguous buffer (for tests and small control paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for c in self.iter() {
            v.extend_from_slice(c);
        }
        v
    }
}

/// Encodes message frames for one connection, with its negotiated footer form and CRC choice.
///
/// Headers, footers and small sections are written into one shared scratch buffer and split
/// off, so a frame costs no allocation of its own in the steady state.
#[derive(Debug)]
pub struct FrameEncoder {
    msg_auth: bool,
    crc_data: bool,
    signer: Option<MessageSigner>,
    scratch: BytesMut,
}

/// The inline bytes' buffer grows by this much when it is full and cannot be reclaimed.
const SCRATCH_CHUNK: usize = 16 * 1024;

impl FrameEncoder {
    /// `msg_auth`: MSG_AUTH was negotiated (21-byte footer). `crc_data`: compute data CRCs
    /// (`ms_crc_data`); when false the footer says NOCRC.
    pub fn new(msg_auth: bool, crc_data: bool) -> Self {
        FrameEncoder {
            msg_auth,
            crc_data,
            signer: None,
            scratch: BytesMut::new(),
        }
    }

    /// Signs every message with `signer` (a session opened with a cephx authorizer, MSG_AUTH
    /// negotiated; spec §9.10).
    pub fn with_signer(mut self, signer: Option<MessageSigner>) -> Self {
        self.signer = signer.filter(|_| self.msg_auth);
        self
    }

    fn reserve(&mut self, n: usize) {
        // At the start of a batch, once every chunk handed out before is gone (written and
        // dropped), start over at the front of the same buffer: the batch lands in cache lines
        // and pages that are already warm, instead of walking the whole buffer (and making all
        // of it resident, for every connection) before reusing any.
        if self.scratch.is_empty() && self.scratch.capacity() < SCRATCH_CHUNK {
            // False while chunks handed out are still held: then the batch goes after them.
            let _ = self.scratch.try_reclaim(SCRATCH_CHUNK);
        }
        if self.scratch.capacity() - self.scratch.len() < n {
            self.scratch.reserve(SCRATCH_CHUNK.max(n));
        }
    }

    /// Appends a section: copied when small, otherwise shared as its own chunk (after the
    /// inline bytes before it).
    fn section(&mut self, out: &mut impl Extend<Bytes>, bytes: &Bytes) {
        if bytes.len() <= INLINE_MAX {
            self.scratch.put_slice(bytes);
        } else {
            if !self.scratch.is_empty() {
                out.extend([self.scratch.split().freeze()]);
            }
            out.extend([bytes.clone()]);
        }
    }

    /// Encodes `msg` as a MSG frame with `msg.seq` and fresh CRCs.
    pub fn encode_message(&mut self, msg: &Message) -> FrameChunks {
        // Inline bytes left by an unfinished batch, if any, lead the head chunk: wire order.
        let mut out = FrameChunks::default();
        self.append_message(msg, &mut out);
        out.push(self.scratch.split().freeze());
        out
    }

    /// Encodes `msg` as the next frame of a batch: large sections are pushed to `out` as
    /// shared chunks; inline bytes (header, small sections, footer) stay in the encoder so
    /// that one frame's footer and the next frame's header share a chunk. Call
    /// [`finish_batch`](Self::finish_batch) to push what is left.
    pub fn append_message(&mut self, msg: &Message, out: &mut impl Extend<Bytes>) {
        let header = Header {
            seq: msg.seq,
            tid: msg.tid,
            msg_type: msg.msg_type,
            priority: msg.priority,
            version: msg.version,
            front_len: msg.front.len() as u32,
            middle_len: msg.middle.len() as u32,
            data_len: msg.data.len() as u32,
            data_off: msg.data_off,
            src: msg.src,
            compat_version: msg.compat_version,
            crc: 0,
        };
        let mut flags = FooterFlags::COMPLETE;
        let data_crc = if self.crc_data {
            ceph_crc32c(0, &msg.data)
        } else {
            flags |= FooterFlags::NOCRC;
            0
        };
        let mut footer = Footer {
            front_crc: ceph_crc32c(0, &msg.front),
            middle_crc: ceph_crc32c(0, &msg.middle),
            data_crc,
            sig: 0,
            flags: FooterFlags(flags),
        };
        let head = header.encode();
        if let Some(signer) = &self.signer {
            let crc = u32::from_le_bytes(head[HEADER_LEN - 4..].try_into().expect("4 bytes"));
            footer.sig = signer.sign(&signed_fields(&header, crc, &footer));
            footer.flags = FooterFlags(flags | FooterFlags::SIGNED);
        }
        self.reserve(1 + HEADER_LEN + 3 * INLINE_MAX + FOOTER_LEN);
        self.scratch.put_u8(Tag::Msg as u8);
        self.scratch.put_slice(&head);
        self.section(out, &msg.front);
        self.section(out, &msg.middle);
        self.section(out, &msg.data);
        let mut fbuf = [0u8; FOOTER_LEN];
        let n = footer.encode_into(self.msg_auth, &mut fbuf);
        self.scratch.put_slice(&fbuf[..n]);
    }

    /// Appends a control frame (ACK, keepalive) to the batch, inline.
    pub fn append_control(&mut self, frame: &[u8]) {
        self.reserve(frame.len());
        self.scratch.put_slice(frame);
    }

    /// Ends a batch: pushes the inline bytes not yet handed out.
    pub fn finish_batch(&mut self, out: &mut Vec<Bytes>) {
        if !self.scratch.is_empty() {
            out.push(self.scratch.split().freeze());
        }
    }
}

/// What a signature covers, from a header (with its CRC) and a footer.
pub(crate) fn signed_fields(h: &Header, header_crc: u32, f: &Footer) -> SignedFields {
    SignedFields {
        header_crc,
        front_crc: f.front_crc,
        middle_crc: f.middle_crc,
        data_crc: f.data_crc,
        front_len: h.front_len,
        middle_len: h.middle_len,
        data_len: h.data_len,
        seq: h.seq,
    }
}

/// An ACK frame for `seq`.
pub fn encode_ack(seq: u64) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[0] = Tag::Ack as u8;
    b[1..].copy_from_slice(&seq.to_le_bytes());
    b
}

/// A plain KEEPALIVE frame (for peers without MSGR_KEEPALIVE2).
pub fn encode_keepalive() -> [u8; 1] {
    [Tag::Keepalive as u8]
}

/// A KEEPALIVE2 (or, with `ack`, KEEPALIVE2_ACK) frame carrying `ts`.
pub fn encode_keepalive2(ts: Timespec, ack: bool) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[0] = if ack {
        Tag::Keepalive2Ack
    } else {
        Tag::Keepalive2
    } as u8;
    b[1..].copy_from_slice(&ts.to_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::EntityName;
    use crate::wire::hex;

    #[test]
    fn mping_frame_from_spec_byte_for_byte() {
        let msg = Message {
            seq: 1,
            msg_type: 2,
            priority: 127,
            version: 1,
            compat_version: 1,
            src: EntityName::anonymous_client(),
            ..Default::default()
        };
        let frame = FrameEncoder::new(true, true).encode_message(&msg);
        let want = hex("07
             01000000 00000000  00000000 00000000  0200 7f00 0100  00000000 00000000 00000000 0000
             08 ffffffff ffffffff  0100 0000  e092242d
             00000000 00000000 00000000 0000000000000000 01");
        assert_eq!(frame.len(), 75);
        assert_eq!(frame.to_vec(), want);
    }

    #[test]
    fn large_sections_are_shared_not_copied_small_ones_inlined() {
        let data = Bytes::from(vec![7u8; 4096]);
        let msg = Message {
            front: Bytes::from_static(b"small front"),
            data: data.clone(),
            ..Default::default()
        };
        let frame = FrameEncoder::new(true, true).encode_message(&msg);
        let chunks: Vec<Bytes> = frame.into_chunks().collect();
        assert_eq!(chunks.len(), 3, "head+front, data, footer");
        assert_eq!(chunks[0].len(), 1 + HEADER_LEN + 11);
        assert_eq!(chunks[1].as_ptr(), data.as_ptr());
        assert_eq!(chunks[2].len(), FOOTER_LEN);
    }

    #[test]
    fn a_batch_is_the_frames_back_to_back_with_footer_and_next_header_in_one_chunk() {
        let data = Bytes::from(vec![7u8; 4096]);
        let msgs: Vec<Message> = (1..=3)
            .map(|seq| Message {
                seq,
                front: Bytes::from(format!("front {seq}")),
                data: data.clone(),
                ..Default::default()
            })
            .collect();
        let mut want = Vec::new();
        for m in &msgs {
            want.extend(FrameEncoder::new(true, true).encode_message(m).to_vec());
        }
        want.extend(encode_ack(9));

        let mut enc = FrameEncoder::new(true, true);
        let mut chunks = Vec::new();
        for m in &msgs {
            enc.append_message(m, &mut chunks);
        }
        enc.append_control(&encode_ack(9));
        enc.finish_batch(&mut chunks);
        assert_eq!(chunks.concat(), want);
        // head, data; then (footer + next head), data twice; then footer + ACK.
        assert_eq!(chunks.len(), 2 * msgs.len() + 1);
        assert!(chunks.iter().all(|c| !c.is_empty()));
        assert!(chunks
            .iter()
            .skip(1)
            .step_by(2)
            .all(|c| c.as_ptr() == data.as_ptr()));

        // Nothing is left behind after a finished batch.
        let mut more = Vec::new();
        enc.finish_batch(&mut more);
        assert!(more.is_empty());
    }

    #[test]
    fn without_msg_auth_footer_is_13_bytes_and_nocrc_when_crc_data_off() {
        let msg = Message {
            data: Bytes::from_static(b"abc"),
            ..Default::default()
        };
        let bytes = FrameEncoder::new(false, false)
            .encode_message(&msg)
            .to_vec();
        let footer = &bytes[bytes.len() - 13..];
        assert_eq!(bytes.len(), 1 + HEADER_LEN + 3 + 13);
        assert_eq!(footer[12], FooterFlags::COMPLETE | FooterFlags::NOCRC);
        assert_eq!(&footer[8..12], &[0, 0, 0, 0]);
    }

    #[test]
    fn control_frames() {
        assert_eq!(encode_ack(2).to_vec(), hex("08 0200000000000000"));
        assert_eq!(encode_keepalive(), [9]);
        let ts = Timespec { sec: 1, nsec: 2 };
        assert_eq!(encode_keepalive2(ts, true)[0], 15);
        assert_eq!(&encode_keepalive2(ts, false)[1..], &ts.to_bytes());
    }

    #[test]
    fn a_batch_after_the_last_was_written_reuses_the_front_of_the_buffer() {
        let msg = Message {
            front: Bytes::from_static(b"front"),
            ..Default::default()
        };
        let mut enc = FrameEncoder::new(true, true);
        let batch = |enc: &mut FrameEncoder| {
            let mut out = vec![];
            enc.append_message(&msg, &mut out);
            enc.append_control(&encode_ack(1));
            enc.finish_batch(&mut out);
            out
        };
        let first = batch(&mut enc);
        let at = first[0].as_ptr();
        // Still held (not yet written): the next batch goes after it.
        let second = batch(&mut enc);
        assert_ne!(second[0].as_ptr(), at);
        assert_eq!(first, second, "same frames, same bytes");
        drop((first, second));
        // Both written and dropped: the next batch starts over at the front.
        let third = batch(&mut enc);
        assert_eq!(third[0].as_ptr(), at);
    }
}
