//! Job figures as a Prometheus textfile (node exporter's textfile collector reads it).
//! One file holds every job: a run rewrites its own job's lines and keeps the others',
//! and keeps the last success time through failed runs. The file is replaced whole
//! (temporary name, then rename), so a scrape never sees half of it.

use super::run::{JobReport, Outcome};
use crate::error::{IoContext, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Metric names, their help text, in the order they are written.
const METRICS: &[(&str, &str)] = &[
    ("cairn_job_outcome", "Last run: 0 success, 1 partial (some files unreadable), 2 failed, 3 interrupted."),
    ("cairn_job_last_run_timestamp_seconds", "When the last run started."),
    ("cairn_job_last_success_timestamp_seconds", "When the last fully successful run started."),
    ("cairn_job_duration_seconds", "How long the last run took."),
    ("cairn_job_bytes_added", "Bytes the last run's backups added to the repository."),
    ("cairn_job_snapshots", "Snapshots of the job in its repository after the last run."),
    ("cairn_job_check_ok", "Last run's check: 1 healthy, 0 damage found."),
    ("cairn_job_rto_seconds", "Last drill's restore-and-verify time."),
    ("cairn_job_rpo_seconds", "Last drill's age of the newest snapshot."),
];

/// Write `report`'s figures into the textfile at `path`, keeping other jobs' figures.
pub fn update(path: &Path, report: &JobReport) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    // metric -> job -> value, from the existing file.
    let mut values: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in old.lines().filter(|l| !l.starts_with('#')) {
        if let Some((metric, job, value)) = parse_line(line) {
            values.entry(metric).or_default().insert(job, value);
        }
    }
    let started = report.started.as_second().to_string();
    let job = &report.job;
    let mut set = |metric: &str, value: Option<String>| {
        let per_job = values.entry(metric.to_string()).or_default();
        match value {
            Some(v) => per_job.insert(job.clone(), v),
            None => per_job.remove(job),
        };
    };
    let outcome = match report.outcome {
        Outcome::Success => 0,
        Outcome::Partial => 1,
        Outcome::Failed => 2,
        Outcome::Interrupted => 3,
    };
    set("cairn_job_outcome", Some(outcome.to_string()));
    set("cairn_job_last_run_timestamp_seconds", Some(started.clone()));
    if report.outcome == Outcome::Success {
        set("cairn_job_last_success_timestamp_seconds", Some(started));
    }
    set("cairn_job_duration_seconds", Some(format!("{:.3}", report.seconds)));
    set("cairn_job_bytes_added", Some(report.bytes_added.to_string()));
    set("cairn_job_snapshots", report.snapshot_count.map(|n| n.to_string()));
    set("cairn_job_check_ok", report.check_ok.map(|ok| u8::from(ok).to_string()));
    set("cairn_job_rto_seconds", report.rto_seconds.map(|s| format!("{s:.3}")));
    set("cairn_job_rpo_seconds", report.rpo_seconds.map(|s| format!("{s:.0}")));

    let mut text = String::new();
    for (metric, help) in METRICS {
        let Some(per_job) = values.get(*metric).filter(|m| !m.is_empty()) else { continue };
        text.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n"));
        for (job, value) in per_job {
            text.push_str(&format!("{metric}{{job=\"{job}\"}} {value}\n"));
        }
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).ctx(|| format!("cannot write metrics file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("cannot replace metrics file {}", path.display()))
}

/// `metric{job="name"} value` as written by [`update`].
fn parse_line(line: &str) -> Option<(String, String, String)> {
    let (metric, rest) = line.split_once("{job=\"")?;
    let (job, rest) = rest.split_once("\"}")?;
    Some((metric.to_string(), job.to_string(), rest.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(job: &str, outcome: Outcome, at: i64) -> JobReport {
        JobReport {
            job: job.into(),
            outcome,
            steps: Vec::new(),
            started: jiff::Timestamp::from_second(at).unwrap(),
            seconds: 1.5,
            snapshots: Vec::new(),
            bytes_added: 42,
            snapshot_count: Some(3),
            check_ok: Some(true),
            rto_seconds: None,
            rpo_seconds: None,
        }
    }

    #[test]
    fn jobs_share_the_file_and_a_failure_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cairn.prom");
        update(&f, &report("gw", Outcome::Success, 1000)).unwrap();
        update(&f, &report("kong", Outcome::Success, 1100)).unwrap();
        update(&f, &report("gw", Outcome::Failed, 2000)).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("cairn_job_outcome{job=\"gw\"} 2\n"), "{text}");
        assert!(text.contains("cairn_job_last_success_timestamp_seconds{job=\"gw\"} 1000\n"), "{text}");
        assert!(text.contains("cairn_job_last_run_timestamp_seconds{job=\"gw\"} 2000\n"), "{text}");
        assert!(text.contains("cairn_job_outcome{job=\"kong\"} 0\n"), "{text}");
        assert_eq!(text.matches("# TYPE cairn_job_outcome gauge").count(), 1);
        assert!(!text.contains("rto"), "no drill ran: no RTO line\n{text}");
    }
}
