//! msgr2.1 frames (spec §4): a 32-byte preamble (tag, up to four segment lengths, CRC), the
//! segments, and an epilogue; in crc mode with CRC-32C over each part, in secure mode as up to
//! three AES-GCM messages. [`FrameWriter`] encodes, [`FrameReader`] decodes incrementally and
//! checks every length against its caps before anything is allocated.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::crypto::{GcmStream, TAG_LEN};
use super::V2Error;
use crate::wire::ceph_crc32c;

/// The preamble's length.
pub const PREAMBLE_LEN: usize = 32;
/// Most segments in a frame.
pub const MAX_SEGMENTS: usize = 4;
/// The MESSAGE tag (its segments are header, front, middle, data).
pub const TAG_MESSAGE: u8 = 17;
/// `FRAME_LATE_STATUS_COMPLETE`, as Pacific writes it.
const LATE_COMPLETE: u8 = 0x0e;
/// `FRAME_LATE_STATUS_ABORTED` (low nibble).
const LATE_ABORTED: u8 = 0x01;
/// Epilogue: late status and three segment CRCs.
const CRC_EPILOGUE_LEN: usize = 13;
/// Secure epilogue: late status and 15 zero bytes.
const SECURE_EPILOGUE_LEN: usize = 16;
/// Bytes of segment 0 carried in the first GCM message.
const INLINE_LEN: usize = 48;
/// Segment CRCs start from this register (Ceph's `crc32c(-1)`); the preamble's from 0.
const SEGMENT_CRC_SEED: u32 = 0xffff_ffff;

/// Caps on what a reader accepts.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// A MESSAGE's segments together (`ms_max_message_bytes`).
    pub max_message: u64,
    /// Any other frame's payload.
    pub max_control: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_message: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
            max_control: 64 * 1024,
        }
    }
}

/// A decoded frame: its tag and its segments (one for control frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The tag.
    pub tag: u8,
    /// The segments, as many as the preamble listed.
    pub segments: Vec<Bytes>,
}

/// The segment alignments Ceph writes: 8 for control payloads and message sections, 4096 for
/// message data (a hint for the receiver's allocation; it changes no bytes).
fn alignment(tag: u8, index: usize) -> u16 {
    if tag == TAG_MESSAGE && index == 3 {
        4096
    } else {
        8
    }
}

#[derive(Debug, Clone, Copy)]
struct Preamble {
    tag: u8,
    lens: [u32; MAX_SEGMENTS],
    num: usize,
}

impl Preamble {
    fn for_segments(tag: u8, segments: &[&[u8]]) -> Self {
        let mut lens = [0u32; MAX_SEGMENTS];
        for (l, s) in lens.iter_mut().zip(segments) {
            *l = s.len() as u32;
        }
        // Trailing empty segments are dropped; at least one stays.
        let num = segments
            .iter()
            .rposition(|s| !s.is_empty())
            .map_or(1, |i| i + 1);
        Preamble { tag, lens, num }
    }

    fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut p = [0u8; PREAMBLE_LEN];
        p[0] = self.tag;
        p[1] = self.num as u8;
        for i in 0..self.num {
            let at = 2 + i * 6;
            p[at..at + 4].copy_from_slice(&self.lens[i].to_le_bytes());
            p[at + 4..at + 6].copy_from_slice(&alignment(self.tag, i).to_le_bytes());
        }
        let crc = ceph_crc32c(0, &p[..28]);
        p[28..].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn decode(p: &[u8], limits: &FrameLimits) -> Result<Self, V2Error> {
        let sent = u32::from_le_bytes(p[28..32].try_into().expect("4 bytes"));
        let computed = ceph_crc32c(0, &p[..28]);
        if sent != computed {
            return Err(V2Error::PreambleCrc { computed, sent });
        }
        let num = p[1] as usize;
        if !(1..=MAX_SEGMENTS).contains(&num) {
            return Err(V2Error::Preamble("segment count not in 1..=4"));
        }
        let mut lens = [0u32; MAX_SEGMENTS];
        for (i, l) in lens.iter_mut().enumerate().take(num) {
            let at = 2 + i * 6;
            *l = u32::from_le_bytes(p[at..at + 4].try_into().expect("4 bytes"));
        }
        if num > 1 && lens[num - 1] == 0 {
            return Err(V2Error::Preamble("the last segment listed is empty"));
        }
        let cap = if p[0] == TAG_MESSAGE {
            limits.max_message
        } else {
            limits.max_control
        };
        let mut total = 0u64;
        for (index, &len) in lens.iter().enumerate() {
            total += u64::from(len);
            if u64::from(len) > cap || total > cap {
                return Err(V2Error::SegmentTooLarge {
                    index,
                    len: u64::from(len),
                    cap,
                });
            }
        }
        Ok(Preamble {
            tag: p[0],
            lens,
            num,
        })
    }

