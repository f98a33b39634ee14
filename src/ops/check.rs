//! Check: is everything the snapshots need present and intact?
//!
//! Structure (always): every index file opens and matches its name; every snapshot opens;
//! every tree reachable from a snapshot loads, and every chunk it names is in the index;
//! every pack the index names exists and is large enough for its entries. Packs that no
//! index names are reported as information (an interrupted backup leaves them), not damage.
//!
//! With `read_data`: every pack is read whole, its name checked against the hash of its
//! bytes, its sealed table of contents compared with the index, and every blob opened and
//! its id recomputed.
//!
//! Memory stays bounded at any size: the index is mapped from this machine's cache file,
//! made anew from the index files (a cached entry would hide a damaged file), and each
//! pack's full entry list is read again from the index files a batch at a time.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::Entry;
use crate::format::tree::NodeKind;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::index::{Index, IndexLoad, PackCoverage};
use crate::pack::reader::{blob_of_frame, open_frame, read_toc};
use crate::pack::PackReader;
use crate::repo::Repository;
use crate::tree::{load_tree, load_tree_with_parts, tree_parts};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Which packs to read whole; `None` reads none (structure only).
    pub read_data: Option<Subset>,
    /// Whose trees to walk: a job checks its own snapshots in a shared repository. The
    /// index and packs are checked whole either way.
    pub snapshots: crate::repo::select::SnapshotFilter,
}

/// A deterministic part of the packs, chosen by pack id, so that scheduled runs of
/// `1/5` .. `5/5` together read every pack, and `10%` reads the same tenth each time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    All,
    /// Part `n` (1-based) of `m` parts.
    Part {
        n: u32,
        m: u32,
    },
    /// This share of the packs (0.0 ..= 1.0).
    Share(f64),
}

/// As the log records it: "all", "N/M" or "P%".
impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subset::All => f.write_str("all"),
            Subset::Part { n, m } => write!(f, "{n}/{m}"),
            Subset::Share(s) => write!(f, "{}%", s * 100.0),
        }
    }
}

impl Subset {
    /// Parse "1/5" or "10%".
    pub fn parse(s: &str) -> Result<Subset> {
        let bad = || {
            Error::invalid(format!("'{s}' is not a subset: use N/M (e.g. 1/5) or a percentage (e.g. 10%)"))
        };
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if (0.0..=100.0).contains(&v) { Ok(Subset::Share(v / 100.0)) } else { Err(bad()) };
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let (n, m): (u32, u32) = (n.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
        if m == 0 || n == 0 || n > m {
            return Err(bad());
        }
        Ok(Subset::Part { n, m })
    }

    pub fn contains(&self, pack: &PackId) -> bool {
        let x = u64::from_be_bytes(pack.0[..8].try_into().expect("8 bytes"));
        match *self {
            Subset::All => true,
            Subset::Part { n, m } => x % m as u64 == (n - 1) as u64,
            Subset::Share(f) => (x as f64) < f * u64::MAX as f64,
        }
    }
}

/// One problem found, with the object it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub object: String,
    pub damage: String,
    /// The snapshots' files (and folders) whose data this damage takes: "snapshot ID: path".
    pub affected: Vec<String>,
    /// The damaged blobs, for finding `affected`.
    blobs: Vec<[u8; 32]>,
}

impl Problem {
    fn new(object: impl Into<String>, damage: impl std::fmt::Display, blobs: Vec<[u8; 32]>) -> Self {
        Problem { object: object.into(), damage: damage.to_string(), affected: Vec::new(), blobs }
    }
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Packs read whole (all of them, or the subset asked for).
    pub packs_read: usize,
    pub problems: Vec<Problem>,
    /// Not damage: packs no index names, and the like.
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, object: impl Into<String>, damage: impl std::fmt::Display) {
        self.problems.push(Problem::new(object, damage, Vec::new()));
    }
}

