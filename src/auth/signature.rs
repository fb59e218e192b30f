//! msgr v1 message signatures (spec §9.10): a u64 in the footer, computed from the header and
//! footer CRCs under the session key of the connection's cephx authorizer. Two schemes: the
//! CEPHX_V2 one (feature bit 61) and the legacy one.

use super::crypto::{encrypt, AUTH_ENC_MAGIC};
use super::CryptoKey;

/// What a v1 signature covers: the header's CRC and section lengths and seq, the footer's CRCs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedFields {
    /// `header.crc`.
    pub header_crc: u32,
    /// `footer.front_crc`.
    pub front_crc: u32,
    /// `footer.middle_crc`.
    pub middle_crc: u32,
    /// `footer.data_crc`.
    pub data_crc: u32,
    /// `header.front_len`.
    pub front_len: u32,
    /// `header.middle_len`.
    pub middle_len: u32,
    /// `header.data_len`.
    pub data_len: u32,
    /// `header.seq` (its low 32 bits are signed).
    pub seq: u64,
}

/// The signature of a message with these fields. `cephx_v2`: the connection negotiated
/// CEPHX_V2 (bit 61), else the legacy scheme.
pub fn sign_message(key: &CryptoKey, f: &SignedFields, cephx_v2: bool) -> u64 {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    if cephx_v2 {
        let mut block = [0u8; 32];
        let fields = [
            f.header_crc,
            f.front_crc,
            f.front_len,
            f.middle_crc,
            f.middle_len,
            f.data_crc,
            f.data_len,
            f.seq as u32,
        ];
        for (i, v) in fields.iter().enumerate() {
            block[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        let enc = encrypt(key, &block);
        (0..4)
            .map(|i| word(&enc[i * 8..i * 8 + 8]))
            .fold(0, |a, w| a ^ w)
    } else {
        let mut block = Vec::with_capacity(29);
        block.push(1);
        block.extend_from_slice(&AUTH_ENC_MAGIC.to_le_bytes());
        block.extend_from_slice(&16u32.to_le_bytes());
        for v in [f.header_crc, f.front_crc, f.middle_crc, f.data_crc] {
            block.extend_from_slice(&v.to_le_bytes());
        }
        word(&encrypt(key, &block)[..8])
    }
}

/// Signs and checks one connection's messages with its session key (spec §9.10).
#[derive(Clone, PartialEq, Eq)]
pub struct MessageSigner {
    key: CryptoKey,
    cephx_v2: bool,
}

impl std::fmt::Debug for MessageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSigner")
            .field("cephx_v2", &self.cephx_v2)
            .finish_non_exhaustive()
    }
}

impl MessageSigner {
    /// The signer for a session opened with an authorizer whose session key is `key`, when
    /// the negotiated `features` carry MSG_AUTH (without it footers have no signature field,
    /// and Ceph does not sign). CEPHX_V2 picks the scheme.
    pub fn for_session(key: &CryptoKey, features: u64) -> Option<Self> {
        use crate::features::{has_all, CEPHX_V2, MSG_AUTH};
        has_all(features, MSG_AUTH).then(|| MessageSigner {
            key: key.clone(),
            cephx_v2: has_all(features, CEPHX_V2),
        })
    }

    /// The signature of a message with these fields.
    pub fn sign(&self, f: &SignedFields) -> u64 {
        sign_message(&self.key, f, self.cephx_v2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &str) -> CryptoKey {
        let b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        CryptoKey::new((0, 0), &b).unwrap()
    }

    /// Our MPing (seq 1, empty) and the mon's reply (front 3664 bytes), as a live 16.2.15 mon
    /// accepted and sent them (spec Appendix A.4).
    fn ping() -> SignedFields {
        SignedFields {
            header_crc: 0x2d24_92e0,
            seq: 1,
            ..Default::default()
        }
    }

    fn reply(front_crc: u32) -> SignedFields {
        SignedFields {
            header_crc: 0x239f_f782,
            front_crc,
            front_len: 3664,
            seq: 1,
            ..Default::default()
        }
    }

    #[test]
    fn cephx_v2_signatures_match_the_mons() {
        let k = key("2b2c5387cf4d692f425b9ecc4167320f");
        assert_eq!(sign_message(&k, &ping(), true), 0xb308_046c_18d1_17a7);
        assert_eq!(
            sign_message(&k, &reply(0x9244_bbde), true),
            0x7146_7dc7_38ba_8db0
        );
    }

    #[test]
    fn legacy_signatures_match_the_mons() {
        let k = key("2e1c597e56d9816a4ed9fc8448d009ff");
        assert_eq!(sign_message(&k, &ping(), false), 0x532e_b7fb_434e_0bf4);
        assert_eq!(
            sign_message(&k, &reply(0xeda0_d498), false),
            0x39c7_b1ec_d837_21ca
        );
    }

    #[test]
    fn any_field_changes_the_signature() {
        let k = key("2b2c5387cf4d692f425b9ecc4167320f");
        let base = sign_message(&k, &reply(1), true);
        let mut f = reply(1);
        f.data_len = 1;
        assert_ne!(sign_message(&k, &f, true), base);
        let mut f = reply(1);
        f.seq = 2;
        assert_ne!(sign_message(&k, &f, true), base);
    }
}
