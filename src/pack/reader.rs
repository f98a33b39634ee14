//! Reads blobs out of stored packs: fetches the sealed frame, opens it with the pack's
//! key, decompresses, and recomputes the blob id from its bytes in the frame. That last
//! step is the end-to-end check: a blob is returned only if it is exactly what its id
//! names.
//!
//! A frame holding several blobs is kept opened for the blobs still to be read from it
//! (frame_cache.rs): the last few such frames, or, for a reader given its plan, each
//! frame until its last planned blob was read.

use super::frame_cache::{FrameCache, Lookup};
use super::prefetch::{Prefetch, FETCHERS};
use crate::backend::FileType;
use crate::compress;
use crate::crypto::aead::{counter_nonce, Cipher};
use crate::crypto::keys::{Binding, RepoKeys, PACK_KIND};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{self, Entry, PackClass, MAX_BLOB, VERSION_1};
use crate::id::{BlobId, PackId};
use crate::index::{Index, Location};
use crate::repo::Repository;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The key of one pack and the version of the pack, which says how its frames are sealed.
pub struct PackKey {
    pub version: u8,
    pub header: pack::Header,
    /// The bytes its tables are bound to: the header, and a moved-frames pack's origins.
    pub head: Vec<u8>,
    /// Opens the pack's frames and tables; a moved-frames pack's table only.
    pub cipher: Cipher,
    /// A moved-frames pack's origins, with their keys where this key reads data.
    moved: Option<MovedKeys>,
}

/// What opens the frames of a moved-frames pack: each frame's origin.
struct MovedKeys {
    origins: Vec<pack::Origin>,
    /// `None` for a key without the read secret (it reads the table, opens no frame).
    ciphers: Option<Vec<Cipher>>,
}

impl PackKey {
    /// The key of the pack whose first bytes are `head` (its header, and a moved-frames
    /// pack's origins after it): a data pack's needs the read secret, a references pack's
    /// and a moved-frames pack's table the maintenance secret.
    pub fn of_header(keys: &RepoKeys, head: &[u8]) -> Result<PackKey> {
        let h = pack::parse_header(head)?;
        let head = head
            .get(..pack::head_len(&h, head)?)
            .ok_or_else(|| Error::corrupt("moved-frames pack is truncated in its origins"))?;
        let (key, moved) = match h.class {
            PackClass::References => {
                (keys.open_maintenance_sealed_key(h.epoch, &h.eph_pub, pack::REFERENCES_PACK_KIND)?, None)
            }
            PackClass::Data => (data_pack_key(keys, &pack::Origin::of(&h))?, None),
            PackClass::Moved => {
                let origins = pack::parse_origins(&h, head)?;
                let ciphers = match origins.iter().map(|o| data_pack_key(keys, o)).collect::<Result<Vec<_>>>()
                {
                    Ok(k) => Some(k.iter().map(|k| Cipher::new(k)).collect()),
                    Err(e) if e.kind() == ErrorKind::PermissionDenied => None,
                    Err(e) => return Err(e),
                };
                let table = keys.open_maintenance_sealed_key(h.epoch, &h.eph_pub, pack::MOVED_TABLE_KIND)?;
                (table, Some(MovedKeys { origins, ciphers }))
            }
        };
        Ok(PackKey { version: h.version, header: h, head: head.to_vec(), cipher: Cipher::new(&key), moved })
    }

    /// The key of a version 5 data pack's maintenance table: the same plaintext as its
    /// table of contents, for the full and maintenance keys (a maintenance key opens no
    /// frame of a data pack). `None` for a pack without one.
    pub fn of_maintenance_table(keys: &RepoKeys, header: &[u8]) -> Result<Option<PackKey>> {
        let h = pack::parse_header(header)?;
        if h.tables() < 2 {
            return Ok(None);
        }
        let key = keys.open_maintenance_sealed_key(h.epoch, &h.eph_pub, pack::MAINTENANCE_TABLE_KIND)?;
        let head = header[..pack::HEADER_LEN].to_vec();
        Ok(Some(PackKey { version: h.version, header: h, head, cipher: Cipher::new(&key), moved: None }))
    }
}

/// The key of the frames of a data pack sealed as `origin` says. Needs the read secret.
fn data_pack_key(keys: &RepoKeys, origin: &pack::Origin) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let binding = if origin.version >= pack::VERSION { Binding::Kind(PACK_KIND) } else { Binding::Legacy };
    keys.open_sealed_object_key(origin.epoch, &origin.eph_pub, binding)
}

/// Which sealed table of a pack to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The table of contents, under the pack's key.
    Contents,
    /// A version 5 data pack's maintenance table.
    Maintenance,
}

