//! The index cache file: the index's entries sorted on this machine's disk, so that a
//! command maps them instead of loading every index file into memory.
//!
//! Layout (all integers little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic "CRNI" |
//! | 4..8 | version, 1 |
//! | 8..40 | the repository's id |
//! | 40..72 | a random nonce of this file |
//! | 72..80 | n, the number of entries |
//! | 80..84 | bucket bits |
//! | 84..88 | zero |
//! | 88..88+31n | the entries (31 bytes each, as in memory), sorted |
//! | then | u32 P, then P packs (32-byte id, 1 byte: 1 if its entries are included) |
//! | then | u32 F, then F index files (32-byte id, 1 byte attested, u32 S and S superseded ids, u32 K and K pack numbers) |
//! | then | the bucket table, 2^bits + 1 u32 |
//! | then | one 16-byte MAC per page of 128 entries (`table::page_mac`) |
//! | last 32 | keyed BLAKE3 of bytes 0..88 and everything after the entries before it |
//!
//! The key comes from the repository key (`RepoKeys::index_cache_key`), so only a holder of
//! it makes a file that checks. The header, packs, index files, bucket table and page MACs
//! are read and checked when the file is opened; the entries when a lookup first reads
//! their page. Nothing is synced: a file cut short by a crash fails its check and is built
//! again.

use super::table::{self, PageCheck, Table, PAGE_MAC_LEN, PAGE_SLOTS};
use super::{bucket_of, Slot};
use crate::error::{Error, Result};
use crate::id::{IndexId, PackId};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CRNI";
const VERSION: u32 = 1;
const HEADER: usize = 88;
const SLOT: usize = std::mem::size_of::<Slot>();
/// The largest part after the entries that is read into memory: a repository of a million
/// times more packs than a large one still fits.
const MAX_TAIL: u64 = 1 << 30;

/// What an index file contributed when the cache file was written: enough to tell, without
/// reading it again, which packs stay live while it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FileRecord {
    pub id: IndexId,
    pub attested: bool,
    pub supersedes: Vec<IndexId>,
    /// Numbers of the packs it names, in the cache file's pack list.
    pub packs: Vec<u32>,
}

/// An opened, checked cache file.
pub(super) struct Cached {
    pub packs: Vec<PackId>,
    /// Whether each pack's entries are in the table (it was live and stored).
    pub included: Vec<bool>,
    pub files: Vec<FileRecord>,
    pub table: Table,
}

