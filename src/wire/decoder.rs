//! Bytes to message-phase frames, incrementally.
//!
//! The decoder is fed a growing `BytesMut` in any split (one byte at a time included). It reads a
//! tag, then what that tag needs, and hands sections out as slices of the input buffer
//! (`split_to(..).freeze()`: no copy). Every length from the peer is checked against the cap
//! before the decoder asks for that many bytes, so a peer cannot make us allocate past it.

use bytes::{Buf, Bytes, BytesMut};

use super::crc::ceph_crc32c;
use super::encoder::signed_fields;
use super::header::{Footer, FooterFlags, Header, HEADER_LEN};
use super::{Tag, Timespec};
use crate::auth::MessageSigner;
use crate::error::{DecodeError, Section};
use crate::message::Message;

/// A decoded message-phase frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message, CRC-checked.
    Message(Message),
    /// The peer has received every message up to this seq.
    Ack(u64),
    /// KEEPALIVE (no payload).
    Keepalive,
    /// KEEPALIVE2: answer with KEEPALIVE2_ACK carrying the same stamp.
    Keepalive2(Timespec),
    /// KEEPALIVE2_ACK: the peer echoed our stamp.
    Keepalive2Ack(Timespec),
    /// The peer is closing.
    Close,
}

/// Receive-side limits and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest accepted message: front + middle + data.
    pub max_message_bytes: u64,
    /// Verify header, front and middle CRCs (`ms_crc_header`).
    pub crc_header: bool,
    /// Verify data CRCs unless the footer says NOCRC (`ms_crc_data`).
    pub crc_data: bool,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message_bytes: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
            crc_header: true,
            crc_data: true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Tag,
    MsgHeader,
    Body(Header),
    Ack,
    Keepalive2 { ack: bool },
}

/// The incremental message-phase decoder for one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    state: State,
    msg_auth: bool,
    limits: DecoderLimits,
    /// When set, a message's body is not consumed until [`admit_body`](Self::admit_body).
    body_gate: bool,
    admitted: bool,
    verifier: Option<MessageSigner>,
}

impl FrameDecoder {
    /// `msg_auth`: MSG_AUTH was negotiated, so footers are 21 bytes (else 13).
    pub fn new(msg_auth: bool, limits: DecoderLimits) -> Self {
        FrameDecoder {
            state: State::Tag,
            msg_auth,
            limits,
            body_gate: false,
            admitted: false,
            verifier: None,
        }
    }

    /// Checks every message's signature with `verifier` (a session opened with a cephx
    /// authorizer, MSG_AUTH negotiated; spec §9.10). A mismatch is
    /// [`DecodeError::BadSignature`] and the message is not returned.
    pub fn with_verifier(mut self, verifier: Option<MessageSigner>) -> Self {
        self.verifier = verifier.filter(|_| self.msg_auth);
        self
    }

    /// Stops after each message header until the caller calls [`admit_body`](Self::admit_body),
    /// even when the body is already buffered: the reader takes its throttles in between.
    pub fn with_body_gate(mut self) -> Self {
        self.body_gate = true;
        self
    }

    /// Lets the pending message's body be decoded (see [`with_body_gate`](Self::with_body_gate)).
    pub fn admit_body(&mut self) {
        self.admitted = true;
    }

    /// How many bytes the buffer must hold for the next step to make progress.
    /// Never more than the cap plus header and footer sizes.
    pub fn wanted(&self) -> usize {
        match self.state {
            State::Tag => 1,
            State::MsgHeader => HEADER_LEN,
            State::Body(h) => self.body_len(&h),
            State::Ack | State::Keepalive2 { .. } => 8,
        }
    }

    /// The header of a message whose body is still being read, if any: the reader takes its
    /// throttles against `front_len + middle_len + data_len` at this point.
    pub fn pending_header(&self) -> Option<&Header> {
        match &self.state {
            State::Body(h) => Some(h),
            _ => None,
        }
    }

