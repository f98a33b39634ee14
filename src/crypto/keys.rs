//! The key hierarchy: master key material, the subkeys derived from it, and the
//! passphrase wrapping of key files.
//!
//! Master key material is two independent random secrets (format-spec/keys.md):
//! - the *write root*, which every key kind holds: it derives the chunk-id and tree-id keys,
//!   the chunker's gear table, the key that seals shared objects (config, index, locks) and
//!   the pack-authentication key;
//! - the *read secret*, an X25519 static secret that only full keys hold. Packs and
//!   snapshots are sealed to its public key with a fresh ephemeral key pair each, so a
//!   writer never needs the read secret, and a key without it can read no stored content.
//!   That is what makes backup-only keys hold by construction.
//!
//! Every subkey comes from BLAKE3 `derive_key` with its own context string. Secrets live in
//! `Zeroizing` buffers or zeroize-on-drop types and are wiped when dropped.

use crate::error::{Error, ErrorKind, Result};
use crate::id::{ChunkId, TreeId};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const CTX_CHUNK_ID: &str = "cairn 2026-11-24 v1 chunk id";
const CTX_TREE_ID: &str = "cairn 2026-11-24 v1 tree id";
const CTX_GEAR: &str = "cairn 2026-11-24 v1 chunker gear table";
const CTX_SHARED_SEAL: &str = "cairn 2026-11-24 v1 shared object sealing";
const CTX_PACK_AUTH: &str = "cairn 2026-11-24 v1 sealed object authentication";
const CTX_SHARED_OBJECT_KEY: &str = "cairn 2026-11-24 v1 shared object key";
const CTX_SEALED_OBJECT_KEY: &str = "cairn 2026-11-24 v1 sealed object key";

/// What a key may do. Stored in key files; see format-spec/keys.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Reads and writes everything.
    Full = 1,
    /// Writes new snapshots and dedups, reads no stored content (no read secret).
    BackupOnly = 2,
}

impl KeyKind {
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(KeyKind::Full),
            2 => Ok(KeyKind::BackupOnly),
            _ => Err(Error::new(ErrorKind::Unsupported, format!("unknown key kind {b}"))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            KeyKind::Full => "full",
            KeyKind::BackupOnly => "backup-only",
        }
    }
}

/// The secrets a key file wraps.
pub struct MasterKey {
    pub kind: KeyKind,
    write_root: Zeroizing<[u8; 32]>,
    read_secret: Option<StaticSecret>,
    /// The repository public key. A full key computes it from the read secret; a
    /// backup-only key stores it, so a tampered config cannot redirect its backups.
    public: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, secrets redacted)", self.kind.name())
    }
}

/// Length of the wrapped plaintext: kind byte, write root, then the read secret (full
/// keys) or the repository public key (backup-only keys).
const MASTER_LEN: usize = 1 + 32 + 32;

impl MasterKey {
    /// Fresh key material from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut write_root = Zeroizing::new([0u8; 32]);
        let mut read = Zeroizing::new([0u8; 32]);
        fill_random(&mut write_root[..])?;
        fill_random(&mut read[..])?;
        let secret = StaticSecret::from(*read);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(MasterKey { kind: KeyKind::Full, write_root, read_secret: Some(secret), public })
    }

    /// Key material for a new repository that shares this one's write root, so the two
    /// agree on chunk boundaries and blob ids (`init --copy-chunker-params-from`), with
    /// a read secret of its own: neither repository's full key reads the other's packs
    /// or snapshots. See format-spec/keys.md for what the shared root does share.
    pub fn sharing_ids(&self) -> Result<MasterKey> {
        let mut read = Zeroizing::new([0u8; 32]);
        fill_random(&mut read[..])?;
        let secret = StaticSecret::from(*read);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(MasterKey {
            kind: KeyKind::Full,
            write_root: self.write_root.clone(),
            read_secret: Some(secret),
            public,
        })
    }

    /// The same repository's key material without the read secret.
    pub fn backup_only(&self) -> MasterKey {
        MasterKey {
            kind: KeyKind::BackupOnly,
            write_root: self.write_root.clone(),
            read_secret: None,
            public: self.public,
        }
    }

    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(MASTER_LEN));
        out.push(self.kind as u8);
        out.extend_from_slice(&self.write_root[..]);
        match &self.read_secret {
            Some(s) => out.extend_from_slice(s.as_bytes()),
            None => out.extend_from_slice(&self.public),
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let kind = KeyKind::from_byte(*b.first().ok_or_else(|| Error::corrupt("empty key"))?)?;
        if b.len() != MASTER_LEN {
            return Err(Error::corrupt(format!("key material is {} bytes, expected {MASTER_LEN}", b.len())));
        }
        let mut write_root = Zeroizing::new([0u8; 32]);
        write_root.copy_from_slice(&b[1..33]);
        let mut last = Zeroizing::new([0u8; 32]);
        last.copy_from_slice(&b[33..65]);
        Ok(match kind {
            KeyKind::Full => {
                let secret = StaticSecret::from(*last);
                let public = PublicKey::from(&secret).to_bytes();
                MasterKey { kind, write_root, read_secret: Some(secret), public }
            }
            KeyKind::BackupOnly => MasterKey { kind, write_root, read_secret: None, public: *last },
        })
    }

    /// The repository's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Derive all working keys. `public` is the repository public key from the config; it
    /// must be this key's own.
    pub fn derive(&self, public: [u8; 32]) -> Result<RepoKeys> {
        if self.public != public {
            return Err(Error::corrupt(
                "the config's public key is not this key's repository public key (config replaced?)",
            ));
        }
        Ok(RepoKeys {
            kind: self.kind,
            chunk_id: blake3::derive_key(CTX_CHUNK_ID, &self.write_root[..]),
            tree_id: blake3::derive_key(CTX_TREE_ID, &self.write_root[..]),
            gear: blake3::derive_key(CTX_GEAR, &self.write_root[..]),
            shared_seal: blake3::derive_key(CTX_SHARED_SEAL, &self.write_root[..]),
            pack_auth: blake3::derive_key(CTX_PACK_AUTH, &self.write_root[..]),
            public,
            read_secret: self.read_secret.clone(),
        })
    }

    /// The key that seals the config itself, which is sealed with the shared key (it
    /// holds the public key, so it cannot depend on it).
    pub fn shared_seal_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(CTX_SHARED_SEAL, &self.write_root[..]))
    }
}