    fn len(&self, i: usize) -> usize {
        self.lens[i] as usize
    }

    /// Bytes after the preamble in crc mode.
    fn crc_rest(&self) -> usize {
        let first = if self.lens[0] > 0 { self.len(0) + 4 } else { 0 };
        let others: usize = (1..self.num).map(|i| self.len(i)).sum();
        first
            + if self.num > 1 {
                others + CRC_EPILOGUE_LEN
            } else {
                0
            }
    }

    /// Bytes after the first GCM message in secure mode.
    fn secure_rest(&self) -> usize {
        let first = pad16(self.len(0));
        let second = if first > INLINE_LEN {
            first - INLINE_LEN + TAG_LEN
        } else {
            0
        };
        let others: usize = (1..self.num).map(|i| pad16(self.len(i))).sum();
        second
            + if self.num > 1 {
                others + SECURE_EPILOGUE_LEN + TAG_LEN
            } else {
                0
            }
    }
}

fn pad16(n: usize) -> usize {
    n.div_ceil(16) * 16
}

/// Encodes frames for one direction of a connection.
#[derive(Debug, Default)]
pub struct FrameWriter {
    tx: Option<GcmStream>,
}

impl FrameWriter {
    /// crc mode (every frame before AUTH_DONE, and crc sessions).
    pub fn crc() -> Self {
        FrameWriter { tx: None }
    }

    /// secure mode with this direction's cipher.
    pub fn secure(tx: GcmStream) -> Self {
        FrameWriter { tx: Some(tx) }
    }

    /// Whether frames are encrypted.
    pub fn is_secure(&self) -> bool {
        self.tx.is_some()
    }

    /// [`write`](Self::write) for segments held as `Bytes`: in crc mode large ones go to `out`
    /// as they are, shared, not copied.
    pub fn write_shared(
        &mut self,
        tag: u8,
        segments: &[Bytes],
        out: &mut Vec<Bytes>,
    ) -> Result<(), V2Error> {
        let slices: Vec<&[u8]> = segments.iter().map(|b| &b[..]).collect();
        let pre = Preamble::for_segments(tag, &slices);
        match &mut self.tx {
            None => {
                write_crc_with(&pre, &slices, Some(segments), out);
                Ok(())
            }
            Some(tx) => write_secure(tx, &pre, &slices, out),
        }
    }

    /// Appends the frame of `tag` with `segments` (at most four) to `out`.
    pub fn write(
        &mut self,
        tag: u8,
        segments: &[&[u8]],
        out: &mut Vec<Bytes>,
    ) -> Result<(), V2Error> {
        debug_assert!(!segments.is_empty() && segments.len() <= MAX_SEGMENTS);
        let pre = Preamble::for_segments(tag, segments);
        match &mut self.tx {
            None => {
                write_crc(&pre, segments, out);
                Ok(())
            }
            Some(tx) => write_secure(tx, &pre, segments, out),
        }
    }
}

/// Segments up to this size are copied next to the preamble; larger ones go out as shared
/// chunks (crc mode), as msgr v1's encoder does.
const INLINE_MAX: usize = 4096;

fn write_crc(pre: &Preamble, segments: &[&[u8]], out: &mut Vec<Bytes>) {
    write_crc_with(pre, segments, None, out)
}

/// crc mode; `shared` holds the same segments as `Bytes`, so that large ones are not copied.
fn write_crc_with(
    pre: &Preamble,
    segments: &[&[u8]],
    shared: Option<&[Bytes]>,
    out: &mut Vec<Bytes>,
) {
    // One buffer for everything copied: the preamble, segment 0 and the small segments.
    let inline: usize = (1..pre.num)
        .map(|i| pre.len(i))
        .filter(|&n| shared.is_none() || n <= INLINE_MAX)
        .sum();
    let mut head =
        BytesMut::with_capacity(PREAMBLE_LEN + pre.len(0) + 4 + inline + CRC_EPILOGUE_LEN);
    head.put_slice(&pre.encode());
    if pre.lens[0] > 0 {
        head.put_slice(segments[0]);
        head.put_u32_le(ceph_crc32c(SEGMENT_CRC_SEED, segments[0]));
    }
    if pre.num == 1 {
        out.push(head.freeze());
        return;
    }
    for (i, s) in segments.iter().enumerate().take(pre.num).skip(1) {
        match shared.and_then(|b| b.get(i)) {
            Some(b) if b.len() > INLINE_MAX => {
                out.push(head.split().freeze());
                out.push(b.clone());
            }
            _ => head.put_slice(s),
        }
    }
    head.put_u8(LATE_COMPLETE);
    // Slots past the frame's segments carry 0.
    for i in 1..MAX_SEGMENTS {
        let crc = segments
            .get(i)
            .filter(|_| i < pre.num)
            .map_or(0, |s| ceph_crc32c(SEGMENT_CRC_SEED, s));
        head.put_u32_le(crc);
    }
    out.push(head.freeze());
}