    fn body_len(&self, h: &Header) -> usize {
        h.front_len as usize
            + h.middle_len as usize
            + h.data_len as usize
            + Footer::wire_len(self.msg_auth)
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    /// `Ok(None)`: more bytes are needed (see [`wanted`](Self::wanted)).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Tag => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let tag = buf.get_u8();
                    match Tag::from_u8(tag) {
                        Some(Tag::Msg) => self.state = State::MsgHeader,
                        Some(Tag::Ack) => self.state = State::Ack,
                        Some(Tag::Keepalive) => return Ok(Some(Frame::Keepalive)),
                        Some(Tag::Keepalive2) => self.state = State::Keepalive2 { ack: false },
                        Some(Tag::Keepalive2Ack) => self.state = State::Keepalive2 { ack: true },
                        Some(Tag::Close) => return Ok(Some(Frame::Close)),
                        _ => return Err(DecodeError::UnknownTag(tag)),
                    }
                }
                State::Ack => {
                    if buf.len() < 8 {
                        return Ok(None);
                    }
                    self.state = State::Tag;
                    return Ok(Some(Frame::Ack(buf.get_u64_le())));
                }
                State::Keepalive2 { ack } => {
                    if buf.len() < 8 {
                        return Ok(None);
                    }
                    self.state = State::Tag;
                    let mut b = [0u8; 8];
                    buf.copy_to_slice(&mut b);
                    let ts = Timespec::from_bytes(b);
                    return Ok(Some(if ack {
                        Frame::Keepalive2Ack(ts)
                    } else {
                        Frame::Keepalive2(ts)
                    }));
                }
                State::MsgHeader => {
                    if buf.len() < HEADER_LEN {
                        return Ok(None);
                    }
                    let raw: &[u8; HEADER_LEN] =
                        buf[..HEADER_LEN].try_into().expect("slice of HEADER_LEN");
                    let header = self.check_header(raw)?;
                    buf.advance(HEADER_LEN);
                    self.state = State::Body(header);
                }
                State::Body(header) => {
                    if (self.body_gate && !self.admitted) || buf.len() < self.body_len(&header) {
                        return Ok(None);
                    }
                    self.state = State::Tag;
                    self.admitted = false;
                    return self
                        .finish_message(header, buf)
                        .map(|m| Some(Frame::Message(m)));
                }
            }
        }
    }

    /// Decodes a header and checks its CRC and lengths.
    fn check_header(&self, raw: &[u8; HEADER_LEN]) -> Result<Header, DecodeError> {
        let (header, computed) = Header::decode(raw);
        if (self.limits.crc_header || self.verifier.is_some()) && computed != header.crc {
            return Err(DecodeError::BadCrc {
                section: Section::Header,
                computed,
                sent: header.crc,
            });
        }
        self.check_lengths(&header)?;
        Ok(header)
    }

    fn check_lengths(&self, h: &Header) -> Result<(), DecodeError> {
        let cap = self.limits.max_message_bytes;
        for (section, len) in [
            (Section::Front, h.front_len),
            (Section::Middle, h.middle_len),
            (Section::Data, h.data_len),
        ] {
            if len as u64 > cap {
                return Err(DecodeError::SectionTooLarge {
                    section,
                    len: len as u64,
                    cap,
                });
            }
        }
        let total = h.front_len as u64 + h.middle_len as u64 + h.data_len as u64;
        if total > cap {
            return Err(DecodeError::MessageTooLarge { total, cap });
        }
        Ok(())
    }

    fn finish_message(&self, h: Header, buf: &mut BytesMut) -> Result<Message, DecodeError> {
        // Each non-empty section is split off the read buffer (one reference each, no copy);
        // the footer is read in place.
        let data_end = h.front_len as usize + h.middle_len as usize + h.data_len as usize;
        let flen = Footer::wire_len(self.msg_auth);
        let footer = Footer::decode(&buf[data_end..data_end + flen], self.msg_auth);
        let front = take_section(buf, h.front_len);
        let middle = take_section(buf, h.middle_len);
        let data = take_section(buf, h.data_len);
        buf.advance(flen);
        if !footer.flags.has(FooterFlags::COMPLETE) {
            return Err(DecodeError::Aborted { seq: h.seq });
        }
        // A signature covers the CRCs, not the bytes: on a signed session every CRC is checked,
        // whatever ms_crc_header and ms_crc_data say, or the signature would vouch for nothing.
        let signed = self.verifier.is_some();
        if self.limits.crc_header || signed {
            check_crc(Section::Front, &front, footer.front_crc)?;
            check_crc(Section::Middle, &middle, footer.middle_crc)?;
        }
        if (self.limits.crc_data || signed) && !footer.flags.has(FooterFlags::NOCRC) {
            check_crc(Section::Data, &data, footer.data_crc)?;
        }
        if let Some(v) = &self.verifier {
            if v.sign(&signed_fields(&h, h.crc, &footer)) != footer.sig {
                return Err(DecodeError::BadSignature { seq: h.seq });
            }
        }
        Ok(Message {
            seq: h.seq,
            tid: h.tid,
            msg_type: h.msg_type,
            priority: h.priority,
            version: h.version,
            compat_version: h.compat_version,
            data_off: h.data_off,
            src: h.src,
            front,
            middle,
            data,
        })
    }
}

