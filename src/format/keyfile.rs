//! Key files: the master key material wrapped under a passphrase.
//!
//! ```text
//! 0    4  magic "CRNK"
//! 4    1  key file version (1)
//! 5    1  key kind (1 full, 2 backup-only)
//! 6    2  reserved, 0
//! 8    4  u32 LE: length H of the header
//! 12   H  header: postcard KeyHeader
//! 12+H ..  AES-256-GCM(KEK, nonce 0, aad = bytes 0..12+H) of the master key material,
//!          then the tag; KEK = Argon2id(passphrase, header.salt, header.kdf)
//! ```

use crate::crypto::aead::{Cipher, TAG_LEN};
use crate::crypto::keys::{fill_random, KdfParams, KeyKind, MasterKey};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Timespec;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 4] = b"CRNK";
pub const VERSION: u8 = 1;
/// A key file header larger than this is hostile.
const MAX_HEADER: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHeader {
    pub created: Timespec,
    pub host: String,
    pub user: String,
    pub kdf: KdfParams,
    pub salt: [u8; 32],
}

/// A decoded (still wrapped) key file.
#[derive(Clone, Debug)]
pub struct KeyFile {
    pub kind: KeyKind,
    pub header: KeyHeader,
    /// Bytes 0..12+H: the associated data of the wrapped key.
    prefix: Vec<u8>,
    wrapped: Vec<u8>,
}

impl KeyFile {
    /// Wrap `master` under `passphrase` with fresh salt.
    pub fn wrap(
        master: &MasterKey,
        passphrase: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
    ) -> Result<Vec<u8>> {
        let mut salt = [0u8; 32];
        fill_random(&mut salt)?;
        let header = KeyHeader { created: Timespec::now(), host: host.into(), user: user.into(), kdf, salt };
        let head = postcard::to_stdvec(&header).expect("postcard encoding of an in-memory value");
        let mut out = Vec::with_capacity(12 + head.len() + 81);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, master.kind as u8, 0, 0]);
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        let kek = kdf.derive_kek(passphrase, &salt)?;
        let mut body = master.to_bytes().to_vec();
        Cipher::new(&kek).seal_in_place(&[0u8; 12], &out, &mut body);
        out.extend_from_slice(&body);
        zeroize::Zeroize::zeroize(&mut body);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err(Error::corrupt("not a cairn key file (bad magic)"));
        }
        if bytes[4] != VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("key file version {} is not supported (this cairn reads {VERSION})", bytes[4]),
            ));
        }
        let kind = KeyKind::from_byte(bytes[5])?;
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(Error::corrupt("key file reserved bytes are not zero"));
        }
        let h = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if h > MAX_HEADER || 12 + h + TAG_LEN > bytes.len() {
            return Err(Error::corrupt("key file header length does not fit the file"));
        }
        let (header, rest): (KeyHeader, &[u8]) = postcard::take_from_bytes(&bytes[12..12 + h])
            .map_err(|e| Error::corrupt(format!("key file header does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::corrupt("key file header has trailing bytes"));
        }
        let wrapped = bytes[12 + h..].to_vec();
        // Both kinds wrap 65 bytes: kind, write root, read secret or public key.
        let want = 65 + TAG_LEN;
        if wrapped.len() != want {
            return Err(Error::corrupt("key file wrapped key has the wrong length"));
        }
        Ok(KeyFile { kind, header, prefix: bytes[..12 + h].to_vec(), wrapped })
    }

    /// The file's bytes: the header re-encoded, then the wrapped key as decoded. After a
    /// change to `header` the wrapped key no longer authenticates (the header is its
    /// associated data); tests use that to make hostile files.
    pub fn encode(&self) -> Vec<u8> {
        let head = postcard::to_stdvec(&self.header).expect("postcard encoding of an in-memory value");
        let mut out = Vec::with_capacity(12 + head.len() + self.wrapped.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, self.kind as u8, 0, 0]);
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// Unwrap with `passphrase`; a wrong passphrase gives `WrongPassword`.
    pub fn unwrap(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let kek = self.header.kdf.derive_kek(passphrase, &self.header.salt)?;
        let mut body = Zeroizing::new(self.wrapped.clone());
        Cipher::new(&kek)
            .open_in_place(&[0u8; 12], &self.prefix, &mut body)
            .map_err(|_| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        let master = MasterKey::from_bytes(&body)?;
        if master.kind != self.kind {
            return Err(Error::corrupt("key file kind does not match its key material"));
        }
        Ok(master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let m = MasterKey::generate().unwrap();
        let bytes = KeyFile::wrap(&m, b"secret", KdfParams::FLOOR, "gw1", "root").unwrap();
        let kf = KeyFile::decode(&bytes).unwrap();
        assert_eq!(kf.header.host, "gw1");
        assert_eq!(kf.unwrap(b"secret").unwrap().public_key(), m.public_key());
        assert_eq!(kf.unwrap(b"Secret").unwrap_err().kind(), ErrorKind::WrongPassword);
    }

    #[test]
    fn tampered_or_truncated_files_are_refused() {
        let m = MasterKey::generate().unwrap();
        let bytes = KeyFile::wrap(&m, b"pw", KdfParams::FLOOR, "h", "u").unwrap();
        for cut in [0, 4, 11, 20, bytes.len() - 1] {
            assert!(KeyFile::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        // Weakening the KDF parameters in the header breaks the wrap (they are the AAD).
        let mut kf = KeyFile::decode(&bytes).unwrap();
        kf.prefix[14] ^= 1;
        assert!(kf.unwrap(b"pw").is_err());
    }
}
