//! A reader of restic repositories (format versions 1 and 2), written from restic's
//! published design document, for `cairn import restic`. It reads through cairn's own
//! backends (a folder, `sftp:` or `s3:`), whose object layout is restic's.
//!
//! Cryptography, as the design document gives it: a key file's password goes through
//! scrypt to 64 bytes (32 for AES-256, 16 for the MAC's AES key k, 16 for Poly1305's r)
//! that open the master key; every file and blob is `IV || AES-256-CTR(plaintext) || MAC`,
//! the MAC being Poly1305 over the ciphertext with r and AES-128_k(IV) as its second
//! half. The MAC is checked before anything is decrypted; every blob's plaintext is then
//! checked against its id (SHA-256) before it is used, and every file's bytes against its
//! name. The primitives are RustCrypto's; none is written here.

pub mod format;

use crate::backend::{Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use format::{BlobEntry, Id};
use sha2::Digest;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// restic's master key: AES-256 for encryption, and Poly1305-AES's (k, r).
pub struct Key {
    enc: Zeroizing<[u8; 32]>,
    mac_k: Zeroizing<[u8; 16]>,
    mac_r: Zeroizing<[u8; 16]>,
}

impl Key {
    fn from_parts(enc: &[u8], k: &[u8], r: &[u8]) -> Key {
        let mut key = Key {
            enc: Zeroizing::new([0; 32]),
            mac_k: Zeroizing::new([0; 16]),
            mac_r: Zeroizing::new([0; 16]),
        };
        key.enc.copy_from_slice(enc);
        key.mac_k.copy_from_slice(k);
        key.mac_r.copy_from_slice(r);
        key
    }

    /// Authenticate `IV || CIPHERTEXT || MAC`, then decrypt it; `None` if the MAC does not
    /// match (wrong key, damage or tampering) or the bytes are too short to hold one.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 32 {
            return None;
        }
        let (iv, rest) = sealed.split_at(16);
        let (ciphertext, mac) = rest.split_at(rest.len() - 16);
        // Poly1305-AES: Poly1305 with the key r || AES-128_k(nonce).
        let mut s = aes::Block::try_from(iv).expect("16 bytes");
        aes::Aes128::new(&(*self.mac_k).into()).encrypt_block(&mut s);
        let mut poly_key = Zeroizing::new([0u8; 32]);
        poly_key[..16].copy_from_slice(&*self.mac_r);
        poly_key[16..].copy_from_slice(&s);
        let tag = poly1305::Poly1305::new(&(*poly_key).into()).compute_unpadded(ciphertext);
        // Compared without an early exit.
        if tag.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return None;
        }
        let mut plain = ciphertext.to_vec();
        let iv: [u8; 16] = iv.try_into().expect("16 bytes");
        ctr::Ctr128BE::<aes::Aes256>::new(&(*self.enc).into(), &iv.into()).apply_keystream(&mut plain);
        Some(plain)
    }
}

/// Derive the key-file key from a password and open a key file's master key; `None` for
/// a wrong password.
fn open_key_file(name: &str, bytes: &[u8], password: &[u8]) -> Result<Option<Key>> {
    let kf = format::KeyFile::parse(name, bytes)?;
    let (log_n, r, p) = kf.params(name)?;
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|_| Error::corrupt(format!("restic key file {name} has scrypt parameters out of bounds")))?;
    let mut derived = Zeroizing::new([0u8; 64]);
    scrypt::scrypt(password, &kf.salt(name)?, &params, &mut *derived)
        .map_err(|_| Error::corrupt(format!("restic key file {name}: scrypt failed")))?;
    let user_key = Key::from_parts(&derived[..32], &derived[32..48], &derived[48..]);
    let Some(plain) = user_key.open(&kf.data(name)?) else { return Ok(None) };
    let plain = Zeroizing::new(plain);
    let (enc, k, r) = format::parse_master_key(name, &plain)?;
    Ok(Some(Key::from_parts(&enc, &k, &r)))
}

/// Where a blob is: which pack (an index into the pack names), its offset, its stored
/// length and its length decompressed (for format 2). Kept small: a large repository's
/// index holds millions.
#[derive(Clone, Copy)]
struct Located {
    pack: u32,
    tree: bool,
    length: u32,
    uncompressed: Option<u32>,
    offset: u64,
}