pub fn check(repo: &Repository, opts: &CheckOptions, interrupt: &AtomicBool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (index, load, coverage) = load_index_checked(repo, &mut report)?;
    let reader = PackReader::new(repo);

    // Snapshots, then the trees they reach, level by level in parallel.
    let mut roots = Vec::new();
    let mut checked = Vec::new();
    for name in repo.backend().list(FileType::Snapshot)? {
        let id = SnapshotId::from_hex(&name).ok();
        let loaded = SnapshotId::from_hex(&name).and_then(|id| repo.load_snapshot_verified(&id));
        match loaded {
            Ok(snap) if !opts.snapshots.matches(&snap) => {}
            Ok(snap) => {
                report.snapshots += 1;
                roots.push((snap.tree, format!("snapshot {}", &name[..8.min(name.len())])));
                checked.extend(id.map(|id| (id, Some(snap.tree))));
            }
            Err(e) if store_failed(repo.backend().is_remote(), &e) => return Err(e),
            Err(e) => report.problem(format!("snapshot {name}"), e),
        }
    }
    // Which index entries some snapshot uses: one bit per entry, set while walking.
    let used: Vec<AtomicU64> = (0..index.len().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    let mut unindexed: HashSet<[u8; 32]> = HashSet::new();
    let seen_trees = walk_trees(&reader, &index, roots, &used, &mut unindexed, &mut report, interrupt)?;
    report.trees = seen_trees.len();
    if repo.config().maintenance.is_some() {
        let reached = check_records_into(repo, &reader, &index, &checked, &mut report, interrupt)?;
        for record in reached.records {
            if let Some(p) = index.position(&BlobId::References(record)) {
                used[p / 64].fetch_or(1 << (p % 64), Ordering::Relaxed);
            }
        }
    }
    let (mut unused, mut unused_bytes) = (0usize, 0u64);
    for (i, raw_length) in index.raw_lengths().enumerate() {
        let raw_length = match raw_length {
            Ok(n) => n,
            // The cache file this check made changed under it: the walk's answers from it
            // may be missing too.
            Err(e) => {
                report.problem("index cache file", e.wrap("changed while being checked"));
                break;
            }
        };
        if used[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) == 0 {
            unused += 1;
            unused_bytes += raw_length as u64;
        }
    }
    // Under a filter, blobs of the snapshots left out would look unused.
    if unused > 0 && opts.snapshots.is_empty() {
        report.notes.push(format!(
            "{unused} blobs ({unused_bytes} bytes of content) are used by no snapshot; `cairn prune` removes them"
        ));
    }

    // Packs: the ones the index names against the ones stored. Their full entry lists are
    // read again from the index files a batch at a time (the index keeps id prefixes), so
    // memory stays bounded.
    let stored = stored_packs(repo, &coverage, &mut report)?;
    let mut packs = PackChecks::new(repo, &reader, opts, interrupt);
    let reread = crate::index::for_each_pack_list(repo, &load.files, &coverage, |pack, entries| {
        if stored.contains(&pack) {
            packs.add(pack, entries);
        } else {
            // Not damage by itself (a replayed index file names packs prune deleted long
            // ago): the index leaves its entries out, and a snapshot that needed one of
            // them has its files reported by the walk above.
            absent(&mut packs.problems, &mut report.notes, &pack, &entries, &unindexed);
        }
    })?;
    let checked = packs.finish()?;
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::new(ErrorKind::Interrupted, "check interrupted"));
    }
    for (name, e) in reread {
        report.problem(format!("index file {name}"), e.wrap("changed while being checked"));
    }
    report.problems.extend(checked.problems);
    report.blobs_read += checked.blobs;
    report.bytes_read += checked.bytes;
    report.packs_read += checked.packs_read;
    let damaged: HashSet<[u8; 32]> = report.problems.iter().flat_map(|p| p.blobs.iter().copied()).collect();
    if !damaged.is_empty() {
        let affected = find_affected(repo, &index, &damaged)?;
        for p in &mut report.problems {
            let mut files: Vec<String> =
                p.blobs.iter().flat_map(|b| affected.get(b).into_iter().flatten().cloned()).collect();
            files.sort();
            files.dedup();
            p.affected = files;
        }
    }
    check_shared_objects(repo, &mut report)?;
    report.problems.sort_by(|a, b| a.object.cmp(&b.object));
    report.notes.sort();
    Ok(report)
}

