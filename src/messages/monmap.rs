//! MMonGetMap (type 5) and MMonMap (type 4): asking a monitor for its map.
//! The map itself is decoded only as far as its identity: fsid and epoch.

use bytes::Bytes;

use super::{CEPH_MSG_MON_GET_MAP, CEPH_MSG_MON_MAP};
use crate::denc::{Decode, Reader};
use crate::error::DencError;
use crate::message::{Message, Payload};

/// MMonGetMap: an empty request. A Pacific mon answers it only on an authenticated session
/// (with auth none: after an AuthNone authorizer in the connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MMonGetMap;

impl Payload for MMonGetMap {
    const TYPE: u16 = CEPH_MSG_MON_GET_MAP;
    const VERSION: u16 = 0;
    const COMPAT_VERSION: u16 = 0;
    fn encode_payload(&self, _front: &mut Vec<u8>) {}
    fn decode_payload(_msg: &Message) -> Result<Self, DencError> {
        Ok(MMonGetMap)
    }
}

/// MMonMap: the front is one bufferlist holding the encoded MonMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMonMap {
    /// The encoded MonMap.
    pub monmap: Bytes,
}

/// What identifies a monmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonMapSummary {
    /// The cluster's fsid.
    pub fsid: [u8; 16],
    /// The map's epoch.
    pub epoch: u32,
}

impl MonMapSummary {
    /// The fsid in the usual 8-4-4-4-12 hex form.
    pub fn fsid_string(&self) -> String {
        let h: String = self.fsid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl Payload for MMonMap {
    const TYPE: u16 = CEPH_MSG_MON_MAP;
    const VERSION: u16 = 0;
    const COMPAT_VERSION: u16 = 0;
    fn encode_payload(&self, front: &mut Vec<u8>) {
        crate::denc::Encode::encode(&self.monmap, front);
    }
    fn decode_payload(msg: &Message) -> Result<Self, DencError> {
        Ok(MMonMap {
            monmap: Bytes::decode(&mut Reader::new(&msg.front))?,
        })
    }
}

impl MMonMap {
    /// Decodes the MonMap's leading fields: a versioned struct (v9 compat 6 in Pacific) that
    /// begins with the raw 16-byte fsid and the u32 epoch.
    pub fn summary(&self) -> Result<MonMapSummary, DencError> {
        Reader::new(&self.monmap).versioned("MonMap", 9, |_, r| {
            let mut fsid = [0u8; 16];
            fsid.copy_from_slice(r.take("fsid", 16)?);
            let epoch = u32::decode(r)?;
            Ok(MonMapSummary { fsid, epoch })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    #[test]
    fn summary_of_a_monmap_fetched_from_a_16_2_15_mon() {
        // First bytes of `ceph mon getmap` output: v9 compat 6 len 0xa0, fsid, epoch 1.
        let mut map = hex("0906 a0000000 2632ace5169a41e3aa359e1c9320be8c 01000000");
        map.resize(6 + 0xa0, 0);
        let m = MMonMap { monmap: map.into() };
        let s = m.summary().unwrap();
        assert_eq!(s.epoch, 1);
        assert_eq!(s.fsid_string(), "2632ace5-169a-41e3-aa35-9e1c9320be8c");
        let msg = Message::from_payload(&m);
        assert_eq!(msg.decode_payload::<MMonMap>().unwrap(), m);
    }

    #[test]
    fn newer_incompatible_monmap_is_refused() {
        let map = hex("0a0a 14000000 00000000000000000000000000000000 01000000");
        assert!(MMonMap { monmap: map.into() }.summary().is_err());
    }
}
