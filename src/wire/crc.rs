//! Ceph's CRC-32C (spec §3.3): Castagnoli, register starts at `seed`, no pre- or post-inversion.

/// `ceph_crc32c(seed, buf)`: all msgr v1 CRCs use seed 0.
///
/// The crc32c crate computes the standard (inverted) CRC; inverting the seed on the way in and the
/// result on the way out cancels both inversions.
pub fn ceph_crc32c(seed: u32, buf: &[u8]) -> u32 {
    crc32c::crc32c_append(!seed, buf) ^ !0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceph_test_vectors() {
        assert_eq!(ceph_crc32c(0, b"foo bar baz"), 4119623852);
        assert_eq!(ceph_crc32c(1234, b"foo bar baz"), 881700046);
        assert_eq!(ceph_crc32c(0, b"whiz bang boom"), 2360230088);
        assert_eq!(ceph_crc32c(5678, b"whiz bang boom"), 3743019208);
        assert_eq!(ceph_crc32c(0, &[1u8; 5]), 2715569182);
        assert_eq!(ceph_crc32c(0, &[1u8; 35]), 440531800);
        let big = vec![1u8; 4_096_000];
        assert_eq!(ceph_crc32c(0, &big), 31583199);
        assert_eq!(ceph_crc32c(1234, &big), 1400919119);
    }

    #[test]
    fn relation_to_standard_crc32c() {
        assert_eq!(ceph_crc32c(0xffff_ffff, b"123456789"), 0x1CF9_6D7C);
        assert_eq!(ceph_crc32c(0xffff_ffff, b"123456789") ^ !0, 0xE306_9283);
        assert_eq!(ceph_crc32c(0, b""), 0);
        assert_eq!(ceph_crc32c(77, b""), 77);
    }
}
