//! The envelope of every sealed file object (config, index, snapshot, lock): a fixed
//! 40-byte header, then the AES-256-GCM sealed, compression-encoded payload.
//!
//! ```text
//! 0   4  magic "CRNO"
//! 4   1  envelope version (1)
//! 5   1  object type (ObjectType)
//! 6   1  seal mode: 1 shared (bytes 8..40 are a random salt), 2 sealed to the repository
//!        public key (bytes 8..40 are an ephemeral X25519 public key)
//! 7   1  reserved, 0
//! 8   32 salt or ephemeral public key
//! 40  ..  ciphertext of compress::encode(payload), then the 16-byte tag
//! ```
//! The key is unique to the object (derived from the salt or the ephemeral key), so the
//! nonce is 12 zero bytes; the associated data is the 40-byte header, which binds the
//! object type: an index cannot be served where a snapshot is expected.

use crate::compress;
use crate::crypto::aead::{Cipher, TAG_LEN};
use crate::crypto::keys::{fill_random, shared_object_key, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, Result};

pub const MAGIC: &[u8; 4] = b"CRNO";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
/// Largest payload any object may decode to.
pub const MAX_PAYLOAD: usize = 256 << 20;

const MODE_SHARED: u8 = 1;
const MODE_SEALED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
    Log = 5,
}

impl ObjectType {
    fn mode(self) -> u8 {
        match self {
            ObjectType::Snapshot => MODE_SEALED,
            ObjectType::Config | ObjectType::Index | ObjectType::Lock | ObjectType::Log => MODE_SHARED,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Config => "config",
            ObjectType::Index => "index",
            ObjectType::Snapshot => "snapshot",
            ObjectType::Lock => "lock",
            ObjectType::Log => "log entry",
        }
    }
}

fn header(ty: ObjectType, material: &[u8; 32]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[5] = ty as u8;
    h[6] = ty.mode();
    h[8..].copy_from_slice(material);
    h
}

fn seal_with(ty: ObjectType, material: [u8; 32], key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let h = header(ty, &material);
    let mut body = compress::encode(payload, 3);
    Cipher::new(key).seal_in_place(&[0u8; 12], &h, &mut body);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    out
}

/// Check the header of `bytes` for `ty`; returns the salt or ephemeral key.
pub fn parse_header(ty: ObjectType, bytes: &[u8]) -> Result<[u8; 32]> {
    if bytes.len() < HEADER_LEN + TAG_LEN + 1 {
        return Err(Error::corrupt(format!("{} object too short ({} bytes)", ty.name(), bytes.len())));
    }
    if &bytes[..4] != MAGIC {
        return Err(Error::corrupt(format!("not a cairn {} object (bad magic)", ty.name())));
    }
    if bytes[4] != VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} object has envelope version {}; this cairn reads version {VERSION}",
                ty.name(),
                bytes[4]
            ),
        ));
    }
    if bytes[5] != ty as u8 || bytes[6] != ty.mode() || bytes[7] != 0 {
        return Err(Error::corrupt(format!(
            "object type {} / mode {} found where a {} was expected",
            bytes[5],
            bytes[6],
            ty.name()
        )));
    }
    Ok(bytes[8..40].try_into().expect("32 bytes"))
}

fn open_with(ty: ObjectType, key: &[u8; 32], bytes: &[u8]) -> Result<Vec<u8>> {
    let mut body = bytes[HEADER_LEN..].to_vec();
    Cipher::new(key)
        .open_in_place(&[0u8; 12], &bytes[..HEADER_LEN], &mut body)
        .map_err(|e| e.wrap(ty.name()))?;
    compress::decode(&body, MAX_PAYLOAD).map_err(|e| e.wrap(ty.name()))
}

/// Seal an object of `ty` with the repository keys.
pub fn seal(keys: &RepoKeys, ty: ObjectType, payload: &[u8]) -> Result<Vec<u8>> {
    match ty.mode() {
        MODE_SHARED => {
            let mut salt = [0u8; 32];
            fill_random(&mut salt)?;
            Ok(seal_with(ty, salt, &keys.shared_object_key(&salt), payload))
        }
        _ => {
            let (eph, key) = keys.new_sealed_object_key()?;
            Ok(seal_with(ty, eph, &key, payload))
        }
    }
}

/// Check and open an object of `ty`.
pub fn open(keys: &RepoKeys, ty: ObjectType, bytes: &[u8]) -> Result<Vec<u8>> {
    let material = parse_header(ty, bytes)?;
    let key = match ty.mode() {
        MODE_SHARED => keys.shared_object_key(&material),
        _ => keys.open_sealed_object_key(&material)?,
    };
    open_with(ty, &key, bytes)
}

/// The config is sealed before the repository keys exist (it holds the public key).
pub fn seal_config(master: &MasterKey, payload: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; 32];
    fill_random(&mut salt)?;
    let key = shared_object_key(&master.shared_seal_key(), &salt);
    Ok(seal_with(ObjectType::Config, salt, &key, payload))
}

pub fn open_config(master: &MasterKey, bytes: &[u8]) -> Result<Vec<u8>> {
    let salt = parse_header(ObjectType::Config, bytes)?;
    let key = shared_object_key(&master.shared_seal_key(), &salt);
    open_with(ObjectType::Config, &key, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RepoKeys {
        let m = MasterKey::generate().unwrap();
        m.derive(m.public_key()).unwrap()
    }

    #[test]
    fn round_trip_each_type_and_reject_swaps() {
        let k = keys();
        for ty in [ObjectType::Index, ObjectType::Snapshot, ObjectType::Lock, ObjectType::Log] {
            let sealed = seal(&k, ty, b"payload bytes").unwrap();
            assert_eq!(open(&k, ty, &sealed).unwrap(), b"payload bytes");
        }
        let snap = seal(&k, ObjectType::Snapshot, b"x").unwrap();
        assert!(open(&k, ObjectType::Index, &snap).is_err());
        // Rewriting the type byte breaks authentication.
        let mut idx = seal(&k, ObjectType::Index, b"x").unwrap();
        idx[5] = ObjectType::Lock as u8;
        assert!(open(&k, ObjectType::Lock, &idx).is_err());
        assert!(open(&keys(), ObjectType::Index, &seal(&k, ObjectType::Index, b"x").unwrap()).is_err());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = keys();
        let sealed = seal(&k, ObjectType::Snapshot, b"snapshot").unwrap();
        for i in 0..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 0x10;
            assert!(open(&k, ObjectType::Snapshot, &b).is_err(), "flip at {i} undetected");
        }
    }
}
