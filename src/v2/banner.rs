//! The msgr2 banner (spec §3): `ceph v2\n`, a u16 payload length, then the msgr2 features the
//! sender supports and requires. msgr2.1 (revision 1) is used when the peer supports it; we
//! refuse peers without it (msgr2.0, pre-Octopus), as the spec allows.

use bytes::{Buf, BytesMut};

use super::V2Error;

/// The banner's magic.
pub const BANNER_V2: &[u8; 8] = b"ceph v2\n";
/// msgr2 feature bit 0: the 2.1 frame format.
pub const MSGR2_REVISION_1: u64 = 1;
/// Features we support.
pub const MSGR2_SUPPORTED: u64 = MSGR2_REVISION_1;
/// Features we require of the peer.
pub const MSGR2_REQUIRED: u64 = MSGR2_REVISION_1;
/// Our banner's length on the wire.
pub const BANNER_LEN: usize = 26;
/// Largest banner payload we read (Pacific sends 16; later versions may add fields).
const MAX_PAYLOAD: u16 = 4096;

/// Our banner.
pub fn encode_banner() -> [u8; BANNER_LEN] {
    let mut b = [0u8; BANNER_LEN];
    b[..8].copy_from_slice(BANNER_V2);
    b[8..10].copy_from_slice(&16u16.to_le_bytes());
    b[10..18].copy_from_slice(&MSGR2_SUPPORTED.to_le_bytes());
    // Required = 0, as Pacific sends: we enforce our requirement on the peer's banner.
    b
}

/// Reads the peer's banner from the front of `buf`: `Ok(None)` until it is all there.
/// Returns the peer's supported features after checking both sides' requirements.
pub fn decode_banner(buf: &mut BytesMut) -> Result<Option<u64>, V2Error> {
    if buf.len() < 10 {
        if !BANNER_V2.starts_with(&buf[..buf.len().min(8)]) {
            return Err(V2Error::BadBanner(buf.to_vec()));
        }
        return Ok(None);
    }
    if &buf[..8] != BANNER_V2 {
        return Err(V2Error::BadBanner(buf[..10].to_vec()));
    }
    let len = u16::from_le_bytes([buf[8], buf[9]]);
    if !(16..=MAX_PAYLOAD).contains(&len) {
        return Err(V2Error::BannerLength(len));
    }
    if buf.len() < 10 + len as usize {
        return Ok(None);
    }
    buf.advance(10);
    let supported = buf.get_u64_le();
    let required = buf.get_u64_le();
    buf.advance(len as usize - 16);
    if required & !MSGR2_SUPPORTED != 0 || MSGR2_REQUIRED & !supported != 0 {
        return Err(V2Error::BannerFeatures {
            peer_supported: supported,
            peer_required: required,
        });
    }
    Ok(Some(supported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    #[test]
    fn the_mons_banner_is_accepted_and_v1_and_rev0_peers_are_not() {
        let pacific = hex("636570682076320a100001000000000000000000000000000000");
        assert_eq!(encode_banner().to_vec(), pacific);
        let mut b = BytesMut::from(&pacific[..]);
        assert_eq!(decode_banner(&mut b), Ok(Some(1)));
        assert!(b.is_empty());
        let mut v1 = BytesMut::from(&b"ceph v027"[..]);
        assert!(matches!(decode_banner(&mut v1), Err(V2Error::BadBanner(_))));
        let mut rev0 =
            BytesMut::from(&hex("636570682076320a100000000000000000000000000000000000")[..]);
        assert!(matches!(
            decode_banner(&mut rev0),
            Err(V2Error::BannerFeatures { .. })
        ));
        let mut huge = BytesMut::from(&hex("636570682076320aff")[..]);
        assert_eq!(decode_banner(&mut huge), Ok(None));
        huge.extend_from_slice(&[0xff]);
        assert_eq!(decode_banner(&mut huge), Err(V2Error::BannerLength(0xffff)));
    }
}
