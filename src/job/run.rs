//! Running a job: each step is a cairn command (or a hook, a database dump, a ping) run
//! as its own process, in this order:
//!
//! 1. ping start, hooks `before`;
//! 2. backup of the sources, then each dump (`backup --stdin-from-command`): these run
//!    even when one of them fails, so as much as possible is saved;
//! 3. only if nothing failed: retention (`forget --prune`, limited to the job's
//!    snapshots), `check` (with a rotating part of the data, or all of it when a full read
//!    is due), `drill`, and `copy` to each offsite repository followed by the same
//!    retention there (unless the target sets `retention = false`);
//! 4. hooks `after` (success) or `on-error` (failure), ping success or failure, and a
//!    `job` entry in the repository's activity log.
//!
//! Each command records itself in the activity log as it would run by hand, and the same
//! command lines are what `cairn run --dry-run` prints. Library code does not print: the
//! caller gets each step as it ends.

use super::config::Job;
use super::steps::{self, Step, StepKind};
use crate::error::{Error, Result};
use crate::format::log::LogEntry;
use crate::repo::log::LogRecord;
use crate::repo::Repository;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a step or a job ended; the order is from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Success,
    /// Done, with something missing: a backup could not read some files.
    Partial,
    Failed,
    /// Stopped by SIGINT or SIGTERM: the running step was told to stop, none after it ran.
    Interrupted,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Debug)]
pub struct StepReport {
    /// What ran: "backup", "dump gwdb.sql", "hook before", "check", "ping success", ...
    pub step: String,
    pub outcome: Outcome,
    /// A failure's reason, or a short result ("snapshot 3f9a1c12", "skipped: ...").
    pub detail: String,
    pub seconds: f64,
    /// Pings only warn: a monitor that is down never fails a backup.
    pub counts: bool,
}

#[derive(Clone, Debug)]
pub struct JobReport {
    pub job: String,
    pub outcome: Outcome,
    pub steps: Vec<StepReport>,
    pub started: jiff::Timestamp,
    pub seconds: f64,
    /// Ids of the snapshots this run made.
    pub snapshots: Vec<String>,
    pub bytes_added: u64,
    /// The job's snapshots in the repository after the run.
    pub snapshot_count: Option<u64>,
    pub check_ok: Option<bool>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

/// What a run needs besides the job.
pub struct Runner<'a> {
    /// The cairn binary to run steps with (normally the running one).
    pub cairn: PathBuf,
    pub interrupt: &'a AtomicBool,
    /// Only report the steps' command lines; run nothing.
    pub dry_run: bool,
    /// Called as each step ends.
    pub on_step: &'a mut dyn FnMut(&StepReport),
}

