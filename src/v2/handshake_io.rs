//! What both sides of a msgr2 handshake do with bytes (spec §2, §6.5): the banner, control
//! frames in and out, the capture of everything exchanged until AUTH_DONE, and the
//! AUTH_SIGNATURE over it, with the switch to secure mode at that point. The connector and
//! the acceptor decide what to send; this moves and checks it.

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::banner::{decode_banner, encode_banner};
use super::control::Control;
use super::crypto::GcmStream;
use super::frame::{Frame, FrameLimits, FrameReader, FrameWriter};
use super::V2Error;
use crate::auth::CryptoKey;

/// One handshake's framing: output buffer, frame codec, pre-auth capture, expected signature.
#[derive(Debug)]
pub(crate) struct HandshakeIo {
    out: BytesMut,
    reader: FrameReader,
    writer: FrameWriter,
    /// Every byte read and written until AUTH_DONE (what AUTH_SIGNATURE covers): (rx, tx).
    capture: Option<(Vec<u8>, Vec<u8>)>,
    /// The AUTH_SIGNATURE the peer must send: over what we sent it.
    expect_sig: Option<[u8; 32]>,
}

impl HandshakeIo {
    /// A crc-mode codec with our banner queued.
    pub(crate) fn new(limits: FrameLimits) -> Self {
        let mut io = HandshakeIo {
            out: BytesMut::new(),
            reader: FrameReader::crc(limits),
            writer: FrameWriter::crc(),
            capture: Some((Vec::new(), Vec::new())),
            expect_sig: None,
        };
        io.emit_raw(&encode_banner());
        io
    }

    /// Bytes to write, if any.
    pub(crate) fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The frame codec, in whatever mode it is now.
    pub(crate) fn into_codec(self) -> (FrameReader, FrameWriter) {
        (self.reader, self.writer)
    }

    fn emit_raw(&mut self, bytes: &[u8]) {
        if let Some((_, tx)) = &mut self.capture {
            tx.extend_from_slice(bytes);
        }
        self.out.extend_from_slice(bytes);
    }

    /// Queues a control frame.
    pub(crate) fn send(&mut self, c: &Control) -> Result<(), V2Error> {
        let payload = c.encode();
        let mut chunks = Vec::with_capacity(3);
        self.writer.write(c.tag() as u8, &[&payload], &mut chunks)?;
        for ch in chunks {
            self.emit_raw(&ch);
        }
        Ok(())
    }

    /// Consumes the peer's banner. `Ok(false)`: more bytes are needed.
    pub(crate) fn read_banner(&mut self, buf: &mut BytesMut) -> Result<bool, V2Error> {
        let before = buf.clone();
        if decode_banner(buf)?.is_none() {
            return Ok(false);
        }
        self.capture_rx(&before, buf.len());
        Ok(true)
    }

    /// Decodes the next frame. `Ok(None)`: more bytes are needed.
    pub(crate) fn read_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, V2Error> {
        // The reader consumes a preamble before the rest of its frame is in: whatever it
        // consumed is captured, frame or not.
        let before = self.capture.is_some().then(|| buf.clone());
        let decoded = self.reader.decode(buf);
        if let Some(before) = before {
            self.capture_rx(&before, buf.len());
        }
        decoded
    }

    fn capture_rx(&mut self, before: &BytesMut, left: usize) {
        if let Some((rx, _)) = &mut self.capture {
            rx.extend_from_slice(&before[..before.len() - left]);
        }
    }

    /// After AUTH_DONE (sent or received): ends the capture, switches to secure mode when
    /// given its ciphers, and sends our AUTH_SIGNATURE over what we received. Each side signs
    /// with the session key, or sends 32 zero bytes without one (auth none).
    pub(crate) fn finish_auth(
        &mut self,
        key: Option<&CryptoKey>,
        secure: Option<(GcmStream, GcmStream)>,
    ) -> Result<(), V2Error> {
        let (rx, tx) = self.capture.take().unwrap_or_default();
        self.expect_sig = Some(signature(key, &tx));
        if let Some((tx_gcm, rx_gcm)) = secure {
            self.writer = FrameWriter::secure(tx_gcm);
            self.reader.set_secure(rx_gcm);
        }
        self.send(&Control::AuthSignature {
            hmac: signature(key, &rx),
        })
    }

    /// Checks the peer's AUTH_SIGNATURE (once).
    pub(crate) fn check_signature(&mut self, hmac: [u8; 32]) -> Result<(), V2Error> {
        if Some(hmac) != self.expect_sig.take() {
            return Err(V2Error::AuthSignature);
        }
        Ok(())
    }
}

/// HMAC-SHA256 under the session key (32 zero bytes without one, as with auth none).
fn signature(key: Option<&CryptoKey>, bytes: &[u8]) -> [u8; 32] {
    let Some(key) = key else {
        return [0; 32];
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.secret()).expect("any key length");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}
