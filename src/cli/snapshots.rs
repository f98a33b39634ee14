//! `cairn snapshots`: list snapshots.

use super::{exit, format, Ctx};
use cairn::format::snapshot::Snapshot;
use cairn::id::SnapshotId;
use cairn::ops::expiry::{expiry, Expiry};
use cairn::ops::forget::{GroupBy, RetentionPolicy, Within};
use cairn::{Error, Result};
use std::collections::HashMap;

/// List snapshots, oldest first
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn snapshots --tag prod\n  cairn snapshots --long --retention apigateway --config /etc/cairn/cairn.toml\n  cairn snapshots --json"
)]
pub struct Args {
    /// Also show the size each snapshot added to the repository and its job
    #[arg(short, long)]
    long: bool,
    /// Show which rule of this job's retention keeps each of the job's snapshots, and until
    /// when (the job file is --config)
    #[arg(long, value_name = "JOB")]
    retention: Option<String>,
    #[command(flatten)]
    file: super::run::ConfigFile,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

/// Why a snapshot is kept, and until when.
pub(super) struct Kept {
    reasons: Vec<String>,
    expiry: Option<Expiry>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let (all, damaged) = repo.snapshots_and_damage()?;
    for (name, e) in &damaged {
        if e.kind() == cairn::ErrorKind::Unsupported {
            eprintln!("cairn: warning: snapshot {name} was written by a newer cairn ({e}); upgrade cairn to read it");
        } else {
            eprintln!("cairn: warning: snapshot {name} cannot be read ({e}); put back a good copy, or remove it with `cairn forget {}`", &name[..name.len().min(8)]);
        }
    }
    let mut filter = a.filter.filter();
    let kept = match &a.retention {
        Some(job) => {
            filter.labels.push(("job".into(), job.clone()));
            let policy = job_policy(&a.file, job)?;
            Some(retention(filter.apply(all.clone()), &policy)?)
        }
        None => None,
    };
    let snaps = filter.apply(all);
    if ctx.json {
        println!("{}", json(&snaps, kept.as_ref()));
        return Ok(if damaged.is_empty() { exit::SUCCESS } else { exit::DAMAGED });
    }
    // Snapshots made by jobs with a snapshot-name template carry a name beside the id.
    let name = |s: &Snapshot| label(s, "name").unwrap_or_default();
    let named = snaps.iter().any(|(_, s)| !name(s).is_empty());
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            // A maintenance key knows no statistics (summaries carry none).
            let (files, size) = match s.tree == cairn::repo::snapshot_file::UNKNOWN_TREE {
                true => ("-".to_string(), "-".to_string()),
                false => (s.summary.files.to_string(), format::size(s.summary.total_bytes)),
            };
            let mut row = vec![
                id.short(),
                format::local_time(s.time),
                s.host.clone(),
                cairn::repo::select::snapshot_type(s).to_string(),
                s.tags.join(","),
                files,
                size,
                format!(
                    "{}{}",
                    s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>().join(" "),
                    if s.is_partial() { " (partial)" } else { "" }
                ),
            ];
            if named {
                row.insert(1, name(s));
            }
            if a.long {
                row.push(format::size(s.summary.bytes_added));
                row.push(label(s, "job").unwrap_or_default());
            }
            if let Some(kept) = &kept {
                let k = kept.get(id);
                row.push(k.map(|k| k.reasons.join(", ")).unwrap_or_default());
                row.push(match k.and_then(|k| k.expiry.as_ref()) {
                    Some(Expiry::At(t)) => {
                        format::local_time(cairn::format::Timespec { secs: t.as_second(), nanos: 0 })
                    }
                    Some(Expiry::Never) => "never (tag)".into(),
                    Some(Expiry::AfterNewer(n)) => format!("after {n} newer"),
                    None => "next forget".into(),
                });
            }
            row
        })
        .collect();
    let mut header = vec!["ID", "Time", "Host", "Type", "Tags", "Files", "Size", "Paths"];
    if named {
        header.insert(1, "Name");
    }
    if a.long {
        header.extend(["Stored", "Job"]);
    }
    if kept.is_some() {
        header.extend(["Kept by", "Expires"]);
    }
    format::table(&header, &rows);
    if !ctx.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(if damaged.is_empty() { exit::SUCCESS } else { exit::DAMAGED })
}

