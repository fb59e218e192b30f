//! `CryptoKey` (spec §1.5): `u16 type`, `utime_t created`, `u16 len`, the secret.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

/// `CEPH_CRYPTO_NONE`.
pub const CEPH_CRYPTO_NONE: u16 = 0;
/// `CEPH_CRYPTO_AES`: the only key type cephx uses.
pub const CEPH_CRYPTO_AES: u16 = 1;

/// AES-128 keys take the first 16 bytes of the secret (Ceph's `AES_KEY_LEN`).
const AES_KEY_LEN: usize = 16;
/// Largest secret we accept (Ceph's are 16 bytes; a longer one keys AES with its first 16).
const MAX_SECRET_LEN: usize = 256;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The `key = ` value is not base64.
    #[error("the key is not base64")]
    Base64,
    /// The encoding ended early, or has bytes after the secret.
    #[error("the key's encoding is {0} bytes long, which does not match its secret length")]
    Length(usize),
    /// A key type other than AES.
    #[error("key type {0} is not AES (1)")]
    Type(u16),
    /// An AES secret shorter than 16 bytes (Ceph refuses it too), or absurdly long.
    #[error("a secret of {0} bytes (AES needs 16)")]
    SecretLength(usize),
}

/// A cephx secret: an AES key and when it was made. `Debug` shows no secret bytes, and the
/// bytes are zeroed when the key is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoKey {
    /// `created`: seconds and nanoseconds.
    pub created: (u32, u32),
    secret: Zeroizing<Vec<u8>>,
}

impl CryptoKey {
    /// An AES key from its secret bytes (at least 16).
    pub fn new(created: (u32, u32), secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < AES_KEY_LEN || secret.len() > MAX_SECRET_LEN {
            return Err(KeyError::SecretLength(secret.len()));
        }
        Ok(CryptoKey {
            created,
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// Decodes the wire / keyring encoding.
    pub fn decode(b: &[u8]) -> Result<Self, KeyError> {
        if b.len() < 12 {
            return Err(KeyError::Length(b.len()));
        }
        let ty = u16::from_le_bytes([b[0], b[1]]);
        if ty != CEPH_CRYPTO_AES {
            return Err(KeyError::Type(ty));
        }
        let sec = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let nsec = u32::from_le_bytes([b[6], b[7], b[8], b[9]]);
        let len = usize::from(u16::from_le_bytes([b[10], b[11]]));
        if b.len() != 12 + len {
            return Err(KeyError::Length(b.len()));
        }
        CryptoKey::new((sec, nsec), &b[12..])
    }

    /// The keyring form: base64 of the encoding (`AQ…`).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::Base64)?,
        );
        CryptoKey::decode(&raw)
    }

    /// The wire encoding.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(12 + self.secret.len()));
        out.extend_from_slice(&CEPH_CRYPTO_AES.to_le_bytes());
        out.extend_from_slice(&self.created.0.to_le_bytes());
        out.extend_from_slice(&self.created.1.to_le_bytes());
        // At most MAX_SECRET_LEN bytes, checked at construction.
        out.extend_from_slice(&(self.secret.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.secret);
        out
    }

    /// The 16 bytes that key AES.
    pub fn aes_key(&self) -> &[u8; AES_KEY_LEN] {
        self.secret[..AES_KEY_LEN]
            .try_into()
            .expect("secrets are at least 16 bytes")
    }

    /// The whole secret (HMAC keys use it as is).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for CryptoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoKey")
            .field("type", &"AES")
            .field("created", &self.created)
            .field(
                "secret",
                &format_args!("<{} bytes, redacted>", self.secret.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §1.5: a key `ceph-authtool` wrote, decoded by a real mon.
    const KEYRING_KEY: &str = "AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==";

    #[test]
    fn the_spec_key_decodes_to_its_secret_and_back() {
        let k = CryptoKey::from_base64(KEYRING_KEY).unwrap();
        assert_eq!(k.created, (1_796_083_119, 46_861_162));
        assert_eq!(
            k.aes_key(),
            &[
                0xe9, 0x43, 0xf8, 0x86, 0x3d, 0x31, 0xeb, 0x36, 0x77, 0x19, 0x6a, 0xf4, 0x64, 0xbb,
                0xf5, 0xc4
            ]
        );
        let again = base64::engine::general_purpose::STANDARD.encode(&*k.encode());
        assert_eq!(again, KEYRING_KEY);
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let k = CryptoKey::from_base64(KEYRING_KEY).unwrap();
        let shown = format!("{k:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.to_lowercase().contains("e943"), "{shown}");
        assert!(
            !shown.contains("233"),
            "the first secret byte in decimal: {shown}"
        );
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(CryptoKey::from_base64("not base64!"), Err(KeyError::Base64));
        assert!(matches!(
            CryptoKey::decode(&[1, 0]),
            Err(KeyError::Length(2))
        ));
        let mut wrong_type = CryptoKey::from_base64(KEYRING_KEY)
            .unwrap()
            .encode()
            .to_vec();
        wrong_type[0] = 2;
        assert_eq!(CryptoKey::decode(&wrong_type), Err(KeyError::Type(2)));
        let mut short = CryptoKey::from_base64(KEYRING_KEY)
            .unwrap()
            .encode()
            .to_vec();
        short[10] = 8;
        short.truncate(20);
        assert_eq!(CryptoKey::decode(&short), Err(KeyError::SecretLength(8)));
        let mut long_len = CryptoKey::from_base64(KEYRING_KEY)
            .unwrap()
            .encode()
            .to_vec();
        long_len[10] = 200;
        assert!(matches!(
            CryptoKey::decode(&long_len),
            Err(KeyError::Length(28))
        ));
    }
}