impl Located {
    fn new(pack: u32, e: &BlobEntry) -> Located {
        Located { pack, tree: e.tree, length: e.length, uncompressed: e.uncompressed, offset: e.offset }
    }
}

/// An opened restic repository with its index loaded.
pub struct Repo {
    backend: Box<dyn Backend>,
    location: String,
    key: Key,
    pub version: u32,
    packs: Vec<String>,
    index: HashMap<Id, Located>,
    /// Blobs of the packs no index names, from their headers: read once, the first time a
    /// blob is not in the index (restic's index may lag behind its packs).
    unindexed: std::sync::OnceLock<std::result::Result<Unindexed, String>>,
}

/// Packs no index names, and their blobs.
struct Unindexed {
    packs: Vec<String>,
    blobs: HashMap<Id, Located>,
}

/// The snapshots that could be read (id and snapshot, oldest first) and those that could not.
pub type Snapshots = (Vec<(String, format::Snapshot)>, Vec<BadSnapshot>);

/// A snapshot file that could not be read, named with why.
pub struct BadSnapshot {
    pub id: String,
    pub error: Error,
}

impl Repo {
    /// Open the restic repository at `location` (a folder, `sftp:` or `s3:` as cairn's own
    /// repositories) with `password`, and load its index.
    pub fn open(location: &str, password: &[u8]) -> Result<Repo> {
        let backend = crate::backend::open(location)?;
        Self::open_on(backend, location, password)
    }

    pub fn open_on(backend: Box<dyn Backend>, location: &str, password: &[u8]) -> Result<Repo> {
        let not_restic =
            || Error::new(ErrorKind::NotARepository, format!("{location} holds no restic repository"));
        match backend.exists(FileType::Config, "config") {
            Ok(true) => {}
            Ok(false) => return Err(not_restic()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_restic()),
            Err(e) => return Err(e.wrap(format!("restic repository {location}"))),
        }
        let mut names = backend.list(FileType::Key)?;
        names.sort();
        if names.len() > format::MAX_KEYS {
            return Err(Error::corrupt(format!(
                "restic repository {location} has {} key files, more than cairn tries",
                names.len()
            )));
        }
        let mut key = None;
        for name in &names {
            let bytes = backend.read(FileType::Key, name, format::MAX_SMALL_FILE)?;
            if let Some(k) = open_key_file(name, &bytes, password)? {
                key = Some(k);
                break;
            }
        }
        let key = key.ok_or_else(|| {
            Error::new(
                ErrorKind::WrongPassword,
                format!("no key of the restic repository {location} opens with this password"),
            )
        })?;
        let sealed = backend.read(FileType::Config, "config", format::MAX_SMALL_FILE)?;
        let plain = key.open(&sealed).ok_or_else(|| {
            Error::corrupt(format!("the config of restic repository {location} fails its MAC"))
        })?;
        let plain = format::decode_unpacked("the restic config", plain, format::MAX_SMALL_FILE)?;
        let config = format::Config::parse(&plain)?;
        let mut repo = Repo {
            backend,
            location: location.to_string(),
            key,
            version: config.version,
            packs: Vec::new(),
            index: HashMap::new(),
            unindexed: std::sync::OnceLock::new(),
        };
        repo.load_index()?;
        Ok(repo)
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// A whole file of the repository: its name checked against its bytes, then its MAC,
    /// then decrypted and decoded.
    fn read_file(&self, ft: FileType, name: &str, what: &str, max: u64, decoded: u64) -> Result<Vec<u8>> {
        let sealed = self.backend.read(ft, name, max)?;
        let named = format::hex_id(name);
        if named.is_some_and(|id| id != <[u8; 32]>::from(sha2::Sha256::digest(&sealed))) {
            return Err(Error::corrupt(format!("{what} does not match its name (damaged or tampered)")));
        }
        let plain = self
            .key
            .open(&sealed)
            .ok_or_else(|| Error::corrupt(format!("{what} fails its MAC (damaged or tampered)")))?;
        format::decode_unpacked(what, plain, decoded)
    }

    fn load_index(&mut self) -> Result<()> {
        let mut pack_numbers: HashMap<Id, u32> = HashMap::new();
        for name in self.backend.list(FileType::Index)? {
            if format::hex_id(&name).is_none() {
                continue;
            }
            let what = format!("restic index file {name}");
            let plain = self.read_file(
                FileType::Index,
                &name,
                &what,
                format::MAX_INDEX_FILE,
                format::MAX_INDEX_DECODED,
            )?;
            for (pack, blobs) in format::parse_index(&name, &plain)? {
                let number = *pack_numbers.entry(pack).or_insert_with(|| {
                    self.packs.push(format::id_hex(&pack));
                    (self.packs.len() - 1) as u32
                });
                for entry in blobs {
                    self.index.entry(entry.id).or_insert(Located::new(number, &entry));
                }
            }
        }
        Ok(())
    }

    /// Every snapshot, oldest first; those that cannot be read come apart, named.
    pub fn snapshots(&self) -> Result<Snapshots> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for name in self.backend.list(FileType::Snapshot)? {
            if format::hex_id(&name).is_none() {
                continue;
            }
            let what = format!("restic snapshot {name}");
            let read = self
                .read_file(
                    FileType::Snapshot,
                    &name,
                    &what,
                    format::MAX_SNAPSHOT_FILE,
                    format::MAX_SNAPSHOT_FILE,
                )
                .and_then(|plain| format::parse_snapshot(&name, &plain));
            match read {
                Ok(s) => good.push((name, s)),
                Err(error) => bad.push(BadSnapshot { id: name, error }),
            }
        }
        good.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
        Ok((good, bad))
    }