/// The stored packs some index file names; each stored pack none names is noted.
fn stored_packs(
    repo: &Repository,
    coverage: &PackCoverage,
    report: &mut CheckReport,
) -> Result<HashSet<PackId>> {
    let mut stored = HashSet::new();
    for name in repo.backend().list(FileType::Pack)? {
        report.packs += 1;
        match PackId::from_hex(&name) {
            Ok(pack) if coverage.times_named(&pack) > 0 => {
                stored.insert(pack);
            }
            _ => {
                report.notes.push(format!("pack {name} is not in any index (left by an interrupted backup?)"))
            }
        }
    }
    Ok(stored)
}

/// The activity log's chain, locks, key files and (in a locked bucket) object locks.
fn check_shared_objects(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for p in repo.read_log()?.problems {
        report.problem("activity log", p);
    }
    for found in repo.locks()? {
        if found.lock.is_none() {
            report.problem(
                format!("lock {}", found.name),
                "cannot be opened (damaged or planted); it blocks nothing, and `cairn unlock` removes it",
            );
        }
    }
    for name in repo.backend().list(FileType::Key)? {
        let bytes = match repo.read_object(FileType::Key, &name) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                report.problem(format!("key {name}"), e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let named = crate::id::hex_encode(blake3::hash(&bytes).as_bytes()) == name;
        match crate::format::keyfile::KeyFile::decode(&bytes) {
            Ok(_) if named => {}
            Ok(_) => report.problem(format!("key {name}"), "content does not match its name"),
            Err(e) => {
                report.problem(format!("key {name}"), format!("{e}; remove it with `cairn key remove`"))
            }
        }
    }
    if let Some(audit) = super::object_lock::audit(repo)? {
        report_locks(report, audit);
    }
    Ok(())
}

/// What a key without the read secret (a maintenance key) can check: each snapshot file's
/// summary opens and names the envelope beside it (attested where a full key wrote it),
/// every references record it reaches reads back intact and every blob they name is
/// indexed, the index files open, every pack they name is stored, and the activity log,
/// locks and key files as [`check`] checks them. It reads no tree or data pack: whether
/// the snapshots' data is all there and intact only a full key's check tells.
pub fn check_structure(repo: &Repository, interrupt: &AtomicBool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (index, load, coverage) = load_index_checked(repo, &mut report)?;
    let (snapshots, damaged) = repo.snapshots_and_damage()?;
    report.snapshots = snapshots.len();
    for (name, e) in damaged {
        report.problem(format!("snapshot {name}"), e);
    }
    // The records each summary reaches, and the blobs they name in the index.
    let ids: Vec<_> = snapshots.iter().map(|(id, _)| (*id, None)).collect();
    let reader = PackReader::new(repo);
    let reached = check_records_into(repo, &reader, &index, &ids, &mut report, interrupt)?;
    let trees = reached.trees.iter().filter(|t| !index.contains(&BlobId::Tree(**t))).count();
    let chunks = reached.chunks.iter().filter(|c| !index.contains(&BlobId::Chunk(**c))).count();
    if trees + chunks > 0 {
        report.problem(
            "index",
            format!("{trees} trees and {chunks} chunks the snapshots' references records name are in no index entry (a full key's `cairn check` tells which snapshots need them)"),
        );
    }
    let stored = stored_packs(repo, &coverage, &mut report)?;
    let mut missing = Vec::new();
    let used = |id: &BlobId| match id {
        BlobId::Chunk(c) => reached.chunks.contains(c),
        BlobId::Tree(t) => reached.trees.contains(t),
        BlobId::References(r) => reached.records.contains(r),
    };
    let reread = crate::index::for_each_pack_list(repo, &load.files, &coverage, |pack, entries| {
        if !stored.contains(&pack) {
            // A used blob moved elsewhere (a maintenance key's prune) is held by a stored pack.
            let only_here = entries.iter().filter(|e| used(&e.id) && !index.contains(&e.id)).count();
            missing.push((pack, entries.len(), only_here));
        }
    })?;
    // A pack a prune deleted leaves its entries in index files a maintenance key cannot
    // rewrite: damage only when the snapshots use a blob in it.
    for (pack, n, in_use) in missing {
        match in_use {
            0 => report.notes.push(format!("index entries name pack {pack}, which is not stored; of its {n} blobs, the snapshots' records name none that no stored pack holds, and a full key's `cairn prune` drops the entries")),
            _ => report.problem(
                format!("pack {pack}"),
                format!("missing; index entries name {n} blobs in it, {in_use} of which the snapshots use and no stored pack holds (a full key's `cairn check` tells which snapshots need them)"),
            ),
        }
    }
    for (name, e) in reread {
        report.problem(format!("index file {name}"), e.wrap("changed while being checked"));
    }
    check_shared_objects(repo, &mut report)?;
    report.notes.push(
        "structure only: a maintenance key reads no tree or pack, so whether every snapshot's data is stored and intact only a full key's check tells".into(),
    );
    report.problems.sort_by(|a, b| a.object.cmp(&b.object));
    report.notes.sort();
    Ok(report)
}

/// [`crate::ops::records::check_records`], its findings put in `report`.
fn check_records_into(
    repo: &Repository,
    reader: &PackReader<'_>,
    index: &Index,
    snapshots: &[(SnapshotId, Option<crate::id::TreeId>)],
    report: &mut CheckReport,
    interrupt: &AtomicBool,
) -> Result<crate::ops::records::Reached> {
    let mut problems = Vec::new();
    let reached = crate::ops::records::check_records(
        repo,
        reader,
        index,
        snapshots,
        &mut problems,
        &mut report.notes,
        interrupt,
    )?;
    for (object, damage) in problems {
        report.problem(object, damage);
    }
    Ok(reached)
}

/// Locks that do not protect what they should are problems: the promise of a locked
/// repository is that nobody can delete what kept snapshots need.
fn report_locks(report: &mut CheckReport, audit: super::object_lock::Audit) {
    for path in audit.unlocked {
        report.problem(
            format!("lock of {path}"),
            "missing (written by a cairn that did not lock, or by someone else)",
        );
    }
    for (path, until) in audit.ending_soon {
        let when = jiff::Timestamp::try_from(until).map(|t| t.to_string()).unwrap_or_default();
        let verb = if until <= std::time::SystemTime::now() { "ended" } else { "ends" };
        report.problem(
            format!("lock of {path}"),
            format!("{verb} at {when}, within a sixth of the lock period; a backup or prune renews it (run one at least every two thirds of the period)"),
        );
    }
    for path in audit.overwritten {
        report.problem(
            path,
            "was overwritten (cairn never overwrites; someone holding the store's credentials did); the older versions are kept by their locks",
        );
    }
    for path in audit.deleted_by_others {
        report.problem(
            path,
            "was deleted, and not by cairn (no activity log entry of a full key names it); its locked versions are kept: `cairn repair undelete --since TIME` brings back what was deleted since TIME",
        );
    }
    if audit.deleted_kept > 0 {
        report.notes.push(format!(
            "{} objects cairn deleted are still kept by their locks; a prune deletes them for good once their locks end",
            audit.deleted_kept
        ));
    }
}

/// Load every index file that opens, reporting damaged ones instead of failing.
fn load_index_checked(
    repo: &Repository,
    report: &mut CheckReport,
) -> Result<(Index, IndexLoad, PackCoverage)> {
    let (index, mut load, coverage) = Index::load_with_coverage(repo)?;
    for (name, e) in std::mem::take(&mut load.damaged) {
        report.problem(format!("index file {name}"), e);
    }
    Ok((index, load, coverage))
}

/// A pack the index names that is not stored: a problem if snapshots need a blob only it
/// held (those the walk found unindexed), else a note.
fn absent(
    problems: &mut Vec<Problem>,
    notes: &mut Vec<String>,
    pack: &PackId,
    entries: &[Entry],
    unindexed: &HashSet<[u8; 32]>,
) {
    let needed: Vec<[u8; 32]> =
        entries.iter().map(|e| *e.id.bytes()).filter(|id| unindexed.contains(id)).collect();
    if needed.is_empty() {
        notes.push(format!(
            "index entries name pack {pack}, which is not stored; no snapshot needs a blob only it held, and `cairn prune` drops the entries"
        ));
    } else {
        let damage = format!("missing; {} blobs snapshots use were only in it", needed.len());
        problems.push(Problem::new(format!("pack {pack}"), damage, needed));
    }
}

/// Stored packs checked in parallel batches as their entry lists arrive.
struct PackChecks<'a> {
    repo: &'a Repository,
    reader: &'a PackReader<'a>,
    opts: &'a CheckOptions,
    interrupt: &'a AtomicBool,
    batch: Vec<(PackId, Vec<Entry>)>,
    batch_entries: usize,
    problems: Vec<Problem>,
    blobs: u64,
    bytes: u64,
    packs_read: usize,
    /// Why the reading threads could not start, if they could not.
    failed: Option<Error>,
}

