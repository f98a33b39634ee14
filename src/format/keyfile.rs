//! Key files: the master key material wrapped under a passphrase.
//!
//! Version 2 (written since 2026-12-06; format-spec/keys.md):
//! ```text
//! 0      4  magic "CRNK"
//! 4      1  key file version (2)
//! 5      1  key kind (1 full, 2 backup-only)
//! 6      2  reserved, 0
//! 8      4  u32 LE: length H of the header
//! 12     H  header: postcard KeyHeader
//! 12+H   32 slot public key
//! P      80 AES-256-GCM(KEK, nonce 0, aad = bytes 0..P) of the slot secret and the file
//!           key, then the tag; KEK = Argon2id(passphrase, header.salt, header.kdf);
//!           P = 12+H+32
//! P+80   32 ephemeral public key of this wrap of the material
//! P+112  ..  AES-256-GCM(slot key, nonce 0, aad = bytes 0..P+112) of the key material
//! Q      32 KH(file key, bytes 0..Q): the material's authentication
//! Q+32   4  u32 LE: length G of the grant
//! Q+36   G  key grant: an envelope (type 6) sealed by a full key to the repository,
//!           attested, holding the slot public key and the file key
//! ```
//! The slot key pair lets a key rotation give new key epochs to every key file without
//! knowing their passwords: a full key opens the grant, seals the new material to the slot
//! and authenticates it with the file key, and keeps the password-wrapped part as it is
//! ([`KeyFile::rewrap`]). Whoever lacks the file key (a storage writer, a backup-only key
//! holder: only a full key opens a grant) cannot give a key file material of its choosing,
//! and a planted key file without a full key's grant is given nothing.
//!
//! Version 1 (still read): the material sealed under the KEK straight after the header.

use crate::crypto::aead::{Cipher, TAG_LEN};
use crate::crypto::keys::{fill_random, material_lengths, KdfParams, KeyKind, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType, WrittenBy};
use crate::format::Timespec;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

pub const MAGIC: &[u8; 4] = b"CRNK";
pub const VERSION: u8 = 2;
pub const VERSION_1: u8 = 1;
/// A key file header larger than this is hostile.
const MAX_HEADER: usize = 64 * 1024;
/// A grant larger than this is hostile (a genuine one is 72 + 1 + 64 + 16 bytes).
const MAX_GRANT: usize = 1024;
const CTX_KEY_SLOT: &str = "cairn 2026-12-06 v3 key slot";
/// Sealed slot secret and file key.
const SECRETS_WRAP_LEN: usize = 64 + TAG_LEN;
/// Version 1 material sealed: kind, write root, read secret or public key, tag.
const WRAPPED_V1_LEN: usize = 65 + TAG_LEN;

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
    pub version: u8,
    pub kind: KeyKind,
    pub header: KeyHeader,
    /// Version 2: bytes 0..P+80 (up to and with the password-wrapped secrets), kept as
    /// they are when the material is sealed anew. Version 1: bytes 0..12+H.
    prefix: Vec<u8>,
    /// Version 2: the ephemeral public key and the sealed material (bytes P+80..Q).
    /// Version 1: the sealed material.
    wrapped: Vec<u8>,
    /// Version 2: the material's authentication (bytes Q..Q+32).
    tag: [u8; 32],
    /// Version 2: the key grant envelope.
    grant: Vec<u8>,
}

fn encode_prefix(version: u8, kind: KeyKind, header: &KeyHeader) -> Vec<u8> {
    let head = postcard::to_stdvec(header).expect("postcard encoding of an in-memory value");
    let mut out = Vec::with_capacity(12 + head.len() + 32 + SECRETS_WRAP_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, kind as u8, 0, 0]);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out
}

/// The key of one wrap of the material to a slot: from the X25519 shared secret of the
/// wrap's ephemeral key and the slot key.
fn slot_key(shared: &[u8; 32], eph_pub: &[u8; 32], slot_pub: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(CTX_KEY_SLOT);
    h.update(shared).update(eph_pub).update(slot_pub);
    let out = Zeroizing::new(*h.finalize().as_bytes());
    h.zeroize();
    out
}

fn random32() -> Result<Zeroizing<[u8; 32]>> {
    let mut b = Zeroizing::new([0u8; 32]);
    fill_random(&mut b[..])?;
    Ok(b)
}