    /// A blob's plaintext, checked against its id. `tree` says which kind is expected.
    pub fn blob(&self, id: &Id, tree: bool) -> Result<Vec<u8>> {
        let kind = if tree { "tree" } else { "data" };
        let hex = format::id_hex(id);
        let (at, pack) = match self.index.get(id) {
            Some(at) => (at, &self.packs[at.pack as usize]),
            None => {
                let unindexed = self
                    .unindexed
                    .get_or_init(|| self.read_unindexed().map_err(|e| e.to_string()))
                    .as_ref()
                    .map_err(|e| {
                        Error::corrupt(format!("restic {kind} blob {hex} is in no index, and {e}"))
                    })?;
                let at = unindexed.blobs.get(id).ok_or_else(|| {
                    Error::corrupt(format!("restic {kind} blob {hex} is in no index and no pack (missing)"))
                })?;
                (at, &unindexed.packs[at.pack as usize])
            }
        };
        let e = at;
        let what = format!("restic {kind} blob {hex} in pack {pack}");
        if e.tree != tree {
            return Err(Error::corrupt(format!("{what} is indexed as the other kind of blob")));
        }
        let sealed = self.backend.read_range(FileType::Pack, pack, e.offset, e.length as u64)?;
        if sealed.len() != e.length as usize {
            return Err(Error::corrupt(format!("{what}: the pack ends before the blob (truncated)")));
        }
        let plain = self
            .key
            .open(&sealed)
            .ok_or_else(|| Error::corrupt(format!("{what} fails its MAC (damaged or tampered)")))?;
        let plain = match e.uncompressed {
            None => plain,
            Some(len) => {
                let out = zstd::bulk::decompress(&plain, len as usize)
                    .map_err(|err| Error::corrupt(format!("{what} does not decompress: {err}")))?;
                if out.len() != len as usize {
                    return Err(Error::corrupt(format!(
                        "{what} decompresses to another length than indexed"
                    )));
                }
                out
            }
        };
        if <[u8; 32]>::from(sha2::Sha256::digest(&plain)) != *id {
            return Err(Error::corrupt(format!("{what} does not match its id (damaged or tampered)")));
        }
        Ok(plain)
    }

    /// A tree's entries.
    pub fn tree(&self, id: &Id) -> Result<Vec<format::Node>> {
        let bytes = self.blob(id, true)?;
        format::parse_tree(&format::id_hex(id), &bytes)
    }