impl<'a> PackChecks<'a> {
    /// A batch ends at this many packs or entries: enough to keep every reader busy, few
    /// enough that memory stays small (about 50 MiB of entries).
    const BATCH_PACKS: usize = 1024;
    const BATCH_ENTRIES: usize = 1 << 20;

    fn new(
        repo: &'a Repository,
        reader: &'a PackReader<'a>,
        opts: &'a CheckOptions,
        interrupt: &'a AtomicBool,
    ) -> Self {
        PackChecks {
            repo,
            reader,
            opts,
            interrupt,
            batch: Vec::new(),
            batch_entries: 0,
            problems: Vec::new(),
            blobs: 0,
            bytes: 0,
            packs_read: 0,
            failed: None,
        }
    }

    fn add(&mut self, pack: PackId, entries: Vec<Entry>) {
        self.batch_entries += entries.len();
        self.batch.push((pack, entries));
        if self.batch.len() >= Self::BATCH_PACKS || self.batch_entries >= Self::BATCH_ENTRIES {
            self.run();
        }
    }

    fn run(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_entries = 0;
        if self.interrupt.load(Ordering::Relaxed) || self.failed.is_some() {
            return;
        }
        let (repo, reader, opts, interrupt) = (self.repo, self.reader, self.opts, self.interrupt);
        let results = super::read_pool::install(repo, || {
            batch
                .par_iter()
                .map(|(pack, entries)| {
                    if interrupt.load(Ordering::Relaxed) {
                        return Ok((vec![], 0, 0));
                    }
                    let read = opts.read_data.is_some_and(|sub| sub.contains(pack));
                    check_pack(repo, reader, pack, entries, read)
                })
                .collect::<Result<Vec<_>>>()
        });
        match results.and_then(|r| r) {
            Ok(results) => {
                for (problems, blobs, bytes) in results {
                    self.problems.extend(problems);
                    self.blobs += blobs;
                    self.bytes += bytes;
                    self.packs_read += usize::from(bytes > 0);
                }
            }
            Err(e) => self.failed = Some(e),
        }
    }

