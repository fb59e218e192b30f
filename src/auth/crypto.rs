//! The crypto cephx is built on (spec §9.2, §9.4), from RustCrypto's `aes` and `cbc`:
//! AES-128-CBC with Ceph's fixed IV, the `encode_encrypt` envelope, the proof of key.

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use zeroize::Zeroizing;

use super::CryptoKey;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// Ceph's IV for every AES-CBC operation: ASCII `cephsageyudagreg`, fresh for each call.
pub const CEPH_AES_IV: [u8; 16] = *b"cephsageyudagreg";

/// `AUTH_ENC_MAGIC`: follows the version byte in every encrypted envelope.
pub const AUTH_ENC_MAGIC: u64 = 0xff00_9cad_8826_aa55;

/// Largest ciphertext we decrypt (a cephx reply carries a few tickets of ~100 bytes each).
const MAX_CIPHERTEXT: usize = 64 * 1024;

/// Why a decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Not a whole number of AES blocks, empty, or over the 64 KiB cap.
    #[error("ciphertext of {0} bytes is not a whole number of AES blocks (or is too long)")]
    Length(usize),
    /// The envelope's magic is wrong: a wrong key, or damaged bytes.
    #[error("the decrypted envelope has the wrong magic (a wrong key?)")]
    Magic,
    /// The envelope's length prefix disagrees with its bytes.
    #[error("the envelope's length prefix says {claimed} bytes, {present} are present")]
    Envelope {
        /// What the prefix claims.
        claimed: usize,
        /// What is there.
        present: usize,
    },
}

/// AES-128-CBC with PKCS#7 padding (always 1-16 bytes) under Ceph's IV.
pub fn encrypt(key: &CryptoKey, plaintext: &[u8]) -> Vec<u8> {
    Aes128CbcEnc::new(key.aes_key().into(), &CEPH_AES_IV.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext)
}

/// The inverse of [`encrypt`], as lenient as Ceph's: it strips `min(last byte, 16)` bytes of
/// padding without checking them (a wrong key is caught by the envelope's magic instead).
pub fn decrypt(key: &CryptoKey, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let n = ciphertext.len();
    if n == 0 || n % 16 != 0 || n > MAX_CIPHERTEXT {
        return Err(CryptoError::Length(n));
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let plain_len = Aes128CbcDec::new(key.aes_key().into(), &CEPH_AES_IV.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::Length(n))?
        .len();
    let pad = usize::from(buf[plain_len - 1]).min(16);
    buf.truncate(plain_len - pad);
    Ok(buf)
}

/// `encode_encrypt_enc_bl`: the ciphertext of `u8 1 ‖ u64 AUTH_ENC_MAGIC ‖ payload`. With
/// `blob`, prefixed with its `u32` length (Ceph's `encode_encrypt`, the form most fields use).
pub fn encode_encrypt(key: &CryptoKey, payload: &[u8], blob: bool) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(9 + payload.len()));
    plain.push(1);
    plain.extend_from_slice(&AUTH_ENC_MAGIC.to_le_bytes());
    plain.extend_from_slice(payload);
    let cipher = encrypt(key, &plain);
    if !blob {
        return cipher;
    }
    let mut out = Vec::with_capacity(4 + cipher.len());
    // At most MAX_CIPHERTEXT-sized payloads are ever built here.
    out.extend_from_slice(&(cipher.len() as u32).to_le_bytes());
    out.extend_from_slice(&cipher);
    out
}

/// The inverse of [`encode_encrypt`]: the payload, after checking the magic.
pub fn decode_decrypt(
    key: &CryptoKey,
    bytes: &[u8],
    blob: bool,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let cipher = if blob {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(CryptoError::Length(bytes.len()));
        };
        let claimed = u32::from_le_bytes(*len) as usize;
        if claimed != rest.len() {
            return Err(CryptoError::Envelope {
                claimed,
                present: rest.len(),
            });
        }
        rest
    } else {
        bytes
    };
    let plain = decrypt(key, cipher)?;
    if plain.len() < 9 || plain[1..9] != AUTH_ENC_MAGIC.to_le_bytes() {
        return Err(CryptoError::Magic);
    }
    Ok(Zeroizing::new(plain[9..].to_vec()))
}

