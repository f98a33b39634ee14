//! Loading the index from a repository's index files, trusting them no further than they
//! deserve.
//!
//! Index files are shared objects: anyone holding the write root can write one (a
//! backup-only key, a sibling repository of old), and anyone with write access to the
//! storage can put back an old genuine one. So:
//! - an entry counts only if its pack is in the listing of stored packs, so a replayed
//!   index file whose packs prune deleted makes nothing look stored that is not;
//! - `supersedes` is honoured only in files a full key attested (see
//!   format-spec/objects.md): prune and repair write them, and they name every pack that
//!   stays; a file that claims to supersede others without that attestation supersedes
//!   nothing;
//! - a pack named only by superseded files does not count;
//! - an index file that does not open (damaged, planted, or another repository's) is left
//!   out and reported, never a reason to stop: its packs' blobs are then stored again by
//!   backups, and prune reads those packs' own tables. An index file written by a newer
//!   cairn stops the load instead (it may name packs this cairn cannot judge).
//!
//! The pack listing is taken before the index files are read: a pack a concurrent backup
//! writes in between is then left out (and its blobs stored again), never the reverse.

use super::cache_file::FileRecord;
use super::{Index, IndexBuilder};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType, WrittenBy};
use crate::format::index::IndexFile;
use crate::format::pack::Entry;
use crate::id::{IndexId, PackId};
use crate::repo::Repository;
use std::collections::{HashMap, HashSet};

/// Pack entries loaded from index files (each pack once, every pack a live index file
/// names, stored or not), with the index files that were damaged.
pub type PackLists = (HashMap<PackId, Vec<Entry>>, Vec<(String, Error)>);

/// What loading the index found besides the entries.
#[derive(Debug, Default)]
pub struct IndexLoad {
    /// Every index file read, superseded ones included.
    pub files: Vec<IndexId>,
    /// Files an attested index file supersedes: their entries count only for packs a live
    /// file names too.
    pub superseded: Vec<IndexId>,
    /// Packs an index file names that are not stored: their entries were dropped.
    pub missing_packs: Vec<PackId>,
    /// Index files that could not be read, with why.
    pub damaged: Vec<(String, Error)>,
}

/// Which index files name which packs, and which files are superseded.
#[derive(Default)]
pub(super) struct Coverage {
    files: Vec<IndexId>,
    /// Per file, what it supersedes if a full key attested it.
    attested: Vec<Option<Vec<IndexId>>>,
    superseded: HashSet<IndexId>,
    named_by: HashMap<PackId, Vec<u32>>,
}

impl Coverage {
    pub(super) fn add_file(&mut self, id: IndexId, file: &IndexFile, attested: bool) {
        self.add(id, attested.then(|| file.supersedes.clone()), file.packs.iter().map(|(p, _)| *p));
    }

    /// An index file that names `packs` and, if a full key attested it, supersedes the
    /// files of `supersedes`.
    pub(super) fn add(
        &mut self,
        id: IndexId,
        supersedes: Option<Vec<IndexId>>,
        packs: impl Iterator<Item = PackId>,
    ) {
        let n = self.files.len() as u32;
        self.files.push(id);
        if let Some(s) = &supersedes {
            self.superseded.extend(s.iter().copied());
        }
        self.attested.push(supersedes);
        for pack in packs {
            self.named_by.entry(pack).or_default().push(n);
        }
    }

    /// Whether some index file that is not superseded names `pack`.
    pub(super) fn live(&self, pack: &PackId) -> bool {
        self.named_by
            .get(pack)
            .is_some_and(|files| files.iter().any(|&f| !self.superseded.contains(&self.files[f as usize])))
    }

    /// What each file contributed, its packs numbered by `slot_of`, for the cache file.
    pub(super) fn records(&self, slot_of: impl Fn(&PackId) -> u32) -> Vec<FileRecord> {
        let mut records: Vec<FileRecord> = self
            .files
            .iter()
            .zip(&self.attested)
            .map(|(id, s)| FileRecord {
                id: *id,
                attested: s.is_some(),
                supersedes: s.clone().unwrap_or_default(),
                packs: Vec::new(),
            })
            .collect();
        for (pack, files) in &self.named_by {
            for &f in files {
                records[f as usize].packs.push(slot_of(pack));
            }
        }
        for r in &mut records {
            r.packs.sort_unstable();
            r.packs.dedup();
        }
        records
    }

    pub(super) fn report(&self, stored: &HashSet<PackId>, damaged: Vec<(String, Error)>) -> IndexLoad {
        let mut missing: Vec<PackId> =
            self.named_by.keys().filter(|p| !stored.contains(*p) && self.live(p)).copied().collect();
        missing.sort();
        IndexLoad {
            files: self.files.clone(),
            superseded: self.files.iter().filter(|f| self.superseded.contains(f)).copied().collect(),
            missing_packs: missing,
            damaged,
        }
    }
}

impl Index {
    /// Load the index from every index file that opens; the ones that do not are named in
    /// `skipped_files`, for the caller to report.
    pub fn load(repo: &Repository) -> Result<Index> {
        Self::load_reporting(repo).map(|(idx, _)| idx)
    }