/// Pack-key and frame cache over a repository; cheap to share between threads.
pub struct PackReader<'r> {
    repo: &'r Repository,
    keys: Mutex<HashMap<PackId, Arc<PackKey>>>,
    /// Opened frames of several blobs.
    frames: FrameCache,
    /// Frames fetched and opened so far.
    opened: AtomicU64,
    /// Packs fetched ahead, for a plan read from a remote store.
    ahead: OnceLock<Prefetch>,
}

impl<'r> PackReader<'r> {
    /// The repository it reads.
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    pub fn new(repo: &'r Repository) -> Self {
        PackReader {
            repo,
            keys: Mutex::new(HashMap::new()),
            frames: FrameCache::default(),
            opened: AtomicU64::new(0),
            ahead: OnceLock::new(),
        }
    }

    /// Tell the reader every blob it is about to read (a blob read twice is named twice),
    /// so that each frame is kept opened until its last blob was read. From a remote store
    /// the plan's order is also the order in which [`PackReader::fetching_ahead`] fetches
    /// packs, so it should be about the order of the reads.
    pub fn plan_reads(&self, reads: impl IntoIterator<Item = Location>) {
        let reads: Vec<Location> = reads.into_iter().collect();
        self.frames.plan(reads.iter().map(|l| (l.pack, l.entry.offset)));
        if self.repo.backend().is_remote() {
            let _ =
                self.ahead.set(Prefetch::new(reads.iter().map(|l| (l.pack, l.entry.offset, l.entry.length))));
        }
    }

    /// Take planned reads out of the plan: a file needs them no more (it was already at
    /// the target), so frames and packs are not kept, or fetched, for them.
    pub fn unplan(&self, reads: impl IntoIterator<Item = Location>) {
        let reads: Vec<(PackId, u32)> = reads.into_iter().map(|l| (l.pack, l.entry.offset)).collect();
        self.frames.unplan(reads.iter().copied());
        if let Some(ahead) = self.ahead.get() {
            ahead.unplan(reads);
        }
    }

