//! Reads blobs out of stored packs: fetches the sealed frame, opens it with the pack's
//! key, decompresses, and recomputes the blob id from its bytes in the frame. That last
//! step is the end-to-end check: a blob is returned only if it is exactly what its id
//! names.
//!
//! A frame holding several blobs is usually read for all of them in a row (a restore
//! writes a file's chunks in order), so the last few such frames are kept opened.

use crate::backend::FileType;
use crate::compress;
use crate::crypto::aead::{counter_nonce, Cipher};
use crate::crypto::keys::{Binding, RepoKeys, PACK_KIND};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{self, Entry, MAX_BLOB, VERSION_1};
use crate::id::{BlobId, PackId};
use crate::index::{Index, Location};
use crate::repo::Repository;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The key of one pack and the version of the pack, which says how its frames are sealed.
pub struct PackKey {
    pub version: u8,
    pub cipher: Cipher,
}

impl PackKey {
    /// The key of the pack whose header is `header`.
    pub fn of_header(keys: &RepoKeys, header: &[u8]) -> Result<PackKey> {
        let h = pack::parse_header(header)?;
        let binding = if h.version >= pack::VERSION { Binding::Kind(PACK_KIND) } else { Binding::Legacy };
        let key = keys.open_sealed_object_key(&h.eph_pub, binding)?;
        Ok(PackKey { version: h.version, cipher: Cipher::new(&key) })
    }
}

/// Opened frames kept for the blobs still to be read from them: enough for a few
/// threads each reading a file, and at most a few MiB.
const OPEN_FRAMES: usize = 8;

type FrameKey = (PackId, u32);

/// Pack-key and frame cache over a repository; cheap to share between threads.
pub struct PackReader<'r> {
    repo: &'r Repository,
    keys: Mutex<HashMap<PackId, Arc<PackKey>>>,
    /// Recently opened frames of several blobs, newest last.
    frames: Mutex<VecDeque<(FrameKey, Arc<Vec<u8>>)>>,
}

impl<'r> PackReader<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        PackReader { repo, keys: Mutex::new(HashMap::new()), frames: Mutex::new(VecDeque::new()) }
    }

    /// The key of a pack, from its header (read once per pack).
    pub fn key(&self, pack: &PackId) -> Result<Arc<PackKey>> {
        if let Some(c) = self.keys.lock().expect("pack key cache lock").get(pack) {
            return Ok(c.clone());
        }
        let head =
            self.repo.backend().read_range(FileType::Pack, &pack.to_hex(), 0, pack::HEADER_LEN as u64)?;
        let key = Arc::new(
            PackKey::of_header(self.repo.keys(), &head).map_err(|e| e.wrap(format!("pack {pack}")))?,
        );
        self.keys.lock().expect("pack key cache lock").insert(*pack, key.clone());
        Ok(key)
    }

    /// Fetch, open and verify one blob.
    pub fn read_blob(&self, loc: &Location) -> Result<Vec<u8>> {
        let e = &loc.entry;
        let wrap = |err: Error| err.wrap(format!("pack {}", loc.pack));
        let cached = {
            let mut frames = self.frames.lock().expect("frame cache lock");
            let at = frames.iter().position(|(k, _)| *k == (loc.pack, e.offset));
            at.and_then(|i| frames.remove(i)).inspect(|f| frames.push_back(f.clone()))
        };
        let frame = match cached {
            Some((_, frame)) => frame,
            None => {
                let frame = self.fetch_frame(loc).map_err(wrap)?;
                if frame.len() == e.raw_length as usize {
                    // The frame is this blob alone: no copy, nothing to keep.
                    blob_of_frame(self.repo.keys(), e, &frame).map_err(wrap)?;
                    return Ok(frame);
                }
                let frame = Arc::new(frame);
                let mut frames = self.frames.lock().expect("frame cache lock");
                if frames.len() == OPEN_FRAMES {
                    frames.pop_front();
                }
                frames.push_back(((loc.pack, e.offset), frame.clone()));
                frame
            }
        };
        blob_of_frame(self.repo.keys(), e, &frame).map(<[u8]>::to_vec).map_err(wrap)
    }

    /// Fetch, open and verify a blob from the first of its indexed locations that holds it
    /// intact: a copy in a missing or damaged pack, or an entry that lies, is passed over
    /// for the next one. The error of the first location is returned when none holds it.
    pub fn read_indexed(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let mut first_error = None;
        for loc in index.locations(id) {
            match self.read_blob(&loc) {
                Ok(blob) => return Ok(blob),
                Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::Interrupted) => {
                    return Err(e)
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("{id} is not in the index; run `cairn check`"))
        }))
    }

    fn fetch_frame(&self, loc: &Location) -> Result<Vec<u8>> {
        let key = self.key(&loc.pack)?;
        let e = &loc.entry;
        let mut sealed = self.repo.backend().read_range(
            FileType::Pack,
            &loc.pack.to_hex(),
            e.offset as u64,
            e.length as u64,
        )?;
        if sealed.len() != e.length as usize {
            return Err(Error::corrupt(format!("{}: pack is truncated", e.id)));
        }
        open_frame(&key, e, &mut sealed)
    }
}

