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
use cairn::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Rehearse a disaster recovery: restore, verify, measure RTO and RPO, report
#[derive(clap::Args)]
#[command(
    after_help = "Exit codes: 0 drill passed, 4 the restore was damaged or differs, 5 a limit was missed.\n\nExamples:\n  cairn drill --max-rto 15m --max-rpo 4h --report drill.md\n  cairn drill --random --tag prod --json"
)]
pub struct Args {
    /// Snapshot id prefix or 'latest' (default: the newest matching snapshot)
    snapshot: Option<String>,
    /// Pick a random matching snapshot instead of the newest
    #[arg(long, conflicts_with = "snapshot")]
    random: bool,
    /// Only snapshots with this tag (repeatable: any)
    #[arg(long)]
    tag: Vec<String>,
    /// Only snapshots of this host
    #[arg(long)]
    host: Option<String>,
    /// Folder for the scratch restore (default: a new folder in the temporary folder)
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Fail when restore plus verification takes longer (e.g. 15m)
    #[arg(long, value_parser = format::parse_duration)]
    max_rto: Option<u64>,
    /// Fail when the newest matching snapshot is older (e.g. 4h)
    #[arg(long, value_parser = format::parse_duration)]
    max_rpo: Option<u64>,
    /// Write the go-live report (Markdown) to this file
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep the scratch restore instead of deleting it
    #[arg(long)]
    keep: bool,
}

struct Outcome<'a> {
    id: SnapshotId,
    snap: &'a Snapshot,
    rto: f64,
    rpo: i64,
    files: u64,
    bytes: u64,
    problems: Vec<String>,
    missed: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "drill")?;
    let matching: Vec<(SnapshotId, Snapshot)> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| a.tag.is_empty() || s.tags.iter().any(|t| a.tag.contains(t)))
        .filter(|(_, s)| a.host.as_ref().is_none_or(|h| &s.host == h))
        .collect();
    let newest = matching.last().ok_or_else(|| Error::invalid("no snapshot matches the drill's filters"))?;
    let rpo = Timespec::now().secs - newest.1.time.secs;
    let (id, snap) = match (&a.snapshot, a.random) {
        (Some(spec), _) => repo.find_snapshot(spec)?,
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
    if !a.keep {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let restored = restored?;
    let verified = verified.expect("verified after a restore")?;
    let mut problems: Vec<String> = restored.damaged.clone();
    problems.extend(verified.differences.iter().cloned());
    let mut missed = Vec::new();
    if let Some(max) = a.max_rto.filter(|m| rto > *m as f64) {
        missed.push(format!(
            "RTO {} exceeds the limit {}",
            format::duration(rto),
            format::duration(max as f64)
        ));
    }
    if let Some(max) = a.max_rpo.filter(|m| rpo > *m as i64) {
        missed.push(format!(
            "RPO {} exceeds the limit {}",
            format::duration(rpo as f64),
            format::duration(max as f64)
        ));
    }
    let o =
        Outcome { id, snap: &snap, rto, rpo, files: verified.files, bytes: verified.bytes, problems, missed };
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
        println!(
            "{}",
            serde_json::json!({
                "passed": passed, "snapshot": o.id.to_hex(), "snapshot_time": format::rfc3339(o.snap.time),
                "rto_seconds": o.rto, "rpo_seconds": o.rpo, "max_rto_seconds": a.max_rto, "max_rpo_seconds": a.max_rpo,
                "files": o.files, "bytes": o.bytes, "problems": o.problems, "limits_missed": o.missed,
            })
        );
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
         | date | {} |\n| snapshot | {} of {} (host {}, tags {}) |\n\
         | restored and verified | {} files, {} |\n\
         | RTO (restore + verification) | {} (limit {}) |\n\
         | RPO (age of the newest snapshot) | {} (limit {}) |\n\
         | problems | {} |\n",
        format::local_time(Timespec::now()),
        o.id.short(),
        format::local_time(o.snap.time),
        o.snap.host,
        if o.snap.tags.is_empty() { "none".to_string() } else { o.snap.tags.join(",") },
        o.files,
        format::size(o.bytes),
        format::duration(o.rto),
        limit(a.max_rto),
        format::duration(o.rpo as f64),
        limit(a.max_rpo),
        o.problems.len()
    );
    for line in o.missed.iter().chain(&o.problems) {
        s += &format!("\n- {line}");
    }
    s + "\n"
}