impl KeyFile {
    /// Wrap `master` under `passphrase` with fresh salt, slot key pair and file key; the
    /// grant is sealed with `keys`, a full key's working keys of this repository.
    pub fn wrap(
        master: &MasterKey,
        keys: &RepoKeys,
        passphrase: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
    ) -> Result<Vec<u8>> {
        let mut salt = [0u8; 32];
        fill_random(&mut salt)?;
        let header = KeyHeader { created: Timespec::now(), host: host.into(), user: user.into(), kdf, salt };
        let slot = random32()?;
        let file_key = random32()?;
        let slot_pub = PublicKey::from(&StaticSecret::from(*slot)).to_bytes();
        let mut prefix = encode_prefix(VERSION, master.kind, &header);
        prefix.extend_from_slice(&slot_pub);
        let kek = kdf.derive_kek(passphrase, &salt)?;
        let mut secrets = Zeroizing::new([&slot[..], &file_key[..]].concat());
        Cipher::new(&kek).seal_in_place(&[0u8; 12], &prefix, &mut secrets);
        prefix.extend_from_slice(&secrets);
        seal_material(prefix, &slot_pub, &file_key, master, keys)
    }

    /// This key file with `master` sealed anew to its slot, the password-wrapped part kept
    /// as it is: what a key rotation writes for a key whose password it does not know.
    /// `opener` (a full key) opens the grant, `sealer` (a full key) seals the new one.
    /// Version 1 files have no slot; a grant no full key made is refused.
    pub fn rewrap(&self, opener: &RepoKeys, sealer: &RepoKeys, master: &MasterKey) -> Result<Vec<u8>> {
        if self.version != VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a version 1 key file cannot be given new key epochs without its password: upgrade it with `cairn key passwd`, or replace it",
            ));
        }
        if master.kind != self.kind {
            return Err(Error::invalid("key material of another kind than the key file's"));
        }
        let opened = envelope::open_attested(opener, ObjectType::KeyGrant, &self.grant)?;
        let slot_pub = self.slot_public();
        if opened.written_by != WrittenBy::FullKey
            || opened.payload.len() != 64
            || opened.payload[..32] != slot_pub
        {
            return Err(Error::corrupt("its grant was not made by a full key for this key file"));
        }
        let mut file_key = Zeroizing::new([0u8; 32]);
        file_key.copy_from_slice(&opened.payload[32..]);
        let mut payload = opened.payload;
        payload.zeroize();
        seal_material(self.prefix.clone(), &slot_pub, &file_key, master, sealer)
    }

    /// The key grant (version 2; empty for version 1).
    pub fn grant(&self) -> &[u8] {
        &self.grant
    }

    fn slot_public(&self) -> [u8; 32] {
        let at = self.prefix.len() - SECRETS_WRAP_LEN - 32;
        self.prefix[at..at + 32].try_into().expect("32 bytes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err(Error::corrupt("not a cairn key file (bad magic)"));
        }
        let version = bytes[4];
        if version != VERSION && version != VERSION_1 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("key file version {version} is not supported (this cairn reads 1 and {VERSION})"),
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
        let wrong_length = || Error::corrupt("key file wrapped key has the wrong length");
        if version == VERSION_1 {
            // Both kinds wrap 65 bytes: kind, write root, read secret or public key.
            if bytes.len() != 12 + h + WRAPPED_V1_LEN {
                return Err(wrong_length());
            }
            return Ok(KeyFile {
                version,
                kind,
                header,
                prefix: bytes[..12 + h].to_vec(),
                wrapped: bytes[12 + h..].to_vec(),
                tag: [0; 32],
                grant: Vec::new(),
            });
        }
        // The secrets, the ephemeral key, material of one or two epochs (and, during a
        // content key rotation, an older content root), its tag, the grant.
        let p = 12 + h + 32 + SECRETS_WRAP_LEN;
        let q = material_lengths(kind)
            .into_iter()
            .map(|m| p + 32 + m + TAG_LEN)
            .find(|&q| {
                bytes.len() >= q + 36 && {
                    let g = u32::from_le_bytes(bytes[q + 32..q + 36].try_into().expect("4 bytes")) as usize;
                    g <= MAX_GRANT && bytes.len() == q + 36 + g
                }
            })
            .ok_or_else(wrong_length)?;
        Ok(KeyFile {
            version,
            kind,
            header,
            prefix: bytes[..p].to_vec(),
            wrapped: bytes[p..q].to_vec(),
            tag: bytes[q..q + 32].try_into().expect("32 bytes"),
            grant: bytes[q + 36..].to_vec(),
        })
    }

    /// The file's bytes: the header re-encoded, then the rest as decoded. After a change
    /// to `header` the wrapped key no longer authenticates (the header is its associated
    /// data); tests use that to make hostile files.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_prefix(self.version, self.kind, &self.header);
        let old_head = 12 + u32::from_le_bytes(self.prefix[8..12].try_into().expect("4 bytes")) as usize;
        out.extend_from_slice(&self.prefix[old_head..]);
        out.extend_from_slice(&self.wrapped);
        if self.version == VERSION {
            out.extend_from_slice(&self.tag);
            out.extend_from_slice(&(self.grant.len() as u32).to_le_bytes());
            out.extend_from_slice(&self.grant);
        }
        out
    }

    /// Unwrap with `passphrase`; a wrong passphrase gives `WrongPassword`.
    pub fn unwrap(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let kek = self.header.kdf.derive_kek(passphrase, &self.header.salt)?;
        let wrong = |_| Error::new(ErrorKind::WrongPassword, "wrong password");
        let master = if self.version == VERSION_1 {
            let mut body = Zeroizing::new(self.wrapped.clone());
            Cipher::new(&kek).open_in_place(&[0u8; 12], &self.prefix, &mut body).map_err(wrong)?;
            MasterKey::from_bytes_v1(&body)?
        } else {
            let at = self.prefix.len() - SECRETS_WRAP_LEN;
            let mut secrets = Zeroizing::new(self.prefix[at..].to_vec());
            Cipher::new(&kek).open_in_place(&[0u8; 12], &self.prefix[..at], &mut secrets).map_err(wrong)?;
            let mut slot32 = Zeroizing::new([0u8; 32]);
            slot32.copy_from_slice(&secrets[..32]);
            let mut file_key = Zeroizing::new([0u8; 32]);
            file_key.copy_from_slice(&secrets[32..64]);
            let slot = StaticSecret::from(*slot32);
            let slot_pub = self.slot_public();
            if PublicKey::from(&slot).to_bytes() != slot_pub {
                return Err(Error::corrupt("key file slot public key does not match its secret"));
            }
            // Only a holder of the file key (this key's holder, and full keys through the
            // grant) can have sealed this material: checked before it is opened.
            let sealed = [&self.prefix[..], &self.wrapped[..]].concat();
            // blake3::Hash compares in constant time.
            if blake3::keyed_hash(&file_key, &sealed) != blake3::Hash::from(self.tag) {
                return Err(Error::corrupt(
                    "key file material was not sealed by a holder of the repository's keys (replaced?)",
                ));
            }
            let eph_pub: [u8; 32] = self.wrapped[..32].try_into().expect("32 bytes");
            let shared = slot.diffie_hellman(&PublicKey::from(eph_pub));
            let key = slot_key(shared.as_bytes(), &eph_pub, &slot_pub);
            let aad = [&self.prefix[..], &eph_pub[..]].concat();
            let mut body = Zeroizing::new(self.wrapped[32..].to_vec());
            Cipher::new(&key)
                .open_in_place(&[0u8; 12], &aad, &mut body)
                .map_err(|_| Error::corrupt("key file material does not open with its slot"))?;
            MasterKey::from_bytes(&body)?
        };
        if master.kind != self.kind {
            return Err(Error::corrupt("key file kind does not match its key material"));
        }
        Ok(master)
    }
}

