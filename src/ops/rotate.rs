//! `key rotate`: new key epoch secrets, every object sealed anew under them, and every
//! key file given them, so that a key removed before (or a copy of a key file from before a
//! password change) opens nothing afterwards. The procedure and why each step is safe to
//! stop at is in format-spec/keys.md (key rotation); in short:
//!
//! 1. every key file gets the new epoch beside the old one (the key in use first);
//! 2. the config is sealed under the new epoch with its public key: from here on every
//!    write is sealed under it;
//! 3. snapshots, the activity log, packs and index files are sealed anew;
//! 4. every key file keeps only the new epoch (the key in use last).
//!
//! What a run does is read from the key in use and the config alone, so a run stopped at
//! any point is continued by the next. The caller holds the exclusive lock throughout.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType, WrittenBy};
use crate::format::keyfile;
use crate::id::{PackId, SnapshotId};
use crate::ops::prune::{self, PruneOptions};
use crate::ops::rechunk::{chunk_list_key, named_under_newest};
use crate::repo::lock::LockGuard;
use crate::repo::log::LogRecord;
use crate::repo::snapshot_file::Summary;
use crate::repo::Repository;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a rotation did.
#[derive(Clone, Debug, Default)]
pub struct RotateReport {
    /// The key epoch everything is now sealed under.
    pub epoch: u16,
    /// Whether this run continued a rotation an earlier run began.
    pub resumed: bool,
    /// Key files given new epochs, the one in use counted (twice per file: once with both
    /// epochs, once with the new one alone).
    pub key_files_written: usize,
    pub snapshots: usize,
    pub log_entries: usize,
    /// Packs sealed under the old epoch that were repacked or (wholly unused) deleted.
    pub packs: usize,
    /// Files in keys/ given nothing, with why: damaged, or with no full key's grant
    /// (planted). They open nothing once the rotation completes.
    pub passed_over: Vec<String>,
    /// Keys made since the last rotation outside the repository's `keys/` (kept apart
    /// with `key add --to-file`, or printed with `key export`), which the rotation cannot
    /// reach: they no longer open the repository after it. One line each.
    pub left_behind: Vec<String>,
    /// What the user should know that did not stop the rotation.
    pub warnings: Vec<String>,
    /// Whether the content root was renewed too (`--content-keys`).
    pub content_renewed: bool,
    /// Snapshots stored anew under the new content root, and what that read.
    pub stored_anew: StoredAnew,
}

/// The second phase of a content key rotation, in figures.
#[derive(Clone, Debug, Default)]
pub struct StoredAnew {
    pub snapshots: usize,
    /// File bytes read back and cut anew.
    pub bytes_read: u64,
    /// Bytes of new packs stored.
    pub bytes_stored: u64,
}

/// Whether a rotation also renews the content root (`--content-keys`), and from where.
#[derive(Clone, Copy, Default)]
pub enum ContentKeys<'a> {
    /// Chunk boundaries and blob ids stay: data dedups as before.
    #[default]
    Kept,
    /// A new content root: fresh, or `from` another repository's newest (`--content-from`),
    /// so that the two dedup with each other again.
    Renewed { from: Option<&'a Repository> },
}

