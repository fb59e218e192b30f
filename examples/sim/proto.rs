//! The simulators' messages: typed payloads in Ceph's versioned encoding (msgr::denc), in
//! msgr's private type range 0xE100..=0xE1FF (docs/simulators.md lists them).
//!
//! Every message's front starts with an [`Envelope`]: the sending connection's id and a
//! per-connection sequence number, so receivers can prove nothing was lost or reordered.

use bytes::Bytes;
use msgr::denc::{encode_versioned, Decode, Encode, Reader};
use msgr::{DencError, EntityAddr, Message, Payload};

/// Sender's connection id and per-connection sequence, for loss accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Envelope {
    pub conn: u64,
    pub seq: u64,
}

fn addr_encode(a: &EntityAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.encode_legacy());
}

fn addr_decode(r: &mut Reader<'_>) -> Result<EntityAddr, DencError> {
    let raw = r.take("entity_addr", msgr::entity::ENTITY_ADDR_LEN)?;
    EntityAddr::decode_legacy(raw).map_err(|_| DencError::Invalid {
        what: "entity_addr",
        value: raw[0] as u64,
    })
}

/// Declares a payload: type number, fields, and their encode / decode in order.
macro_rules! sim_message {
    ($name:ident = $ty:expr, { $($field:ident : $fty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name { pub env: Envelope, $(pub $field: $fty),* }

        impl Enveloped for $name {
            fn envelope(&self) -> Envelope {
                self.env
            }
        }

        impl Payload for $name {
            const TYPE: u16 = $ty;
            const VERSION: u16 = 1;
            const COMPAT_VERSION: u16 = 1;
            fn encode_payload(&self, front: &mut Vec<u8>) {
                encode_versioned(front, 1, 1, |o| {
                    self.env.conn.encode(o);
                    self.env.seq.encode(o);
                    $( Field::put(&self.$field, o); )*
                });
            }
            fn decode_payload(msg: &Message) -> Result<Self, DencError> {
                Reader::new(&msg.front).versioned(stringify!($name), 1, |_, r| {
                    let env = Envelope { conn: u64::decode(r)?, seq: u64::decode(r)? };
                    Ok($name { env, $( $field: Field::get(r)? ),* })
                })
            }
        }
    };
}

/// A sim message: it carries an envelope.
pub trait Enveloped: Payload {
    fn envelope(&self) -> Envelope;
}

/// A field type of a sim message (denc types, plus addresses in their legacy form).
pub trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, DencError>;
}

impl<T: Encode + Decode> Field for T {
    fn put(&self, out: &mut Vec<u8>) {
        self.encode(out)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DencError> {
        T::decode(r)
    }
}

/// An entity address inside a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub EntityAddr);

impl Encode for Addr {
    fn encode(&self, out: &mut Vec<u8>) {
        addr_encode(&self.0, out)
    }
}

impl Decode for Addr {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        addr_decode(r).map(Addr)
    }
}

/// One OSD in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsdInfo {
    pub id: u32,
    pub up: bool,
    pub in_: bool,
    pub addr: Addr,
    pub hb_addr: Addr,
}

impl Encode for OsdInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(out, 1, 1, |o| {
            self.id.encode(o);
            self.up.encode(o);
            self.in_.encode(o);
            self.addr.encode(o);
            self.hb_addr.encode(o);
        });
    }
}

impl Decode for OsdInfo {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        r.versioned("OsdInfo", 1, |_, r| {
            Ok(OsdInfo {
                id: u32::decode(r)?,
                up: bool::decode(r)?,
                in_: bool::decode(r)?,
                addr: Addr::decode(r)?,
                hb_addr: Addr::decode(r)?,
            })
        })
    }
}

const BASE: u16 = 0xE100;

sim_message!(OsdBoot = BASE, { osd: u32, addr: Addr, hb_addr: Addr });
sim_message!(OsdBeacon = BASE + 1, { osd: u32, epoch: u32 });
sim_message!(OsdFailure = BASE + 2, { reporter: u32, target: u32, epoch: u32 });
sim_message!(Subscribe = BASE + 3, { what: String });
sim_message!(OsdMap = BASE + 4, { epoch: u32, osds: Vec<OsdInfo> });
sim_message!(OsdPing = BASE + 5, { from: u32, stamp: u64, reply: bool });
sim_message!(OsdOp = BASE + 6, { client: u64, tid: u64, oid: String, write: bool, data: Bytes });
sim_message!(OsdOpReply = BASE + 7, { tid: u64, ok: bool, stored_on: Vec<u32>, data: Bytes });
sim_message!(RepOp = BASE + 8, { client: u64, tid: u64, oid: String, data: Bytes });
sim_message!(RepOpReply = BASE + 9, { client: u64, tid: u64, osd: u32 });

/// Placement groups objects are hashed into.
pub const PGS: u32 = 32;
/// Copies of each object (fewer when fewer OSDs are up).
pub const REPLICAS: usize = 3;

/// The acting set of `oid`'s PG among the up OSDs: rendezvous hashing, primary first.
pub fn acting_set(oid: &str, map: &[OsdInfo]) -> Vec<u32> {
    let pg = msgr::wire::ceph_crc32c(0, oid.as_bytes()) % PGS;
    let mut ranked: Vec<(u32, u32)> = map
        .iter()
        .filter(|o| o.up && o.in_)
        .map(|o| (msgr::wire::ceph_crc32c(pg, &o.id.to_le_bytes()), o.id))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked
        .into_iter()
        .take(REPLICAS)
        .map(|(_, id)| id)
        .collect()
}