    /// The blobs of every pack no index names, from the packs' headers.
    fn read_unindexed(&self) -> Result<Unindexed> {
        let indexed: std::collections::HashSet<&str> = self.packs.iter().map(String::as_str).collect();
        let mut out = Unindexed { packs: Vec::new(), blobs: HashMap::new() };
        let mut names = self.backend.list(FileType::Pack)?;
        names.sort();
        for name in names {
            if indexed.contains(name.as_str()) || format::hex_id(&name).is_none() {
                continue;
            }
            let number = out.packs.len() as u32;
            let mut offset = 0u64;
            for e in self.pack_header(&name)? {
                let entry = BlobEntry {
                    id: e.id,
                    tree: e.tree,
                    offset,
                    length: e.length,
                    uncompressed: e.uncompressed,
                };
                out.blobs.entry(e.id).or_insert(Located::new(number, &entry));
                offset += e.length as u64;
            }
            out.packs.push(name);
        }
        Ok(out)
    }

    /// A pack's header (read from the pack's end, bounded, authenticated), for packs that
    /// must be read without an index.
    pub fn pack_header(&self, pack: &str) -> Result<Vec<format::PackHeaderEntry>> {
        let size = self.backend.size(FileType::Pack, pack)?;
        let what = format!("restic pack {pack}");
        if size < 4 {
            return Err(Error::corrupt(format!("{what} is too short to hold a header")));
        }
        let tail = self.backend.read_range(FileType::Pack, pack, size - 4, 4)?;
        let len = u32::from_le_bytes(
            tail.as_slice().try_into().map_err(|_| Error::corrupt(format!("{what}: cannot read its end")))?,
        );
        if len > format::MAX_PACK_HEADER || len as u64 + 4 > size || len < 32 {
            return Err(Error::corrupt(format!("{what} gives its header an impossible length {len}")));
        }
        let sealed = self.backend.read_range(FileType::Pack, pack, size - 4 - len as u64, len as u64)?;
        let plain = self
            .key
            .open(&sealed)
            .ok_or_else(|| Error::corrupt(format!("the header of {what} fails its MAC")))?;
        format::parse_pack_header(pack, &plain)
    }
}