    /// Load the index from every index file that opens, with what was left out: through
    /// the cache file when the repository has one (see `cached.rs`), else into memory.
    pub fn load_reporting(repo: &Repository) -> Result<(Index, IndexLoad)> {
        Self::load_with_coverage(repo).map(|(idx, load, _)| (idx, load))
    }

    /// [`Index::load_reporting`], with which index files name each pack, so that the
    /// packs' full entry lists can be read again a file at a time (check).
    pub fn load_with_coverage(repo: &Repository) -> Result<(Index, IndexLoad, PackCoverage)> {
        let stored = stored_packs(repo)?;
        let names = repo.list_named_objects(FileType::Index)?;
        if let Some(path) = repo.index_cache_path() {
            if let Some((idx, load, coverage)) = super::cached::load(repo, &path, &stored, &names)? {
                return Ok((idx, load, PackCoverage(coverage)));
            }
        }
        let (idx, load, coverage) = load_in_memory(repo, &stored, &names)?;
        Ok((idx, load, PackCoverage(coverage)))
    }
}

/// Which index files name each pack, as a load found them.
pub struct PackCoverage(Coverage);

impl PackCoverage {
    /// How many times the index files name `pack` if it counts (some file that is not
    /// superseded names it), else 0: a pack's entries are whole once that many lists of
    /// it are read.
    pub fn times_named(&self, pack: &PackId) -> usize {
        if self.0.live(pack) {
            self.0.named_by.get(pack).map_or(0, Vec::len)
        } else {
            0
        }
    }
}

/// Every entry of the live index files of stored packs, sorted in memory.
fn load_in_memory(
    repo: &Repository,
    stored: &HashSet<PackId>,
    names: &[String],
) -> Result<(Index, IndexLoad, Coverage)> {
    let mut builder = IndexBuilder::default();
    let mut coverage = Coverage::default();
    let mut too_many = None;
    let damaged = for_each_index_file(repo, names, |id, file, attested| {
        coverage.add_file(id, &file, attested);
        for (pack, list) in &file.packs {
            if stored.contains(pack) {
                if let Err(e) = builder.add_pack(*pack, list) {
                    too_many.get_or_insert(e);
                }
            }
        }
    })?;
    if let Some(e) = too_many {
        return Err(e);
    }
    let load = coverage.report(stored, damaged);
    let mut idx = builder.build_keeping(|p| coverage.live(p));
    idx.files = load.files.clone();
    idx.skipped_files = skipped(&load);
    Ok((idx, load, coverage))
}

/// The index files left out, as the index reports them.
pub(super) fn skipped(load: &IndexLoad) -> Vec<String> {
    load.damaged.iter().map(|(name, e)| format!("index file {name}: {e}")).collect()
}

/// Every pack entry of the live index files, with full ids (for check and prune), each
/// pack's entries once. Packs that are not stored are included (check reports them as
/// lost) and listed in the report's `missing_packs`.
pub fn load_pack_lists_reporting(repo: &Repository) -> Result<(HashMap<PackId, Vec<Entry>>, IndexLoad)> {
    let stored = stored_packs(repo)?;
    let names = repo.list_named_objects(FileType::Index)?;
    let mut coverage = Coverage::default();
    let mut packs: HashMap<PackId, Vec<Entry>> = HashMap::new();
    let damaged = for_each_index_file(repo, &names, |id, file, attested| {
        coverage.add_file(id, &file, attested);
        for (pack, list) in file.packs {
            packs.entry(pack).or_default().extend(list);
        }
    })?;
    packs.retain(|p, _| coverage.live(p));
    let packs = packs.into_iter().map(|(pack, list)| (pack, tidy(list))).collect();
    Ok((packs, coverage.report(&stored, damaged)))
}

/// Every pack's full entry list as [`load_pack_lists`] makes it (sorted by place, each
/// entry once; packs that count only), given to `f` a pack at a time while the index files
/// of `files` are read again a batch at a time, so memory stays bounded at any size: only
/// the lists of a pack that several files name wait until the last of them is read.
/// Returns the files that no longer open.
pub fn for_each_pack_list(
    repo: &Repository,
    files: &[IndexId],
    coverage: &PackCoverage,
    mut f: impl FnMut(PackId, Vec<Entry>),
) -> Result<Vec<(String, Error)>> {
    let names: Vec<String> = files.iter().map(IndexId::to_hex).collect();
    let mut waiting: HashMap<PackId, (usize, Vec<Entry>)> = HashMap::new();
    let damaged = for_each_index_file(repo, &names, |_, file, _| {
        for (pack, list) in file.packs {
            match coverage.times_named(&pack) {
                0 => {}
                1 => f(pack, tidy(list)),
                times => {
                    let (read, lists) = waiting.entry(pack).or_default();
                    *read += 1;
                    lists.extend(list);
                    if *read >= times {
                        let (_, whole) = waiting.remove(&pack).expect("waiting");
                        f(pack, tidy(whole));
                    }
                }
            }
        }
    })?;
    // Lists whose other files no longer opened.
    for (pack, (_, list)) in waiting {
        f(pack, tidy(list));
    }
    Ok(damaged)
}

