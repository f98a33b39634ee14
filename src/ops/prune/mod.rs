//! Prune: delete data no snapshot uses. First a plan (so `--dry-run` is the same
//! computation), then its execution in an order that keeps the repository valid if it
//! stops at any point:
//!
//! 1. repack: the used blobs of packs worth repacking go into new packs (with their own
//!    index files); each is read back and re-hashed on the way. A maintenance key, which
//!    opens no chunk or tree, moves the frames that hold them whole instead
//!    (`pack/moved.rs`);
//! 2. a new index naming every kept pack is written, superseding all old index files;
//! 3. the old index files are deleted;
//! 4. the packs that are wholly unused, repacked, or named by no index are deleted;
//! 5. temporary files that interrupted writes left (untouched for an hour) are deleted.
//!
//! Until step 4 every pack an index names exists; a stop between steps leaves at worst
//! duplicate index entries or packs nothing names, which the next prune removes.
//!
//! What may be deleted is decided in `select.rs`, which trusts no index entry with a
//! deletion: see its rule. Prune refuses to run while a snapshot cannot be read (damaged,
//! or written by a newer cairn): it could not tell what that snapshot uses.

mod select;

pub use select::{select, PackProbe, Selection};

use crate::backend::{FileType, Leftover};
use crate::crypto::keys::KeyKind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::pack::{self, Entry};
use crate::format::tree::NodeKind;
use crate::id::{BlobId, BlobKind, IndexId, PackId, TreeId};
use crate::index::{load_pack_lists_reporting, Index, Location};
use crate::pack::moved::MovedPack;
use crate::pack::reader::Table;
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::load_tree_with_parts;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused (0.0 ..= 1.0).
    pub max_unused: f64,
    /// Packs to repack (or delete, when wholly unused) whatever their share, unindexed
    /// ones however young: a key rotation's packs sealed under an old key epoch.
    pub repack_always: HashSet<PackId>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused: 0.10, repack_always: HashSet::new() }
    }
}

/// What prune will do (or did), in packs and bytes.
#[derive(Clone, Debug, Default)]
pub struct PrunePlan {
    pub packs: Selection,
    /// Stored packs named by no live index file (their own tables decided their fate).
    pub packs_orphaned: Vec<PackId>,
    /// Unindexed packs written within the grace period: a backup that is still running
    /// (whose lock may look stale) may be about to index them; left alone.
    pub packs_too_new: Vec<PackId>,
    /// Packs index files name that are not stored: their entries are left out.
    pub packs_missing: Vec<PackId>,
    /// Index files that did not open (why, each): replaced by the new index.
    pub index_files_skipped: Vec<String>,
    /// Temporary files that interrupted writes left, untouched for `LEFTOVER_AGE`.
    pub leftovers: Vec<Leftover>,
    /// A maintenance key's prune: what is used comes from the references records, tables
    /// from the maintenance tables; it repacks by moving sealed frames, indexes only the
    /// packs it writes, and supersedes no index file (readers leave out the entries of
    /// packs that are gone; a full key's prune writes the index anew).
    pub by_records: bool,
    old_index: Vec<IndexId>,
}

impl PrunePlan {
    /// Packs that will be deleted: wholly unused and repacked ones (orphans included).
    pub fn packs_deleted(&self) -> impl Iterator<Item = &PackId> {
        self.packs.delete.iter().chain(&self.packs.repack)
    }
}

/// Every blob that some snapshot reaches: trees and chunks, and in a repository with
/// maintenance the references records its summary reaches. A record that does not read
/// back is not used: what it would have named, a maintenance key's prune needs again from
/// `cairn repair maintenance`, which `cairn check` asks for.
fn used_blobs(repo: &Repository, index: &Index, interrupt: &AtomicBool) -> Result<HashSet<BlobId>> {
    let reader = PackReader::new(repo);
    let mut used = HashSet::new();
    let snapshots = readable_snapshots(repo)?;
    if repo.config().maintenance.is_some() {
        let ids: Vec<_> = snapshots.iter().map(|(id, _)| *id).collect();
        let roots = crate::ops::records::root_records(repo, &ids).into_iter().filter_map(|(_, r)| r);
        let mut reached = crate::ops::records::reach(&reader, index, roots, interrupt)?;
        for (id, _) in &reached.unreadable {
            reached.records.remove(id);
        }
        used.extend(reached.records.into_iter().map(BlobId::References));
    }
    let mut stack: Vec<TreeId> = snapshots.into_iter().map(|(_, s)| s.tree).collect();
    while let Some(id) = stack.pop() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "prune interrupted before deleting anything"));
        }
        if !used.insert(BlobId::Tree(id)) {
            continue;
        }
        let (tree, parts) = load_tree_with_parts(&reader, index, &id).map_err(|e| {
            e.wrap("a snapshot's tree cannot be read, so prune cannot tell what is used; run `cairn check`")
        })?;
        // A large folder is stored in parts besides its head: they are used too.
        used.extend(parts.iter().map(|p| BlobId::Tree(*p)));
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { chunks, .. } => used.extend(chunks.iter().map(|c| BlobId::Chunk(*c))),
                _ => {}
            }
        }
    }
    Ok(used)
}

