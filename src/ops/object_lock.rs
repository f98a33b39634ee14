//! S3 Object Lock over time: renewing the locks of what kept snapshots need, deleting
//! for good what was deleted once its lock ends, auditing the locks, and undoing deletions.
//!
//! Every object is written locked for the repository's period (`backend::s3::lock`).
//! After that, the lock of an object is renewed to a full period once less than a third is
//! left (`ObjectLockPolicy::renew_before`), by backups (everything the repository holds)
//! and prunes (only what kept snapshots use). Forgotten data is never renewed, so it stays
//! locked for at most one period after it was written or last renewed.
//!
//! A delete in a locked bucket hides the object under a delete marker and keeps the
//! locked version, so prune deletes as always and never fails halfway. Before cairn
//! deletes, it names what it deletes in the activity log (`note_deleted`): entries only a
//! full key can write. That is the pending list: each prune deletes for good the hidden
//! versions it names whose lock has ended, then their markers. An object someone else
//! hid is never deleted for good by cairn, and check reports it.
//!
//! The store's version listing and lock dates are authoritative. A small file in the
//! cache folder remembers dates read or set, so a renewal does not look at every old
//! object again on each run; it is only a hint, and `check` reads every date itself.

use crate::backend::object_lock::{ObjectLock, Version};
use crate::backend::{object_path, Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::ObjectLockPolicy;
use crate::repo::log::LogRecord;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The object types whose locks are kept: everything but lock files.
const LOCKED_TYPES: [FileType; 6] =
    [FileType::Config, FileType::Key, FileType::Snapshot, FileType::Index, FileType::Pack, FileType::Log];

/// The repository's lock policy and the store's lock operations, if both exist.
fn lock_of(repo: &Repository) -> Option<(ObjectLockPolicy, &dyn ObjectLock)> {
    Some((repo.config().object_lock?, repo.backend().object_lock()?))
}

#[derive(Debug, Default)]
pub struct RenewReport {
    /// Objects whose lock date was read from the store.
    pub looked_up: usize,
    pub renewed: usize,
    /// Objects whose lock could not be read or renewed, with why.
    pub failed: Vec<String>,
}

/// Renew, to a full period from now, the lock of every object that has less than a third
/// of the period left: every stored object of the kept types, but only the packs in
/// `packs` when it is given (prune passes the packs kept snapshots use).
pub fn renew(repo: &Repository, packs: Option<&HashSet<String>>) -> Result<RenewReport> {
    let Some((policy, lock)) = lock_of(repo) else { return Ok(RenewReport::default()) };
    let now = SystemTime::now();
    let threshold = now + policy.renew_before();
    let until = now + policy.period();
    let mut hints = Hints::load(repo);
    let mut candidates = Vec::new();
    for ft in LOCKED_TYPES {
        for obj in repo.backend().list_detailed(ft)? {
            if ft == FileType::Pack && packs.is_some_and(|keep| !keep.contains(&obj.name)) {
                continue;
            }
            // Written at `modified` with a full period, renewed only ever to later dates.
            let at_least = obj.modified.map(|m| m + policy.period());
            let known = hints.get(ft, &obj.name).max(at_least);
            if known.is_none_or(|k| k <= threshold) {
                candidates.push((ft, obj.name));
            }
        }
    }
    let report = Mutex::new(RenewReport::default());
    let learned = Mutex::new(Vec::new());
    super::read_pool::install(repo, || {
        candidates.par_iter().for_each(|(ft, name)| {
            let result = lock.retain_until(*ft, name).and_then(|current| {
                report.lock().expect("report").looked_up += 1;
                if current.is_some_and(|c| c > threshold) {
                    return Ok(current);
                }
                lock.extend(*ft, name, until)?;
                report.lock().expect("report").renewed += 1;
                Ok(Some(until))
            });
            match result {
                Ok(Some(date)) => learned.lock().expect("learned").push((*ft, name.clone(), date)),
                Ok(None) => {}
                Err(e) => {
                    report.lock().expect("report").failed.push(format!("{}: {e}", object_path(*ft, name)))
                }
            }
        })
    })?;
    for (ft, name, date) in learned.into_inner().expect("learned") {
        hints.set(ft, &name, date);
    }
    hints.save(now);
    Ok(report.into_inner().expect("report"))
}

/// The operation of the log entries that name what cairn deleted from a locked bucket.
pub const DELETED_OPERATION: &str = "delete from locked store";
/// Paths per such entry: 2,000 of about 80 bytes stay well inside a log entry's limit.
const PATHS_PER_ENTRY: usize = 2000;

/// Name in the activity log the objects about to be deleted, where the repository is
/// locked (else nothing): written before the deletes, so a deleted object is always
/// named; one that is named and then not deleted is never purged, as it is not hidden.
pub fn note_deleted(repo: &Repository, ft: FileType, names: &[String]) -> Result<()> {
    if lock_of(repo).is_none() || names.is_empty() {
        return Ok(());
    }
    for batch in names.chunks(PATHS_PER_ENTRY) {
        let paths: Vec<String> = batch.iter().map(|n| object_path(ft, n)).collect();
        repo.append_log(LogRecord::new(DELETED_OPERATION, "success").figure("paths", paths.join(" ")))?;
    }
    Ok(())
}

/// Every path the log says a full key deleted (entries of other writers count for nothing:
/// a backup-only key must not be able to get data deleted for good).
fn deleted_by_cairn(repo: &Repository) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for entry in repo.read_log()?.entries {
        if entry.operation != DELETED_OPERATION
            || entry.written_by != crate::format::envelope::WrittenBy::FullKey
        {
            continue;
        }
        for (key, value) in &entry.figures {
            if key == "paths" {
                out.extend(value.split(' ').filter(|p| !p.is_empty()).map(str::to_string));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct PurgeReport {
    /// Hidden versions deleted for good, with their delete markers (lock files, which
    /// are never locked, are deleted too but not counted).
    pub versions_removed: usize,
    pub markers_removed: usize,
    /// Hidden versions whose lock has not ended yet: a later prune deletes them.
    pub still_locked: usize,
    pub failed: Vec<String>,
}

/// Delete for good the versions of objects cairn deleted (`note_deleted`) at least one
/// period ago whose lock has ended, and then the delete markers that hid them. An object whose current version is
/// real keeps its older versions: cairn never overwrites an object, so those are evidence
/// for `check`, except under `locks/`, whose files are rewritten and never locked.
pub fn purge_expired(repo: &Repository) -> Result<PurgeReport> {
    let Some((policy, lock)) = lock_of(repo) else { return Ok(PurgeReport::default()) };
    let now = SystemTime::now();
    let ours = deleted_by_cairn(repo)?;
    let mut report = PurgeReport::default();
    for (path, versions) in by_path(lock.versions()?) {
        let deleted = versions.iter().any(|v| v.latest && v.delete_marker);
        let lock_file = path.starts_with("locks/");
        let purgeable = lock_file || (deleted && ours.contains(&path));
        if !purgeable {
            continue;
        }
        // A deletion stays undoable for a full period, whatever is left of the lock: a
        // prune that ran while someone had hidden a snapshot deleted that snapshot's data
        // as unused, and the owner needs time to notice (check reports the hidden one).
        let deleted_at = versions.iter().filter(|v| v.delete_marker).filter_map(|v| v.modified).max();
        if !lock_file && deleted_at.is_none_or(|t| t + policy.period() > now) {
            report.still_locked += versions.iter().filter(|v| !v.delete_marker).count();
            continue;
        }
        let mut all_gone = true;
        // A lock file's current version belongs to a command still running.
        let live = |v: &Version| v.latest && lock_file;
        for v in versions.iter().filter(|v| !v.delete_marker && !live(v)) {
            match lock.version_retain_until(&path, &v.version_id) {
                Ok(Some(until)) if until > now => {
                    report.still_locked += 1;
                    all_gone = false;
                }
                Ok(_) => match lock.remove_version(&path, &v.version_id) {
                    Ok(()) => report.versions_removed += usize::from(!lock_file),
                    // Locked after all (the store's clock is ahead of ours): next time.
                    Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                        report.still_locked += 1;
                        all_gone = false;
                    }
                    Err(e) => {
                        report.failed.push(format!("{path} version {}: {e}", v.version_id));
                        all_gone = false;
                    }
                },
                Err(e) => {
                    report.failed.push(format!("{path} version {}: {e}", v.version_id));
                    all_gone = false;
                }
            }
        }
        // A marker goes only once nothing is left under it: removing it earlier would
        // bring the deleted object back.
        if all_gone {
            for v in versions.iter().filter(|v| v.delete_marker) {
                match lock.remove_version(&path, &v.version_id) {
                    Ok(()) => report.markers_removed += usize::from(!lock_file),
                    Err(e) => report.failed.push(format!("{path} delete marker: {e}")),
                }
            }
        }
    }
    Ok(report)
}

fn by_path(versions: Vec<Version>) -> BTreeMap<String, Vec<Version>> {
    let mut out: BTreeMap<String, Vec<Version>> = BTreeMap::new();
    for v in versions {
        out.entry(v.path.clone()).or_default().push(v);
    }
    out
}

/// What `check` finds wrong with the locks.
#[derive(Debug, Default)]
pub struct Audit {
    /// Objects with no lock at all.
    pub unlocked: Vec<String>,
    /// Objects whose lock ends within a sixth of the period: renewal is not running (no
    /// backup or prune for that long) or cannot renew.
    pub ending_soon: Vec<(String, SystemTime)>,
    /// Objects with more than one version: cairn never overwrites, so someone else did.
    pub overwritten: Vec<String>,
    /// Objects cairn deleted whose versions the locks still keep: a later prune deletes
    /// them for good.
    pub deleted_kept: usize,
    /// Objects someone else deleted (no log entry of a full key names them), which the
    /// locks keep: `repair undelete` brings them back.
    pub deleted_by_others: Vec<String>,
    pub objects: usize,
}

/// Read the lock of every stored object (never the hints) and every version.
pub fn audit(repo: &Repository) -> Result<Option<Audit>> {
    let Some((policy, lock)) = lock_of(repo) else { return Ok(None) };
    let soon = SystemTime::now() + policy.renew_before() / 2;
    let mut objects = Vec::new();
    for ft in LOCKED_TYPES {
        objects.extend(repo.backend().list(ft)?.into_iter().map(|n| (ft, n)));
    }
    let dates: Vec<(String, Result<Option<SystemTime>>)> = super::read_pool::install(repo, || {
        objects.par_iter().map(|(ft, name)| (object_path(*ft, name), lock.retain_until(*ft, name))).collect()
    })?;
    let mut audit = Audit { objects: dates.len(), ..Audit::default() };
    for (path, date) in dates {
        match date? {
            None => audit.unlocked.push(path),
            Some(until) if until < soon => audit.ending_soon.push((path, until)),
            Some(_) => {}
        }
    }
    let ours = deleted_by_cairn(repo)?;
    for (path, versions) in by_path(lock.versions()?) {
        let real = versions.iter().filter(|v| !v.delete_marker).count();
        let deleted = versions.iter().any(|v| v.latest && v.delete_marker);
        if path.starts_with("locks/") {
            continue;
        }
        if deleted && real > 0 && ours.contains(&path) {
            audit.deleted_kept += 1;
        } else if deleted && real > 0 {
            audit.deleted_by_others.push(path);
        } else if !deleted && real > 1 {
            audit.overwritten.push(path);
        }
    }
    Ok(Some(audit))
}

#[derive(Debug, Default)]
pub struct UndeleteReport {
    pub restored: Vec<String>,
    pub markers_removed: usize,
}

/// Bring back every object deleted at or after `since` whose versions the locks kept, by
/// removing the delete markers made since then (objects deleted earlier stay deleted).
/// Lock files stay deleted. It needs the store only, not the repository's key: an attack
/// may have hidden the config and the key files too.
pub fn undelete(store: &dyn Backend, since: SystemTime, dry_run: bool) -> Result<UndeleteReport> {
    let lock = store.object_lock().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} keeps no versions of deleted objects (an S3 bucket with Object Lock does)",
                store.location()
            ),
        )
    })?;
    let mut report = UndeleteReport::default();
    for (path, versions) in by_path(lock.versions()?) {
        if path.starts_with("locks/") || !versions.iter().any(|v| v.latest && v.delete_marker) {
            continue;
        }
        let newest_real = versions.iter().filter(|v| !v.delete_marker).filter_map(|v| v.modified).max();
        let Some(kept) = newest_real else { continue };
        // Markers newer than the newest kept version and made since `since`; a marker made
        // earlier means the object was already deleted then.
        let markers: Vec<&Version> =
            versions.iter().filter(|v| v.delete_marker && v.modified.is_some_and(|m| m >= kept)).collect();
        if markers.is_empty() || markers.iter().any(|m| m.modified.is_some_and(|t| t < since)) {
            continue;
        }
        if !dry_run {
            for m in &markers {
                lock.remove_version(&path, &m.version_id)?;
                report.markers_removed += 1;
            }
        }
        report.restored.push(path);
    }
    Ok(report)
}

/// Lock dates read or set before, per repository location, in the cache folder. Entries
/// for past dates are dropped on save.
struct Hints {
    path: Option<std::path::PathBuf>,
    dates: HashMap<String, u64>,
}

impl Hints {
    fn load(repo: &Repository) -> Hints {
        let path = crate::repo::cache_file("object-lock", &repo.backend().location());
        let dates = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Hints { path, dates }
    }

    fn key(ft: FileType, name: &str) -> String {
        object_path(ft, name)
    }

    fn get(&self, ft: FileType, name: &str) -> Option<SystemTime> {
        self.dates.get(&Self::key(ft, name)).map(|&s| UNIX_EPOCH + Duration::from_secs(s))
    }

    fn set(&mut self, ft: FileType, name: &str, date: SystemTime) {
        let secs = date.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.dates.insert(Self::key(ft, name), secs);
    }

    /// Best effort: a hint that is not saved costs a look next time, nothing more.
    fn save(mut self, now: SystemTime) {
        let Some(path) = self.path.take() else { return };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.dates.retain(|_, &mut s| s > now);
        if let Ok(bytes) = serde_json::to_vec(&self.dates) {
            crate::repo::write_cache_file(&path, &bytes);
        }
    }
}
