//! cephx, the pieces that need no session: keys and keyrings (spec §1.5, §9.1), the crypto
//! cephx is built on (§9.2, §9.4): AES-128-CBC with Ceph's fixed IV, the `encode_encrypt`
//! envelope, the client's proof of key; and v1 message signatures (§9.10). The exchanges that use them (the mon-client
//! handshake, authorizers, message signatures) build on this module.
//!
//! The primitives are RustCrypto's (`aes`, `cbc`); nothing here is hand-written cryptography.
//! Secrets never reach `Debug` output and are zeroed when dropped.

pub mod cephx;
mod crypto;
mod key;
mod keyring;
mod methods;
mod signature;

pub use crypto::{
    decode_decrypt, decrypt, encode_encrypt, encrypt, proof_of_key, CryptoError, AUTH_ENC_MAGIC,
    CEPH_AES_IV,
};
pub use key::{CryptoKey, KeyError, CEPH_CRYPTO_AES, CEPH_CRYPTO_NONE};
pub use keyring::{AuthName, Keyring, KeyringError};
pub use methods::{AuthMethod, AuthMethods};
pub use signature::{sign_message, MessageSigner, SignedFields};