/// Rotate the keys of `repo`, opened with `passphrase` (needed only to upgrade a version 1
/// key file in use), under the exclusive lock `lock` the caller took. `say` is told each
/// step as it starts.
pub fn rotate(
    repo: &Repository,
    lock: &LockGuard<'_>,
    passphrase: &[u8],
    content: ContentKeys<'_>,
    say: &dyn Fn(&str),
    interrupt: &AtomicBool,
) -> Result<RotateReport> {
    repo.require_full_key("rotate the keys")?;
    if repo.config().object_lock.is_some() {
        // Locked objects stay until their locks end, readable by the old key, and the
        // config's old version would stay beside the new one: a rotation could keep
        // neither of its promises.
        return Err(Error::invalid(
            "key rotate is refused on a repository with S3 Object Lock: what it seals anew stays locked, and readable with the old key, until the lock period ends; copy the repository into a new one (`cairn init --object-lock`, then `cairn copy`) to change its keys",
        ));
    }
    // A snapshot that cannot be read cannot be sealed anew: refused before anything changes.
    let (_, damaged) = repo.snapshots_and_damage()?;
    crate::repo::refuse_unreadable(&damaged, &[], "key rotate")?;
    let mut report = RotateReport { left_behind: keys_left_behind(repo)?, ..RotateReport::default() };
    let held = repo.master().epoch_numbers();
    let write = repo.keys().write_epoch();
    let renewing = matches!(content, ContentKeys::Renewed { .. });
    if held.len() > 1 && renewing && !repo.master().holds_older_content() {
        return Err(Error::invalid(
            "a key rotation that keeps the content keys is under way: run `cairn key rotate` to finish it, then `cairn key rotate --content-keys`",
        ));
    }
    let rotated = match held.as_slice() {
        [_] => {
            refuse_version_1_keys(repo)?;
            let material = match content {
                ContentKeys::Kept => repo.master().with_new_epoch()?,
                ContentKeys::Renewed { from } => {
                    if let Some(src) = from {
                        src.require_full_key("give its content keys")?;
                        if src.config().chunker != repo.config().chunker {
                            return Err(Error::invalid(
                                "the other repository cuts chunks of other sizes, so taking its content keys would not make the two dedup; renew them without --content-from",
                            ));
                        }
                        if src.master().same_content_root(repo.master()) {
                            return Err(Error::invalid(
                                "the repositories already share their content keys: nothing to take from the other",
                            ));
                        }
                    }
                    refuse_without_room(repo)?;
                    repo.master().with_new_content(from.map(Repository::master))?
                }
            };
            start(repo, material, passphrase, say, &mut report)?
        }
        [old, _] if write == *old => {
            report.resumed = true;
            refuse_version_1_keys(repo)?;
            start(repo, repo.master().duplicate(), passphrase, say, &mut report)?
        }
        _ => {
            report.resumed = true;
            repo.with_material(repo.master().duplicate(), repo.config().clone(), repo.key_id())?
        }
    };
    // The lock too is sealed under the new epoch: a run killed after the last key file
    // dropped the old one must not leave a lock no key opens.
    lock.seal_under(rotated.keys_shared())?;
    report.epoch = rotated.keys().write_epoch();
    let started = LogRecord::new("key rotate", "started").figure("epoch", report.epoch);
    if let Err(e) = rotated.append_log(started) {
        report.warnings.push(format!("the activity log did not take the rotation's start: {e}"));
    }
    check_interrupt(interrupt)?;
    if rotated.master().holds_older_content() {
        report.content_renewed = true;
        // The long phase: backups may go on meanwhile, under the new content keys.
        lock.make_shared()?;
        report.stored_anew = store_snapshots_anew(&rotated, say, interrupt)?;
        say("waiting for the exclusive lock");
        lock.make_exclusive_waiting(say, interrupt)?;
        // Under the exclusive lock, whatever another process stored meanwhile with the old
        // content keys (none should: every writer now holds the new ones) is taken too.
        let late = store_snapshots_anew(&rotated, say, interrupt)?;
        report.stored_anew.snapshots += late.snapshots;
        report.stored_anew.bytes_read += late.bytes_read;
        report.stored_anew.bytes_stored += late.bytes_stored;
        check_interrupt(interrupt)?;
    }
    say("sealing the snapshots anew");
    report.snapshots = reseal_snapshots(&rotated)?;
    check_interrupt(interrupt)?;
    say("sealing the activity log anew");
    report.log_entries = rotated.reseal_log()?;
    check_interrupt(interrupt)?;
    report.packs = reseal_packs(&rotated, say, interrupt)?;
    rotated.unlock(false)?;
    let left = objects_of_other_epochs(&rotated)?;
    if !left.is_empty() {
        return Err(Error::corrupt(format!(
            "{} objects are still sealed under the old key epoch ({}); nothing was taken from the keys; run `cairn check`, then `cairn key rotate` again",
            left.len(),
            left.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let last = rotated.master().newest_only();
    if report.content_renewed {
        check_without_older_content(&rotated, &last, say, interrupt)?;
    }
    say("taking the old key epoch out of every key file");
    let (replaced, passed_over) = rotated.rewrap_other_keys(&last, rotated.keys())?;
    report.key_files_written += replaced.len();
    report.passed_over.extend(passed_over);
    rotated.rewrap_key_in_use(&last, rotated.keys(), passphrase)?;
    report.key_files_written += 1;
    Ok(report)
}

/// Keys the activity log shows were made since the last completed rotation where a
/// rotation cannot reach them: added to a file kept apart (its id names no file in
/// `keys/`, and no later `key remove` took it out; the key in use is not, its own file
/// is written anew) or exported on paper (the key in use too: the paper keeps the old
/// bytes). A log that cannot be read names none
/// (the rotation then only knows the files it passes over).
fn keys_left_behind(repo: &Repository) -> Result<Vec<String>> {
    let Ok(log) = repo.read_log() else { return Ok(Vec::new()) };
    let since = log.entries.iter().rposition(|e| e.operation == "key rotate" && e.outcome == "success");
    let stored = repo.backend().list(crate::backend::FileType::Key)?;
    let in_use = repo.key_id().short();
    let key_of =
        |e: &crate::format::log::LogEntry| e.figures.iter().find(|(k, _)| k == "key").map(|(_, v)| v.clone());
    let later = &log.entries[since.map_or(0, |i| i + 1)..];
    let mut out = Vec::new();
    for (i, e) in later.iter().enumerate() {
        let Some(key) = key_of(e).filter(|_| e.outcome == "success") else { continue };
        // Removed, or its file replaced by one with new material under another id (key
        // add --maintenance re-wraps key files, and logs each as a "key rewrap").
        let removed = || {
            later[i..].iter().any(|r| {
                matches!(r.operation.as_str(), "key remove" | "key rewrap")
                    && key_of(r).as_ref() == Some(&key)
            })
        };
        let at =
            jiff::Timestamp::from_second(e.time.secs).map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
        let when = format!("{} on {}", at.unwrap_or_default(), e.host);
        match e.operation.as_str() {
            "key add" if key != in_use && !stored.iter().any(|n| n.starts_with(&key)) && !removed() => {
                out.push(format!("key {key}, added to a file kept apart ({when})"))
            }
            "key export" if !removed() => out.push(format!("the paper copy of key {key} ({when})")),
            _ => {}
        }
    }
    Ok(out)
}

fn check_interrupt(interrupt: &AtomicBool) -> Result<()> {
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::new(
            ErrorKind::Interrupted,
            "key rotation interrupted; every key still opens the repository; run `cairn key rotate` again to finish",
        ));
    }
    Ok(())
}

/// Steps 1 and 2: every key file holds `material`'s two epochs, then the config names the
/// newer. Returns the repository opened under the new epoch.
fn start(
    repo: &Repository,
    material: crate::crypto::keys::MasterKey,
    passphrase: &[u8],
    say: &dyn Fn(&str),
    report: &mut RotateReport,
) -> Result<Repository> {
    say(&format!("giving every key file key epoch {}", material.epoch_numbers().last().expect("two epochs")));
    // Grants are sealed under the new epoch, so that only its keys open them afterwards.
    let sealer = material.derive(material.public_key(), repo.config().repo_id)?;
    // The key in use, opened with both epochs: grants of either kind open.
    let both = repo.with_material(material.duplicate(), repo.config().clone(), repo.key_id())?;
    let in_use = both.rewrap_key_in_use(&material, &sealer, passphrase)?;
    let both = both.with_material(material.duplicate(), repo.config().clone(), in_use)?;
    let (replaced, passed_over) = both.rewrap_other_keys(&material, &sealer)?;
    report.key_files_written += 1 + replaced.len();
    report.passed_over.extend(passed_over);
    let public = material.public_key();
    both.switch_epoch(material, public)
}

/// A rotation gives new epochs to key files it cannot open: only through their slot, which
/// version 1 files lack. The key in use is upgraded with its password.
pub(crate) fn refuse_version_1_keys(repo: &Repository) -> Result<()> {
    let old: Vec<String> = repo
        .stored_key_files()?
        .into_iter()
        .filter(|(id, f)| *id != repo.key_id() && f.version == keyfile::VERSION_1)
        .map(|(id, f)| {
            format!("{} ({} key of {}@{})", id.short(), f.kind.name(), f.header.user, f.header.host)
        })
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "key files {} are of version 1 and cannot be given new keys without their passwords: a full key's holder runs `cairn key passwd` once; a backup-only key is replaced (`cairn key add --backup-only`, then `cairn key remove ID`)",
        old.join(", ")
    )))
}

