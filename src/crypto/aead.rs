//! AES-256-GCM sealing with a caller-chosen key, nonce and associated data.
//!
//! This module composes the `aes-gcm` crate; it implements no cryptography. Every key
//! used here is single-purpose and derived per pack or per object (see `keys`), so nonces
//! are counters (blobs in a pack) or a constant (one message per key) and GCM's random-nonce
//! bound never applies.

use crate::error::{Error, Result};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// Bytes the tag adds to every sealed message.
pub const TAG_LEN: usize = 16;

/// A ready AES-256-GCM cipher (key schedule done once, reused for many messages).
pub struct Cipher(Aes256Gcm);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)))
    }

    /// Encrypt `buf` in place and append the tag.
    pub fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>) {
        self.seal_tail(nonce, aad, buf, 0)
    }

    /// Encrypt `buf[from..]` in place and append the tag: a message sealed where it lies
    /// at the end of a larger buffer (a frame at the end of a pack), without a copy.
    pub fn seal_tail(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>, from: usize) {
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut buf[from..]).into())
            // Only fails when the message exceeds GCM's 64 GiB limit; our messages are
            // bounded far below that by the pack and object size limits.
            .expect("AES-GCM message within size limit");
        buf.extend_from_slice(&tag);
    }

    /// Check the tag and decrypt `buf` in place, removing the tag.
    pub fn open_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        if buf.len() < TAG_LEN {
            return Err(Error::corrupt("sealed message shorter than its tag"));
        }
        self.0
            .decrypt_in_place(&Nonce::from(*nonce), aad, buf)
            .map_err(|_| Error::corrupt("authentication failed (damaged, tampered or wrong key)"))
    }
}

impl Cipher {
    /// Check the tag and decrypt a sealed message (ciphertext then tag) where it lies,
    /// returning the plaintext part: no copy of the message is made.
    pub fn open_slice<'b>(&self, nonce: &[u8; 12], aad: &[u8], sealed: &'b mut [u8]) -> Result<&'b [u8]> {
        if sealed.len() < TAG_LEN {
            return Err(Error::corrupt("sealed message shorter than its tag"));
        }
        let (body, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
        let tag = aes_gcm::Tag::try_from(&*tag).expect("16-byte tag");
        self.0
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, body.into(), &tag)
            .map_err(|_| Error::corrupt("authentication failed (damaged, tampered or wrong key)"))?;
        Ok(body)
    }
}

/// A nonce holding a 64-bit counter, for the n-th message under one key.
pub fn counter_nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let c = Cipher::new(&[7u8; 32]);
        let mut buf = b"gateway config".to_vec();
        c.seal_in_place(&counter_nonce(3), b"aad", &mut buf);
        assert_eq!(buf.len(), 14 + TAG_LEN);
        let sealed = buf.clone();
        c.open_in_place(&counter_nonce(3), b"aad", &mut buf).unwrap();
        assert_eq!(buf, b"gateway config");

        for (nonce, aad) in [(4u64, &b"aad"[..]), (3, &b"aae"[..])] {
            let mut b = sealed.clone();
            assert!(c.open_in_place(&counter_nonce(nonce), aad, &mut b).is_err());
        }
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(c.open_in_place(&counter_nonce(3), b"aad", &mut flipped).is_err());
        let mut short = vec![0u8; 5];
        assert!(c.open_in_place(&counter_nonce(3), b"aad", &mut short).is_err());
        let mut again = sealed.clone();
        assert_eq!(c.open_slice(&counter_nonce(3), b"aad", &mut again).unwrap(), b"gateway config");
        let mut flipped = sealed.clone();
        flipped[2] ^= 1;
        assert!(c.open_slice(&counter_nonce(3), b"aad", &mut flipped).is_err());
        // Sealed at the end of a larger buffer: the prefix untouched, the rest as if alone.
        let mut tail = b"prefix gateway config".to_vec();
        c.seal_tail(&counter_nonce(3), b"aad", &mut tail, 7);
        assert_eq!(&tail[..7], b"prefix ");
        assert_eq!(tail[7..], sealed[..]);
    }
}