/// Open and check the cache file at `path`; `None` if there is none, or if it does not
/// check (then it is removed).
pub(super) fn open(path: &Path, key: &Zeroizing<[u8; 32]>, repo_id: &[u8; 32]) -> Option<Cached> {
    let file = std::fs::File::open(path).ok()?;
    match read(file, path, key, repo_id) {
        Ok(c) => Some(c),
        Err(_) => {
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn read(
    mut file: std::fs::File,
    path: &Path,
    key: &Zeroizing<[u8; 32]>,
    repo_id: &[u8; 32],
) -> Result<Cached> {
    let bad = |what: &str| Error::corrupt(format!("index cache file: {what}"));
    let size = file.metadata().map_err(io)?.len();
    let mut header = [0u8; HEADER];
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.read_exact(&mut header).map_err(io)?;
    if &header[..4] != MAGIC || u32le(&header[4..8]) != VERSION || header[8..40] != repo_id[..] {
        return Err(bad("not this repository's, or another version"));
    }
    let nonce: [u8; 32] = header[40..72].try_into().expect("32 bytes");
    let n = u64::from_le_bytes(header[72..80].try_into().expect("8 bytes"));
    let bucket_bits = u32le(&header[80..84]);
    if bucket_bits > 20 || n > u32::MAX as u64 {
        return Err(bad("header out of range"));
    }
    let tail_start = HEADER as u64 + n * SLOT as u64;
    if size < tail_start + 32 || size - tail_start > MAX_TAIL {
        return Err(bad("size does not match the header"));
    }
    file.seek(SeekFrom::Start(tail_start)).map_err(io)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io)?;
    let (body, mac) = tail.split_at(tail.len() - 32);
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&header).update(body);
    if h.finalize() != blake3::Hash::from(<[u8; 32]>::try_from(mac).expect("32 bytes")) {
        return Err(bad("does not check"));
    }
    // Authenticated from here; still parsed with every bound checked.
    let mut r = Reader(body);
    let p = r.u32()? as usize;
    let mut packs = Vec::with_capacity(p.min(body.len() / 33));
    let mut included = Vec::with_capacity(packs.capacity());
    for _ in 0..p {
        packs.push(PackId(r.array()?));
        included.push(r.take(1)?[0] == 1);
    }
    let f = r.u32()? as usize;
    let mut files = Vec::with_capacity(f.min(body.len() / 41));
    for _ in 0..f {
        let id = IndexId(r.array()?);
        let attested = r.take(1)?[0] == 1;
        let s = r.u32()? as usize;
        let supersedes = (0..s).map(|_| r.array().map(IndexId)).collect::<Result<Vec<_>>>()?;
        let k = r.u32()? as usize;
        let file_packs = (0..k).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
        if file_packs.iter().any(|&i| i as usize >= p) {
            return Err(bad("an index file names a pack out of range"));
        }
        files.push(FileRecord { id, attested, supersedes, packs: file_packs });
    }
    let buckets = (0..(1usize << bucket_bits) + 1).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
    if buckets[0] != 0 || buckets.windows(2).any(|w| w[0] > w[1]) || *buckets.last().expect("one") as u64 != n
    {
        return Err(bad("bucket table does not fit the entries"));
    }
    let pages = (n as usize).div_ceil(PAGE_SLOTS);
    let macs = (0..pages).map(|_| r.array::<PAGE_MAC_LEN>()).collect::<Result<Vec<_>>>()?;
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if packs.len() > super::MAX_PACKS {
        return Err(bad("more packs than the index can name"));
    }
    let map = super::mapping::map(&file).map_err(io)?;
    if (map.len() as u64) < tail_start {
        return Err(bad("shorter than its header says"));
    }
    // Lookups jump about: read no pages ahead of the one asked for.
    let _ = map.advise(memmap2::Advice::Random);
    let check = PageCheck::new(key.clone(), nonce, macs, path.to_path_buf());
    let table = Table::mapped(map, HEADER, n as usize, buckets, bucket_bits, check);
    // Pack numbers in the entries are checked when the entries are read: each lookup's
    // page is checked first, and a checked page was written with numbers below P.
    Ok(Cached { packs, included, files, table })
}

/// The fuzz target `index_cache`: `data[1..]` written as a cache file in `dir` and
/// opened. If bit 0 of `data[0]` is set, the file is first sealed with a fixed key: its
/// page MACs made over the entries the header counts and placed where the layout puts
/// them, and its MAC appended, so the parser behind the checks is reached; otherwise it
/// stays as it is, as a planted file would. The repository is the one the file names.
/// Every entry is then looked up. Returns how many lookups found their entry; panics
/// only if a check fails.
pub fn open_for_fuzzing(data: &[u8], dir: &Path) -> usize {
    let key = Zeroizing::new([7u8; 32]);
    let Some((&seal, file)) = data.split_first() else {
        return 0;
    };
    let mut file = file.to_vec();
    let repo_id: [u8; 32] = file.get(8..40).map_or([0; 32], |b| b.try_into().expect("32 bytes"));
    if seal & 1 == 1 && file.len() >= HEADER {
        let nonce: [u8; 32] = file[40..72].try_into().expect("32 bytes");
        let n = u64::from_le_bytes(file[72..80].try_into().expect("8 bytes"));
        let entries_end = (n as usize).checked_mul(SLOT).and_then(|b| b.checked_add(HEADER));
        if let Some(end) = entries_end.filter(|&e| e <= file.len()) {
            let pages = (n as usize).div_ceil(PAGE_SLOTS);
            if let Some(at) = (file.len() - end).checked_sub(pages * PAGE_MAC_LEN).map(|free| end + free) {
                for page in 0..pages {
                    let first = HEADER + page * PAGE_SLOTS * SLOT;
                    let mac = table::page_mac(
                        &key,
                        &nonce,
                        page as u64,
                        &file[first..end.min(first + PAGE_SLOTS * SLOT)],
                    );
                    file[at + page * PAGE_MAC_LEN..][..PAGE_MAC_LEN].copy_from_slice(&mac);
                }
            }
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(&file[..HEADER]).update(&file[end..]);
            file.extend_from_slice(h.finalize().as_bytes());
        }
    }
    let path = dir.join("index-cache");
    if std::fs::write(&path, &file).is_err() {
        return 0;
    }
    let Some(cached) = open(&path, &key, &repo_id) else {
        return 0;
    };
    let counted = u64::from_le_bytes(file[72..80].try_into().expect("a file that opened has a header"));
    assert_eq!(cached.table.len() as u64, counted, "the table holds the entries the header counts");
    assert_eq!(cached.packs.len(), cached.included.len());
    assert!(cached.files.iter().all(|f| f.packs.iter().all(|&p| (p as usize) < cached.packs.len())));
    let mut found = 0;
    for slot in cached.table.checked_iter() {
        let Ok(slot) = slot else { break };
        let (start, end) = cached.table.range_of(&slot.prefix);
        assert!(start <= end && end <= cached.table.len());
        found += usize::from(cached.table.slots()[start..end].iter().any(|s| s.prefix == slot.prefix));
    }
    found
}

/// A failure of this machine's cache folder: the index then loads without the cache.
fn io(e: std::io::Error) -> Error {
    Error::io("index cache file".to_string(), e)
}

fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::corrupt("index cache file: cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32le(self.take(4)?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

/// Sorted entries to merge into a cache file.
pub(super) type Source<'a> = Box<dyn Iterator<Item = Result<Slot>> + 'a>;

/// What a new cache file holds besides its entries.
pub(super) struct Contents<'a> {
    pub packs: &'a [PackId],
    pub included: &'a [bool],
    pub files: &'a [FileRecord],
}

/// Write a cache file at `path` from sorted `sources` (entries of packs `keep` refuses
/// are left out, an entry in two sources once), through a temporary file renamed into
/// place; returns it opened. `at_most` bounds the number of entries (it sizes the bucket
/// table).
pub(super) fn write(
    path: &Path,
    key: &Zeroizing<[u8; 32]>,
    repo_id: &[u8; 32],
    contents: Contents<'_>,
    sources: Vec<Source<'_>>,
    keep: &dyn Fn(u32) -> bool,
    at_most: usize,
) -> Result<Cached> {
    let (tmp, file) = create_beside(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut nonce = [0u8; 32];
    crate::crypto::keys::fill_random(&mut nonce)?;
    out.write_all(&[0u8; HEADER]).map_err(io)?;

    let bucket_bits = table::bucket_bits_for(at_most);
    let mut buckets = vec![0u32; (1usize << bucket_bits) + 1];
    let mut macs: Vec<[u8; PAGE_MAC_LEN]> = Vec::new();
    let mut page: Vec<u8> = Vec::with_capacity(PAGE_SLOTS * SLOT);
    let mut n = 0u64;
    for slot in merged(sources)? {
        let slot = slot?;
        if !keep(slot.pack_kind() >> 1) {
            continue;
        }
        buckets[bucket_of(&slot.prefix, bucket_bits) + 1] += 1;
        let bytes = &slot.to_bytes();
        out.write_all(bytes).map_err(io)?;
        page.extend_from_slice(bytes);
        n += 1;
        if page.len() == PAGE_SLOTS * SLOT {
            macs.push(table::page_mac(key, &nonce, macs.len() as u64, &page));
            page.clear();
        }
    }
    if !page.is_empty() {
        macs.push(table::page_mac(key, &nonce, macs.len() as u64, &page));
    }
    table::accumulate(&mut buckets);

    let mut tail = Vec::new();
    tail.extend_from_slice(&(contents.packs.len() as u32).to_le_bytes());
    for (p, inc) in contents.packs.iter().zip(contents.included) {
        tail.extend_from_slice(&p.0);
        tail.push(u8::from(*inc));
    }
    tail.extend_from_slice(&(contents.files.len() as u32).to_le_bytes());
    for f in contents.files {
        tail.extend_from_slice(&f.id.0);
        tail.push(u8::from(f.attested));
        tail.extend_from_slice(&(f.supersedes.len() as u32).to_le_bytes());
        for s in &f.supersedes {
            tail.extend_from_slice(&s.0);
        }
        tail.extend_from_slice(&(f.packs.len() as u32).to_le_bytes());
        for p in &f.packs {
            tail.extend_from_slice(&p.to_le_bytes());
        }
    }
    for b in &buckets {
        tail.extend_from_slice(&b.to_le_bytes());
    }
    for m in &macs {
        tail.extend_from_slice(m);
    }
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..40].copy_from_slice(repo_id);
    header[40..72].copy_from_slice(&nonce);
    header[72..80].copy_from_slice(&n.to_le_bytes());
    header[80..84].copy_from_slice(&bucket_bits.to_le_bytes());
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&header).update(&tail);
    tail.extend_from_slice(h.finalize().as_bytes());
    out.write_all(&tail).map_err(io)?;
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    // Read back through the same handle: a file another process renames into place
    // meanwhile is its own, made from what it listed.
    let cached = read(file, path, key, repo_id)?;
    std::fs::rename(tmp.path(), path).map_err(io)?;
    tmp.keep();
    Ok(cached)
}