fn label(s: &Snapshot, key: &str) -> Option<String> {
    s.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The retention policy of job `job` in the job file.
fn job_policy(file: &super::run::ConfigFile, job: &str) -> Result<RetentionPolicy> {
    let jobs = file.load()?;
    let job = super::run::select(&jobs, &[job.to_string()])?[0];
    policy_of(job)?.ok_or_else(|| {
        Error::invalid(format!(
            "job {} has no retention; nothing decides how long its snapshots stay",
            job.name
        ))
    })
}

/// A job's retention rules as forget's policy; None when the job has none.
pub(super) fn policy_of(job: &cairn::job::config::Job) -> Result<Option<RetentionPolicy>> {
    let Some(r) = job.retention.as_ref() else { return Ok(None) };
    let mut p = RetentionPolicy {
        within: r.keep_within.as_deref().map(Within::parse).transpose()?,
        ..Default::default()
    };
    for (rule, n) in &r.keep {
        let slot = match rule.as_str() {
            "keep-last" => &mut p.last,
            "keep-hourly" => &mut p.hourly,
            "keep-daily" => &mut p.daily,
            "keep-weekly" => &mut p.weekly,
            "keep-monthly" => &mut p.monthly,
            _ => &mut p.yearly,
        };
        *slot = *n;
    }
    Ok(Some(p))
}

/// Which rules keep each snapshot today (forget's own plan, as a job's retention step
/// runs it: grouped by host and paths, in local time) and until when.
pub(super) fn retention(
    snaps: Vec<(SnapshotId, Snapshot)>,
    policy: &RetentionPolicy,
) -> Result<HashMap<SnapshotId, Kept>> {
    let tz = jiff::tz::TimeZone::system();
    let groups =
        cairn::ops::forget::plan(snaps, policy, GroupBy::parse("host,paths")?, &tz, jiff::Timestamp::now())?;
    Ok(groups
        .into_iter()
        .flat_map(|g| g.decisions)
        .map(|d| {
            let expiry = expiry(d.snapshot.time, &d.reasons, policy, &tz);
            (d.id, Kept { reasons: d.reasons, expiry })
        })
        .collect())
}

/// The snapshots as one JSON array (what `snapshots --json` prints and the dashboard's
/// API answers); with `kept`, the rules that keep each and until when.
pub(super) fn json(
    snaps: &[(SnapshotId, Snapshot)],
    kept: Option<&HashMap<SnapshotId, Kept>>,
) -> serde_json::Value {
    let list: Vec<_> = snaps
        .iter()
        .map(|(id, s)| {
            let mut v = serde_json::json!({
                "id": id.to_hex(),
                "time": format::rfc3339(s.time),
                "host": s.host,
                "user": s.user,
                "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
                "tags": s.tags,
                "type": cairn::repo::select::snapshot_type(s),
                "job": label(s, "job"),
                "labels": s.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "parent": s.parent.map(|p| p.to_hex()),
                "original": s.original.map(|p| p.to_hex()),
                "tree": s.tree.to_hex(),
                "partial": s.is_partial(),
                "summary": {
                    "files_new": s.summary.files_new,
                    "files_changed": s.summary.files_changed,
                    "files_unchanged": s.summary.files_unchanged,
                    "files": s.summary.files, "dirs": s.summary.dirs, "others": s.summary.others,
                    "bytes_read": s.summary.bytes_read, "total_bytes": s.summary.total_bytes,
                    "chunks_new": s.summary.chunks_new, "bytes_added": s.summary.bytes_added,
                    "errors": s.summary.errors, "duration_ms": s.summary.duration_ms,
                },
            });
            if let Some(k) = kept.and_then(|k| k.get(id)) {
                v["kept_by"] = k.reasons.clone().into();
                v["expires"] = match &k.expiry {
                    Some(Expiry::At(t)) => t.to_string().into(),
                    Some(Expiry::Never) => "never".into(),
                    Some(Expiry::AfterNewer(n)) => format!("after {n} newer snapshots").into(),
                    None => serde_json::Value::Null,
                };
            }
            v
        })
        .collect();
    serde_json::Value::Array(list)
}