/// The most bytes a table of contents is read from a stored pack: a full 8 MiB pack of
/// the smallest frames holds about 24 MiB of entries.
const MAX_TOC: u64 = 64 << 20;

impl PackReader<'_> {
    /// The sealed table of contents of a stored pack, read with range reads (header,
    /// trailer, table): what the pack itself says it holds, whatever any index claims.
    pub fn stored_toc(&self, pack: &PackId) -> Result<Vec<Entry>> {
        let name = pack.to_hex();
        let backend = self.repo.backend();
        let size = backend.size(FileType::Pack, &name)?;
        let least = (pack::HEADER_LEN + crate::crypto::aead::TAG_LEN + 4 + pack::TRAILER_LEN) as u64;
        if size < least {
            return Err(Error::corrupt(format!("pack {pack} is too short to be a pack ({size} bytes)")));
        }
        let trailer = backend.read_range(FileType::Pack, &name, size - pack::TRAILER_LEN as u64, 8)?;
        if trailer.len() != 8 || &trailer[4..] != pack::TRAILER_MAGIC {
            return Err(Error::corrupt(format!("pack {pack}: trailer missing (truncated pack?)")));
        }
        let len = u64::from(u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")));
        let area = size - (pack::HEADER_LEN + pack::TRAILER_LEN) as u64;
        if len < (crate::crypto::aead::TAG_LEN + 4) as u64 || len > area || len > MAX_TOC {
            return Err(Error::corrupt(format!("pack {pack}: table of contents length does not fit")));
        }
        let toc_start = size - pack::TRAILER_LEN as u64 - len;
        let mut toc = backend.read_range(FileType::Pack, &name, toc_start, len)?;
        if toc.len() as u64 != len {
            return Err(Error::corrupt(format!("pack {pack} is truncated")));
        }
        let key = self.key(pack)?;
        let header = backend.read_range(FileType::Pack, &name, 0, pack::HEADER_LEN as u64)?;
        key.cipher
            .open_in_place(&pack::TOC_NONCE, &header, &mut toc)
            .map_err(|e| e.wrap(format!("pack {pack} table of contents")))?;
        pack::decode_toc(&toc, toc_start as usize, key.version).map_err(|e| e.wrap(format!("pack {pack}")))
    }
}

/// Decrypt (in place) and decompress the frame that holds `e`.
pub fn open_frame(key: &PackKey, e: &Entry, sealed: &mut [u8]) -> Result<Vec<u8>> {
    let aad = pack::frame_aad(key.version, &e.id);
    let encoded =
        key.cipher.open_slice(&counter_nonce(e.offset as u64), &aad, sealed).map_err(|err| err.wrap(e.id))?;
    // A version 1 frame is exactly its one blob.
    let limit = if key.version == VERSION_1 { e.raw_length } else { MAX_BLOB };
    let frame = compress::decode(encoded, limit as usize).map_err(|err| err.wrap(e.id))?;
    if frame.len() < e.end() || (key.version == VERSION_1 && frame.len() != e.end()) {
        return Err(Error::corrupt(format!("{}: length differs from the index", e.id)));
    }
    Ok(frame)
}