/// A new private file beside `path` (its folder made private if missing), removed when
/// the returned guard drops unless it is kept. Leftovers of killed processes beside
/// `path` are removed first.
fn create_beside(path: &Path) -> Result<(Temporary, std::fs::File)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().ok_or_else(|| Error::invalid("index cache path has no folder"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    remove_leftovers(path);
    let tmp_path = temporary_path(path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .map_err(io)?;
    // Locked while this process may use it, so no other process takes it for a leftover.
    let lock = file.try_clone().map_err(io)?;
    let tmp = Temporary { path: Some(tmp_path), lock };
    rustix::fs::flock(&tmp.lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
    Ok((tmp, file))
}

/// A temporary left beside `path` is taken for a killed process's when nobody holds its
/// lock and it was not written to for this long (a new one is locked a moment after it is
/// made). At 50 million blobs one is 1.6 GB, so kills must not let them pile up.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(60);

fn remove_leftovers(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let mut prefix = name.as_bytes().to_vec();
    prefix.extend_from_slice(b".tmp-");
    let Ok(listing) = std::fs::read_dir(dir) else { return };
    for entry in listing.flatten() {
        if !entry.file_name().as_bytes().starts_with(&prefix) {
            continue;
        }
        let Ok(f) = std::fs::File::open(entry.path()) else { continue };
        let age = f.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default());
        let unused = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
        if unused && age.is_ok_and(|a| a >= LEFTOVER_AGE) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = crate::crypto::keys::fill_random(&mut r);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", crate::id::hex_encode(&r)));
    path.with_file_name(name)
}

/// A file removed when dropped (a cache file not finished, a run), locked meanwhile.
pub(super) struct Temporary {
    /// `None` once kept.
    path: Option<PathBuf>,
    lock: std::fs::File,
}

impl Temporary {
    fn path(&self) -> &Path {
        self.path.as_deref().expect("not kept yet")
    }

    /// The file was renamed into place: leave it, and let go of its lock (the handle it
    /// was written through may stay open, and shares the lock).
    fn keep(mut self) {
        let _ = rustix::fs::flock(&self.lock, rustix::fs::FlockOperation::Unlock);
        self.path = None;
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The entries of sorted sources in order, an entry that several hold once.
fn merged(sources: Vec<Source<'_>>) -> Result<impl Iterator<Item = Result<Slot>> + '_> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut sources = sources;
    let mut heap = BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(slot) = s.next() {
            heap.push(Reverse((slot?, i)));
        }
    }
    let mut last: Option<Slot> = None;
    Ok(std::iter::from_fn(move || loop {
        let Reverse((slot, i)) = heap.pop()?;
        match sources[i].next() {
            Some(Ok(next)) => heap.push(Reverse((next, i))),
            Some(Err(e)) => return Some(Err(e)),
            None => {}
        }
        if last == Some(slot) {
            continue;
        }
        last = Some(slot);
        return Some(Ok(slot));
    }))
}

/// A run of sorted entries spilled to a file while a large index is loaded.
pub(super) struct Run {
    file: Temporary,
    len: usize,
}

impl Run {
    /// Write sorted entries to a new file beside `path`.
    pub(super) fn write(path: &Path, slots: &[Slot]) -> Result<Run> {
        let (file, f) = create_beside(path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        for s in slots {
            out.write_all(&s.to_bytes()).map_err(io)?;
        }
        out.flush().map_err(io)?;
        Ok(Run { file, len: slots.len() })
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Its entries, read back in order. The run was written by this process a moment ago,
    /// to a private folder; a run that comes back shorter fails.
    pub(super) fn source(&self) -> Result<Source<'_>> {
        let mut r =
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(self.file.path()).map_err(io)?);
        let mut left = self.len;
        Ok(Box::new(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut b = [0u8; SLOT];
            Some(r.read_exact(&mut b).map(|()| Slot::from_bytes(b)).map_err(io))
        })))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    pub const HEADER: usize = super::HEADER;

    /// A temporary whose process was killed (nobody holds its lock, not written to for
    /// a minute) is removed when the next one is made beside it; one in use, or just
    /// made, stays.
    #[test]
    fn leftovers_of_killed_builds_are_removed_and_files_in_use_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let old = std::time::SystemTime::now() - 2 * LEFTOVER_AGE;
        let left = |name: &str, age: std::time::SystemTime| {
            let p = dir.path().join(name);
            let f = std::fs::File::create(&p).unwrap();
            f.set_modified(age).unwrap();
            (p, f)
        };
        let (killed, _) = left("index.tmp-0000000000000001", old);
        let (fresh, _) = left("index.tmp-0000000000000002", std::time::SystemTime::now());
        let (in_use, held) = left("index.tmp-0000000000000003", old);
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let (other, _) = left("other.tmp-0000000000000004", old);
        // A temporary of this process is locked: another process would leave it alone.
        let (mine, _f) = create_beside(&path).unwrap();
        let probe = std::fs::File::open(mine.path()).unwrap();
        assert!(rustix::fs::flock(&probe, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err());

        assert!(!killed.exists(), "a killed build's file stays");
        assert!(fresh.exists() && in_use.exists() && other.exists());
        let mine_at = mine.path().to_path_buf();
        mine.keep();
        assert!(mine_at.exists(), "a kept file stays");
        assert!(rustix::fs::flock(&probe, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok());
        let (dropped, _f) = create_beside(&path).unwrap();
        let dropped_at = dropped.path().to_path_buf();
        drop(dropped);
        assert!(!dropped_at.exists(), "a temporary dropped unkept goes");
        drop(held);
    }
}
