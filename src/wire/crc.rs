//! Ceph's CRC-32C (spec §3.3): Castagnoli, register starts at `seed`, no pre- or post-inversion.

/// `ceph_crc32c(seed, buf)`: all msgr v1 CRCs use seed 0.
///
/// The crc32c crate computes the standard (inverted) CRC; inverting the seed on the way in and the
/// result on the way out cancels both inversions.
pub fn ceph_crc32c(seed: u32, buf: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if buf.len() < SHORT && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, checked just above.
        return unsafe { short_sse42(seed, buf) };
    }
    crc32c::crc32c_append(!seed, buf) ^ !0
}

/// Buffers shorter than this go through a plain loop of the CPU's CRC-32C instruction. The
/// crate's interleaved code pays off on long buffers, but every message also has a header, a
/// footer and usually a small front, several short CRCs each, where its set-up dominates.
#[cfg(target_arch = "x86_64")]
const SHORT: usize = 256;

/// The register update itself, eight bytes per instruction: Ceph's CRC has no inversions, so
/// the seed goes in and the result comes out as they are.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_sse42(seed: u32, buf: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut words = buf.chunks_exact(8);
    let mut crc = u64::from(seed);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(word));
    }
    let mut crc = crc as u32;
    for &b in words.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    crc
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
    fn short_path_matches_the_crate_at_every_length_and_seed() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            for seed in [0u32, 1, 1234, 0xdead_beef, !0] {
                let want = crc32c::crc32c_append(!seed, &data[..len]) ^ !0;
                assert_eq!(
                    ceph_crc32c(seed, &data[..len]),
                    want,
                    "len {len} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn relation_to_standard_crc32c() {
        assert_eq!(ceph_crc32c(0xffff_ffff, b"123456789"), 0x1CF9_6D7C);
        assert_eq!(ceph_crc32c(0xffff_ffff, b"123456789") ^ !0, 0xE306_9283);
        assert_eq!(ceph_crc32c(0, b""), 0);
        assert_eq!(ceph_crc32c(77, b""), 77);
    }
}