impl Runner<'_> {
    pub fn run(&mut self, job: &Job) -> JobReport {
        let started = jiff::Timestamp::now();
        let clock = Instant::now();
        let mut report = JobReport {
            job: job.name.clone(),
            outcome: Outcome::Success,
            steps: Vec::new(),
            started,
            seconds: 0.0,
            snapshots: Vec::new(),
            bytes_added: 0,
            snapshot_count: None,
            check_ok: None,
            rto_seconds: None,
            rpo_seconds: None,
        };
        self.ping(job, job.monitoring.ping_start.as_deref(), "ping start", "", &mut report);
        let mut repo = if self.dry_run { None } else { self.open(job, &mut report) };
        let mut ok = report.outcome != Outcome::Failed;
        if ok {
            ok = self.steps(steps::hooks("before", &job.hooks.before, job, None), &mut report);
        }
        if ok {
            let (data, source_error) = steps::data_steps(&self.cairn, job, started);
            if let Some(e) = source_error {
                self.finish(&mut report, "backup", Outcome::Failed, e, Instant::now(), true);
            }
            let data_ok = self.steps(data, &mut report);
            // The log is read once, and only when a decision needs it.
            let wants_full = job.check.as_ref().is_some_and(|c| c.full_read_every_days.is_some());
            let every = job.rotate_keys_every.as_deref().and_then(|e| crate::units::parse_duration(e).ok());
            let log = repo
                .as_ref()
                .filter(|_| wants_full || every.is_some())
                .and_then(|r| r.read_log().ok())
                .map(|log| log.entries)
                .unwrap_or_default();
            let last_full = wants_full.then(|| last_full_read(&log)).flatten();
            let rotate_due = every
                .is_some_and(|every| repo.as_ref().is_some_and(|r| rotation_due(r, &log, every, started)));
            ok = data_ok
                && self.steps(
                    steps::upkeep_steps(&self.cairn, job, last_full, rotate_due, started),
                    &mut report,
                );
            if rotate_due {
                // The keys this process opened with are retired: what it records must be
                // sealed under the new ones.
                repo = job.access().open().ok();
            }
        }
        let closing = match ok {
            true => steps::hooks("after", &job.hooks.after, job, Some(report.outcome.name())),
            false => steps::hooks("on-error", &job.hooks.on_error, job, Some(report.outcome.name())),
        };
        if report.outcome != Outcome::Interrupted {
            self.steps(closing, &mut report);
        }
        if let Some(repo) = &repo {
            report.snapshot_count = repo.snapshots().ok().map(|all| {
                all.iter().filter(|(_, s)| s.labels.iter().any(|(k, v)| k == "job" && *v == job.name)).count()
                    as u64
            });
        }
        report.seconds = clock.elapsed().as_secs_f64();
        let summary = format!("cairn job {}: {} in {:.1} s", job.name, report.outcome.name(), report.seconds);
        match report.outcome {
            Outcome::Failed | Outcome::Interrupted => {
                self.ping(job, job.monitoring.ping_failure.as_deref(), "ping failure", &summary, &mut report)
            }
            _ => {
                self.ping(job, job.monitoring.ping_success.as_deref(), "ping success", &summary, &mut report)
            }
        }
        if let Some(repo) = &repo {
            record(repo, &report);
        }
        report
    }

    /// Open the job's repository once, to read state and to record the run; a wrong
    /// password or a missing repository fails the job before anything runs.
    fn open(&mut self, job: &Job, report: &mut JobReport) -> Option<Repository> {
        let clock = Instant::now();
        match job.access().open() {
            Ok(repo) => Some(repo),
            Err(e) => {
                self.finish(report, "open repository", Outcome::Failed, e.to_string(), clock, true);
                None
            }
        }
    }

    /// Run steps in order; all run (a dump after a failed backup still runs). Returns
    /// whether none failed.
    fn steps(&mut self, steps: Vec<Step>, report: &mut JobReport) -> bool {
        let mut ok = !report.steps.iter().any(|s| s.counts && s.outcome == Outcome::Failed);
        for mut step in steps {
            let clock = Instant::now();
            if self.dry_run {
                let detail = describe(&step.command);
                self.finish(report, &step.name, Outcome::Success, detail, clock, true);
                continue;
            }
            if self.interrupt.load(Ordering::Relaxed) {
                // Nothing more starts once the run was told to stop.
                report.outcome = report.outcome.max(Outcome::Interrupted);
                return false;
            }
            let output = run_step(&mut step.command, self.interrupt);
            let (outcome, detail) = match output {
                Err(e) => (Outcome::Failed, format!("cannot start: {e}")),
                Ok(out) if self.interrupt.load(Ordering::Relaxed) => {
                    let (_, detail) = judge(step.kind, &out, report);
                    (Outcome::Interrupted, detail)
                }
                Ok(out) => judge(step.kind, &out, report),
            };
            ok &= outcome < Outcome::Failed;
            self.finish(report, &step.name, outcome, detail, clock, true);
            crate::failpoint::hit("job:between-steps");
        }
        ok
    }

    fn finish(
        &mut self,
        report: &mut JobReport,
        step: &str,
        outcome: Outcome,
        detail: String,
        clock: Instant,
        counts: bool,
    ) {
        let s =
            StepReport { step: step.into(), outcome, detail, seconds: clock.elapsed().as_secs_f64(), counts };
        (self.on_step)(&s);
        if counts {
            report.outcome = report.outcome.max(outcome);
        }
        report.steps.push(s);
    }

    fn ping(&mut self, job: &Job, url: Option<&str>, step: &str, body: &str, report: &mut JobReport) {
        let Some(url) = url else { return };
        let clock = Instant::now();
        if self.dry_run {
            self.finish(report, step, Outcome::Success, format!("POST {url}"), clock, false);
            return;
        }
        let (outcome, detail) = match super::ping::send(url, body, job.monitoring.ping_timeout) {
            Ok(()) => (Outcome::Success, url.to_string()),
            Err(e) => (Outcome::Failed, format!("monitor not reached (the job goes on): {e}")),
        };
        self.finish(report, step, outcome, detail, clock, false);
    }
}