fn write_secure(
    tx: &mut GcmStream,
    pre: &Preamble,
    segments: &[&[u8]],
    out: &mut Vec<Bytes>,
) -> Result<(), V2Error> {
    let seg0 = segments[0];
    let mut first = Vec::with_capacity(PREAMBLE_LEN + INLINE_LEN + TAG_LEN);
    first.extend_from_slice(&pre.encode());
    let inline = seg0.len().min(INLINE_LEN);
    first.extend_from_slice(&seg0[..inline]);
    first.resize(PREAMBLE_LEN + INLINE_LEN, 0);
    tx.seal(&mut first)?;
    out.push(first.into());
    if pad16(seg0.len()) > INLINE_LEN {
        let mut second = Vec::with_capacity(pad16(seg0.len()) - INLINE_LEN + TAG_LEN);
        second.extend_from_slice(&seg0[INLINE_LEN..]);
        second.resize(pad16(seg0.len()) - INLINE_LEN, 0);
        tx.seal(&mut second)?;
        out.push(second.into());
    }
    if pre.num > 1 {
        let size: usize = segments[1..pre.num].iter().map(|s| pad16(s.len())).sum();
        let mut third = Vec::with_capacity(size + SECURE_EPILOGUE_LEN + TAG_LEN);
        for s in &segments[1..pre.num] {
            third.extend_from_slice(s);
            third.resize(pad16(third.len()), 0);
        }
        third.push(LATE_COMPLETE);
        third.resize(third.len() + SECURE_EPILOGUE_LEN - 1, 0);
        tx.seal(&mut third)?;
        out.push(third.into());
    }
    Ok(())
}

#[derive(Debug)]
enum ReadState {
    Preamble,
    /// Preamble read (secure mode: with the inline bytes of segment 0); the rest is awaited.
    Rest(Preamble, Bytes),
}

/// Decodes frames for one direction of a connection.
#[derive(Debug)]
pub struct FrameReader {
    rx: Option<GcmStream>,
    limits: FrameLimits,
    state: ReadState,
    /// When set, a MESSAGE's body waits for [`FrameReader::admit_body`].
    body_gate: bool,
    admitted: bool,
}

impl FrameReader {
    /// crc mode.
    pub fn crc(limits: FrameLimits) -> Self {
        FrameReader {
            rx: None,
            limits,
            state: ReadState::Preamble,
            body_gate: false,
            admitted: false,
        }
    }

    /// Stops after each MESSAGE preamble until [`admit_body`](Self::admit_body): the reader
    /// takes its receive throttles in between.
    pub fn with_body_gate(mut self) -> Self {
        self.body_gate = true;
        self
    }

    /// Lets the pending MESSAGE's body be read.
    pub fn admit_body(&mut self) {
        self.admitted = true;
    }

    /// The payload bytes (front, middle, data) of a MESSAGE whose preamble was read and whose
    /// body waits at the gate.
    pub fn pending_payload(&self) -> Option<u64> {
        match &self.state {
            ReadState::Rest(p, _) if p.tag == TAG_MESSAGE && self.body_gate && !self.admitted => {
                Some((1..p.num).map(|i| u64::from(p.lens[i])).sum())
            }
            _ => None,
        }
    }

    /// Switches to secure mode with this direction's cipher (only between frames).
    pub fn set_secure(&mut self, rx: GcmStream) {
        debug_assert!(matches!(self.state, ReadState::Preamble));
        self.rx = Some(rx);
    }

    /// No frame is half read.
    pub fn at_frame_start(&self) -> bool {
        matches!(self.state, ReadState::Preamble)
    }

    /// Bytes the next step needs in the buffer.
    pub fn wanted(&self) -> usize {
        match (&self.state, &self.rx) {
            (ReadState::Preamble, None) => PREAMBLE_LEN,
            (ReadState::Preamble, Some(_)) => PREAMBLE_LEN + INLINE_LEN + TAG_LEN,
            (ReadState::Rest(p, _), None) => p.crc_rest(),
            (ReadState::Rest(p, _), Some(_)) => p.secure_rest(),
        }
    }