/// A pack's entries sorted by place, each once.
fn tidy(mut list: Vec<Entry>) -> Vec<Entry> {
    list.sort_by_key(|e| (e.offset, e.start, *e.id.bytes()));
    list.dedup();
    list
}

/// [`load_pack_lists_reporting`] without the report beyond damaged files.
pub fn load_pack_lists(repo: &Repository) -> Result<PackLists> {
    load_pack_lists_reporting(repo).map(|(packs, load)| (packs, load.damaged))
}

pub(super) fn stored_packs(repo: &Repository) -> Result<HashSet<PackId>> {
    Ok(repo.backend().list(FileType::Pack)?.iter().filter_map(|n| PackId::from_hex(n).ok()).collect())
}

/// Run `f` on every index file of `names` that opens, with whether a full key attested it;
/// returns the ones that do not. Errors other than damage (I/O, permission, a file of a newer
/// cairn) are returned. Files are read a batch at a time, the files of a batch at once (a
/// remote store answers each after a round trip), and given to `f` in the store's order.
pub(super) fn for_each_index_file(
    repo: &Repository,
    names: &[String],
    mut f: impl FnMut(IndexId, IndexFile, bool),
) -> Result<Vec<(String, Error)>> {
    use rayon::prelude::*;
    // Decoded index files in memory at once: a batch, at most READ_BATCH x 64 MiB. A
    // remote store's batch keeps its reads in flight; a local folder's only the cores busy
    // decoding (a check of 50 million blobs peaked at 272 MiB with 4, 285 with 16).
    const READ_BATCH: usize = 16;
    let batch_len = (2 * repo.backend().read_parallelism()).clamp(4, READ_BATCH);
    let mut damaged = Vec::new();
    for batch in names.chunks(batch_len) {
        let loaded: Vec<_> = crate::ops::read_pool::install(repo, || {
            batch
                .par_iter()
                .map(|name| IndexId::from_hex(name).and_then(|id| Ok((id, open_index_file(repo, &id)?))))
                .collect()
        })?;
        for (name, loaded) in batch.iter().zip(loaded) {
            match loaded {
                Ok((id, (file, attested))) => f(id, file, attested),
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::InvalidInput) => {
                    damaged.push((name.clone(), e));
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    return Err(
                        e.wrap(format!("index file {name} was written by a newer cairn; upgrade cairn"))
                    )
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(damaged)
}

/// Read, check and decode one index file.
pub fn load_index_file(repo: &Repository, id: &IndexId) -> Result<IndexFile> {
    open_index_file(repo, id).map(|(file, _)| file)
}

/// Read, check and decode one index file; also whether a full key attested it.
fn open_index_file(repo: &Repository, id: &IndexId) -> Result<(IndexFile, bool)> {
    let bytes = repo.read_named_object(FileType::Index, &id.0)?;
    let opened = envelope::open_attested(repo.keys(), ObjectType::Index, &bytes)?;
    Ok((IndexFile::decode(&opened.payload)?, opened.written_by == WrittenBy::FullKey))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Entry;
    use crate::id::{BlobId, ChunkId};

    fn file(supersedes: &[u8], packs: &[u8]) -> IndexFile {
        let e =
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 40, length: 30, raw_length: 9, start: 0 };
        IndexFile {
            supersedes: supersedes.iter().map(|&b| IndexId([b; 32])).collect(),
            packs: packs.iter().map(|&b| (PackId([b; 32]), vec![e])).collect(),
        }
    }

    #[test]
    fn only_attested_files_supersede_and_a_pack_counts_while_a_live_file_names_it() {
        let mut c = Coverage::default();
        c.add_file(IndexId([1; 32]), &file(&[], &[10, 11]), false);
        c.add_file(IndexId([2; 32]), &file(&[], &[12]), false);
        // Unattested: claims to supersede file 1, supersedes nothing.
        c.add_file(IndexId([3; 32]), &file(&[1], &[]), false);
        assert!(c.live(&PackId([10; 32])) && c.live(&PackId([12; 32])));
        // Attested: supersedes files 1 and 2, names pack 11 again.
        c.add_file(IndexId([4; 32]), &file(&[1, 2], &[11]), true);
        assert!(!c.live(&PackId([10; 32])), "named only by a superseded file");
        assert!(c.live(&PackId([11; 32])), "named by the superseding file too");
        assert!(!c.live(&PackId([12; 32])));
        assert!(!c.live(&PackId([99; 32])), "named by no file");
        let stored: HashSet<PackId> = [PackId([10; 32])].into();
        let r = c.report(&stored, Vec::new());
        assert_eq!(r.superseded, vec![IndexId([1; 32]), IndexId([2; 32])]);
        assert_eq!(r.missing_packs, vec![PackId([11; 32])], "live but not stored");
    }
}