/// Run a step's process to its end, collecting its output. An interrupt of this process
/// is passed on to the step (SIGINT, once), which then stops as cairn commands do: the
/// signal may have reached only this process (`kill PID`), not its process group.
fn run_step(command: &mut Command, interrupt: &AtomicBool) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut told = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !told && interrupt.load(Ordering::Relaxed) {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            told = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout, stderr })
}

/// A step's outcome from its exit status; a cairn command's JSON result adds figures to
/// the report.
fn judge(kind: StepKind, out: &std::process::Output, report: &mut JobReport) -> (Outcome, String) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The error line: cairn's own ("cairn: ...") or clap's ("error: ..."), else the last.
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let last_error = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("cairn: ") || l.starts_with("error: "))
        .or(lines.last())
        .copied()
        .unwrap_or("")
        .to_string();
    let code = out.status.code();
    let outcome = match (kind, code) {
        (_, Some(0)) => Outcome::Success,
        (StepKind::Cairn | StepKind::Check, Some(3)) => Outcome::Partial,
        _ => Outcome::Failed,
    };
    if kind == StepKind::Shell {
        let detail = match code {
            Some(0) => String::new(),
            Some(c) => format!("exited with code {c}: {last_error}"),
            None => "killed by a signal".into(),
        };
        return (outcome, detail);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Option<serde_json::Value> = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok());
    let mut detail = String::new();
    // forget's result (prune may print after it): which snapshots the step removed.
    let forgot = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("removed").is_some_and(|r| r.is_array()) && v.get("groups").is_some());
    if let Some(removed) = forgot.as_ref().and_then(|v| v["removed"].as_array()) {
        let ids: Vec<&str> =
            removed.iter().filter_map(|i| i.as_str()).map(|i| &i[..i.len().min(8)]).collect();
        detail = match ids.len() {
            0 => "removed no snapshot".into(),
            1 => format!("removed 1 snapshot: {}", ids[0]),
            n => format!("removed {n} snapshots: {}", ids.join(" ")),
        };
    }
    if let Some(v) = &result {
        if v["type"] == "interrupted" {
            report.bytes_added += v["bytes_added"].as_u64().unwrap_or(0);
        }
        if let Some(id) = v["snapshot"].as_str().filter(|_| v["type"] == "summary") {
            report.snapshots.push(id.to_string());
            report.bytes_added += v["bytes_added"].as_u64().unwrap_or(0);
            detail = format!("snapshot {}", &id[..id.len().min(8)]);
        }
        // The first drill is the job's own repository's; drills of copies follow it.
        if v.get("rto_seconds").is_some() && report.rto_seconds.is_none() {
            report.rto_seconds = v["rto_seconds"].as_f64();
            report.rpo_seconds = v["rpo_seconds"].as_f64();
            detail = format!(
                "RTO {:.1} s, RPO {:.0} s",
                report.rto_seconds.unwrap_or_default(),
                report.rpo_seconds.unwrap_or_default()
            );
        }
        if kind == StepKind::Check {
            report.check_ok = Some(v["status"] != "failed" && outcome == Outcome::Success);
        }
    }
    if outcome != Outcome::Success && !last_error.is_empty() {
        detail = format!("exit {}: {last_error}", code.map_or("signal".into(), |c| c.to_string()));
    }
    (outcome, detail)
}