/// The client's proof that it holds its key (spec §9.4): the XOR of the four little-endian
/// u64 words at the start of `encode_encrypt(CephXChallengeBlob{server, client})` in blob form
/// (its length prefix included; the ciphertext's last 4 bytes are not used).
pub fn proof_of_key(key: &CryptoKey, server_challenge: u64, client_challenge: u64) -> u64 {
    let mut challenge = [0u8; 16];
    challenge[..8].copy_from_slice(&server_challenge.to_le_bytes());
    challenge[8..].copy_from_slice(&client_challenge.to_le_bytes());
    let enc = encode_encrypt(key, &challenge, true);
    // 4 + 32 bytes: 25 bytes of plaintext pad to two blocks.
    enc.chunks_exact(8)
        .take(4)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8-byte chunks")))
        .fold(0, |acc, w| acc ^ w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn spec_key() -> CryptoKey {
        CryptoKey::from_base64("AQCvDQ5ragvLAhAA6UP4hj0x6zZ3GWr0ZLv1xA==").unwrap()
    }

    /// Ceph's own vector (src/test/crypto.cc, spec §9.2).
    #[test]
    fn aes_cbc_matches_cephs_vector() {
        let key = CryptoKey::new((0, 0), &hex("000102030405060708090a0b0c0d0e0f")).unwrap();
        let plain = hex("00112233445566778899aabbccddeeff");
        let cipher = encrypt(&key, &plain);
        assert_eq!(
            cipher,
            hex("b38f5bc9354cf8c61315666f37d7793a11907be9d83c3570587b979b03d2a501")
        );
        assert_eq!(&*decrypt(&key, &cipher).unwrap(), &plain[..]);
    }

    /// Spec §9.4 and Appendix A.1: the proof a real mon accepted.
    #[test]
    fn the_proof_of_key_matches_what_the_mon_accepted() {
        let proof = proof_of_key(&spec_key(), 0x7af9_c533_5c1e_21c6, 0xa9da_67ce_5c43_689b);
        assert_eq!(proof, 0x2d12_f4a1_e077_7c19);
    }

    #[test]
    fn envelopes_round_trip_in_both_forms_and_a_wrong_key_is_refused() {
        let key = spec_key();
        let other = CryptoKey::new((0, 0), &[7; 16]).unwrap();
        for blob in [false, true] {
            let sealed = encode_encrypt(&key, b"a ticket", blob);
            assert_eq!(&*decode_decrypt(&key, &sealed, blob).unwrap(), b"a ticket");
            assert_eq!(
                decode_decrypt(&other, &sealed, blob),
                Err(CryptoError::Magic)
            );
        }
    }

    #[test]
    fn damaged_ciphertexts_are_typed_errors_never_panics() {
        let key = spec_key();
        assert_eq!(decrypt(&key, &[]), Err(CryptoError::Length(0)));
        assert_eq!(decrypt(&key, &[0; 17]), Err(CryptoError::Length(17)));
        assert_eq!(
            decrypt(&key, &vec![0; MAX_CIPHERTEXT + 16]),
            Err(CryptoError::Length(MAX_CIPHERTEXT + 16))
        );
        assert!(matches!(
            decode_decrypt(&key, &[32, 0, 0, 0, 1, 2], true),
            Err(CryptoError::Envelope {
                claimed: 32,
                present: 2
            })
        ));
        assert_eq!(
            decode_decrypt(&key, &[1, 2], true),
            Err(CryptoError::Length(2))
        );
        // Any block decrypts to something: garbage fails on the magic, not on a panic.
        for fill in 0..=255u8 {
            let _ = decode_decrypt(&key, &[fill; 32], false);
        }
    }
}