/// Phase 2 of a content key rotation: every snapshot whose root tree is not named under
/// the new content root is stored anew (files read back, cut and named anew; folders
/// encoded anew) and then removed. The new snapshot keeps everything else the old one
/// says, and its writer's kind. A run killed between storing one and removing the old
/// one finds the new one by its payload and only removes the old one.
fn store_snapshots_anew(repo: &Repository, say: &dyn Fn(&str), interrupt: &AtomicBool) -> Result<StoredAnew> {
    let index = crate::index::Index::load(repo)?;
    let reader = crate::pack::PackReader::new(repo);
    let snapshots = repo.snapshots()?;
    let mut stored: HashSet<[u8; 32]> = HashSet::new();
    let mut old = Vec::new();
    for (id, snap) in snapshots {
        let new = named_under_newest(&reader, &index, &snap.tree).map_err(|e| {
            e.wrap(format!("snapshot {}: its root folder cannot be read, so it cannot be stored anew; `cairn check` tells more", id.short()))
        })?;
        if new {
            stored.insert(*blake3::hash(&snap.encode()).as_bytes());
        } else {
            old.push((id, snap));
        }
    }
    let rechunker = crate::ops::rechunk::Rechunker::default();
    let mut out = StoredAnew::default();
    for (i, (id, snap)) in old.iter().enumerate() {
        check_interrupt(interrupt)?;
        say(&format!(
            "storing snapshot {} anew under the new content keys ({} of {}, {} MB read)",
            id.short(),
            i + 1,
            old.len(),
            rechunker.bytes_read.load(Ordering::Relaxed) >> 20
        ));
        let (tree, stats) = rechunker
            .store_anew(repo, &index, snap, interrupt)
            .map_err(|e| e.wrap(format!("storing snapshot {} anew", id.short())))?;
        out.bytes_stored += stats.bytes_stored;
        let new = crate::format::snapshot::Snapshot { tree, ..snap.clone() };
        let payload = new.encode();
        // Two old snapshots alike (a plain rotation killed between its two writes leaves
        // such a pair) give one new snapshot.
        if stored.insert(*blake3::hash(&payload).as_bytes()) {
            let bytes = repo.seal_snapshot_file(&payload, kept_writer(snap.written_by))?;
            repo.store_sealed(FileType::Snapshot, &bytes)?;
            crate::failpoint::hit("rotate:after-stored-anew");
        }
        crate::ops::object_lock::note_deleted(repo, FileType::Snapshot, &[id.to_hex()])?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
        out.snapshots += 1;
        if (i + 1) % 100 == 0 {
            let progress =
                LogRecord::new("key rotate", "progress").figure("stored_anew", i + 1).figure("of", old.len());
            if let Err(e) = repo.append_log(progress) {
                say(&format!("the activity log did not take the rotation's progress: {e}"));
            }
        }
    }
    out.bytes_read = rechunker.bytes_read.load(Ordering::Relaxed);
    Ok(out)
}

/// What a content key rotation would read and store, found without changing anything
/// (`key rotate --content-keys --dry-run`).
#[derive(Clone, Debug, Default)]
pub struct ContentPlan {
    /// Snapshots to store anew (not yet named under the newest content root).
    pub snapshots: usize,
    /// File content to read back and cut anew: each distinct file once.
    pub file_bytes: u64,
    /// The packs' size now: about what the repository grows by until the old data goes.
    pub pack_bytes: u64,
    /// Free space on the repository's disk (a local store only).
    pub free_bytes: Option<u64>,
}