/// A command line as a person would type it (for --dry-run).
fn describe(command: &Command) -> String {
    let quote = |s: &std::ffi::OsStr| {
        let s = s.to_string_lossy();
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%,+".contains(c)) {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in command.get_envs() {
        let secret = crate::repo::secrets::SECRET_VARS.iter().any(|s| k == std::ffi::OsStr::new(s));
        match v {
            // A password or token the step inherits is said to be there, never shown.
            Some(_) if secret => parts.push(format!("{}=(hidden)", k.to_string_lossy())),
            Some(v) => parts.push(format!("{}={}", k.to_string_lossy(), quote(v))),
            None => {}
        }
    }
    parts.push("cairn".into());
    parts.extend(command.get_args().map(quote));
    parts.join(" ")
}

/// The job's password: its password file or command, else what the caller's environment
/// gives.
pub(super) fn password(file: Option<&Path>, command: Option<&str>) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        return crate::repo::keys::read_password_file(f);
    }
    if let Some(c) = command {
        return crate::repo::secrets::from_command(c);
    }
    let env_file = std::env::var_os("CAIRN_PASSWORD_FILE").map(PathBuf::from);
    let env_command = std::env::var("CAIRN_PASSWORD_COMMAND").ok();
    crate::repo::keys::given_password("CAIRN_PASSWORD", env_command.as_deref(), env_file.as_deref()).unwrap_or_else(|| {
        Err(Error::invalid(
            "no password for the job: set password-file or password-command in the job, or CAIRN_PASSWORD_FILE",
        ))
    })
}

/// When the log last records a check that read all data (seconds since the epoch).
fn last_full_read(log: &[LogEntry]) -> Option<i64> {
    log.iter()
        .rev()
        .find(|e| e.operation == "check" && e.figures.iter().any(|(k, v)| k == "read_data" && v == "all"))
        .map(|e| e.time.secs)
}

/// Whether `every` seconds (the job's `rotate-keys-every`) have passed since the last
/// completed key rotation the log shows (or since the repository was made), or a rotation
/// is unfinished.
fn rotation_due(repo: &Repository, log: &[LogEntry], every: u64, now: jiff::Timestamp) -> bool {
    if repo.rotation_unfinished() {
        return true;
    }
    let last = log
        .iter()
        .rev()
        .find(|e| e.operation == "key rotate" && e.outcome == "success")
        .map_or(repo.config().created.secs, |e| e.time.secs);
    now.as_second() - last >= every as i64
}

/// The job's own entry in the activity log: outcome, and each step's.
fn record(repo: &Repository, report: &JobReport) {
    let mut rec = LogRecord::new(&format!("job {}", report.job), report.outcome.name())
        .figure("duration_s", format!("{:.1}", report.seconds))
        .figure("bytes_added", report.bytes_added);
    for s in &report.steps {
        let mut v = s.outcome.name().to_string();
        if s.outcome != Outcome::Success && !s.detail.is_empty() {
            v = format!("{v} ({})", s.detail);
        }
        rec.figures.push((s.step.clone(), v));
    }
    // The job ran; a failure to record it is not a job failure (and there is no one to
    // tell but the caller's report, which has every step).
    let _ = repo.append_log(rec);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dry_run_line_never_shows_a_password_or_token() {
        let mut c = std::process::Command::new("cairn");
        c.args(["backup", "/etc"])
            .env("CAIRN_PASSWORD", "hunter2")
            .env("CAIRN_TOKEN", "tok-3")
            .env("CAIRN_REPOSITORY", "/r");
        let line = super::describe(&c);
        assert!(!line.contains("hunter2") && !line.contains("tok-3"), "{line}");
        assert!(line.contains("CAIRN_PASSWORD=(hidden)") && line.contains("CAIRN_REPOSITORY=/r"), "{line}");
    }
}