/// Every snapshot, or an error naming those that cannot be read: deleting data while one
/// cannot be read could delete what it uses.
fn readable_snapshots(
    repo: &Repository,
) -> Result<Vec<(crate::id::SnapshotId, crate::format::snapshot::Snapshot)>> {
    let (good, damaged) = repo.snapshots_and_damage()?;
    crate::repo::refuse_unreadable(&damaged, &[], "prune")?;
    Ok(good)
}

/// Every blob the snapshots use, by their references records (a maintenance key): the
/// records the summaries reach, and the trees and chunks those name. Refuses (nothing
/// changed) while a snapshot has no valid summary naming its records, or a record does
/// not read back intact: it could not tell what that snapshot uses.
fn used_by_records(repo: &Repository, index: &Index, interrupt: &AtomicBool) -> Result<HashSet<BlobId>> {
    let (snapshots, damaged) = repo.snapshots_and_damage()?;
    crate::repo::refuse_unreadable(&damaged, &[], "prune")?;
    let ids: Vec<_> = snapshots.iter().map(|(id, _)| *id).collect();
    let roots = crate::ops::records::root_records(repo, &ids);
    let bare: Vec<_> = roots.iter().filter(|(_, r)| r.is_none()).map(|(id, _)| id.short()).collect();
    if let Some(first) = bare.first() {
        return Err(Error::new(
            ErrorKind::UnreadableSnapshot,
            format!("prune refused, nothing changed: snapshot {first} (of {} such) names no references records, so this key cannot tell what it uses; run `cairn repair maintenance` with a full key", bare.len()),
        ));
    }
    let reader = PackReader::new(repo);
    let reached =
        crate::ops::records::reach(&reader, index, roots.into_iter().filter_map(|(_, r)| r), interrupt)?;
    if let Some((record, e)) = reached.unreadable.first() {
        return Err(Error::new(
            ErrorKind::UnreadableSnapshot,
            format!("prune refused, nothing changed: references record {} does not read back ({e}); run `cairn repair maintenance` with a full key", record.short()),
        ));
    }
    let mut used: HashSet<BlobId> = reached.records.into_iter().map(BlobId::References).collect();
    used.extend(reached.trees.into_iter().map(BlobId::Tree));
    used.extend(reached.chunks.into_iter().map(BlobId::Chunk));
    Ok(used)
}

/// Reads for the selection: a pack's own table, and whether a located blob is intact.
/// A maintenance key reads a data pack's maintenance table and a references pack's table
/// of contents; a pack without either (written before maintenance) is unreadable to it,
/// so never deleted, and it can verify only references records.
struct RepoProbe<'r> {
    reader: PackReader<'r>,
    by_records: bool,
}

