//! Authorizers carried in the connect message. With auth none, either none at all
//! (what Ceph clients send to mons) or the AuthNone blob (spec §2.9).

use bytes::Bytes;

use crate::denc::{Decode, Encode, Reader};
use crate::entity::{EntityName, EntityType};
use crate::error::DencError;

/// `CEPH_AUTH_NONE`.
pub const CEPH_AUTH_NONE: u32 = 1;
/// `CEPH_AUTH_CEPHX`.
pub const CEPH_AUTH_CEPHX: u32 = 2;

/// An authorizer to send: protocol number and blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorizer {
    /// 1 = AuthNone, 2 = cephx.
    pub protocol: u32,
    /// The encoded authorizer.
    pub blob: Bytes,
}

/// The AuthNone authorizer: who we are, by name, and our global id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthNoneAuthorizer {
    /// Entity type of the name.
    pub entity_type: EntityType,
    /// The id part of the name (`admin` in `client.admin`, `a` in `mon.a`).
    pub id: String,
    /// Global id (0 before the mon assigns one).
    pub global_id: u64,
}

impl AuthNoneAuthorizer {
    /// Encodes: u8 struct_v 1, u32 entity type, string id, u64 global_id.
    pub fn encode(&self) -> Bytes {
        let mut out = vec![1u8];
        (self.entity_type.0 as u32).encode(&mut out);
        self.id.encode(&mut out);
        self.global_id.encode(&mut out);
        out.into()
    }

    /// As an [`Authorizer`] with protocol AuthNone.
    pub fn to_authorizer(&self) -> Authorizer {
        Authorizer {
            protocol: CEPH_AUTH_NONE,
            blob: self.encode(),
        }
    }

    /// Decodes and validates a blob (struct_v must be 1, the whole blob consumed).
    pub fn decode(blob: &[u8]) -> Result<Self, DencError> {
        let mut r = Reader::new(blob);
        let v = u8::decode(&mut r)?;
        if v != 1 {
            return Err(DencError::Invalid {
                what: "AuthNone struct_v",
                value: v as u64,
            });
        }
        let ty = u32::decode(&mut r)?;
        if ty > 0xff {
            return Err(DencError::Invalid {
                what: "AuthNone entity type",
                value: ty as u64,
            });
        }
        let id = String::decode(&mut r)?;
        let global_id = u64::decode(&mut r)?;
        if r.remaining() != 0 {
            return Err(DencError::Invalid {
                what: "AuthNone trailing bytes",
                value: r.remaining() as u64,
            });
        }
        Ok(AuthNoneAuthorizer {
            entity_type: EntityType(ty as u8),
            id,
            global_id,
        })
    }

    /// The entity name when the id is numeric (`osd.3`), else `None`.
    pub fn entity_name(&self) -> Option<EntityName> {
        self.id
            .parse()
            .ok()
            .map(|n| EntityName::new(self.entity_type, n))
    }
}

/// Checks an incoming authorizer under auth none: no authorizer, or a well-formed AuthNone blob.
pub fn verify_auth_none(protocol: u32, blob: &[u8]) -> bool {
    match protocol {
        0 => blob.is_empty(),
        CEPH_AUTH_NONE => AuthNoneAuthorizer::decode(blob).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    #[test]
    fn client_admin_blob_from_spec() {
        let a = AuthNoneAuthorizer {
            entity_type: EntityType::CLIENT,
            id: "admin".into(),
            global_id: 0,
        };
        let blob = a.encode();
        assert_eq!(
            blob.to_vec(),
            hex("01 08000000 05000000 61646d696e 0000000000000000")
        );
        assert_eq!(AuthNoneAuthorizer::decode(&blob).unwrap(), a);
        assert!(verify_auth_none(1, &blob));
    }

    #[test]
    fn malformed_blobs_rejected() {
        assert!(!verify_auth_none(1, &[2]));
        assert!(!verify_auth_none(1, &hex("01 08000000 ff000000")));
        assert!(!verify_auth_none(2, &[]));
        assert!(!verify_auth_none(0, &[1]));
        assert!(verify_auth_none(0, &[]));
    }
}