/// [`Key::open`] with a fixed key on arbitrary bytes, for the fuzz target: it must never
/// panic, whatever the length.
pub fn open_for_fuzzing(sealed: &[u8]) -> Option<usize> {
    let key = Key::from_parts(&[1; 32], &[2; 16], &[3; 16]);
    key.open(sealed).map(|p| p.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seal as restic does, for the test only (the reader never seals).
    fn seal(key: &Key, iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
        let mut ct = plain.to_vec();
        ctr::Ctr128BE::<aes::Aes256>::new(&(*key.enc).into(), &iv.into()).apply_keystream(&mut ct);
        let mut s = aes::Block::from(iv);
        aes::Aes128::new(&(*key.mac_k).into()).encrypt_block(&mut s);
        let mut pk = [0u8; 32];
        pk[..16].copy_from_slice(&*key.mac_r);
        pk[16..].copy_from_slice(&s);
        let tag = poly1305::Poly1305::new(&pk.into()).compute_unpadded(&ct);
        let mut out = iv.to_vec();
        out.extend(ct);
        out.extend(tag.as_slice());
        out
    }

    fn b64(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn sha(b: &[u8]) -> String {
        format::id_hex(&<[u8; 32]>::from(sha2::Sha256::digest(b)))
    }

    /// A small restic repository made by hand in `dir`, its password "pw": one pack with
    /// one data blob "hello", indexed; `n` is its key file's scrypt N.
    fn fake_repo(dir: &std::path::Path, n: u64) -> (Key, Id, String) {
        let master = Key::from_parts(&[5; 32], &[6; 16], &[7; 16]);
        let salt = [9u8; 16];
        let mut derived = [0u8; 64];
        scrypt::scrypt(b"pw", &salt, &scrypt::Params::new(4, 1, 1).unwrap(), &mut derived).unwrap();
        let user = Key::from_parts(&derived[..32], &derived[32..48], &derived[48..]);
        let master_json = format!(
            r#"{{"mac":{{"k":"{}","r":"{}"}},"encrypt":"{}"}}"#,
            b64(&[6; 16]),
            b64(&[7; 16]),
            b64(&[5; 32])
        );
        let key_file = format!(
            r#"{{"kdf":"scrypt","N":{n},"r":1,"p":1,"salt":"{}","data":"{}"}}"#,
            b64(&salt),
            b64(&seal(&user, [1; 16], master_json.as_bytes()))
        );
        for d in ["keys", "index", "snapshots", "data/00"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("keys").join(sha(key_file.as_bytes())), &key_file).unwrap();
        std::fs::write(dir.join("config"), seal(&master, [2; 16], br#"{"version":2,"id":"ab"}"#)).unwrap();
        let blob_id: Id = sha2::Sha256::digest(b"hello").into();
        let mut pack = seal(&master, [3; 16], b"hello");
        let blob_len = pack.len();
        let mut header = vec![0u8];
        header.extend((blob_len as u32).to_le_bytes());
        header.extend(blob_id);
        let sealed_header = seal(&master, [4; 16], &header);
        pack.extend(&sealed_header);
        pack.extend((sealed_header.len() as u32).to_le_bytes());
        let pack_name = format!("00{}", &sha(&pack)[2..]);
        std::fs::write(dir.join("data/00").join(&pack_name), &pack).unwrap();
        let index = format!(
            r#"{{"packs":[{{"id":"{pack_name}","blobs":[{{"id":"{}","type":"data","offset":0,"length":{blob_len}}}]}}]}}"#,
            format::id_hex(&blob_id)
        );
        let sealed_index = seal(&master, [8; 16], index.as_bytes());
        std::fs::write(dir.join("index").join(sha(&sealed_index)), &sealed_index).unwrap();
        (master, blob_id, pack_name)
    }

    #[test]
    fn a_hand_made_repository_opens_and_hostile_parts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().to_str().unwrap();
        let (_, blob_id, pack) = fake_repo(dir.path(), 16);
        let repo = Repo::open(loc, b"pw").unwrap();
        assert_eq!(repo.version, 2);
        assert_eq!(repo.blob(&blob_id, false).unwrap(), b"hello");
        assert_eq!(repo.pack_header(&pack).unwrap()[0].id, blob_id);
        assert!(repo.blob(&blob_id, true).is_err(), "a data blob asked for as a tree");
        assert_eq!(Repo::open(loc, b"nope").err().unwrap().kind(), ErrorKind::WrongPassword);

        // A pack cut short, and one whose header claims 4 GiB: named errors, nothing allocated.
        let path = dir.path().join("data/00").join(&pack);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..10]).unwrap();
        let e = repo.blob(&blob_id, false).unwrap_err().to_string();
        assert!(e.contains(&pack) && e.contains("truncated"), "{e}");
        let mut huge = bytes.clone();
        let end = huge.len();
        huge[end - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let e = repo.pack_header(&pack).unwrap_err().to_string();
        assert!(e.contains("impossible length"), "{e}");
        // A flipped byte is refused by the MAC, before anything is decrypted.
        let mut flipped = bytes.clone();
        flipped[16] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let e = repo.blob(&blob_id, false).unwrap_err().to_string();
        assert!(e.contains("fails its MAC"), "{e}");
        // Another blob sealed with the repository's key in its place: refused by its id.
        let (master, _, _) = fake_repo(tempfile::tempdir().unwrap().path(), 16);
        let mut swapped = seal(&master, [3; 16], b"jello");
        swapped.extend(&bytes[swapped.len()..]);
        std::fs::write(&path, &swapped).unwrap();
        let e = repo.blob(&blob_id, false).unwrap_err().to_string();
        assert!(e.contains("does not match its id"), "{e}");

        // A key file asking scrypt for 2^40 rounds is refused before any work.
        let dir2 = tempfile::tempdir().unwrap();
        fake_repo(dir2.path(), 1 << 40);
        let e = Repo::open(dir2.path().to_str().unwrap(), b"pw").err().unwrap();
        assert!(e.to_string().contains("out of bounds"), "{e}");
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_mac() {
        let key = Key::from_parts(&[1; 32], &[2; 16], &[3; 16]);
        let sealed = seal(&key, [9; 16], b"hello restic");
        assert_eq!(key.open(&sealed).unwrap(), b"hello restic");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(key.open(&bad).is_none(), "byte {i}");
        }
        assert!(key.open(&sealed[..31]).is_none());
        let other = Key::from_parts(&[1; 32], &[2; 16], &[4; 16]);
        assert!(other.open(&sealed).is_none());
    }
}