/// The next `len` bytes of `buf` as a section (an empty one takes no reference to `buf`).
fn take_section(buf: &mut BytesMut, len: u32) -> Bytes {
    match len {
        0 => Bytes::new(),
        n => buf.split_to(n as usize).freeze(),
    }
}

fn check_crc(section: Section, bytes: &[u8], sent: u32) -> Result<(), DecodeError> {
    let computed = ceph_crc32c(0, bytes);
    if computed != sent {
        return Err(DecodeError::BadCrc {
            section,
            computed,
            sent,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encoder::{encode_ack, encode_keepalive2, FrameEncoder};
    use bytes::Bytes;

    fn sample() -> Message {
        Message {
            seq: 9,
            tid: 3,
            msg_type: 42,
            priority: 127,
            version: 2,
            compat_version: 1,
            front: Bytes::from_static(b"front"),
            middle: Bytes::from_static(b"mid"),
            data: Bytes::from(vec![5u8; 1000]),
            ..Default::default()
        }
    }

    fn encode(msg: &Message) -> Vec<u8> {
        FrameEncoder::new(true, true).encode_message(msg).to_vec()
    }

    fn signer(fill: u8) -> Option<MessageSigner> {
        let key = crate::auth::CryptoKey::new((0, 0), &[fill; 16]).unwrap();
        MessageSigner::for_session(&key, crate::features::CEPH_FEATURES_ALL)
    }

    /// Signed frames verify under the session key; a wrong key, a changed signature, or a
    /// section changed with its CRC fixed up (and even with CRC checks configured off) do not.
    #[test]
    fn signatures_are_checked_and_forgeries_refused() {
        let msg = sample();
        let wire = FrameEncoder::new(true, true)
            .with_signer(signer(1))
            .encode_message(&msg)
            .to_vec();
        let flags_at = wire.len() - 1;
        assert_eq!(wire[flags_at], FooterFlags::COMPLETE | FooterFlags::SIGNED);
        let decode = |bytes: &[u8], v: Option<MessageSigner>, limits: DecoderLimits| {
            let mut dec = FrameDecoder::new(true, limits).with_verifier(v);
            dec.decode(&mut BytesMut::from(bytes))
        };
        let ok = decode(&wire, signer(1), DecoderLimits::default()).unwrap();
        assert_eq!(ok, Some(Frame::Message(msg.clone())));
        assert_eq!(
            decode(&wire, signer(2), DecoderLimits::default()),
            Err(DecodeError::BadSignature { seq: 9 })
        );
        let mut forged = wire.clone();
        forged[flags_at - 1] ^= 0x80; // the signature's last byte
        assert_eq!(
            decode(&forged, signer(1), DecoderLimits::default()),
            Err(DecodeError::BadSignature { seq: 9 })
        );
        // Change the data and fix its CRC: the signed CRC no longer matches.
        let mut changed = msg.clone();
        changed.data = Bytes::from(vec![6u8; 1000]);
        let mut spliced = FrameEncoder::new(true, true)
            .encode_message(&changed)
            .to_vec();
        spliced[flags_at - 8..].copy_from_slice(&wire[flags_at - 8..]);
        let no_crc = DecoderLimits {
            crc_header: false,
            crc_data: false,
            ..DecoderLimits::default()
        };
        assert!(decode(&spliced, signer(1), DecoderLimits::default()).is_err());
        assert!(decode(&spliced, signer(1), no_crc).is_err());
        // Unsigned sessions ignore the field.
        assert!(decode(&forged, None, DecoderLimits::default()).is_ok());
    }

    #[test]
    fn decodes_one_byte_at_a_time() {
        let msg = sample();
        let mut stream = encode(&msg);
        stream.extend_from_slice(&encode_ack(7));
        stream.extend_from_slice(&encode_keepalive2(Timespec { sec: 1, nsec: 2 }, false));
        let mut dec = FrameDecoder::new(true, DecoderLimits::default());
        let mut buf = BytesMut::new();
        let mut frames = vec![];
        for b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Message(msg),
                Frame::Ack(7),
                Frame::Keepalive2(Timespec { sec: 1, nsec: 2 })
            ]
        );
    }

    #[test]
    fn sections_are_slices_of_the_input_buffer() {
        let mut buf = BytesMut::from(&encode(&sample())[..]);
        let base = buf.as_ptr() as usize;
        let end = base + buf.len();
        let mut dec = FrameDecoder::new(true, DecoderLimits::default());
        let Some(Frame::Message(m)) = dec.decode(&mut buf).unwrap() else {
            panic!("no message")
        };
        let p = m.data.as_ptr() as usize;
        assert!(
            p >= base && p < end,
            "data was copied out of the read buffer"
        );
    }

    fn decode_err(bytes: &[u8], limits: DecoderLimits) -> DecodeError {
        let mut buf = BytesMut::from(bytes);
        FrameDecoder::new(true, limits)
            .decode(&mut buf)
            .unwrap_err()
    }

    #[test]
    fn bad_crcs_are_named() {
        let good = encode(&sample());
        let mut bad = good.clone();
        bad[1] ^= 1; // seq byte: header crc
        assert!(matches!(
            decode_err(&bad, DecoderLimits::default()),
            DecodeError::BadCrc {
                section: Section::Header,
                ..
            }
        ));
        let front_at = 1 + HEADER_LEN;
        for (off, section) in [
            (0, Section::Front),
            (5, Section::Middle),
            (8, Section::Data),
        ] {
            let mut bad = good.clone();
            bad[front_at + off] ^= 0xff;
            match decode_err(&bad, DecoderLimits::default()) {
                DecodeError::BadCrc { section: s, .. } => assert_eq!(s, section),
                e => panic!("{e}"),
            }
        }
    }

    #[test]
    fn data_crc_skipped_with_nocrc_or_when_disabled() {
        let msg = sample();
        let mut bytes = FrameEncoder::new(true, false).encode_message(&msg).to_vec();
        let data_at = 1 + HEADER_LEN + 5 + 3;
        bytes[data_at] ^= 1;
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = FrameDecoder::new(true, DecoderLimits::default());
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Message(_)))));
        let mut bytes = encode(&msg);
        bytes[data_at] ^= 1;
        let limits = DecoderLimits {
            crc_data: false,
            ..Default::default()
        };
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(FrameDecoder::new(true, limits).decode(&mut buf).is_ok());
    }

    #[test]
    fn footer_without_complete_is_aborted() {
        let mut bytes = encode(&sample());
        let last = bytes.len() - 1;
        bytes[last] = 0;
        assert_eq!(
            decode_err(&bytes, DecoderLimits::default()),
            DecodeError::Aborted { seq: 9 }
        );
    }

    #[test]
    fn oversized_sections_rejected_from_the_header_alone() {
        let msg = Message {
            data: Bytes::from(vec![0u8; 100]),
            front: Bytes::from(vec![0u8; 100]),
            ..Default::default()
        };
        let bytes = encode(&msg);
        let limits = DecoderLimits {
            max_message_bytes: 99,
            ..Default::default()
        };
        // Only tag + header are supplied: the check must not wait for the body.
        assert!(matches!(
            decode_err(&bytes[..1 + HEADER_LEN], limits),
            DecodeError::SectionTooLarge {
                section: Section::Front,
                len: 100,
                cap: 99
            }
        ));
        let limits = DecoderLimits {
            max_message_bytes: 150,
            ..Default::default()
        };
        assert!(matches!(
            decode_err(&bytes[..1 + HEADER_LEN], limits),
            DecodeError::MessageTooLarge {
                total: 200,
                cap: 150
            }
        ));
    }

    #[test]
    fn unknown_and_handshake_tags_are_errors() {
        for tag in [0u8, 1, 13, 16, 17, 200] {
            assert_eq!(
                decode_err(&[tag], DecoderLimits::default()),
                DecodeError::UnknownTag(tag)
            );
        }
    }

    #[test]
    fn body_gate_holds_a_buffered_message_until_admitted() {
        let mut buf = BytesMut::from(&encode(&sample())[..]);
        let mut dec = FrameDecoder::new(true, DecoderLimits::default()).with_body_gate();
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(dec.pending_header().is_some());
        assert_eq!(dec.decode(&mut buf).unwrap(), None, "still gated");
        dec.admit_body();
        assert!(matches!(
            dec.decode(&mut buf).unwrap(),
            Some(Frame::Message(_))
        ));
        assert!(dec.pending_header().is_none());
    }

    #[test]
    fn pending_header_exposed_before_body() {
        let bytes = encode(&sample());
        let mut buf = BytesMut::from(&bytes[..1 + HEADER_LEN]);
        let mut dec = FrameDecoder::new(true, DecoderLimits::default());
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(dec.pending_header().unwrap().data_len, 1000);
        assert_eq!(dec.wanted(), 5 + 3 + 1000 + 21);
    }
}
