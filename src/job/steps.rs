//! What a job runs: each step's command line, built from the job file. Running them and
//! judging the outcome are `run.rs`'s part.

use super::config::{Access, Job, Retention};
use super::template::{expand, NameParts};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One planned step: what to run and how to judge it.
pub(super) struct Step {
    pub name: String,
    pub command: Command,
    pub kind: StepKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StepKind {
    /// A cairn command: exit 0 success, 3 partial; its `--json` result is read.
    Cairn,
    /// `cairn check`: as Cairn, and its result says whether the repository is healthy.
    Check,
    /// A shell command (hook): exit 0 success.
    Shell,
}

/// The backup of the sources and each dump. A source pattern that matches nothing
/// comes back as the error of the backup step.
pub(super) fn data_steps(cairn: &Path, job: &Job, started: jiff::Timestamp) -> (Vec<Step>, Option<String>) {
    let mut steps = Vec::new();
    let mut source_error = None;
    // Checked when the file was read; the system's zone unless the job names one.
    let zone = job.name_time_zone.as_deref().and_then(|z| jiff::tz::TimeZone::get(z).ok());
    let time = started.to_zoned_datetime(zone.unwrap_or_else(jiff::tz::TimeZone::system));
    let host = job.host.clone().unwrap_or_else(crate::sys::hostname);
    let common = |kind: &str, snapshot_type: &str| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--json".into(), "--time".into(), started.to_string().into()];
        if let Some(h) = &job.host {
            args.extend(["--host".into(), h.into()]);
        }
        for t in &job.tags {
            args.extend(["--tag".into(), t.into()]);
        }
        let mut labels = job.labels.clone();
        labels.push(("job".into(), job.name.clone()));
        if let Some(template) = &job.snapshot_name {
            let parts = NameParts {
                job: &job.name,
                host: &host,
                kind,
                snapshot_type,
                time: &time,
                labels: &job.labels,
            };
            // The template was checked when the file was read; a failure here is a
            // label value with a '/', reported by the backup's own label check.
            labels.push(("name".into(), expand(template, &parts).unwrap_or_else(|e| e)));
        }
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}").into()]);
        }
        args
    };
    match resolve_sources(job) {
        Ok(sources) if !sources.is_empty() => {
            let mut args: Vec<OsString> = vec!["backup".into()];
            args.extend(sources.into_iter().map(OsString::from));
            args.extend(common("files", job.snapshot_type.as_deref().unwrap_or("files")));
            if let Some(t) = &job.snapshot_type {
                args.extend(["--type".into(), t.into()]);
            }
            for e in &job.excludes {
                args.extend(["--exclude".into(), e.into()]);
            }
            for e in &job.exclude_if_present {
                args.extend(["--exclude-if-present".into(), e.into()]);
            }
            if job.exclude_caches {
                args.push("--exclude-caches".into());
            }
            if job.one_file_system {
                args.push("--one-file-system".into());
            }
            if let Some(n) = job.exclude_larger_than {
                args.extend(["--exclude-larger-than".into(), n.to_string().into()]);
            }
            steps.push(cairn_step(cairn, job, "backup", args));
        }
        Ok(_) => {}
        Err(e) => source_error = Some(e),
    }
    for d in &job.dumps {
        let mut args: Vec<OsString> = vec![
            "backup".into(),
            "--stdin-from-command".into(),
            d.command.clone().into(),
            "--stdin-name".into(),
            d.name.clone().into(),
        ];
        args.extend(common(&d.name, "dump"));
        steps.push(cairn_step(cairn, job, &format!("dump {}", d.name), args));
    }
    (steps, source_error)
}