/// Working keys of an open repository.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RepoKeys {
    #[zeroize(skip)]
    pub kind: KeyKind,
    chunk_id: [u8; 32],
    tree_id: [u8; 32],
    gear: [u8; 32],
    shared_seal: [u8; 32],
    pack_auth: [u8; 32],
    public: [u8; 32],
    #[zeroize(skip)] // StaticSecret zeroizes itself on drop
    read_secret: Option<StaticSecret>,
}

impl RepoKeys {
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes())
    }

    pub fn tree_id(&self, encoded: &[u8]) -> TreeId {
        TreeId(*blake3::keyed_hash(&self.tree_id, encoded).as_bytes())
    }

    /// The chunker's 256-entry gear table, from the key's XOF so that chunk boundaries
    /// depend on the key and do not fingerprint content.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&self.gear).finalize_xof().fill(&mut bytes);
        let mut table = Box::new([0u64; 256]);
        for (t, b) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            *t = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        bytes.zeroize();
        table
    }

    /// The key of one shared object (config, index, lock), from its random salt.
    pub fn shared_object_key(&self, salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        shared_object_key(&self.shared_seal, salt)
    }

    /// A fresh ephemeral key pair for a new sealed object (pack or snapshot): returns the
    /// ephemeral public key to store and the object's key.
    pub fn new_sealed_object_key(&self) -> Result<([u8; 32], Zeroizing<[u8; 32]>)> {
        let mut eph = Zeroizing::new([0u8; 32]);
        fill_random(&mut eph[..])?;
        let eph = StaticSecret::from(*eph);
        let eph_pub = PublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&PublicKey::from(self.public));
        Ok((eph_pub, self.sealed_key(shared.as_bytes(), &eph_pub)))
    }

    /// The key of a stored sealed object, from its ephemeral public key. Needs the read
    /// secret: a backup-only key gets `PermissionDenied`.
    pub fn open_sealed_object_key(&self, eph_pub: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let secret = self.read_secret.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                "this is a backup-only key: it cannot read stored data; use a full key",
            )
        })?;
        let shared = secret.diffie_hellman(&PublicKey::from(*eph_pub));
        Ok(self.sealed_key(shared.as_bytes(), eph_pub))
    }

    fn sealed_key(&self, shared: &[u8; 32], eph_pub: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(CTX_SEALED_OBJECT_KEY);
        h.update(shared).update(eph_pub).update(&self.public).update(&self.pack_auth);
        Zeroizing::new(*h.finalize().as_bytes())
    }

    pub fn can_read(&self) -> bool {
        self.read_secret.is_some()
    }
}

pub(crate) fn shared_object_key(shared_seal: &[u8; 32], salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(CTX_SHARED_OBJECT_KEY);
    h.update(shared_seal).update(salt);
    Zeroizing::new(*h.finalize().as_bytes())
}

pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf)
        .map_err(|e| Error::new(ErrorKind::Io, format!("the operating system's random source failed: {e}")))
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for new keys: 64 MiB, 3 passes, 4 lanes (RFC 9106's recommendation for
    /// 64 MiB). The lanes are filled in parallel, so unlocking a repository (every command
    /// pays it) takes half the time on two cores for the same memory and passes.
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 };
    /// The weakest parameters a key file may use; weaker ones are refused on open.
    pub const FLOOR: KdfParams = KdfParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
    /// The strongest accepted: a hostile key file must not make us allocate without bound.
    pub const CEILING: KdfParams = KdfParams { memory_kib: 4 * 1024 * 1024, iterations: 64, parallelism: 16 };

    pub fn check(&self) -> Result<()> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        let ok = (lo.memory_kib..=hi.memory_kib).contains(&self.memory_kib)
            && (lo.iterations..=hi.iterations).contains(&self.iterations)
            && (lo.parallelism..=hi.parallelism).contains(&self.parallelism);
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "Argon2id parameters memory={} KiB iterations={} parallelism={} are outside the \
                 accepted range ({}..={} KiB, {}..={} iterations, {}..={} lanes)",
                self.memory_kib,
                self.iterations,
                self.parallelism,
                lo.memory_kib,
                hi.memory_kib,
                lo.iterations,
                hi.iterations,
                lo.parallelism,
                hi.parallelism
            )))
        }
    }

    /// The key-encryption key for a passphrase and salt.
    pub fn derive_kek(&self, passphrase: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| Error::invalid(format!("Argon2id parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, &mut kek[..])
            .map_err(|e| Error::new(ErrorKind::Io, format!("Argon2id failed: {e}")))?;
        Ok(kek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_bytes_round_trip() {
        let m = MasterKey::generate().unwrap();
        let back = MasterKey::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.public_key(), m.public_key());
        let b = m.backup_only();
        let bb = MasterKey::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(bb.kind, KeyKind::BackupOnly);
        assert!(bb.read_secret.is_none());
        assert_eq!(bb.public_key(), m.public_key());
        // A backup-only key refuses a config whose public key was swapped.
        assert!(bb.derive([7u8; 32]).is_err());
        assert!(MasterKey::from_bytes(&m.to_bytes()[..40]).is_err());
        assert!(MasterKey::from_bytes(&[]).is_err());
    }

    #[test]
    fn backup_only_keys_write_what_full_keys_read_but_cannot_read() {
        let m = MasterKey::generate().unwrap();
        let public = m.public_key();
        let full = m.derive(public).unwrap();
        let writer = m.backup_only().derive(public).unwrap();
        let (eph, k_written) = writer.new_sealed_object_key().unwrap();
        assert_eq!(*full.open_sealed_object_key(&eph).unwrap(), *k_written);
        let err = writer.open_sealed_object_key(&eph).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        // Ids agree between the two, so the backup-only key dedups against full-key data.
        assert_eq!(full.chunk_id(b"x"), writer.chunk_id(b"x"));
        assert_ne!(full.chunk_id(b"x").0, full.tree_id(b"x").0);
    }

    #[test]
    fn a_key_sharing_ids_agrees_on_ids_but_reads_nothing_of_the_other() {
        let m = MasterKey::generate().unwrap();
        let other = m.sharing_ids().unwrap();
        let (a, b) = (m.derive(m.public_key()).unwrap(), other.derive(other.public_key()).unwrap());
        assert_eq!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_eq!(a.tree_id(b"x"), b.tree_id(b"x"));
        assert_eq!(a.gear_table(), b.gear_table());
        assert_ne!(m.public_key(), other.public_key());
        let (eph, k) = a.new_sealed_object_key().unwrap();
        assert_ne!(*b.open_sealed_object_key(&eph).unwrap(), *k);
    }

    #[test]
    fn a_different_public_key_is_refused() {
        let m = MasterKey::generate().unwrap();
        assert!(m.derive([9u8; 32]).is_err());
    }

    #[test]
    fn kdf_bounds() {
        assert!(KdfParams::DEFAULT.check().is_ok());
        let weak = KdfParams { memory_kib: 1024, ..KdfParams::FLOOR };
        assert!(weak.check().is_err());
        let huge = KdfParams { memory_kib: u32::MAX, ..KdfParams::FLOOR };
        assert!(huge.check().is_err());
        let k1 = KdfParams::FLOOR.derive_kek(b"pw", &[1; 32]).unwrap();
        let k2 = KdfParams::FLOOR.derive_kek(b"pw", &[2; 32]).unwrap();
        assert_ne!(*k1, *k2);
    }

    /// Lanes are filled in parallel (argon2's `parallel` feature); the result must still be
    /// standard Argon2id. Expected values from the reference implementation's command line:
    /// `echo -n "correct horse battery staple" | argon2 cairn-known-answer-salt-32-bytes
    /// -id -t 3 -m 13 -p LANES -l 32 -r`.
    #[test]
    fn kek_matches_the_reference_argon2id_with_one_and_four_lanes() {
        let salt: [u8; 32] = *b"cairn-known-answer-salt-32-bytes";
        for (lanes, expected) in [
            (1, "b5ebf1e13ff3cfdfa69402f91d5d9d64a151764e81a754286d0e0fd3d4d06014"),
            (4, "44a9ce23cde30901658c1bc9301897ec69d97bc154ff19573cbf118ba0b00d73"),
        ] {
            let params = KdfParams { memory_kib: 8 * 1024, iterations: 3, parallelism: lanes };
            let kek = params.derive_kek(b"correct horse battery staple", &salt).unwrap();
            assert_eq!(crate::id::hex_encode(&kek[..]), expected, "{lanes} lanes");
        }
    }
}
