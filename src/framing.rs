//! The two framings of one session: msgr v1 and msgr2.1. The session core (`crate::pipe`)
//! writes its messages, ACKs and keepalives through a [`SessionEncoder`]; a runtime reads the
//! peer's through a [`SessionDecoder`]. Both speak in the same terms whatever the wire.

use bytes::{Bytes, BytesMut};

use crate::entity::EntityName;
use crate::error::DecodeError;
use crate::message::Message;
use crate::v2::control::Control;
use crate::v2::frame::TAG_MESSAGE;
use crate::v2::message::{decode_message, encode_header2};
use crate::v2::{FrameReader, FrameWriter, V2Error};
use crate::wire::{
    encode_ack, encode_keepalive, encode_keepalive2, Frame, FrameDecoder, FrameEncoder, Timespec,
};

/// Writes one open socket's frames.
#[derive(Debug)]
pub enum SessionEncoder {
    /// msgr v1.
    V1(FrameEncoder),
    /// msgr2.1, crc or secure (boxed: its cipher state is large).
    V2(Box<FrameWriter>),
}

impl SessionEncoder {
    /// The framing's name: `v1`, `msgr2-crc` or `msgr2-secure`.
    pub fn wire(&self) -> &'static str {
        match self {
            SessionEncoder::V1(_) => "v1",
            SessionEncoder::V2(w) if w.is_secure() => "msgr2-secure",
            SessionEncoder::V2(_) => "msgr2-crc",
        }
    }

    /// A message; `in_seq` rides along in msgr2's header as an ACK.
    pub fn message(
        &mut self,
        m: &Message,
        in_seq: u64,
        out: &mut Vec<Bytes>,
    ) -> Result<(), V2Error> {
        match self {
            SessionEncoder::V1(e) => {
                e.append_message(m, out);
                Ok(())
            }
            SessionEncoder::V2(w) => {
                let head = Bytes::copy_from_slice(&encode_header2(m, in_seq));
                let segs = [head, m.front.clone(), m.middle.clone(), m.data.clone()];
                w.write_shared(TAG_MESSAGE, &segs, out)
            }
        }
    }

    fn control(&mut self, v1: &[u8], v2: Control, out: &mut Vec<Bytes>) -> Result<(), V2Error> {
        match self {
            SessionEncoder::V1(e) => {
                e.append_control(v1);
                Ok(())
            }
            SessionEncoder::V2(w) => w.write(v2.tag() as u8, &[&v2.encode()], out),
        }
    }

    /// ACK of every message up to `seq`.
    pub fn ack(&mut self, seq: u64, out: &mut Vec<Bytes>) -> Result<(), V2Error> {
        self.control(&encode_ack(seq), Control::Ack { seq }, out)
    }

    /// KEEPALIVE2 stamped `ts` (`ack`: the echo of the peer's), or v1's plain KEEPALIVE when
    /// the peer lacks KEEPALIVE2 (`stamp` None).
    pub fn keepalive(
        &mut self,
        stamp: Option<Timespec>,
        ack: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), V2Error> {
        let Some(ts) = stamp else {
            return self.control(
                &encode_keepalive(),
                Control::Keepalive2 { sec: 0, nsec: 0 },
                out,
            );
        };
        let v2 = if ack {
            Control::Keepalive2Ack {
                sec: ts.sec,
                nsec: ts.nsec,
            }
        } else {
            Control::Keepalive2 {
                sec: ts.sec,
                nsec: ts.nsec,
            }
        };
        self.control(&encode_keepalive2(ts, ack), v2, out)
    }

    /// Ends a batch (v1 keeps small frames inline until then).
    pub fn finish_batch(&mut self, out: &mut Vec<Bytes>) {
        if let SessionEncoder::V1(e) = self {
            e.finish_batch(out);
        }
    }
}

/// Reads one open socket's frames.
#[derive(Debug)]
pub enum SessionDecoder {
    /// msgr v1.
    V1(FrameDecoder),
    /// msgr2.1, crc or secure (boxed: its cipher state is large).
    V2(Box<V2Decoder>),
}

/// msgr2's message phase as [`Frame`]s: MESSAGE (with its piggy-backed ACK after it), ACK,
/// KEEPALIVE2, KEEPALIVE2_ACK; anything else faults.
#[derive(Debug)]
pub struct V2Decoder {
    reader: FrameReader,
    /// The peer's name: msgr2's header does not carry it.
    src: EntityName,
    pending_ack: Option<u64>,
}

impl V2Decoder {
    /// A decoder over the handshake's reader (in its negotiated mode), for a peer named `src`.
    pub fn new(reader: FrameReader, src: EntityName) -> Self {
        V2Decoder {
            reader: reader.with_body_gate(),
            src,
            pending_ack: None,
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, V2Error> {
        if let Some(seq) = self.pending_ack.take() {
            return Ok(Some(Frame::Ack(seq)));
        }
        let Some(f) = self.reader.decode(buf)? else {
            return Ok(None);
        };
        if f.tag == TAG_MESSAGE {
            let (m, ack) = decode_message(&f.segments, self.src)?;
            self.pending_ack = (ack > 0).then_some(ack);
            return Ok(Some(Frame::Message(m)));
        }
        Ok(Some(match Control::decode(f.tag, &f.segments[0])? {
            Control::Ack { seq } => Frame::Ack(seq),
            Control::Keepalive2 { sec, nsec } => Frame::Keepalive2(Timespec { sec, nsec }),
            Control::Keepalive2Ack { sec, nsec } => Frame::Keepalive2Ack(Timespec { sec, nsec }),
            c => return Err(V2Error::OutOfOrder(c.tag().name())),
        }))
    }
}

impl SessionDecoder {
    /// Decodes the next frame. `Ok(None)`: more bytes are needed, or a message waits at the
    /// body gate ([`pending_payload`](Self::pending_payload)).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self {
            SessionDecoder::V1(d) => d.decode(buf),
            SessionDecoder::V2(d) => d.decode(buf).map_err(|e| DecodeError::V2(Box::new(e))),
        }
    }

    /// Bytes the next step needs.
    pub fn wanted(&self) -> usize {
        match self {
            SessionDecoder::V1(d) => d.wanted(),
            SessionDecoder::V2(d) if d.pending_ack.is_some() => 0,
            SessionDecoder::V2(d) => d.reader.wanted(),
        }
    }

    /// The payload size of a message waiting at the body gate.
    pub fn pending_payload(&self) -> Option<u64> {
        match self {
            SessionDecoder::V1(d) => d
                .pending_header()
                .map(|h| h.front_len as u64 + h.middle_len as u64 + h.data_len as u64),
            SessionDecoder::V2(d) => d.reader.pending_payload(),
        }
    }

    /// Lets the waiting message's body be decoded.
    pub fn admit_body(&mut self) {
        match self {
            SessionDecoder::V1(d) => d.admit_body(),
            SessionDecoder::V2(d) => d.reader.admit_body(),
        }
    }

    /// Nothing is buffered mid-frame (the reader may wait for the idle timeout, not the stall
    /// timeout).
    pub fn between_frames(&self) -> bool {
        match self {
            SessionDecoder::V1(d) => d.wanted() == 1,
            SessionDecoder::V2(d) => d.pending_ack.is_none() && d.reader.at_frame_start(),
        }
    }
}