/// Retention, key rotation when due, check, drill, and copies (each followed by the
/// retention at its target). `last_full` is when the log last shows a check that read all
/// data (seconds since the epoch).
pub(super) fn upkeep_steps(
    cairn: &Path,
    job: &Job,
    last_full: Option<i64>,
    rotate_due: bool,
    started: jiff::Timestamp,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(r) = job.retention.as_ref().filter(|r| r.at_repository) {
        steps.push(cairn_step(cairn, job, "retention", retention_args(job, r)));
    }
    // After the retention (less to seal anew), before the check (which then reads what
    // the rotation wrote).
    if rotate_due {
        steps.push(cairn_step(
            cairn,
            job,
            "key rotate",
            vec!["key".into(), "rotate".into(), "--json".into()],
        ));
    }
    if let Some(c) = &job.check {
        // Only this job's trees: another host's snapshots are its own job's to check.
        let mut args: Vec<OsString> = vec!["check".into(), "--json".into(), "--label".into()];
        args.push(format!("job={}", job.name).into());
        let day = started.as_second().div_euclid(86_400);
        let full_due = c.full_read_every_days.is_some_and(|days| {
            last_full.is_none_or(|last| started.as_second() - last >= i64::from(days) * 86_400)
        });
        if full_due {
            args.push("--read-data".into());
        } else if let Some(parts) = c.read_data_parts {
            // One part a day, in turn: `parts` days read everything.
            let part = day.rem_euclid(i64::from(parts)) + 1;
            args.extend(["--read-data-subset".into(), format!("{part}/{parts}").into()]);
        }
        let mut step = cairn_step(cairn, job, "check", args);
        step.kind = StepKind::Check;
        steps.push(step);
    }
    if let Some(d) = &job.drill {
        steps.push(cairn_step(cairn, job, "drill", drill_args(job, d)));
    }
    for c in &job.copies {
        // Only this job's snapshots: a repository may hold other jobs' too.
        let mut args: Vec<OsString> = vec!["copy".into(), "--json".into(), "--label".into()];
        args.push(format!("job={}", job.name).into());
        args.extend(["--from-repo".into(), job.repository.clone().into()]);
        if let Some(f) = &job.password_file {
            args.extend(["--from-password-file".into(), f.into()]);
        }
        if let Some(c) = &job.password_command {
            args.extend(["--from-password-command".into(), c.into()]);
        }
        if let Some(f) = &job.key_file {
            args.extend(["--from-key-file".into(), f.into()]);
        }
        if let Some(f) = &job.token_file {
            args.extend(["--from-token-file".into(), f.into()]);
        }
        if let Some(f) = &job.s3_credentials_file {
            args.extend(["--from-s3-credentials-file".into(), f.into()]);
        }
        let mut step = cairn_step(cairn, job, &format!("copy to {}", c.repository), args);
        // The target's own repository and key.
        set_repository(&mut step.command, &c.access());
        steps.push(step);
        // The copy keeps the same history as the job's repository, unless the target
        // says another host prunes it (or its key may not delete).
        if let (Some(r), true) = (&job.retention, c.retention) {
            let mut step =
                cairn_step(cairn, job, &format!("retention at {}", c.repository), retention_args(job, r));
            set_repository(&mut step.command, &c.access());
            steps.push(step);
        }
        // The offsite copy restores too, not only the local repository.
        if let Some(d) = job.drill.as_ref().filter(|d| d.copies) {
            let mut step = cairn_step(cairn, job, &format!("drill at {}", c.repository), drill_args(job, d));
            set_repository(&mut step.command, &c.access());
            steps.push(step);
        }
    }
    steps
}

/// `drill` of the job's own newest snapshot, not whichever host backed up last.
fn drill_args(job: &Job, d: &super::config::DrillPlan) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["drill".into(), "--json".into(), "--label".into()];
    args.push(format!("job={}", job.name).into());
    if let Some(v) = &d.max_rto {
        args.extend(["--max-rto".into(), v.into()]);
    }
    if let Some(v) = &d.max_rpo {
        args.extend(["--max-rpo".into(), v.into()]);
    }
    if d.random {
        args.push("--random".into());
    }
    if let Some(c) = &d.check_command {
        args.extend(["--check-command".into(), c.into()]);
    }
    if let Some(e) = &d.schedule_every {
        args.extend(["--schedule-every".into(), e.into()]);
    }
    args
}

