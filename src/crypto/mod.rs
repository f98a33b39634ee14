//! Cryptography, composed from well-reviewed crates (aes-gcm, blake3, x25519-dalek,
//! argon2): nothing here implements a primitive. `keys` owns the key hierarchy, `aead`
//! the sealing of one message.

pub mod aead;
pub mod keys;