/// The rest of a version 2 key file after `prefix` (bytes 0..P+80): `master` sealed to the
/// slot with a fresh ephemeral key, its authentication under `file_key`, and a grant of the
/// file key sealed by `keys` (a full key) under its write epoch.
fn seal_material(
    mut out: Vec<u8>,
    slot_pub: &[u8; 32],
    file_key: &[u8; 32],
    master: &MasterKey,
    keys: &RepoKeys,
) -> Result<Vec<u8>> {
    let eph = StaticSecret::from(*random32()?);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*slot_pub));
    let key = slot_key(shared.as_bytes(), &eph_pub, slot_pub);
    out.extend_from_slice(&eph_pub);
    let mut body = master.to_bytes().to_vec();
    Cipher::new(&key).seal_in_place(&[0u8; 12], &out, &mut body);
    out.extend_from_slice(&body);
    body.zeroize();
    let tag = *blake3::keyed_hash(file_key, &out).as_bytes();
    out.extend_from_slice(&tag);
    let mut payload = Zeroizing::new([&slot_pub[..], &file_key[..]].concat());
    let grant = envelope::seal_as(keys, ObjectType::KeyGrant, &payload, WrittenBy::FullKey)?;
    payload.zeroize();
    out.extend_from_slice(&(grant.len() as u32).to_le_bytes());
    out.extend_from_slice(&grant);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(m: &MasterKey) -> RepoKeys {
        m.derive(m.public_key(), [5; 32]).unwrap()
    }

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let m = MasterKey::generate().unwrap();
        let bytes = KeyFile::wrap(&m, &keys_of(&m), b"secret", KdfParams::FLOOR, "gw1", "root").unwrap();
        let kf = KeyFile::decode(&bytes).unwrap();
        assert_eq!(kf.header.host, "gw1");
        assert_eq!(kf.unwrap(b"secret").unwrap().public_key(), m.public_key());
        assert_eq!(kf.unwrap(b"Secret").unwrap_err().kind(), ErrorKind::WrongPassword);
        assert_eq!(kf.encode(), bytes);
    }

    #[test]
    fn tampered_or_truncated_files_are_refused() {
        let m = MasterKey::generate().unwrap();
        let bytes = KeyFile::wrap(&m, &keys_of(&m), b"pw", KdfParams::FLOOR, "h", "u").unwrap();
        for cut in [0, 4, 11, 20, bytes.len() - 1] {
            assert!(KeyFile::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        // Weakening the KDF parameters in the header breaks the wrap (they are the AAD).
        let mut kf = KeyFile::decode(&bytes).unwrap();
        kf.prefix[14] ^= 1;
        assert!(kf.unwrap(b"pw").is_err());
        // A flipped bit of the sealed material or of its authentication.
        for at in [kf.prefix.len() + 40, bytes.len() - kf.grant.len() - 40] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert_eq!(KeyFile::decode(&b).unwrap().unwrap(b"pw").unwrap_err().kind(), ErrorKind::Corrupt);
        }
    }

    /// A full key gives a key file new epochs without its password; the holder's password
    /// opens them. Whoever lacks the file key (no full key, so no grant) cannot: material
    /// sealed to the slot by anyone else is refused, and a grant a backup-only key made is
    /// not honoured.
    #[test]
    fn only_a_full_key_can_give_a_key_file_new_material() {
        let m = MasterKey::generate().unwrap();
        let full = keys_of(&m);
        let file = KeyFile::decode(
            &KeyFile::wrap(&m.backup_only(), &full, b"host pw", KdfParams::FLOOR, "h", "u").unwrap(),
        )
        .unwrap();
        let both = m.with_new_epoch().unwrap();
        let sealer = both.derive(both.public_key(), [5; 32]).unwrap();
        let rewrapped = KeyFile::decode(&file.rewrap(&full, &sealer, &both.backup_only()).unwrap()).unwrap();
        let opened = rewrapped.unwrap(b"host pw").unwrap();
        assert_eq!(opened.epoch_numbers(), vec![0, 1]);
        assert_eq!(opened.kind, KeyKind::BackupOnly);
        assert_eq!(opened.public_key(), both.public_key());

        // An attacker seals material of its own to the slot, with a file key of its own.
        let attacker = MasterKey::generate().unwrap();
        let forged = seal_material(
            file.prefix.clone(),
            &file.slot_public(),
            &[9; 32],
            &attacker.backup_only(),
            &keys_of(&attacker),
        )
        .unwrap();
        let err = KeyFile::decode(&forged).unwrap().unwrap(b"host pw").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");

        // A backup-only key's grant: a rotation gives such a file nothing.
        let writer = m.backup_only().derive(m.public_key(), [5; 32]).unwrap();
        let mut planted = file.clone();
        planted.grant =
            envelope::seal(&writer, ObjectType::KeyGrant, &[file.slot_public(), [1; 32]].concat()).unwrap();
        assert!(planted.rewrap(&full, &sealer, &both.backup_only()).is_err());
        // Nor does a key of another repository (or a removed one after a rotation) open it.
        assert!(rewrapped.rewrap(&keys_of(&attacker), &sealer, &both.backup_only()).is_err());
    }
}