/// Plan a content key rotation of `repo`: walk the folders of every snapshot it would
/// store anew (metadata only) and add up each distinct file once, as the rotation reads it.
pub fn plan_content_rotation(repo: &Repository) -> Result<ContentPlan> {
    use crate::format::tree::NodeKind;
    use crate::id::TreeId;
    repo.require_full_key("plan a content key rotation")?;
    let index = crate::index::Index::load(repo)?;
    let reader = crate::pack::PackReader::new(repo);
    let mut plan = ContentPlan {
        pack_bytes: repo.backend().list_detailed(FileType::Pack)?.iter().map(|l| l.size).sum(),
        free_bytes: free_space(repo)?,
        ..ContentPlan::default()
    };
    let mut trees: HashSet<TreeId> = HashSet::new();
    let mut files: HashSet<[u8; 32]> = HashSet::new();
    for (_, snap) in repo.snapshots()? {
        // Before a content rotation starts, every snapshot is stored anew.
        if repo.keys().holds_older_content() && named_under_newest(&reader, &index, &snap.tree)? {
            continue;
        }
        plan.snapshots += 1;
        let mut todo = vec![snap.tree];
        while let Some(id) = todo.pop() {
            if !trees.insert(id) {
                continue;
            }
            for node in crate::tree::load_tree(&reader, &index, &id)?.nodes {
                match node.kind {
                    NodeKind::Dir { tree } => todo.push(tree),
                    NodeKind::File { size, chunks } if files.insert(chunk_list_key(&chunks)) => {
                        plan.file_bytes += size
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(plan)
}

/// Free space on a local store's disk; `None` for a remote store.
fn free_space(repo: &Repository) -> Result<Option<u64>> {
    if repo.backend().is_remote() {
        return Ok(None);
    }
    let fs = rustix::fs::statvfs(repo.backend().location().as_str()).map_err(|e| {
        Error::with_source(
            ErrorKind::Io,
            "cannot tell the repository disk's free space",
            std::io::Error::from(e),
        )
    })?;
    Ok(Some(fs.f_bavail.saturating_mul(fs.f_frsize)))
}

/// A content key rotation stores every snapshot anew before it deletes the old data, so
/// the repository grows by about its packs' size. On a local store it does not start
/// (nothing changed yet) without that much free space: a disk filled halfway would leave
/// a rotation that can neither go on nor be undone without more room.
fn refuse_without_room(repo: &Repository) -> Result<()> {
    let Some(free) = free_space(repo)? else { return Ok(()) };
    let packs: u64 = repo.backend().list_detailed(FileType::Pack)?.iter().map(|l| l.size).sum();
    if free >= packs {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::NoSpace,
        format!(
            "renewing the content keys stores every snapshot anew before the old data goes: it needs about {} MB free on the repository's disk, which has {} MB; make room (or prune first), then run it again",
            packs.div_ceil(1 << 20),
            free >> 20
        ),
    ))
}

/// Before the old content root leaves the keys: the repository, opened with the key as
/// it will be (`last`: the new epoch and content root alone), checks whole, every pack
/// read. A blob still named under the old root would be lost with it: the rotation stops
/// instead, and nothing is taken from the keys.
fn check_without_older_content(
    repo: &Repository,
    last: &crate::crypto::keys::MasterKey,
    say: &dyn Fn(&str),
    interrupt: &AtomicBool,
) -> Result<()> {
    say("reading every pack with the new content keys alone");
    let future = repo.with_material(last.duplicate(), repo.config().clone(), repo.key_id())?;
    let opts = crate::ops::check::CheckOptions {
        read_data: Some(crate::ops::check::Subset::All),
        ..Default::default()
    };
    let report = crate::ops::check::check(&future, &opts, interrupt)?;
    if report.healthy() {
        return Ok(());
    }
    let first: Vec<String> =
        report.problems.iter().take(3).map(|p| format!("{}: {}", p.object, p.damage)).collect();
    Err(Error::corrupt(format!(
        "with the new content keys alone the repository does not check ({} problems: {}); the old content keys were kept; run `cairn check --read-data`, then `cairn key rotate --content-keys` again",
        report.problems.len(),
        first.join("; ")
    )))
}

/// The writer a sealed-anew object keeps: only what a full key proved it wrote stays a full
/// key's.
pub(crate) fn kept_writer(w: WrittenBy) -> WrittenBy {
    match w {
        WrittenBy::FullKey => WrittenBy::FullKey,
        WrittenBy::BackupOnlyKey | WrittenBy::MaintenanceKey | WrittenBy::Unknown => WrittenBy::BackupOnlyKey,
    }
}

/// Every snapshot not of the write epoch sealed anew (a new id: the hash of its bytes),
/// the new one stored before the old one goes. A snapshot whose copy an earlier run stored
/// (same payload under the write epoch) is only removed.
fn reseal_snapshots(repo: &Repository) -> Result<usize> {
    let write = repo.keys().write_epoch();
    let mut done: HashSet<[u8; 32]> = HashSet::new();
    let mut old = Vec::new();
    for name in repo.list_named_objects(FileType::Snapshot)? {
        let id = SnapshotId::from_hex(&name)?;
        let opened = repo.read_snapshot_file(&id, Summary::Skipped).map_err(|e| {
            e.wrap(format!(
                "snapshot {} cannot be read, so it cannot be sealed anew; `cairn check` tells more, `cairn forget {}` removes it",
                id.short(),
                id.short()
            ))
        })?;
        let opened = opened.snapshot.expect("a full key opens snapshots");
        if opened.epoch == write {
            done.insert(*blake3::hash(&opened.payload).as_bytes());
        } else {
            old.push((id, opened));
        }
    }
    for (id, opened) in &old {
        if !done.contains(blake3::hash(&opened.payload).as_bytes()) {
            repo.carry_record(id);
            let bytes = repo.seal_snapshot_file(&opened.payload, kept_writer(opened.written_by))?;
            repo.store_sealed(FileType::Snapshot, &bytes)?;
            crate::failpoint::hit("rotate:after-new-snapshot");
        }
        crate::ops::object_lock::note_deleted(repo, FileType::Snapshot, &[id.to_hex()])?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
    }
    Ok(old.len())
}

/// The packs sealed under a key epoch other than `epoch`: by their header, and for a
/// moved-frames pack by its frames' origins too (each frame keeps the key it was sealed
/// with, so a pack moved under the new epoch may still hold frames of an old one).
fn packs_of_other_epochs(repo: &Repository, epoch: u16) -> Result<HashSet<PackId>> {
    packs_where(repo, |h, origins| h.epoch != epoch || origins.iter().any(|o| o.epoch != epoch))
}

/// The stored packs whose header and (for a moved-frames pack) origins satisfy `pred`,
/// each read by its head alone.
pub(crate) fn packs_where(
    repo: &Repository,
    pred: impl Fn(&crate::format::pack::Header, &[crate::format::pack::Origin]) -> bool + Sync,
) -> Result<HashSet<PackId>> {
    use crate::format::pack;
    use rayon::prelude::*;
    let names = repo.backend().list(FileType::Pack)?;
    let found: Vec<Result<(PackId, bool)>> = crate::ops::read_pool::install(repo, || {
        names
            .par_iter()
            .map(|name| {
                let id = PackId::from_hex(name)?;
                let wrap = |e: crate::error::Error| e.wrap(format!("pack {name}"));
                let read = |len: usize| repo.backend().read_range(FileType::Pack, name, 0, len as u64);
                let (h, head) = pack::read_head(read).map_err(wrap)?;
                let origins = match h.class {
                    pack::PackClass::Moved => pack::parse_origins(&h, &head).map_err(wrap)?,
                    _ => Vec::new(),
                };
                Ok((id, pred(&h, &origins)))
            })
            .collect()
    })?;
    let mut out = HashSet::new();
    for r in found {
        let (id, yes) = r?;
        if yes {
            out.insert(id);
        }
    }
    Ok(out)
}

/// The most a round of repacking adds to the repository before it deletes what it
/// repacked, as a share of what is to be repacked (and at least [`MIN_ROUND`]).
const ROUNDS: u64 = 8;
const MIN_ROUND: u64 = 256 << 20;

/// Packs of the old epoch repacked through prune (their used blobs into new packs, a new
/// index superseding every index file, then the old packs deleted). Prune's order keeps the
/// repository whole if it stops anywhere. In rounds of about an eighth of the bytes, so
/// the repository grows by at most that much on the way, and what a round did stays done.
/// A round is run even with nothing to repack: it writes the index anew.
fn reseal_packs(repo: &Repository, say: &dyn Fn(&str), interrupt: &AtomicBool) -> Result<usize> {
    let old = packs_of_other_epochs(repo, repo.keys().write_epoch())?;
    repack_in_rounds(repo, &old, say, interrupt)?;
    Ok(old.len())
}

/// Repack `old` through prune, in rounds (see [`reseal_packs`]): their used blobs are
/// written anew by this cairn's writer, and they are deleted.
pub(crate) fn repack_in_rounds(
    repo: &Repository,
    old: &HashSet<PackId>,
    say: &dyn Fn(&str),
    interrupt: &AtomicBool,
) -> Result<()> {
    let mut sized: Vec<(PackId, u64)> = repo
        .backend()
        .list_detailed(FileType::Pack)?
        .into_iter()
        .filter_map(|l| PackId::from_hex(&l.name).ok().filter(|p| old.contains(p)).map(|p| (p, l.size)))
        .collect();
    sized.sort();
    let total: u64 = sized.iter().map(|(_, size)| size).sum();
    let round = (total / ROUNDS).max(MIN_ROUND);
    let (mut done, mut done_bytes) = (0, 0);
    loop {
        check_interrupt(interrupt)?;
        let mut batch = HashSet::new();
        let mut bytes = 0;
        while let Some(&(pack, size)) = sized.get(done + batch.len()) {
            if !batch.is_empty() && bytes + size > round {
                break;
            }
            batch.insert(pack);
            bytes += size;
        }
        say(&format!(
            "repacking packs {}..{} of {} ({} of {} MB done) and writing the index anew",
            done + 1,
            done + batch.len(),
            sized.len(),
            done_bytes >> 20,
            total >> 20
        ));
        let n = batch.len();
        // Nothing else is repacked: only what the rotation needs moves.
        let opts = PruneOptions { max_unused: 1.0, repack_always: batch };
        let plan = prune::plan(repo, &opts, interrupt)?;
        prune::execute(repo, &plan, interrupt)?;
        done += n;
        done_bytes += bytes;
        if done >= sized.len() {
            return Ok(());
        }
    }
}

/// Names of the objects still sealed under another key epoch than the write epoch: packs,
/// snapshots, index files and log entries (a rotation is complete only when there are none).
fn objects_of_other_epochs(repo: &Repository) -> Result<Vec<String>> {
    let write = repo.keys().write_epoch();
    let mut left: Vec<String> =
        packs_of_other_epochs(repo, write)?.iter().map(|p| format!("pack {}", p.short())).collect();
    for name in repo.backend().list(FileType::Snapshot)? {
        let bytes = repo.read_object(FileType::Snapshot, &name)?;
        if repo
            .open_snapshot_file(&bytes, Summary::Skipped)
            .is_ok_and(|o| o.snapshot.is_some_and(|s| s.epoch != write))
        {
            left.push(format!("snapshot {}", &name[..8.min(name.len())]));
        }
    }
    for (ft, ty) in [(FileType::Index, ObjectType::Index)] {
        for name in repo.backend().list(ft)? {
            let bytes = repo.read_object(ft, &name)?;
            match envelope::open_attested(repo.keys(), ty, &bytes) {
                Ok(o) if o.epoch == write => {}
                Ok(_) => left.push(format!("{} {}", ty.name(), &name[..8.min(name.len())])),
                // Damaged: no key opens it, the old one included.
                Err(_) => {}
            }
        }
    }
    for name in repo.backend().list(FileType::Log)? {
        let bytes = repo.read_object(FileType::Log, &name)?;
        if envelope::open_attested(repo.keys(), ObjectType::Log, &bytes).is_ok_and(|o| o.epoch != write) {
            left.push(format!("log entry {name}"));
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KdfParams, KeyKind, MasterKey, RepoKeys};
    use crate::ops::backup::tests::back_up;
    use crate::repo::{InitOptions, KeySource};

    /// Whether `keys` open the stored object `name` of type `ft`: envelopes whole, packs by
    /// their table of contents, key files by their grant, the config by trying.
    fn opens(repo: &Repository, keys: &RepoKeys, master: &MasterKey, ft: FileType, name: &str) -> bool {
        let bytes = repo.backend().read(ft, name, u64::MAX).unwrap();
        let envelope_of = |ty| envelope::open_attested(keys, ty, &bytes).is_ok();
        match ft {
            FileType::Config => envelope::open_config(master, &bytes).is_ok(),
            FileType::Snapshot => envelope_of(ObjectType::Snapshot),
            FileType::Index => envelope_of(ObjectType::Index),
            FileType::Lock => envelope_of(ObjectType::Lock),
            FileType::Log => envelope_of(ObjectType::Log),
            FileType::Pack => crate::pack::reader::read_toc(keys, &bytes).is_ok(),
            FileType::Key => {
                let file = crate::format::keyfile::KeyFile::decode(&bytes).unwrap();
                envelope::open_attested(keys, ObjectType::KeyGrant, file.grant()).is_ok()
            }
        }
    }

    /// Every stored object of every kind opens with `rotated`'s key (so the test can
    /// fail) and with none of the `retired` ones. Returns how many objects it tried.
    fn assert_only_the_new_key_opens(rotated: &Repository, retired: &[(MasterKey, RepoKeys)]) -> usize {
        let mut objects = 0;
        for ft in FileType::ALL {
            let names = if ft == FileType::Config {
                vec!["config".to_string()]
            } else {
                rotated.backend().list(ft).unwrap()
            };
            assert!(!names.is_empty(), "the repository holds no {ft:?} to test");
            for name in names {
                objects += 1;
                assert!(
                    opens(rotated, rotated.keys(), rotated.master(), ft, &name),
                    "the new key does not open {ft:?} {name}"
                );
                for (m, k) in retired {
                    assert!(!opens(rotated, k, m, ft, &name), "a retired key opens {ft:?} {name}");
                }
            }
        }
        objects
    }

    /// After a completed rotation, the secrets a key held before it (a full key and a
    /// backup-only key) open no object of any kind, even told that the objects are of
    /// their epoch; the new key opens every one (so the check can fail).
    #[test]
    fn after_a_rotation_the_old_secrets_open_no_object_of_any_kind() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for i in 0..20u8 {
            std::fs::write(src.join(format!("f{i}")), vec![i; 30_000 + i as usize * 997]).unwrap();
        }
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap();
        let repo = Repository::init(loc, b"pw", &InitOptions::default(), None).unwrap();
        back_up(&repo, &src);
        std::fs::write(src.join("new"), b"more").unwrap();
        back_up(&repo, &src);
        repo.add_key(b"bo", KeyKind::BackupOnly, KdfParams::NEW_KEY_FLOOR, None).unwrap();
        repo.append_log(LogRecord::new("backup", "success")).unwrap();
        let old = repo.master().duplicate();
        let repo_id = repo.config().repo_id;

        {
            let lock = repo.lock(true, "key rotate").unwrap();
            rotate(&repo, &lock, b"pw", ContentKeys::Kept, &|_| {}, &AtomicBool::new(false)).unwrap();
        }
        // A process that opened the repository before the rotation seals nothing more.
        let stale = repo.append_log(LogRecord::new("backup", "success")).unwrap_err();
        assert_eq!(stale.kind(), crate::error::ErrorKind::Locked, "{stale}");
        let rotated = Repository::open(loc, b"pw", &KeySource::Stored).unwrap();
        assert_eq!(rotated.master().epoch_numbers(), vec![1]);
        let _lock = rotated.lock(false, "test").unwrap();
        rotated.append_log(LogRecord::new("check", "success")).unwrap();

        let new_epoch = rotated.keys().write_epoch();
        let retired: Vec<(MasterKey, RepoKeys)> = [old.duplicate(), old.backup_only()]
            .into_iter()
            .flat_map(|m| {
                [m.duplicate(), m.relabelled(new_epoch)].map(|m| {
                    let k = m.derive(m.public_key(), repo_id).unwrap();
                    (m, k)
                })
            })
            .collect();
        let objects = assert_only_the_new_key_opens(&rotated, &retired);
        assert!(objects > 10, "{objects}");
        // The backup-only key still works: it holds the new epoch.
        let writer = Repository::open(loc, b"bo", &KeySource::Stored).unwrap();
        assert_eq!(writer.master().epoch_numbers(), vec![1]);
        back_up(&writer, &src);
    }

    /// The long phase of a content key rotation holds the lock shared: a backup runs
    /// beside it (under the new content keys) while a forget waits; at its end the
    /// rotation waits for the other locks to end before it takes the lock exclusive again.
    /// Every snapshot, the one made meanwhile too, restores afterwards.
    #[test]
    fn a_content_key_rotation_lets_backups_run_while_it_stores_snapshots_anew() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for i in 0..4u8 {
            std::fs::write(src.join(format!("f{i}")), vec![i; 200_000]).unwrap();
        }
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap().to_string();
        let repo = Repository::init(&loc, b"pw", &InitOptions::default(), None).unwrap();
        back_up(&repo, &src);
        back_up(&repo, &src);
        let said = std::sync::Mutex::new(Vec::<String>::new());
        let beside = std::sync::Mutex::new(None);
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::sync::Mutex::new(None);
        let say = |step: &str| {
            said.lock().unwrap().push(step.to_string());
            if step.contains("(1 of 2") {
                let other = Repository::open(&loc, b"pw", &KeySource::Stored).unwrap();
                assert!(other.master().holds_older_content());
                std::fs::write(src.join("during"), b"written while the rotation ran").unwrap();
                let made = back_up(&other, &src);
                *beside.lock().unwrap() = Some(made.id);
                let forget = other.lock(true, "forget").map(|_| ()).unwrap_err();
                assert_eq!(forget.kind(), crate::error::ErrorKind::Locked, "{forget}");
            }
            if step == "waiting for the exclusive lock" {
                // Another process's shared lock, held for a while.
                let (loc, held_tx) = (loc.clone(), held_tx.clone());
                *holder.lock().unwrap() = Some(std::thread::spawn(move || {
                    let other = Repository::open(&loc, b"pw", &KeySource::Stored).unwrap();
                    let _lock = other.lock(false, "restore").unwrap();
                    held_tx.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                }));
                held_rx.recv().unwrap();
            }
        };
        {
            let lock = repo.lock(true, "key rotate").unwrap();
            let report = rotate(
                &repo,
                &lock,
                b"pw",
                ContentKeys::Renewed { from: None },
                &say,
                &AtomicBool::new(false),
            )
            .unwrap();
            assert_eq!(report.stored_anew.snapshots, 2);
        }
        holder.lock().unwrap().take().unwrap().join().unwrap();
        let said = said.into_inner().unwrap();
        assert!(
            said.iter().any(|s| s.starts_with("waiting for another lock to end: shared lock")),
            "{said:?}"
        );
        let rotated = Repository::open(&loc, b"pw", &KeySource::Stored).unwrap();
        let snaps = rotated.snapshots().unwrap();
        assert_eq!(snaps.len(), 3);
        assert!(
            snaps.iter().any(|(id, _)| Some(*id) == *beside.lock().unwrap()),
            "the backup made beside it"
        );
        for (i, (_, snap)) in snaps.iter().enumerate() {
            let target = dir.path().join(format!("restored-{i}"));
            crate::ops::restore::restore(
                &rotated,
                &snap.tree,
                &target,
                &Default::default(),
                &AtomicBool::new(false),
            )
            .unwrap();
            for n in 0..4u8 {
                let back = target.join(src.strip_prefix("/").unwrap()).join(format!("f{n}"));
                assert_eq!(std::fs::read(back).unwrap(), vec![n; 200_000]);
            }
        }
    }

    /// The ids of `src`'s files as `keys` cut and name them: chunks, in file order.
    fn chunk_ids_of(src: &std::path::Path, keys: &RepoKeys) -> Vec<crate::id::ChunkId> {
        let chunker =
            crate::chunker::Chunker::new(crate::chunker::ChunkerParams::DEFAULT, keys.gear_table()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names
            .iter()
            .flat_map(|p| {
                let data = std::fs::read(p).unwrap();
                chunker.split(&data).map(|c| keys.chunk_id(c)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// After a content key rotation, an old key computes no chunk id the repository holds
    /// (the cut and the naming both changed), every object is closed to it, both
    /// snapshots restore byte for byte, the backup-only key backs up under the new content
    /// keys, and a second backup of the same files stores nothing (dedup survives).
    #[test]
    fn after_a_content_key_rotation_an_old_key_names_nothing_stored() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..6u32 {
            // Incompressible and several chunks long, so cut points matter.
            let data: Vec<u8> = (0..300_000 + i * 40_000)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            std::fs::write(src.join(format!("f{i}")), data).unwrap();
        }
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap();
        let repo = Repository::init(loc, b"pw", &InitOptions::default(), None).unwrap();
        back_up(&repo, &src);
        std::fs::write(src.join("g-later"), b"a later file").unwrap();
        back_up(&repo, &src);
        repo.add_key(b"bo", KeyKind::BackupOnly, KdfParams::NEW_KEY_FLOOR, None).unwrap();
        let old = repo.master().duplicate();
        let repo_id = repo.config().repo_id;
        let old_keys = old.derive(old.public_key(), repo_id).unwrap();
        let old_ids = chunk_ids_of(&src, &old_keys);
        let index = crate::index::Index::load(&repo).unwrap();
        assert!(old_ids.iter().all(|c| index.contains(&crate::id::BlobId::Chunk(*c))), "precondition");

        {
            let lock = repo.lock(true, "key rotate").unwrap();
            let report = rotate(
                &repo,
                &lock,
                b"pw",
                ContentKeys::Renewed { from: None },
                &|_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
            assert!(report.content_renewed);
            assert_eq!(report.stored_anew.snapshots, 2);
        }
        let rotated = Repository::open(loc, b"pw", &KeySource::Stored).unwrap();
        assert!(!rotated.master().holds_older_content());
        let index = crate::index::Index::load(&rotated).unwrap();
        for c in &old_ids {
            assert!(!index.contains(&crate::id::BlobId::Chunk(*c)), "an old key's id {c} is stored");
        }
        let new_ids = chunk_ids_of(&src, rotated.keys());
        assert!(new_ids.iter().all(|c| index.contains(&crate::id::BlobId::Chunk(*c))));
        // Cut anew, not only named anew: the chunk lengths an old key predicts are gone.
        let lengths = |ids: &[crate::id::ChunkId]| -> Vec<u32> {
            ids.iter().map(|c| index.get(&crate::id::BlobId::Chunk(*c)).unwrap().entry.raw_length).collect()
        };
        let old_lengths: Vec<u32> = {
            let chunker =
                crate::chunker::Chunker::new(crate::chunker::ChunkerParams::DEFAULT, old_keys.gear_table())
                    .unwrap();
            let mut names: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            names
                .iter()
                .flat_map(|p| {
                    chunker.split(&std::fs::read(p).unwrap()).map(|c| c.len() as u32).collect::<Vec<_>>()
                })
                .collect()
        };
        assert_ne!(lengths(&new_ids), old_lengths);
        let retired: Vec<(MasterKey, RepoKeys)> = [old.duplicate(), old.backup_only()]
            .into_iter()
            .map(|m| {
                let k = m.derive(m.public_key(), repo_id).unwrap();
                (m, k)
            })
            .collect();
        let _lock = rotated.lock(false, "test").unwrap();
        assert_only_the_new_key_opens(&rotated, &retired);
        let snaps = rotated.snapshots().unwrap();
        assert_eq!(snaps.len(), 2);
        let target = dir.path().join("restored");
        crate::ops::restore::restore(
            &rotated,
            &snaps[1].1.tree,
            &target,
            &Default::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            let back = target.join(p.strip_prefix("/").unwrap());
            assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&back).unwrap(), "{}", p.display());
        }
        // The backup-only key reads every file (it cannot read a parent): its chunks dedup.
        let writer = Repository::open(loc, b"bo", &KeySource::Stored).unwrap();
        assert!(!writer.master().holds_older_content());
        let again = back_up(&writer, &src);
        // Only folders are new (reading the files above changed their access times).
        assert!(again.snapshot.summary.bytes_added < 64 << 10, "{:?}", again.snapshot.summary);
    }
}

#[cfg(test)]
mod moved_frames_tests {
    use super::*;
    use crate::format::pack::Origin;
    use crate::pack::moved::MovedPack;

    /// A moved-frames pack counts as sealed under another epoch when a frame's origin is of
    /// one, though its header names the write epoch: its frames stay sealed under their
    /// origins' keys, so a rotation must reseal it too.
    #[test]
    fn a_moved_frames_pack_is_of_the_epochs_of_its_origins() {
        let dir = tempfile::tempdir().unwrap();
        let (_full, _writer, keeper, _src) = crate::ops::maintenance::tests::with_maintenance(dir.path());
        let write = keeper.keys().write_epoch();
        let moved_from = |epoch: u16| {
            let mut m = MovedPack::default();
            let origin = Origin { eph_pub: [epoch as u8 + 1; 32], epoch, version: 5 };
            let frame = [7u8; 40];
            let entry = crate::format::pack::Entry {
                id: crate::id::BlobId::Chunk(crate::id::ChunkId([epoch as u8; 32])),
                offset: 0,
                length: 40,
                raw_length: 10,
                start: 0,
            };
            m.add(origin, 40, &frame, &[entry]);
            let (id, bytes, _) = m.finish(keeper.keys()).unwrap();
            keeper.backend().write(FileType::Pack, &id.to_hex(), &bytes).unwrap();
            id
        };
        let (same, older) = (moved_from(write), moved_from(write + 3));
        let other = packs_of_other_epochs(&keeper, write).unwrap();
        assert!(other.contains(&older), "a frame of another epoch");
        assert!(!other.contains(&same), "every frame of the write epoch");
    }
}