    /// Decodes the next frame from the front of `buf`. `Ok(None)`: more bytes are needed.
    /// Frames the sender aborted are skipped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, V2Error> {
        loop {
            if self.pending_payload().is_some() || buf.len() < self.wanted() {
                return Ok(None);
            }
            match std::mem::replace(&mut self.state, ReadState::Preamble) {
                ReadState::Preamble => self.read_preamble(buf)?,
                ReadState::Rest(pre, inline) => {
                    self.admitted = false;
                    let frame = match &mut self.rx {
                        None => read_crc(&pre, buf)?,
                        Some(rx) => read_secure(rx, &pre, inline, buf)?,
                    };
                    if let Some(f) = frame {
                        return Ok(Some(f));
                    }
                }
            }
        }
    }

    fn read_preamble(&mut self, buf: &mut BytesMut) -> Result<(), V2Error> {
        match &mut self.rx {
            None => {
                let p = buf.split_to(PREAMBLE_LEN);
                let pre = Preamble::decode(&p, &self.limits)?;
                self.state = ReadState::Rest(pre, Bytes::new());
            }
            Some(rx) => {
                let mut first = buf.split_to(PREAMBLE_LEN + INLINE_LEN + TAG_LEN);
                rx.open(&mut first)?;
                let pre = Preamble::decode(&first[..PREAMBLE_LEN], &self.limits)?;
                let inline = first
                    .freeze()
                    .slice(PREAMBLE_LEN..PREAMBLE_LEN + INLINE_LEN);
                self.state = ReadState::Rest(pre, inline);
            }
        }
        Ok(())
    }
}

fn late_status(status: u8) -> Result<bool, V2Error> {
    match status & 0x0f {
        s if s == LATE_COMPLETE & 0x0f => Ok(true),
        LATE_ABORTED => Ok(false),
        _ => Err(V2Error::LateStatus(status)),
    }
}

fn check_crc(index: usize, seg: &[u8], sent: u32) -> Result<(), V2Error> {
    let computed = ceph_crc32c(SEGMENT_CRC_SEED, seg);
    if computed != sent {
        return Err(V2Error::SegmentCrc {
            index,
            computed,
            sent,
        });
    }
    Ok(())
}

fn read_crc(pre: &Preamble, buf: &mut BytesMut) -> Result<Option<Frame>, V2Error> {
    let mut segments = Vec::with_capacity(pre.num);
    if pre.lens[0] > 0 {
        let seg = buf.split_to(pre.len(0)).freeze();
        check_crc(0, &seg, buf.get_u32_le())?;
        segments.push(seg);
    } else {
        segments.push(Bytes::new());
    }
    if pre.num == 1 {
        return Ok(Some(Frame {
            tag: pre.tag,
            segments,
        }));
    }
    for i in 1..pre.num {
        segments.push(buf.split_to(pre.len(i)).freeze());
    }
    let status = buf.get_u8();
    let crcs = [buf.get_u32_le(), buf.get_u32_le(), buf.get_u32_le()];
    if !late_status(status)? {
        return Ok(None);
    }
    for i in 1..pre.num {
        check_crc(i, &segments[i], crcs[i - 1])?;
    }
    Ok(Some(Frame {
        tag: pre.tag,
        segments,
    }))
}

fn read_secure(
    rx: &mut GcmStream,
    pre: &Preamble,
    inline: Bytes,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, V2Error> {
    let len0 = pre.len(0);
    let mut segments = Vec::with_capacity(pre.num);
    if pad16(len0) > INLINE_LEN {
        let mut second = buf.split_to(pad16(len0) - INLINE_LEN + TAG_LEN);
        rx.open(&mut second)?;
        let mut seg0 = BytesMut::with_capacity(len0);
        seg0.put_slice(&inline);
        seg0.put_slice(&second[..len0 - INLINE_LEN]);
        segments.push(seg0.freeze());
    } else {
        segments.push(inline.slice(..len0));
    }
    if pre.num == 1 {
        return Ok(Some(Frame {
            tag: pre.tag,
            segments,
        }));
    }
    let size: usize = (1..pre.num).map(|i| pad16(pre.len(i))).sum();
    let mut third = buf.split_to(size + SECURE_EPILOGUE_LEN + TAG_LEN);
    rx.open(&mut third)?;
    let mut third = third.freeze();
    for i in 1..pre.num {
        segments.push(third.slice(..pre.len(i)));
        third.advance(pad16(pre.len(i)));
    }
    if !late_status(third[0])? {
        return Ok(None);
    }
    Ok(Some(Frame {
        tag: pre.tag,
        segments,
    }))
}
