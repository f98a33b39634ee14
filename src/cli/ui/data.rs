//! Every page's data as JSON. The API answers with these values and the pages are drawn
//! from them, so both always agree; where the CLI has a `--json` output for the same
//! thing (snapshots, ls, diff, log), the value is the CLI's own.

use super::sources::Source;
use crate::cli::format;
use cairn::browse::{self, Browser};
use cairn::format::snapshot::Snapshot;
use cairn::format::tree::NodeKind;
use cairn::id::{ChunkId, SnapshotId};
use cairn::repo::select::SnapshotFilter;
use cairn::{Error, ErrorKind, Result};
use serde_json::{json, Value};

/// How far back the growth figure looks.
const GROWTH_WINDOW: i64 = 7 * 86400;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Colour of a backup's age against the RPO: green within it, amber within twice it, red
/// beyond or when there is no backup at all.
pub fn rpo_status(age: Option<i64>, rpo: u64) -> &'static str {
    match age {
        Some(a) if a <= rpo as i64 => "green",
        Some(a) if a <= 2 * rpo as i64 => "amber",
        _ => "red",
    }
}

/// The kind of storage a location is on, for the 3-2-1 count.
pub fn storage_kind(location: &str) -> &'static str {
    ["sftp", "s3", "rest"].into_iter().find(|k| location.starts_with(&format!("{k}:"))).unwrap_or("local")
}

/// The snapshots of a source's job (all of them without a job), oldest first.
fn own_snapshots(src: &Source) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(job_snapshots(src, src.repo.snapshots()?))
}

/// Of `all`, the snapshots of the source's job (all of them without a job).
fn job_snapshots(src: &Source, all: Vec<(SnapshotId, Snapshot)>) -> Vec<(SnapshotId, Snapshot)> {
    match &src.job {
        Some(j) => SnapshotFilter::job(j).apply(all),
        None => all,
    }
}

fn last_entry(
    log: &[cairn::format::log::LogEntry],
    op: impl Fn(&str) -> bool,
) -> Option<&cairn::format::log::LogEntry> {
    log.iter().rev().find(|e| op(&e.operation))
}

