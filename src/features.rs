//! Feature bits (spec §9). Only the bits that change v1 wire behaviour are named individually.

/// Every feature bit Ceph 16.2.15 advertises (`CEPH_FEATURES_ALL`).
pub const CEPH_FEATURES_ALL: u64 = 0x3F01_CFBD_FFFD_FFFF;

/// Server answers SEQ and the 8-byte in_seq exchange happens on reconnect.
pub const RECONNECT_SEQ: u64 = 1 << 6;
/// CRUSH tunables (required by a 16.2.15 mon from clients).
pub const CRUSH_TUNABLES: u64 = 1 << 18;
/// Messages carry a 21-byte footer with a signature field; out_seq is randomized on reset.
pub const MSG_AUTH: u64 = 1 << 23;
/// CRUSH tunables v2.
pub const CRUSH_TUNABLES2: u64 = 1 << 25;
/// CRUSH tunables v3.
pub const CRUSH_TUNABLES3: u64 = 1 << 41;
/// KEEPALIVE2 / KEEPALIVE2_ACK carry a timestamp; without it plain KEEPALIVE is sent.
pub const MSGR_KEEPALIVE2: u64 = 1 << 42;
/// CRUSH v4.
pub const CRUSH_V4: u64 = 1 << 48;
/// Incarnation bit 57 (SERVER_JEWEL era).
pub const INCARNATION_2: u64 = 1 << 57;
/// CRUSH tunables v5.
pub const CRUSH_TUNABLES5: u64 = 1 << 58;
/// The new `entity_addr_t` form inside payloads (v1 handshakes always use the legacy form).
pub const MSG_ADDR2: u64 = 1 << 59;

/// cephx v2: the signature and authorizer formats of Luminous+ (a default mon gives v1 MAuth
/// clients cephx only with it, spec §9.7).
pub const CEPHX_V2: u64 = 1 << 61;

/// What a fresh 16.2.15 mon requires from a CLIENT peer (spec §6).
pub const MON_REQUIRED_FROM_CLIENT: u64 =
    CRUSH_TUNABLES | CRUSH_TUNABLES2 | CRUSH_TUNABLES3 | CRUSH_V4 | CRUSH_TUNABLES5;

/// True when every bit of `wanted` is in `have`.
pub const fn has_all(have: u64, wanted: u64) -> bool {
    have & wanted == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_has_the_wire_bits_and_the_documented_holes() {
        for bit in [RECONNECT_SEQ, MSG_AUTH, MSGR_KEEPALIVE2, MSG_ADDR2] {
            assert!(has_all(CEPH_FEATURES_ALL, bit));
        }
        for hole in [17, 33, 38, 44, 45, 49, 50, 51, 52, 53, 54, 55, 62, 63] {
            assert_eq!(CEPH_FEATURES_ALL & (1u64 << hole), 0, "bit {hole}");
        }
        assert_eq!(MON_REQUIRED_FROM_CLIENT, 0x0401_0200_0204_0000);
        assert!(has_all(CEPH_FEATURES_ALL, MON_REQUIRED_FROM_CLIENT));
    }
}