    fn finish(mut self) -> Result<Self> {
        self.run();
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// Load every tree reachable from `roots` once, checking that each file's chunks are
/// indexed. Each level of the trees is loaded in parallel. `roots` name the snapshot of
/// each root ("snapshot X"), for messages; deeper paths are built only for problems.
fn walk_trees(
    reader: &PackReader<'_>,
    index: &Index,
    roots: Vec<(TreeId, String)>,
    used: &[AtomicU64],
    unindexed: &mut HashSet<[u8; 32]>,
    report: &mut CheckReport,
    interrupt: &AtomicBool,
) -> Result<HashSet<TreeId>> {
    let remote = reader.repo().backend().is_remote();
    let mut seen: HashSet<TreeId> = HashSet::new();
    // (tree, its parent's position in `names`, its name): paths are rebuilt on demand.
    let mut names: Vec<(Option<usize>, String)> = Vec::new();
    let mut level: Vec<(TreeId, usize)> = Vec::new();
    for (id, origin) in roots {
        names.push((None, origin));
        level.push((id, names.len() - 1));
    }
    let path_of = |names: &[(Option<usize>, String)], mut i: usize| {
        let mut parts = Vec::new();
        loop {
            parts.push(names[i].1.clone());
            match names[i].0 {
                Some(p) => i = p,
                None => break,
            }
        }
        parts.reverse();
        format!("{}: /{}", parts[0], parts[1..].join("/"))
    };
    while !level.is_empty() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "check interrupted"));
        }
        level.retain(|(id, _)| seen.insert(*id));
        type Found = (Vec<(TreeId, usize, String)>, Vec<(usize, String, Vec<[u8; 32]>)>);
        let results: Vec<(TreeId, usize, Result<Found>)> = level
            .par_iter()
            .map(|(id, at)| {
                let mark = |b: &BlobId| {
                    if let Some(i) = index.position(b) {
                        used[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
                        true
                    } else {
                        false
                    }
                };
                mark(&BlobId::Tree(*id));
                let found = load_tree_with_parts(reader, index, id).map(|(tree, parts)| {
                    for part in &parts {
                        mark(&BlobId::Tree(*part));
                    }
                    let (mut dirs, mut missing) = (Vec::new(), Vec::new());
                    for node in tree.nodes {
                        match &node.kind {
                            NodeKind::Dir { tree } => {
                                dirs.push((*tree, *at, String::from_utf8_lossy(&node.name).into_owned()))
                            }
                            NodeKind::File { chunks, .. } => {
                                let lost: Vec<[u8; 32]> = chunks
                                    .iter()
                                    .filter(|c| !mark(&BlobId::Chunk(**c)))
                                    .map(|c| c.0)
                                    .collect();
                                if !lost.is_empty() {
                                    missing.push((
                                        *at,
                                        String::from_utf8_lossy(&node.name).into_owned(),
                                        lost,
                                    ));
                                }
                            }
                            _ => {}
                        }
                    }
                    (dirs, missing)
                });
                (*id, *at, found)
            })
            .collect();
        let mut next = Vec::new();
        for (id, at, found) in results {
            match found {
                Ok((dirs, missing)) => {
                    for (parent, name, lost) in missing {
                        let dir = path_of(&names, parent);
                        let file = format!("{}{name}", if dir.ends_with('/') { dir } else { dir + "/" });
                        let n = lost.len();
                        report.problem(format!("file {file}"), format!("{n} chunks missing from the index"));
                        unindexed.extend(lost);
                    }
                    for (tree, parent, name) in dirs {
                        names.push((Some(parent), name));
                        next.push((tree, names.len() - 1));
                    }
                }
                Err(e) if store_failed(remote, &e) => return Err(e),
                Err(e) => {
                    report.problem(format!("tree {id}"), format!("{e} (folder {})", path_of(&names, at)))
                }
            }
        }
        level = next;
    }
    Ok(seen)
}

