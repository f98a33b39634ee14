//! `cairn drill`: a disaster-recovery rehearsal with figures. Restores a snapshot into a
//! scratch folder, verifies every entry against the snapshot, measures the recovery time
//! (RTO: wall time to a verified restore) and the recovery point (RPO: age of the newest
//! snapshot that matches the filters), compares them with the limits, writes a go-live
//! report, and records the result in the activity log.

use super::{exit, format, Ctx};
use cairn::format::snapshot::Snapshot;
use cairn::format::Timespec;
use cairn::id::SnapshotId;
use cairn::ops::restore::{restore, RestoreOptions};
use cairn::ops::verify::verify;
use cairn::repo::log::LogRecord;
use cairn::{Error, ErrorKind, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Rehearse a disaster recovery: restore, verify, measure RTO and RPO, report
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn drill --max-rto 15m --max-rpo 4h --report drill.md\n  cairn drill --random --tag prod --json"
)]
pub struct Args {
    /// Snapshot id prefix or 'latest' (default: the newest matching snapshot)
    snapshot: Option<String>,
    /// Pick a random matching snapshot instead of the newest
    #[arg(long, conflicts_with = "snapshot")]
    random: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
    /// Folder for the scratch restore (default: a new folder in the temporary folder)
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Fail when restore plus verification takes longer (e.g. 15m)
    #[arg(long, value_parser = format::parse_duration)]
    max_rto: Option<u64>,
    /// Fail when the newest matching snapshot is older (e.g. 4h)
    #[arg(long, value_parser = format::parse_duration)]
    max_rpo: Option<u64>,
    /// The job's schedule (e.g. 1h): a gap between backups longer than one and a half
    /// times it means a run was missed, and fails the drill (exit 5)
    #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
    schedule_every: Option<u64>,
    /// Write the go-live report (Markdown) to this file
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep the scratch restore instead of deleting it
    #[arg(long)]
    keep: bool,
    /// An application check run in the restored folder after verification (sh -c; also
    /// given as CAIRN_DRILL_DIR); a non-zero exit fails the drill (exit 4)
    #[arg(long, value_name = "COMMAND")]
    check_command: Option<String>,
}

struct Outcome<'a> {
    id: SnapshotId,
    snap: &'a Snapshot,
    rto: f64,
    rpo: i64,
    /// Age of the newest matching snapshot, and the gap before it (seconds).
    age: i64,
    gap: Option<i64>,
    repository: &'a str,
    files: u64,
    bytes: u64,
    problems: Vec<String>,
    missed: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "drill")?;
    let filter = a.filter.filter();
    let matching: Vec<(SnapshotId, Snapshot)> = cairn::repo::select::matching(&repo, &filter)?;
    let newest = matching.last().ok_or_else(|| match filter.is_empty() {
        true => Error::new(ErrorKind::NotFound, "the repository has no snapshots yet"),
        false => Error::new(
            ErrorKind::NotFound,
            format!("no snapshot matches the drill's filter {}", filter.describe()),
        ),
    })?;
    // A drill right after a backup would always see an RPO of seconds: the data a failure
    // can lose is up to the gap between two backups of the same host and paths.
    let age = Timespec::now().secs - newest.1.time.secs;
    let gap = matching
        .iter()
        .rev()
        .skip(1)
        .find(|(_, s)| s.host == newest.1.host && s.paths == newest.1.paths)
        .map(|(_, s)| newest.1.time.secs - s.time.secs);
    let rpo = age.max(gap.unwrap_or(0));
    let (id, snap) = match (&a.snapshot, a.random) {
        (Some(spec), _) => cairn::repo::select::find(&repo, spec, &filter)?,
        (None, true) => {
            let mut r = [0u8; 8];
            cairn::crypto::keys::fill_random(&mut r)?;
            matching[(u64::from_le_bytes(r) % matching.len() as u64) as usize].clone()
        }
        (None, false) => newest.clone(),
    };
    let scratch = match &a.scratch {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("cairn-drill-{}-{}", id.short(), std::process::id())),
    };
    if scratch.exists() && std::fs::read_dir(&scratch).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::invalid(format!(
            "scratch folder {} is not empty; give an empty one",
            scratch.display()
        )));
    }
    let started = Instant::now();
    let restored = restore(&repo, &snap.tree, &scratch, &RestoreOptions::default(), &ctx.interrupt);
    let everything = cairn::ops::restore_delete::restored_paths(&snap, &[]);
    let verified =
        restored.as_ref().ok().map(|_| verify(&repo, &snap.tree, &scratch, &[], &everything, &ctx.interrupt));
    let rto = started.elapsed().as_secs_f64();
    let app_check = match (&a.check_command, &verified) {
        (Some(cmd), Some(Ok(v))) if v.ok() => application_check(cmd, &scratch, &id),
        _ => None,
    };
    if !a.keep {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let restored = restored?;
    let verified = verified.expect("verified after a restore")?;
    let mut problems: Vec<String> = restored.damaged.clone();
    problems.extend(verified.differences.iter().cloned());
    problems.extend(app_check);
    let missed = limits_missed(&a, rto, rpo);
    let repository = ctx.location()?;
    let (files, bytes) = (verified.files, verified.bytes);
    let o = Outcome { id, snap: &snap, rto, rpo, age, gap, repository, files, bytes, problems, missed };
    let passed = o.problems.is_empty() && o.missed.is_empty();
    let rec = LogRecord {
        operation: "drill".into(),
        outcome: if passed { "success" } else { "failed" }.into(),
        snapshot: Some(id),
        figures: vec![
            ("rto_s".into(), format!("{rto:.2}")),
            ("rpo_s".into(), rpo.to_string()),
            ("files".into(), o.files.to_string()),
            ("problems".into(), o.problems.len().to_string()),
        ],
    };
    super::record(&repo, rec);
    if let Some(path) = &a.report {
        std::fs::write(path, markdown(&o, &a))
            .map_err(|e| Error::io(format!("cannot write report {}", path.display()), e))?;
    }
    if ctx.json {
        print_json(&o, &a, passed);
    } else if !ctx.quiet {
        print!("{}", markdown(&o, &a));
    }
    Ok(if !o.problems.is_empty() {
        exit::DAMAGED
    } else if !o.missed.is_empty() {
        exit::LIMIT_MISSED
    } else {
        exit::SUCCESS
    })
}