/// The bytes of blob `e` in its opened frame, once they hash to its id.
pub fn blob_of_frame<'f>(keys: &RepoKeys, e: &Entry, frame: &'f [u8]) -> Result<&'f [u8]> {
    let plain = frame
        .get(e.start as usize..e.end())
        .ok_or_else(|| Error::corrupt(format!("{}: length differs from the index", e.id)))?;
    let ok = match &e.id {
        BlobId::Chunk(c) => keys.chunk_id(plain) == *c,
        BlobId::Tree(t) => keys.tree_id(plain) == *t,
    };
    if !ok {
        return Err(Error::corrupt(format!("{}: content does not match its id", e.id)));
    }
    Ok(plain)
}

/// Read a whole pack's table of contents (for check and index repair).
pub fn read_toc(keys: &RepoKeys, pack_bytes: &[u8]) -> Result<Vec<Entry>> {
    let key = PackKey::of_header(keys, pack_bytes)?;
    let range = pack::parse_trailer(pack_bytes)?;
    let blob_end = range.start;
    let mut toc = pack_bytes[range].to_vec();
    key.cipher.open_in_place(&pack::TOC_NONCE, &pack_bytes[..pack::HEADER_LEN], &mut toc)?;
    pack::decode_toc(&toc, blob_end, key.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::MasterKey;
    use crate::pack::PackBuilder;

    /// Open a sealed frame and take blob `e` out of it, checked against its id.
    fn open_blob(keys: &RepoKeys, key: &PackKey, e: &Entry, sealed: &mut [u8]) -> Result<Vec<u8>> {
        let frame = open_frame(key, e, sealed)?;
        blob_of_frame(keys, e, &frame).map(<[u8]>::to_vec)
    }

    #[test]
    fn built_pack_opens_and_detects_damage() {
        let m = MasterKey::generate().unwrap();
        let keys = m.derive(m.public_key(), [0; 32]).unwrap();
        let mut b = PackBuilder::new(1 << 20);
        let data = b"<config>gateway</config>".repeat(20);
        let other = b"second".to_vec();
        let alone = b"third, in a frame of its own".to_vec();
        let (id, other_id) = (BlobId::Chunk(keys.chunk_id(&data)), BlobId::Chunk(keys.chunk_id(&other)));
        let both = [data.clone(), other.clone()].concat();
        b.add_frame(&keys, &[(id, data.len() as u32), (other_id, 6)], compress::encode(&both, 3)).unwrap();
        b.add(&keys, BlobId::Chunk(keys.chunk_id(&alone)), compress::encode(&alone, 3), alone.len() as u32)
            .unwrap();
        let p = b.finish();
        assert_eq!(p.id.0, *blake3::hash(p.bytes()).as_bytes());
        let toc = read_toc(&keys, p.bytes()).unwrap();
        assert_eq!(toc, p.entries);
        assert_eq!((toc[1].offset, toc[1].start), (toc[0].offset, data.len() as u32), "one frame, two blobs");
        assert_ne!(toc[2].offset, toc[0].offset);
        let key = PackKey::of_header(&keys, p.bytes()).unwrap();
        let sealed = |e: &Entry| p.bytes()[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        assert_eq!(open_blob(&keys, &key, &toc[0], &mut sealed(&toc[0])).unwrap(), data);
        assert_eq!(open_blob(&keys, &key, &toc[1], &mut sealed(&toc[1])).unwrap(), other);
        assert_eq!(open_blob(&keys, &key, &toc[2], &mut sealed(&toc[2])).unwrap(), alone);
        let mut bad = sealed(&toc[0]);
        bad[3] ^= 1;
        assert!(open_blob(&keys, &key, &toc[0], &mut bad).is_err());
        // An entry that names the wrong bytes of a frame, or another blob's id, fails
        // the re-hash; one that reaches past the frame fails its length.
        for wrong in [
            Entry { start: 1, ..toc[1] },
            Entry { id: toc[1].id, ..toc[0] },
            Entry { raw_length: 7, ..toc[1] },
            Entry { offset: toc[2].offset, length: toc[2].length, ..toc[0] },
        ] {
            assert!(open_blob(&keys, &key, &wrong, &mut sealed(&wrong)).is_err(), "{wrong:?}");
        }
        // A backup-only key wrote nothing it can read back.
        let writer = m.backup_only().derive(m.public_key(), [0; 32]).unwrap();
        assert!(read_toc(&writer, p.bytes()).is_err());
    }
}