/// `forget` of the job's own snapshots by its retention rules.
fn retention_args(job: &Job, r: &Retention) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["forget".into(), "--json".into(), "--label".into()];
    args.push(format!("job={}", job.name).into());
    for (k, n) in &r.keep {
        args.extend([format!("--{k}").into(), n.to_string().into()]);
    }
    if let Some(w) = &r.keep_within {
        args.extend(["--keep-within".into(), w.into()]);
    }
    if r.prune {
        args.push("--prune".into());
        if let Some(m) = &r.max_unused {
            args.extend(["--max-unused".into(), m.into()]);
        }
    }
    args
}

fn cairn_step(cairn: &Path, job: &Job, name: &str, args: Vec<OsString>) -> Step {
    let mut command = Command::new(cairn);
    command.args(args);
    // Another host may hold the shared repository's lock: wait rather than fail.
    if let Some(w) = &job.lock_wait {
        command.env("CAIRN_LOCK_WAIT", w);
    }
    // The operator's limits hold for every step.
    for (var, limit) in [
        ("CAIRN_LIMIT_UPLOAD", job.limit_upload),
        ("CAIRN_LIMIT_DOWNLOAD", job.limit_download),
        ("CAIRN_THREADS", job.threads),
        ("CAIRN_CONNECTIONS", job.connections),
    ] {
        if let Some(n) = limit {
            command.env(var, n.to_string());
        }
    }
    set_repository(&mut command, &job.access());
    Step { name: name.to_string(), command, kind: StepKind::Cairn }
}

/// Hook steps; closing hooks also learn how the job went (CAIRN_JOB_OUTCOME).
pub(super) fn hooks(when: &str, commands: &[String], job: &Job, outcome: Option<&str>) -> Vec<Step> {
    commands
        .iter()
        .map(|c| {
            let mut command = Command::new("sh");
            command.arg("-c").arg(c).env("CAIRN_JOB", &job.name);
            if let Some(o) = outcome {
                command.env("CAIRN_JOB_OUTCOME", o);
            }
            Step { name: format!("hook {when}"), command, kind: StepKind::Shell }
        })
        .collect()
}

/// Point a step at a repository: its location and what opens it. The step gets the
/// password cairn was given in its environment (taken out of it at start, `secrets`)
/// unless the repository names its own.
pub(super) fn set_repository(command: &mut Command, to: &Access<'_>) {
    use std::os::unix::ffi::OsStrExt;
    command.env("CAIRN_REPOSITORY", to.repository);
    for var in crate::repo::secrets::SECRET_VARS {
        command.env_remove(var);
    }
    command.env_remove("CAIRN_PASSWORD_COMMAND");
    if let Some(f) = to.password_file {
        command.env("CAIRN_PASSWORD_FILE", f);
    } else if let Some(c) = to.password_command {
        command.env("CAIRN_PASSWORD_COMMAND", c).env_remove("CAIRN_PASSWORD_FILE");
    } else if let Some(pw) = crate::repo::secrets::from_environment("CAIRN_PASSWORD") {
        command.env("CAIRN_PASSWORD", std::ffi::OsStr::from_bytes(&pw));
    } else if let Ok(c) = std::env::var("CAIRN_PASSWORD_COMMAND") {
        command.env("CAIRN_PASSWORD_COMMAND", c);
    }
    match to.key_file {
        Some(k) => command.env("CAIRN_KEY_FILE", k),
        None => command.env_remove("CAIRN_KEY_FILE"),
    };
    match to.s3_credentials_file {
        Some(f) => command.env("CAIRN_S3_CREDENTIALS_FILE", f),
        None => command.env_remove("CAIRN_S3_CREDENTIALS_FILE"),
    };
    match to.token_file {
        Some(t) => command.env("CAIRN_TOKEN_FILE", t),
        None => {
            command.env_remove("CAIRN_TOKEN_FILE");
            if let Some(t) = crate::repo::secrets::from_environment("CAIRN_TOKEN") {
                command.env("CAIRN_TOKEN", std::ffi::OsStr::from_bytes(&t));
            }
            command
        }
    };
}

