//! Reads blobs out of stored packs: fetches the sealed bytes, opens them with the pack's
//! key, decompresses, and recomputes the blob id from the plaintext. That last step is
//! the end-to-end check: a blob is returned only if it is exactly what its id names.

use crate::backend::FileType;
use crate::compress;
use crate::crypto::aead::{counter_nonce, Cipher};
use crate::crypto::keys::RepoKeys;
use crate::error::{Error, Result};
use crate::format::pack::{self, Entry};
use crate::id::{BlobId, PackId};
use crate::index::Location;
use crate::repo::Repository;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pack-key cache over a repository; cheap to share between threads.
pub struct PackReader<'r> {
    repo: &'r Repository,
    ciphers: Mutex<HashMap<PackId, Arc<Cipher>>>,
}

impl<'r> PackReader<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        PackReader { repo, ciphers: Mutex::new(HashMap::new()) }
    }

    /// The cipher of a pack, from its header (read once per pack).
    pub fn cipher(&self, pack: &PackId) -> Result<Arc<Cipher>> {
        if let Some(c) = self.ciphers.lock().expect("cipher cache lock").get(pack) {
            return Ok(c.clone());
        }
        let head =
            self.repo.backend().read_range(FileType::Pack, &pack.to_hex(), 0, pack::HEADER_LEN as u64)?;
        let eph = pack::parse_header(&head).map_err(|e| e.wrap(format!("pack {pack}")))?;
        let c = Arc::new(Cipher::new(&*self.repo.keys().open_sealed_object_key(&eph)?));
        self.ciphers.lock().expect("cipher cache lock").insert(*pack, c.clone());
        Ok(c)
    }

    /// Fetch, open and verify one blob.
    pub fn read_blob(&self, loc: &Location) -> Result<Vec<u8>> {
        let cipher = self.cipher(&loc.pack)?;
        let e = &loc.entry;
        let sealed = self.repo.backend().read_range(
            FileType::Pack,
            &loc.pack.to_hex(),
            e.offset as u64,
            e.length as u64,
        )?;
        if sealed.len() != e.length as usize {
            return Err(Error::corrupt(format!("{} in pack {}: pack is truncated", e.id, loc.pack)));
        }
        open_blob(self.repo.keys(), &cipher, e, sealed).map_err(|err| err.wrap(format!("pack {}", loc.pack)))
    }
}

/// Open a sealed blob and check that its plaintext hashes to its id.
pub fn open_blob(keys: &RepoKeys, cipher: &Cipher, e: &Entry, mut sealed: Vec<u8>) -> Result<Vec<u8>> {
    open_blob_in_place(keys, cipher, e, &mut sealed)
}

/// [`open_blob`] on sealed bytes lying in a larger buffer (a whole pack), decrypted where
/// they lie.
pub fn open_blob_in_place(keys: &RepoKeys, cipher: &Cipher, e: &Entry, sealed: &mut [u8]) -> Result<Vec<u8>> {
    let encoded = cipher
        .open_slice(&counter_nonce(e.offset as u64), &Entry::aad(&e.id), sealed)
        .map_err(|err| err.wrap(e.id))?;
    let plain = compress::decode(encoded, e.raw_length as usize).map_err(|err| err.wrap(e.id))?;
    if plain.len() != e.raw_length as usize {
        return Err(Error::corrupt(format!("{}: length differs from the index", e.id)));
    }
    let ok = match &e.id {
        BlobId::Chunk(c) => keys.chunk_id(&plain) == *c,
        BlobId::Tree(t) => keys.tree_id(&plain) == *t,
    };
    if !ok {
        return Err(Error::corrupt(format!("{}: content does not match its id", e.id)));
    }
    Ok(plain)
}

/// Read a whole pack's table of contents (for check and index repair).
pub fn read_toc(keys: &RepoKeys, pack_bytes: &[u8]) -> Result<Vec<Entry>> {
    let eph = pack::parse_header(pack_bytes)?;
    let cipher = Cipher::new(&*keys.open_sealed_object_key(&eph)?);
    let range = pack::parse_trailer(pack_bytes)?;
    let blob_end = range.start;
    let mut toc = pack_bytes[range].to_vec();
    cipher.open_in_place(&pack::TOC_NONCE, &pack_bytes[..pack::HEADER_LEN], &mut toc)?;
    pack::decode_toc(&toc, blob_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::MasterKey;
    use crate::pack::PackBuilder;

    #[test]
    fn built_pack_opens_and_detects_damage() {
        let m = MasterKey::generate().unwrap();
        let keys = m.derive(m.public_key()).unwrap();
        let mut b = PackBuilder::new(&keys, 1 << 20).unwrap();
        let data = b"<config>gateway</config>".repeat(20);
        let id = BlobId::Chunk(keys.chunk_id(&data));
        b.add(id, compress::encode(&data, 3), data.len() as u32);
        let other = b"second".to_vec();
        b.add(BlobId::Chunk(keys.chunk_id(&other)), compress::encode(&other, 3), 6);
        let p = b.finish();
        assert_eq!(p.id.0, *blake3::hash(p.bytes()).as_bytes());
        let toc = read_toc(&keys, p.bytes()).unwrap();
        assert_eq!(toc, p.entries);
        let cipher =
            Cipher::new(&keys.open_sealed_object_key(&pack::parse_header(p.bytes()).unwrap()).unwrap());
        let e = &toc[0];
        let sealed = p.bytes()[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        assert_eq!(open_blob(&keys, &cipher, e, sealed.clone()).unwrap(), data);
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        assert!(open_blob(&keys, &cipher, e, bad).is_err());
        // The same bytes presented as the other blob (swap attack) fail authentication.
        let swapped = Entry { id: toc[1].id, ..*e };
        assert!(open_blob(&keys, &cipher, &swapped, sealed).is_err());
        // A backup-only key wrote nothing it can read back.
        let writer = m.backup_only().derive(m.public_key()).unwrap();
        assert!(read_toc(&writer, p.bytes()).is_err());
    }
}