    /// Run `work` (the planned reads) while fetcher threads fetch the plan's packs ahead
    /// of it (`prefetch.rs`); without a plan from a remote store, just run it.
    pub fn fetching_ahead<T>(&self, work: impl FnOnce() -> T) -> T {
        let Some(ahead) = self.ahead.get() else { return work() };
        /// Stops the fetchers however `work` ends, a panic included, so the scope can end.
        struct StopOnDrop<'a>(&'a Prefetch);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(ahead);
            for _ in 0..FETCHERS {
                ahead.fetcher_starting();
                let fetcher = || ahead.run_fetcher(|pack, offset, len| self.fetch_piece(pack, offset, len));
                if std::thread::Builder::new().name("prefetch".into()).spawn_scoped(scope, fetcher).is_err() {
                    ahead.fetcher_ended(); // fewer fetchers, or none: the readers read by frame
                }
            }
            work()
        })
    }

    /// A range of a pack, for [`Prefetch`]; the pack's key comes from the header in its
    /// first piece, so it costs no request of its own.
    fn fetch_piece(&self, pack: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let bytes = self.repo.backend().read_range_direct(FileType::Pack, &pack.to_hex(), offset, len)?;
        let known = || self.keys.lock().expect("pack key cache lock").contains_key(pack);
        if offset == 0 && bytes.len() >= pack::HEADER_LEN && !known() {
            // A header that does not open is left for `key` to read again and report.
            if let Ok(key) = PackKey::of_header(self.repo.keys(), &bytes) {
                self.keys.lock().expect("pack key cache lock").insert(*pack, Arc::new(key));
            }
        }
        Ok(bytes)
    }

    /// A range of a pack: past the cache of whole packs while packs are fetched ahead
    /// (that cache would fetch each pack once more), through it before and after.
    fn read_pack_range(&self, pack: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let backend = self.repo.backend();
        match self.ahead.get().is_some_and(Prefetch::running) {
            true => backend.read_range_direct(FileType::Pack, &pack.to_hex(), offset, len),
            false => backend.read_range(FileType::Pack, &pack.to_hex(), offset, len),
        }
    }

    /// How many frames were fetched and opened.
    pub fn frames_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The key of a pack, from its header (read once per pack).
    pub fn key(&self, pack: &PackId) -> Result<Arc<PackKey>> {
        if let Some(c) = self.keys.lock().expect("pack key cache lock").get(pack) {
            return Ok(c.clone());
        }
        let wrap = |e: Error| e.wrap(format!("pack {pack}"));
        let (_, head) = pack::read_head(|len| self.read_pack_range(pack, 0, len as u64)).map_err(wrap)?;
        let key = Arc::new(PackKey::of_header(self.repo.keys(), &head).map_err(wrap)?);
        self.keys.lock().expect("pack key cache lock").insert(*pack, key.clone());
        Ok(key)
    }

    /// Fetch, open and verify one blob.
    pub fn read_blob(&self, loc: &Location) -> Result<Vec<u8>> {
        let e = &loc.entry;
        let wrap = |err: Error| err.wrap(format!("pack {}", loc.pack));
        let key = (loc.pack, e.offset);
        let frame = match self.frames.get(key) {
            Lookup::Kept(frame) => frame,
            Lookup::Open(claim) => {
                let frame = self.fetch_frame(loc).map_err(wrap)?;
                self.opened.fetch_add(1, Ordering::Relaxed);
                if frame.len() == e.raw_length as usize {
                    // The frame is this blob alone: no copy, nothing to keep.
                    blob_of_frame(self.repo.keys(), e, &frame).map_err(wrap)?;
                    return Ok(frame);
                }
                let frame = Arc::new(frame);
                claim.fill(frame.clone());
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
        let e = &loc.entry;
        let ahead = self.ahead.get().and_then(|a| a.frame(&loc.pack, e.offset, e.length));
        let mut sealed = match ahead {
            Some(frame) => frame,
            None => self.read_pack_range(&loc.pack, e.offset as u64, e.length as u64)?,
        };
        let key = self.key(&loc.pack)?;
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
        self.stored_table(pack, Table::Contents).map(|t| t.expect("every pack has a table of contents"))
    }

    /// A sealed table of a stored pack, read with range reads (header, trailer, table);
    /// `None` when the pack has no such table (a maintenance table before version 5).
    pub fn stored_table(&self, pack: &PackId, which: Table) -> Result<Option<Vec<Entry>>> {
        let name = pack.to_hex();
        let backend = self.repo.backend();
        let size = backend.size(FileType::Pack, &name)?;
        let least = (pack::HEADER_LEN + crate::crypto::aead::TAG_LEN + 4 + pack::TRAILER_LEN) as u64;
        if size < least {
            return Err(Error::corrupt(format!("pack {pack} is too short to be a pack ({size} bytes)")));
        }
        let (key, nonce) = match which {
            Table::Contents => (self.key(pack)?, pack::TOC_NONCE),
            Table::Maintenance => match PackKey::of_maintenance_table(
                self.repo.keys(),
                &backend.read_range(FileType::Pack, &name, 0, pack::HEADER_LEN as u64)?,
            )
            .map_err(|e| e.wrap(format!("pack {pack}")))?
            {
                Some(k) => (Arc::new(k), pack::MAINTENANCE_TABLE_NONCE),
                None => return Ok(None),
            },
        };
        let trailer = backend.read_range(FileType::Pack, &name, size - pack::TRAILER_LEN as u64, 8)?;
        if trailer.len() != 8 || &trailer[4..] != pack::TRAILER_MAGIC {
            return Err(Error::corrupt(format!("pack {pack}: trailer missing (truncated pack?)")));
        }
        let len = u64::from(u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")));
        let tables = key.header.tables();
        let toc = pack::table_range(size, len, tables)
            .ok()
            .filter(|_| len <= MAX_TOC)
            .ok_or_else(|| Error::corrupt(format!("pack {pack}: table of contents length does not fit")))?;
        let frames_end = toc.start - len * (tables as u64 - 1);
        let at = if which == Table::Maintenance { frames_end } else { toc.start };
        let mut table = backend.read_range(FileType::Pack, &name, at, len)?;
        if table.len() as u64 != len {
            return Err(Error::corrupt(format!("pack {pack} is truncated")));
        }
        key.cipher
            .open_in_place(&nonce, &key.head, &mut table)
            .map_err(|e| e.wrap(format!("pack {pack} {which:?} table")))?;
        pack::decode_toc(&table, frames_end as usize, &key.header)
            .map(Some)
            .map_err(|e| e.wrap(format!("pack {pack}")))
    }
}

/// Decrypt (in place) and decompress the frame that holds `e`: `sealed` are the bytes
/// `e` names, which in a moved-frames pack start with the frame's prefix.
pub fn open_frame(key: &PackKey, e: &Entry, sealed: &mut [u8]) -> Result<Vec<u8>> {
    let (cipher, version, offset, sealed) = match &key.moved {
        None => (&key.cipher, key.version, e.offset, sealed),
        Some(m) => {
            let (o, source) = pack::parse_prefix(sealed, m.origins.len()).map_err(|err| err.wrap(e.id))?;
            let ciphers = m.ciphers.as_ref().ok_or_else(|| {
                Error::new(ErrorKind::PermissionDenied, "this key cannot read stored data; use a full key")
            })?;
            (&ciphers[o], m.origins[o].version, source, &mut sealed[pack::PREFIX_LEN..])
        }
    };
    let aad = pack::frame_aad(version, &e.id);
    let encoded =
        cipher.open_slice(&counter_nonce(offset as u64), &aad, sealed).map_err(|err| err.wrap(e.id))?;
    // A version 1 frame is exactly its one blob.
    let limit = if version == VERSION_1 { e.raw_length } else { MAX_BLOB };
    let frame = compress::decode(encoded, limit as usize).map_err(|err| err.wrap(e.id))?;
    if frame.len() < e.end() || (version == VERSION_1 && frame.len() != e.end()) {
        return Err(Error::corrupt(format!("{}: length differs from the index", e.id)));
    }
    Ok(frame)
}

/// The bytes of blob `e` in its opened frame, once they hash to its id.
pub fn blob_of_frame<'f>(keys: &RepoKeys, e: &Entry, frame: &'f [u8]) -> Result<&'f [u8]> {
    let plain = frame
        .get(e.start as usize..e.end())
        .ok_or_else(|| Error::corrupt(format!("{}: length differs from the index", e.id)))?;
    if !keys.names(&e.id, plain) {
        return Err(Error::corrupt(format!("{}: content does not match its id", e.id)));
    }
    Ok(plain)
}