fn markdown(o: &Outcome<'_>, a: &Args) -> String {
    let verdict = if o.problems.is_empty() && o.missed.is_empty() { "GO" } else { "NO-GO" };
    let limit = |m: Option<u64>| m.map(|s| format::duration(s as f64)).unwrap_or_else(|| "none".into());
    let mut s = format!(
        "# Disaster-recovery drill: {verdict}\n\n\
         | | |\n|---|---|\n\
         | date | {} (time zone {}) |\n| repository | {} |\n| job | {} |\n\
         | drill run on | {} with cairn {} |\n\
         | snapshot | {} of {} (host {}, tags {}) |\n\
         | restored and verified | {} files, {} |\n\
         | application check | {} |\n\
         | RTO (restore + verification) | {} (limit {}) |\n\
         | RPO (gap between backups, or age of the newest if longer) | {} (limit {}; schedule {}; newest {} old, gap before it {}) |\n\
         | problems | {} |\n",
        format::local_time(Timespec::now()),
        time_zone(),
        o.repository,
        job_of(o.snap).unwrap_or_else(|| "none".into()),
        cairn::sys::hostname(),
        env!("CARGO_PKG_VERSION"),
        o.id.short(),
        format::local_time(o.snap.time),
        o.snap.host,
        if o.snap.tags.is_empty() { "none".to_string() } else { o.snap.tags.join(",") },
        o.files,
        format::size(o.bytes),
        a.check_command.as_deref().map_or("none".to_string(), |c| format!("`{c}`")),
        format::duration(o.rto),
        limit(a.max_rto),
        format::duration(o.rpo as f64),
        limit(a.max_rpo),
        a.schedule_every.map_or("not given".to_string(), |e| format!("every {}", format::duration(e as f64))),
        format::duration(o.age as f64),
        o.gap.map_or("none (first backup)".to_string(), |g| format::duration(g as f64)),
        o.problems.len()
    );
    for line in o.missed.iter().chain(&o.problems) {
        s += &format!("\n- {line}");
    }
    s + "\n"
}

/// The job a snapshot belongs to (label `job`).
fn job_of(s: &Snapshot) -> Option<String> {
    s.labels.iter().find(|(k, _)| k == "job").map(|(_, v)| v.clone())
}

/// The system's time zone name, as the report's times are in it.
fn time_zone() -> String {
    jiff::tz::TimeZone::system().iana_name().unwrap_or("local").to_string()
}

/// Run the application check in the restored folder; its failure as a problem line.
fn application_check(command: &str, dir: &std::path::Path, id: &SnapshotId) -> Option<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("CAIRN_DRILL_DIR", dir)
        .env("CAIRN_DRILL_SNAPSHOT", id.to_hex())
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Err(e) => Some(format!("application check `{command}` could not start: {e}")),
        Ok(o) if o.status.success() => None,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let how =
                o.status.code().map_or("was killed by a signal".to_string(), |c| format!("exited with {c}"));
            Some(format!("application check `{command}` {how}: {last}"))
        }
    }
}

/// The RTO, RPO and schedule limits a drill missed, one line each.
fn limits_missed(a: &Args, rto: f64, rpo: i64) -> Vec<String> {
    let mut missed = Vec::new();
    if let Some(max) = a.max_rto.filter(|m| rto > *m as f64) {
        missed.push(format!(
            "RTO {} exceeds the limit {}",
            format::duration(rto),
            format::duration(max as f64)
        ));
    }
    // Against the schedule: the newest snapshot's age counts too (no run since).
    if let Some(every) = a.schedule_every.filter(|e| rpo * 2 > *e as i64 * 3) {
        missed.push(format!(
            "RPO {} against a schedule of every {}: a scheduled backup was missed",
            format::duration(rpo as f64),
            format::duration(every as f64)
        ));
    }
    if let Some(max) = a.max_rpo.filter(|m| rpo > *m as i64) {
        missed.push(format!(
            "RPO {} exceeds the limit {}",
            format::duration(rpo as f64),
            format::duration(max as f64)
        ));
    }
    missed
}

fn print_json(o: &Outcome<'_>, a: &Args, passed: bool) {
    println!(
        "{}",
        serde_json::json!({
            "passed": passed, "snapshot": o.id.to_hex(), "snapshot_time": format::rfc3339(o.snap.time),
            "rto_seconds": o.rto, "rpo_seconds": o.rpo, "max_rto_seconds": a.max_rto, "max_rpo_seconds": a.max_rpo,
            "schedule_every_seconds": a.schedule_every,
            "files": o.files, "bytes": o.bytes, "problems": o.problems, "limits_missed": o.missed,
            "snapshot_age_seconds": o.age, "gap_seconds": o.gap, "repository": o.repository,
            "job": job_of(o.snap), "drill_host": cairn::sys::hostname(), "snapshot_host": o.snap.host,
            "version": env!("CARGO_PKG_VERSION"), "time_zone": time_zone(),
            "check_command": a.check_command,
        })
    );
}