/// Whether a failed read says nothing of what the store holds: a remote store that kept
/// failing through the retries (a network outage, a timeout, a server error), or a
/// refusal. The check stops with it rather than report damage it did not see, so an
/// integrity job does not cry damage over an outage (exit 1, not 4). An object missing or
/// not what it should be is damage, and so is a local disk's read error: a sector it
/// cannot read is data lost, and the check goes on to name every object it takes.
fn store_failed(remote: bool, e: &crate::error::Error) -> bool {
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::Interrupted => true,
        ErrorKind::Io => remote,
        _ => false,
    }
}

/// Check one pack; returns its problems, blobs read and bytes read, or the store's
/// failure to answer (see [`store_failed`]).
fn check_pack(
    repo: &Repository,
    reader: &PackReader<'_>,
    pack: &PackId,
    entries: &[Entry],
    read_data: bool,
) -> Result<(Vec<Problem>, u64, u64)> {
    let object = format!("pack {pack}");
    let all: Vec<[u8; 32]> = entries.iter().map(|e| *e.id.bytes()).collect();
    let lost = |d: String| vec![Problem::new(object.clone(), d, all.clone())];
    if !read_data {
        let end = |e: &crate::format::pack::Entry| e.offset as u64 + e.length as u64;
        let need = entries.iter().map(end).max().unwrap_or(0);
        return match repo.backend().size(FileType::Pack, &pack.to_hex()) {
            Ok(size) if size >= need => Ok((vec![], 0, 0)),
            Ok(size) => {
                let cut: Vec<[u8; 32]> =
                    entries.iter().filter(|e| end(e) > size).map(|e| *e.id.bytes()).collect();
                Ok((
                    vec![Problem::new(
                        object,
                        format!("truncated: {size} bytes, its blobs need {need}"),
                        cut,
                    )],
                    0,
                    0,
                ))
            }
            Err(e) if store_failed(repo.backend().is_remote(), &e) => Err(e),
            Err(e) => Ok((lost(e.to_string()), 0, 0)),
        };
    }
    let mut bytes = match repo.read_object(FileType::Pack, &pack.to_hex()) {
        Ok(b) => b,
        Err(e) if store_failed(repo.backend().is_remote(), &e) => return Err(e),
        Err(e) => return Ok((lost(e.to_string()), 0, 0)),
    };
    let n = bytes.len() as u64;
    let mut out = Vec::new();
    if blake3::hash(&bytes).as_bytes() != &pack.0 {
        out.push(Problem::new(object.clone(), "content does not match its name", Vec::new()));
    }
    match read_toc(repo.keys(), &bytes) {
        Ok(toc) => {
            let toc: HashSet<_> = toc.into_iter().collect();
            let differ = entries.iter().filter(|e| !toc.contains(e)).count();
            if differ > 0 {
                let damage = format!("{differ} index entries disagree with the pack's table");
                out.push(Problem::new(object.clone(), damage, Vec::new()));
            }
        }
        Err(e) => out.push(Problem::new(object.clone(), format!("table of contents: {e}"), Vec::new())),
    }
    let key = match reader.key(pack) {
        Ok(c) => c,
        Err(e) => return Ok((lost(e.to_string()), 0, n)),
    };
    let mut blobs = 0;
    // Entries come sorted by offset, a frame's blobs in order; a frame that overlaps its
    // predecessor is damage (and decrypting it in place would spoil its neighbour).
    let mut free_from = 0usize;
    for frame in entries.chunk_by(|a, b| a.same_frame(b)) {
        let e = &frame[0];
        let ids = || frame.iter().map(|e| *e.id.bytes()).collect::<Vec<_>>();
        let (s, l) = (e.offset as usize, e.length as usize);
        if s < free_from || frame.iter().any(|f| f.length != e.length) {
            let damage =
                format!("the frame of {} overlaps another or its entries disagree on its length", e.id);
            out.push(Problem::new(object.clone(), damage, ids()));
            continue;
        }
        free_from = s + l;
        // Frames are decrypted where they lie in the pack buffer (read once, no copies).
        let opened = match bytes.get_mut(s..s + l) {
            Some(sealed) => open_frame(&key, frame.iter().max_by_key(|e| e.end()).expect("a frame"), sealed),
            None => Err(Error::corrupt(format!("{} lies past the end of the pack", e.id))),
        };
        let plain = match opened {
            Ok(plain) => plain,
            Err(err) => {
                out.push(Problem::new(object.clone(), err, ids()));
                continue;
            }
        };
        for e in frame {
            match blob_of_frame(repo.keys(), e, &plain) {
                Ok(_) => blobs += 1,
                Err(err) => out.push(Problem::new(object.clone(), err, vec![*e.id.bytes()])),
            }
        }
    }
    Ok((out, blobs, n))
}