/// Sources with globs in their last component expanded; optional ones that match nothing
/// are left out, required ones must match.
pub(super) fn resolve_sources(job: &Job) -> std::result::Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for (pattern, required) in
        job.sources.iter().map(|s| (s, true)).chain(job.optional_sources.iter().map(|s| (s, false)))
    {
        let path = Path::new(pattern);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.contains(['*', '?', '[']) {
            if required || path.symlink_metadata().is_ok() {
                out.push(path.to_path_buf());
            }
            continue;
        }
        let glob = globset::Glob::new(&name).map_err(|e| format!("source {pattern}: {e}"))?.compile_matcher();
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| glob.is_match(e.file_name()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        if found.is_empty() && required {
            return Err(format!(
                "source {pattern} matches nothing; fix the path or list it under optional-sources"
            ));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_follows_each_copy_unless_the_target_opts_out() {
        let file = super::super::config::parse(
            r#"
[jobs.gw]
repository = "/r"
sources = ["/src"]
[jobs.gw.retention]
keep-daily = 7
[[jobs.gw.copy]]
repository = "/offsite-a"
password-file = "/etc/cairn/a.pass"
[[jobs.gw.copy]]
repository = "/offsite-b"
password-file = "/etc/cairn/b.pass"
retention = false
"#,
        )
        .unwrap();
        let job = &file.jobs[0];
        let steps = upkeep_steps(Path::new("cairn"), job, None, false, jiff::Timestamp::UNIX_EPOCH);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["retention", "copy to /offsite-a", "retention at /offsite-a", "copy to /offsite-b"]
        );
        let at_target = &steps[2].command;
        let repo = at_target.get_envs().find(|(k, _)| *k == "CAIRN_REPOSITORY").and_then(|(_, v)| v);
        assert_eq!(repo, Some(std::ffi::OsStr::new("/offsite-a")), "runs against the copy's repository");
        let args: Vec<_> = at_target.get_args().collect();
        assert_eq!(args, ["forget", "--json", "--label", "job=gw", "--keep-daily", "7", "--prune"]);
    }

    #[test]
    fn drill_and_check_stay_with_the_jobs_own_snapshots() {
        let file = super::super::config::parse(
            r#"
[jobs.gw]
repository = "/shared"
sources = ["/src"]
[jobs.gw.check]
[jobs.gw.drill]
max-rpo = "4h"
"#,
        )
        .unwrap();
        let steps = upkeep_steps(Path::new("cairn"), &file.jobs[0], None, false, jiff::Timestamp::UNIX_EPOCH);
        for step in &steps {
            let args: Vec<_> = step.command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            let at = args.iter().position(|a| a == "--label");
            assert_eq!(at.map(|i| args[i + 1].as_str()), Some("job=gw"), "{}: {args:?}", step.name);
        }
        assert_eq!(steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["check", "drill"]);
    }

    #[test]
    fn a_job_can_leave_its_repository_to_another_pruner_and_steps_wait_for_locks() {
        let file = super::super::config::parse(
            r#"
[jobs.gw]
repository = "/shared"
sources = ["/src"]
lock-wait = "10m"
[jobs.gw.retention]
keep-daily = 7
at-repository = false
[[jobs.gw.copy]]
repository = "/offsite"
password-file = "/etc/cairn/offsite.pass"
"#,
        )
        .unwrap();
        let steps = upkeep_steps(Path::new("cairn"), &file.jobs[0], None, false, jiff::Timestamp::UNIX_EPOCH);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["copy to /offsite", "retention at /offsite"]);
        for s in &steps {
            let wait = s.command.get_envs().find(|(k, _)| *k == "CAIRN_LOCK_WAIT").and_then(|(_, v)| v);
            assert_eq!(wait, Some(std::ffi::OsStr::new("10m")), "{}", s.name);
        }
    }
}