impl PackProbe for RepoProbe<'_> {
    fn table(&self, pack: &PackId) -> Result<Option<Vec<Entry>>> {
        let read = match self.by_records {
            true => match self.reader.stored_table(pack, Table::Maintenance) {
                Ok(None) => self.reader.stored_toc(pack),
                other => other.map(|t| t.expect("Some")),
            },
            false => self.reader.stored_toc(pack),
        };
        match read {
            Ok(entries) => Ok(Some(entries)),
            Err(e)
                if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported | ErrorKind::NotFound)
                    || (self.by_records && e.kind() == ErrorKind::PermissionDenied) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn verify(&self, loc: &Location) -> Result<bool> {
        match self.reader.read_blob(loc) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn can_verify(&self, loc: &Location) -> bool {
        !self.by_records || loc.entry.id.kind() == BlobKind::References
    }
}

pub fn plan(repo: &Repository, opts: &PruneOptions, interrupt: &AtomicBool) -> Result<PrunePlan> {
    if !(0.0..=1.0).contains(&opts.max_unused) {
        return Err(Error::invalid("--max-unused must be between 0% and 100%"));
    }
    let by_records = repo.key_kind() == KeyKind::Maintenance;
    if by_records && repo.rotation_unfinished() {
        return Err(Error::new(
            ErrorKind::Locked,
            "a key rotation is under way; a maintenance key prunes once a full key's `cairn key rotate` finished it",
        ));
    }
    let index = Index::load(repo)?;
    let used = match by_records {
        true => used_by_records(repo, &index, interrupt)?,
        false => used_blobs(repo, &index, interrupt)?,
    };
    drop(index);
    let (mut packs, load) = load_pack_lists_reporting(repo)?;
    packs.retain(|p, _| !load.missing_packs.contains(p));
    let (orphans, packs_too_new) = split_orphans(repo, &packs, &opts.repack_always)?;
    let probe = RepoProbe { reader: PackReader::new(repo), by_records };
    let selection = select(packs, &orphans, &used, opts.max_unused, &opts.repack_always, &probe)?;
    // Index files that do not open are replaced too: the packs only they named were read
    // as orphans, by their own tables, above.
    let mut old_index = load.files;
    old_index.extend(load.damaged.iter().filter_map(|(name, _)| IndexId::from_hex(name).ok()));
    Ok(PrunePlan {
        packs: selection,
        packs_orphaned: orphans,
        packs_too_new,
        packs_missing: load.missing_packs,
        index_files_skipped: load.damaged.iter().map(|(name, e)| format!("index file {name}: {e}")).collect(),
        leftovers: repo.backend().leftovers(LEFTOVER_AGE)?,
        by_records,
        old_index,
    })
}

/// An unindexed pack is judged (and may be deleted) only once it is this old, or older
/// than the oldest lock present, stale ones included: a backup whose lock looks stale
/// (a suspended process, another host's clock, another PID namespace) may still be
/// writing the index that names it. (Should prune still delete what such a backup
/// relies on, that backup fails instead of writing its snapshot: pack/writer.rs.)
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// Stored packs no live index file names, split into those old enough to judge (and those
/// in `judge_now`) and those within the grace period.
fn split_orphans(
    repo: &Repository,
    indexed: &HashMap<PackId, Vec<Entry>>,
    judge_now: &HashSet<PackId>,
) -> Result<(Vec<PackId>, Vec<PackId>)> {
    let now = std::time::SystemTime::now();
    let oldest_lock = repo
        .locks()?
        .iter()
        .filter_map(|f| f.lock.as_ref())
        .filter_map(|l| u64::try_from(l.time.secs).ok())
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
        .min();
    let cutoff = [now.checked_sub(ORPHAN_GRACE), oldest_lock].into_iter().flatten().min().unwrap_or(now);
    let (mut old, mut young) = (Vec::new(), Vec::new());
    for name in repo.backend().list(FileType::Pack)? {
        let Ok(pack) = PackId::from_hex(&name) else { continue };
        if indexed.contains_key(&pack) {
            continue;
        }
        if judge_now.contains(&pack) {
            old.push(pack);
            continue;
        }
        match repo.backend().modified(FileType::Pack, &name)? {
            Some(t) if t > cutoff => young.push(pack),
            _ => old.push(pack),
        }
    }
    Ok((old, young))
}

/// A temporary file is a leftover once it has not changed for this long. Prune holds
/// the exclusive lock, so no write of another cairn is under way; the age also spares the
/// file of a writer that ignored or broke the lock.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Carry out a plan made under the same exclusive lock.
pub fn execute(repo: &Repository, plan: &PrunePlan, interrupt: &AtomicBool) -> Result<()> {
    // 1. Repack. The writer starts from an empty index, so it stores every blob given;
    // each blob is re-hashed as it is read.
    // Packs are repacked many at once (each in the order of its frames, so a frame of
    // several blobs is opened once): reading, checking and compressing are CPU work.
    // A maintenance key moves the frames of chunks and trees; it reads records anew.
    let (frames, blobs): (Vec<&Location>, Vec<&Location>) =
        plan.packs.moves.iter().partition(|l| plan.by_records && l.entry.id.kind() != BlobKind::References);
    move_frames(repo, &frames, interrupt)?;
    let reader = PackReader::new(repo);
    let mut by_pack: BTreeMap<PackId, Vec<&Location>> = BTreeMap::new();
    for loc in blobs {
        by_pack.entry(loc.pack).or_default().push(loc);
    }
    let (moved, _) = BlobWriter::run(repo, Index::default(), |w| -> Result<()> {
        by_pack.into_par_iter().try_for_each(|(_, mut locs)| -> Result<()> {
            locs.sort_by_key(|l| (l.entry.offset, l.entry.start));
            for loc in locs {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        "prune interrupted while repacking; nothing deleted",
                    ));
                }
                w.save(loc.entry.id, &reader.read_blob(loc)?)?;
            }
            Ok(())
        })
    })?;
    moved?;
    crate::failpoint::hit("prune:after-repack");
    // 2. New index files for the packs that stay, superseding every old index file. A
    // maintenance key writes none (they would be unattested): the old ones stay, and
    // readers leave out the entries of the packs it deletes.
    let old_index: &[IndexId] = if plan.by_records { &[] } else { &plan.old_index };
    if !plan.by_records {
        for batch in crate::index::batches(&plan.packs.keep, crate::index::ENTRIES_PER_INDEX_FILE) {
            repo.save_index(&IndexFile { supersedes: plan.old_index.clone(), packs: batch })?;
        }
    }
    crate::failpoint::hit("prune:after-new-index");
    // What goes is named first, where the store keeps deleted objects under a lock.
    let index_names: Vec<String> = old_index.iter().map(|i| i.to_hex()).collect();
    crate::ops::object_lock::note_deleted(repo, FileType::Index, &index_names)?;
    let pack_names: Vec<String> = plan.packs_deleted().map(|p| p.to_hex()).collect();
    crate::ops::object_lock::note_deleted(repo, FileType::Pack, &pack_names)?;
    // 3. The old index files go (the repacked blobs' new index files are not among them).
    for id in old_index {
        match repo.backend().remove(FileType::Index, &id.to_hex()) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    crate::failpoint::hit("prune:after-old-index-delete");
    // 4. Packs nothing names any more.
    for (n, pack) in plan.packs_deleted().enumerate() {
        match repo.backend().remove(FileType::Pack, &pack.to_hex()) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if n == 0 {
            crate::failpoint::hit("prune:mid-pack-deletion");
        }
    }
    crate::failpoint::hit("prune:after-pack-deletion");
    // 5. What interrupted writes left.
    for leftover in &plan.leftovers {
        match repo.backend().remove_leftover(&leftover.path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A maintenance key's repack of chunks and trees: every frame holding a used one is
/// copied whole, still sealed, into moved-frames packs (`pack/moved.rs`), each stored and
/// then indexed before any pack is deleted. A frame's entries come from the table prune
/// trusted for its pack, so all of its blobs keep their place in it.
fn move_frames(repo: &Repository, moves: &[&Location], interrupt: &AtomicBool) -> Result<()> {
    let probe = RepoProbe { reader: PackReader::new(repo), by_records: true };
    let mut frames: BTreeMap<PackId, BTreeSet<u32>> = BTreeMap::new();
    for loc in moves {
        frames.entry(loc.pack).or_default().insert(loc.entry.offset);
    }
    let target = repo.config().pack_size as usize;
    let mut out = MovedPack::default();
    for (pack, offsets) in frames {
        let name = pack.to_hex();
        let wrap = |e: Error| e.wrap(format!("pack {name}"));
        let table = probe
            .table(&pack)?
            .ok_or_else(|| Error::corrupt(format!("pack {name}: its table no longer reads")))?;
        let read = |at: u64, len: u64| repo.backend().read_range(FileType::Pack, &name, at, len);
        let (_, head) = pack::read_head(|len| read(0, len as u64)).map_err(wrap)?;
        let origins = pack::FrameOrigins::of_head(&head).map_err(wrap)?;
        for offset in offsets {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "prune interrupted while moving frames; nothing deleted",
                ));
            }
            let entries: Vec<Entry> = table.iter().filter(|e| e.offset == offset).copied().collect();
            let length = entries.first().map_or(0, |e| e.length);
            let sealed = read(u64::from(offset), u64::from(length))?;
            if entries.is_empty() || sealed.len() != length as usize {
                return Err(wrap(Error::corrupt(format!("the frame at {offset} is truncated"))));
            }
            let (origin, source, body) = origins.frame(offset, &sealed).map_err(wrap)?;
            if !out.takes(&origin) || out.size() >= target {
                store_moved(repo, std::mem::take(&mut out))?;
            }
            out.add(origin, source, body, &entries);
        }
    }
    if !out.is_empty() {
        store_moved(repo, out)?;
    }
    Ok(())
}

/// Store a moved-frames pack, then an index file naming it.
fn store_moved(repo: &Repository, out: MovedPack) -> Result<()> {
    let (id, bytes, entries) = out.finish(repo.keys())?;
    repo.backend().write(FileType::Pack, &id.to_hex(), &bytes)?;
    crate::failpoint::hit("prune:moved-pack-unindexed");
    repo.save_index(&IndexFile { supersedes: Vec::new(), packs: vec![(id, entries)] })?;
    Ok(())
}

/// Blob ids of every pack as its sealed table of contents says (for tests and audits:
/// what is really stored, whatever the index claims).
pub fn stored_blob_ids(repo: &Repository) -> Result<HashMap<PackId, Vec<BlobId>>> {
    let mut out = HashMap::new();
    for name in repo.backend().list(FileType::Pack)? {
        let id = PackId::from_hex(&name)?;
        let bytes = repo.read_object(FileType::Pack, &name)?;
        let toc = crate::pack::reader::read_toc(repo.keys(), &bytes)?;
        out.insert(id, toc.into_iter().map(|e| e.id).collect());
    }
    Ok(out)
}