/// Paths below a tree that use a damaged blob, with that blob; shared between the
/// snapshots that hold the same tree.
type Uses = std::rc::Rc<Vec<(String, [u8; 32])>>;
type UsesByTree = HashMap<TreeId, Uses>;

/// Damaged blob id -> "snapshot ID: path" of every file or folder that needs it.
fn find_affected(
    repo: &Repository,
    index: &Index,
    damaged: &HashSet<[u8; 32]>,
) -> Result<HashMap<[u8; 32], Vec<String>>> {
    let reader = PackReader::new(repo);
    let mut memo: UsesByTree = HashMap::new();
    let mut out: HashMap<[u8; 32], Vec<String>> = HashMap::new();
    for (sid, snap) in repo.snapshots()? {
        for (path, blob) in affected_in(&reader, index, snap.tree, damaged, &mut memo).iter() {
            out.entry(*blob).or_default().push(format!("snapshot {}: /{path}", sid.short()));
        }
    }
    Ok(out)
}

/// Paths (relative to the tree) that use a damaged blob, memoized by tree. A folder that
/// cannot be read is listed itself (the empty path), with the damaged blob it is stored
/// in: its tree, or one of the parts of a folder stored in parts.
fn affected_in(
    reader: &PackReader<'_>,
    index: &Index,
    id: TreeId,
    damaged: &HashSet<[u8; 32]>,
    memo: &mut UsesByTree,
) -> Uses {
    if let Some(v) = memo.get(&id) {
        return v.clone();
    }
    let mut found = Vec::new();
    match load_tree(reader, index, &id) {
        Ok(tree) => {
            for node in tree.nodes {
                let name = String::from_utf8_lossy(&node.name).into_owned();
                match &node.kind {
                    NodeKind::File { chunks, .. } => {
                        if let Some(c) = chunks.iter().find(|c| damaged.contains(&c.0)) {
                            found.push((name, c.0));
                        }
                    }
                    NodeKind::Dir { tree } => {
                        let below = affected_in(reader, index, *tree, damaged, memo);
                        found.extend(below.iter().map(|(p, b)| (format!("{name}/{p}"), *b)));
                    }
                    _ => {}
                }
            }
        }
        Err(_) => {
            let part = || tree_parts(reader, index, &id).ok()?.into_iter().find(|p| damaged.contains(&p.0));
            if let Some(blob) = damaged.get(&id.0).copied().or_else(|| part().map(|p| p.0)) {
                found.push((String::new(), blob));
            }
        }
    }
    let v = std::rc::Rc::new(found);
    memo.insert(id, v.clone());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::InitOptions;

    /// The path and tree of the first folder named `name` below `id`.
    fn folder_named(
        reader: &PackReader<'_>,
        index: &Index,
        id: TreeId,
        name: &[u8],
    ) -> Option<(String, TreeId)> {
        for node in load_tree(reader, index, &id).ok()?.nodes {
            if let NodeKind::Dir { tree } = node.kind {
                let shown = String::from_utf8_lossy(&node.name).into_owned();
                if node.name == name {
                    return Some((shown, tree));
                }
                if let Some((below, t)) = folder_named(reader, index, tree, name) {
                    return Some((format!("{shown}/{below}"), t));
                }
            }
        }
        None
    }

    /// A folder stored in parts whose head reads but one part does not: the folder is
    /// listed as affected, as a folder whose tree is damaged is (it was left out).
    #[test]
    fn a_folder_with_a_damaged_part_is_listed_as_affected() {
        let dir = tempfile::tempdir().unwrap();
        let src = crate::ops::backup::tests::source_with_split_folder(dir.path());
        let loc = dir.path().join("r");
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap();
        let outcome = crate::ops::backup::tests::back_up(&repo, &src);
        let index = Index::load(&repo).unwrap();
        let reader = PackReader::new(&repo);
        let (path, wide) = folder_named(&reader, &index, outcome.snapshot.tree, b"wide").unwrap();
        let parts = tree_parts(&reader, &index, &wide).unwrap();
        assert!(parts.len() >= 2, "the folder must be stored in parts");

        // One byte of the first part's frame (over 1 MiB: a frame of its own) flipped on disk;
        // the head still reads.
        let at = index.get(&BlobId::Tree(parts[0])).unwrap();
        let pack = loc.join(crate::backend::object_path(FileType::Pack, &at.pack.to_hex()));
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[at.entry.offset as usize + 40] ^= 1;
        std::fs::set_permissions(&pack, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(&pack, bytes).unwrap();
        assert!(tree_parts(&PackReader::new(&repo), &index, &wide).is_ok());

        let damaged = HashSet::from([parts[0].0]);
        let affected = find_affected(&repo, &index, &damaged).unwrap();
        assert_eq!(
            affected.get(&parts[0].0),
            Some(&vec![format!("snapshot {}: /{path}/", outcome.id.short())])
        );
    }

    #[test]
    fn subsets_partition_the_packs_and_shares_are_stable() {
        let packs: Vec<PackId> =
            (0..1000u32).map(|i| PackId(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
        let parts: Vec<Subset> = (1..=5).map(|n| Subset::parse(&format!("{n}/5")).unwrap()).collect();
        for p in &packs {
            assert_eq!(parts.iter().filter(|s| s.contains(p)).count(), 1, "each pack in exactly one part");
        }
        let tenth = packs.iter().filter(|p| Subset::parse("10%").unwrap().contains(p)).count();
        assert!((60..140).contains(&tenth), "{tenth} of 1000 in 10%");
        for bad in ["0/5", "6/5", "1/0", "x", "150%", "1/"] {
            assert!(Subset::parse(bad).is_err(), "{bad}");
        }
    }
}