fn figure(e: &cairn::format::log::LogEntry, key: &str) -> Option<f64> {
    e.figures.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

/// The stored size of a repository: its packs, as listed.
fn stored_bytes(src: &Source) -> Result<u64> {
    let packs = src.repo.backend().list_detailed(cairn::backend::FileType::Pack)?;
    Ok(packs.iter().map(|p| p.size).sum())
}

/// One overview row: a repository's health at a glance.
fn overview_row(
    i: usize,
    src: &Source,
    all: &[Source],
    snaps: &[Vec<(SnapshotId, Snapshot)>],
) -> Result<Value> {
    let own = &snaps[i];
    let log = src.repo.read_log()?.entries;
    let last = own.last();
    let age = last.map(|(_, s)| now() - s.time.secs);
    // The job's own run, else a backup that made one of its snapshots (jobs may share a
    // repository), else, at a copy target, the last copy into it.
    let job_op = src.job.as_ref().map(|j| format!("job {j}"));
    let mine: std::collections::HashSet<SnapshotId> = own.iter().map(|(id, _)| *id).collect();
    let last_run = log.iter().rev().find(|e| {
        Some(e.operation.as_str()) == job_op.as_deref()
            || (e.operation == "backup" && e.snapshot.is_some_and(|s| mine.contains(&s)))
            || (e.operation == "copy" && src.copy_of.is_some())
    });
    let check = last_entry(&log, |op| op == "check");
    let drill = last_entry(&log, |op| op == "drill");
    let growth: u64 = own
        .iter()
        .filter(|(_, s)| now() - s.time.secs <= GROWTH_WINDOW)
        .map(|(_, s)| s.summary.bytes_added)
        .sum();
    let mut row = json!({
        "repo": i,
        "name": src.name(),
        "job": src.job,
        "location": src.target.repository,
        "role": if src.copy_of.is_some() { "copy" } else { "primary" },
        "storage": storage_kind(&src.target.repository),
        "snapshots": own.len(),
        "last_backup": last.map(|(id, s)| json!({
            "id": id.to_hex(),
            "time": format::rfc3339(s.time),
            "files": s.summary.files,
            "files_new": s.summary.files_new,
            "files_changed": s.summary.files_changed,
            "bytes_added": s.summary.bytes_added,
            "duration_ms": s.summary.duration_ms,
            "partial": s.is_partial(),
        })),
        "last_run": last_run.map(|e| json!({
            "time": format::rfc3339(e.time), "operation": e.operation, "outcome": e.outcome,
        })),
        "age_seconds": age,
        "rpo_seconds": src.rpo,
        "rpo_status": rpo_status(age, src.rpo),
        "stored_bytes": stored_bytes(src)?,
        "growth_7d_bytes": growth,
        "last_check": check.map(|e| json!({"time": format::rfc3339(e.time), "outcome": e.outcome})),
        "last_drill": drill.map(|e| {
            let rto = figure(e, "rto_s");
            json!({
                "time": format::rfc3339(e.time),
                "outcome": e.outcome,
                "rto_seconds": rto,
                "rpo_seconds": figure(e, "rpo_s"),
                "max_rto_seconds": src.max_rto,
                "rto_ok": rto.map(|r| src.max_rto.is_none_or(|m| r <= m as f64)),
            })
        }),
    });
    if src.copy_of.is_none() {
        row["copies"] = three_two_one(i, src, all, snaps);
    }
    Ok(row)
}

/// The 3-2-1 status of a job's repository and its copies: how many copies, on how many
/// kinds of storage, how many away from this host's disks, and which lack the newest
/// snapshot (a copy has it when it holds the snapshot or a copy of it).
fn three_two_one(i: usize, src: &Source, all: &[Source], snaps: &[Vec<(SnapshotId, Snapshot)>]) -> Value {
    let newest = snaps[i].last().map(|(id, _)| *id);
    let members: Vec<usize> = std::iter::once(i).chain(src.copies.iter().copied()).collect();
    let mut kinds: Vec<&str> = members.iter().map(|&m| storage_kind(&all[m].target.repository)).collect();
    let offsite = kinds.iter().filter(|k| **k != "local").count();
    let each: Vec<Value> = members
        .iter()
        .map(|&m| {
            let has =
                newest.is_some_and(|n| snaps[m].iter().any(|(id, s)| *id == n || s.original == Some(n)));
            json!({"repo": m, "location": all[m].target.repository, "has_latest": has})
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let latest_everywhere = each.iter().all(|e| e["has_latest"] == true);
    json!({
        "copies": members.len(),
        "storage_kinds": kinds.len(),
        "offsite": offsite,
        "latest_everywhere": latest_everywhere,
        "each": each,
        "met": members.len() >= 3 && kinds.len() >= 2 && offsite >= 1 && latest_everywhere,
    })
}

/// The overview: one row per repository (a job's own, then its copies).
pub fn overview(all: &[Source]) -> Result<Value> {
    let snaps = all.iter().map(own_snapshots).collect::<Result<Vec<_>>>()?;
    let rows = (0..all.len()).map(|i| overview_row(i, &all[i], all, &snaps)).collect::<Result<Vec<_>>>()?;
    Ok(Value::Array(rows))
}

/// What the snapshots page filters by.
#[derive(Default)]
pub struct SnapshotQuery {
    pub filter: SnapshotFilter,
    /// Only snapshots at or after / before these times (seconds since the epoch).
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// A time given as an RFC 3339 timestamp or a date (YYYY-MM-DD, local midnight).
pub fn parse_time(s: &str) -> Result<i64> {
    format::parse_time(s).map(|t| t.secs).map_err(|e| {
        Error::invalid(format!("'{s}' is not a time: {e}; give 2026-12-01 or 2026-12-01T08:00:00Z"))
    })
}

/// The snapshots as `snapshots --json` lists them, filtered.
pub fn snapshots(src: &Source, q: &SnapshotQuery) -> Result<Value> {
    let all = src.repo.snapshots()?;
    // Where the job's retention runs, each of its snapshots says which rule keeps it and
    // until when, as `snapshots --retention JOB` does.
    let kept = match &src.retention {
        Some(policy) => Some(crate::cli::snapshots::retention(job_snapshots(src, all.clone()), policy)?),
        None => None,
    };
    let snaps: Vec<_> = q
        .filter
        .apply(all)
        .into_iter()
        .filter(|(_, s)| q.from.is_none_or(|f| s.time.secs >= f) && q.to.is_none_or(|t| s.time.secs < t))
        .collect();
    Ok(crate::cli::snapshots::json(&snaps, kept.as_ref()))
}

/// A snapshot path from a request: absolute, without `.` or `..` parts or NUL bytes.
/// Anything else is refused rather than cleaned up, so `../` never means anything.
pub fn checked_path(path: &str) -> Result<Vec<u8>> {
    let bad = !path.starts_with('/') || path.contains('\0') || path.split('/').any(|c| c == ".." || c == ".");
    if bad {
        return Err(Error::invalid(format!(
            "'{path}' is not an absolute snapshot path without . or .. parts"
        )));
    }
    Ok(browse::components(path.as_bytes()).fold(b"/".to_vec(), |p, c| browse::join(&p, c)))
}

/// A folder's entries or a file's details, as `ls --json` gives them.
pub fn listing(src: &Source, snap: &str, path: &str) -> Result<Value> {
    let path = checked_path(path)?;
    let (id, s) = cairn::repo::select::find(&src.repo, snap, &SnapshotFilter::default())?;
    let browser = Browser::open(&src.repo)?;
    let node = browser.lookup(&s, &path)?;
    let entries: Vec<Value> = match &node.kind {
        NodeKind::Dir { tree } => browser
            .tree(tree)?
            .nodes
            .iter()
            .map(|n| format::node_json(&browse::join(&path, &n.name), n))
            .collect(),
        _ => Vec::new(),
    };
    Ok(json!({
        "snapshot": id.to_hex(),
        "name": s.labels.iter().find(|(k, _)| k == "name").map(|(_, v)| v),
        "time": format::rfc3339(s.time),
        "node": format::node_json(&path, &node),
        "entries": entries,
    }))
}

/// A file to send: its snapshot, its path, its size and its chunks; anything but a
/// regular file is refused.
pub fn file_node(
    browser: &Browser<'_>,
    snap: &str,
    path: &str,
) -> Result<(SnapshotId, Vec<u8>, u64, Vec<ChunkId>)> {
    let path = checked_path(path)?;
    let (id, s) = cairn::repo::select::find(browser.repo(), snap, &SnapshotFilter::default())?;
    match browser.lookup(&s, &path)?.kind {
        NodeKind::File { size, chunks } => Ok((id, path, size, chunks)),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a regular file; download a folder as tar or zip", browse::display(&path)),
        )),
    }
}

/// The changes between two snapshots, with text diffs, as `diff --json --content` prints.
pub fn diff(src: &Source, old: &str, new: &str, path: &str) -> Result<Value> {
    checked_path(path)?;
    let none = SnapshotFilter::default();
    let (old_id, old_snap) = cairn::repo::select::find(&src.repo, old, &none)?;
    let (new_id, new_snap) = cairn::repo::select::find(&src.repo, new, &none)?;
    let browser = Browser::open(&src.repo)?;
    crate::cli::diff::json(&browser, (old_id, &old_snap), (new_id, &new_snap), path, true)
}

/// The activity log as `log --json` prints it; with `search`, only entries whose
/// operation, outcome, host, user, snapshot or figures contain it (any case).
pub fn log(src: &Source, search: Option<&str>) -> Result<Value> {
    let report = src.repo.read_log()?;
    let mut doc = crate::cli::log::json(&report.entries, &report.problems);
    if let Some(q) = search.map(str::to_lowercase).filter(|q| !q.is_empty()) {
        if let Some(list) = doc["entries"].as_array_mut() {
            list.retain(|e| e.to_string().to_lowercase().contains(&q));
        }
    }
    Ok(doc)
}

/// The series the plots draw: one point per snapshot of the source's job (size added,
/// duration, how much the read data shrank), the repository's stored size after each
/// write the log records, and each drill's RTO and RPO.
pub fn series(src: &Source) -> Result<Value> {
    let backups: Vec<Value> = own_snapshots(src)?
        .iter()
        .map(|(id, s)| {
            let m = &s.summary;
            json!({
                "id": id.to_hex(),
                "time": s.time.secs,
                "bytes_added": m.bytes_added,
                "duration_s": m.duration_ms as f64 / 1000.0,
                "total_bytes": m.total_bytes,
                // What reading the changed files cost in storage: dedup and compression
                // together (1 when nothing was read).
                "data_ratio": if m.bytes_added == 0 { 1.0 } else { m.bytes_read as f64 / m.bytes_added as f64 },
            })
        })
        .collect();
    let log = src.repo.read_log()?.entries;
    let mut stored: i128 = 0;
    let mut size = Vec::new();
    let mut drills = Vec::new();
    for e in &log {
        match e.operation.as_str() {
            "backup" | "copy" | "import borg" | "import restic" => {
                stored += figure(e, "bytes_added").unwrap_or(0.0) as i128;
                size.push(json!({"time": e.time.secs, "stored_bytes": stored.max(0)}));
            }
            "prune" => {
                stored -= figure(e, "bytes_freed").unwrap_or(0.0) as i128;
                size.push(json!({"time": e.time.secs, "stored_bytes": stored.max(0)}));
            }
            "drill" => drills.push(json!({
                "time": e.time.secs,
                "outcome": e.outcome,
                "rto_seconds": figure(e, "rto_s"),
                "rpo_seconds": figure(e, "rpo_s"),
            })),
            _ => {}
        }
    }
    Ok(
        json!({"backups": backups, "size": size, "drills": drills, "max_rto_seconds": src.max_rto, "rpo_seconds": src.rpo}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_dot_parts_are_refused_not_cleaned() {
        for bad in ["../etc/passwd", "/a/../../etc", "/a/./b", "relative", "/a\0b", "/.."] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
        assert_eq!(checked_path("/a//b/").unwrap(), b"/a/b".to_vec());
        assert_eq!(checked_path("/").unwrap(), b"/".to_vec());
    }

    proptest::proptest! {
        /// Whatever a request sends, an accepted path is absolute and has no `.` or `..`
        /// part, so it can only name something inside the snapshot.
        #[test]
        fn an_accepted_path_never_climbs(parts in proptest::collection::vec("[./a-z\\x00]{0,4}", 0..6)) {
            let path = parts.join("/");
            if let Ok(p) = checked_path(&path) {
                proptest::prop_assert!(p.starts_with(b"/"));
                for c in p.split(|&b| b == b'/') {
                    proptest::prop_assert!(c != b".." && c != b"." && !c.contains(&0));
                }
            }
        }
    }

    #[test]
    fn rpo_colours_follow_the_age() {
        assert_eq!(rpo_status(Some(10), 100), "green");
        assert_eq!(rpo_status(Some(100), 100), "green");
        assert_eq!(rpo_status(Some(150), 100), "amber");
        assert_eq!(rpo_status(Some(201), 100), "red");
        assert_eq!(rpo_status(None, 100), "red");
    }

    #[test]
    fn storage_kinds_come_from_the_location_scheme() {
        assert_eq!(storage_kind("/srv/backup"), "local");
        assert_eq!(storage_kind("s3:https://h/b"), "s3");
        assert_eq!(storage_kind("sftp:u@h/p"), "sftp");
        assert_eq!(storage_kind("rest:https://h/r"), "rest");
    }
}