/// Read a whole pack's table of contents (for check and index repair).
pub fn read_toc(keys: &RepoKeys, pack_bytes: &[u8]) -> Result<Vec<Entry>> {
    read_table(pack_bytes, &PackKey::of_header(keys, pack_bytes)?, Table::Contents)
}

/// Read one of a whole pack's tables with its key (`PackKey::of_header` for the table of
/// contents, `of_maintenance_table` for the maintenance table).
pub fn read_table(pack_bytes: &[u8], key: &PackKey, which: Table) -> Result<Vec<Entry>> {
    let tables = key.header.tables();
    let range = pack::parse_trailer(pack_bytes, tables)?;
    let frames_end = range.start - range.len() * (tables - 1);
    let (at, nonce) = match which {
        Table::Contents => (range.start, pack::TOC_NONCE),
        Table::Maintenance => (frames_end, pack::MAINTENANCE_TABLE_NONCE),
    };
    let mut table = pack_bytes[at..at + range.len()].to_vec();
    key.cipher.open_in_place(&nonce, &key.head, &mut table)?;
    pack::decode_toc(&table, frames_end, &key.header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Encoding;
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
        let mut b = PackBuilder::new(1 << 20, None);
        let data = b"<config>gateway</config>".repeat(20);
        let other = b"second".to_vec();
        let alone = b"third, in a frame of its own".to_vec();
        let (id, other_id) = (BlobId::Chunk(keys.chunk_id(&data)), BlobId::Chunk(keys.chunk_id(&other)));
        let both = [data.clone(), other.clone()].concat();
        b.add_frame(
            &keys,
            &[(id, data.len() as u32), (other_id, 6)],
            &Encoding::Encoded(compress::encode(&both, 3)),
        )
        .unwrap();
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

    /// Blobs read across more frames than the unplanned cache keeps, in an order that
    /// returns to each frame after the others (as files of one frame spread over a tree
    /// do): each frame is opened once per read without a plan, once in all with one.
    #[test]
    fn a_planned_reader_opens_each_frame_once() {
        use crate::repo::InitOptions;
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap();
        // Three blobs of 300 KiB fill a frame: 12 frames of 3, 36 MiB of frames.
        let blob =
            |i: usize| format!("<policy id='{i}' rule='allow'/>\n").repeat(300 << 10 >> 5).into_bytes();
        let blobs: Vec<Vec<u8>> = (0..36).map(blob).collect();
        let ids = crate::pack::writer::store_chunks(&repo, &blobs);
        let index = Index::load(&repo).unwrap();
        let locs: Vec<Location> = ids.iter().map(|id| index.get(id).unwrap()).collect();
        let frames: std::collections::HashSet<u32> = locs.iter().map(|l| l.entry.offset).collect();
        assert_eq!(frames.len(), 12, "three blobs a frame");
        // First blob of every frame, then every second, then every third.
        let order: Vec<usize> = (0..3).flat_map(|k| (0..12).map(move |f| f * 3 + k)).collect();
        let read_all = |reader: &PackReader| {
            for &i in &order {
                assert_eq!(reader.read_blob(&locs[i]).unwrap(), blobs[i]);
            }
            reader.frames_opened()
        };
        assert_eq!(read_all(&PackReader::new(&repo)), 36, "unplanned: evicted before each return");
        let planned = PackReader::new(&repo);
        planned.plan_reads(order.iter().map(|&i| locs[i]));
        assert_eq!(read_all(&planned), 12);
        // Every planned read done, nothing is kept.
        assert!(planned.frames.is_empty());
    }
}
