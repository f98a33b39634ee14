//! The repositories the dashboard shows: each job's own and its copies, or the one given
//! with --repo. Each is opened once at start (a wrong password stops the dashboard before
//! it serves anything) and stays open; its keys are wiped when the dashboard ends.

use cairn::job::config::{CopyTarget, Job, JobFile};
use cairn::{Repository, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// One repository on the dashboard.
pub struct Source {
    /// The job whose repository or copy this is.
    pub job: Option<String>,
    /// For a copy target: the index of the job's own repository.
    pub copy_of: Option<usize>,
    /// For a job's own repository: the indexes of its copies.
    pub copies: Vec<usize>,
    /// The repository and what opens it (its password file or command, key, token).
    pub target: CopyTarget,
    pub repo: Arc<Repository>,
    /// The newest snapshot should be younger than this (seconds).
    pub rpo: u64,
    /// A drill should restore within this (seconds), when the job says.
    pub max_rto: Option<u64>,
    /// The job file, for `cairn run JOB` from the dashboard.
    pub job_file: Option<PathBuf>,
    /// The job's retention rules, where they run (its own repository, and copy targets
    /// that follow them).
    pub retention: Option<cairn::ops::forget::RetentionPolicy>,
}

impl Source {
    /// The name the pages show: the job (and which copy), else the location.
    pub fn name(&self) -> String {
        match (&self.job, self.copy_of) {
            (Some(j), None) => j.clone(),
            (Some(j), Some(_)) => format!("{j} (copy)"),
            (None, _) => self.target.repository.clone(),
        }
    }
}

fn duration(v: Option<&String>) -> Option<u64> {
    v.and_then(|v| cairn::units::parse_duration(v).ok())
}

/// The RPO a job promises: its drill's limit, else its schedule, else `default`.
fn job_rpo(job: &Job, default: u64) -> u64 {
    let d = job.drill.as_ref();
    duration(d.and_then(|d| d.max_rpo.as_ref()))
        .or_else(|| duration(d.and_then(|d| d.schedule_every.as_ref())))
        .unwrap_or(default)
}

/// Every job's repository and copies, in the order of the file.
pub fn from_jobs(file: &JobFile, path: &std::path::Path, default_rpo: u64) -> Result<Vec<Source>> {
    let mut out: Vec<Source> = Vec::new();
    let job_file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for job in &file.jobs {
        let rpo = job_rpo(job, default_rpo);
        let max_rto = duration(job.drill.as_ref().and_then(|d| d.max_rto.as_ref()));
        let own = out.len();
        let policy = crate::cli::snapshots::policy_of(job)?;
        let targets = std::iter::once(job.own_target()).chain(job.copies.iter().cloned());
        for (i, target) in targets.enumerate() {
            let repo = target.access().open().map_err(|e| {
                cairn::Error::new(
                    e.kind(),
                    format!("job {}: cannot open {}: {e}", job.name, target.repository),
                )
            })?;
            out.push(Source {
                job: Some(job.name.clone()),
                copy_of: (i > 0).then_some(own),
                copies: Vec::new(),
                repo: Arc::new(repo),
                rpo,
                max_rto,
                job_file: Some(job_file.clone()),
                retention: policy.clone().filter(|_| target.retention),
                target,
            });
        }
        out[own].copies = (own + 1..out.len()).collect();
    }
    if out.is_empty() {
        return Err(cairn::Error::invalid(format!("{} has no job: nothing to show", path.display())));
    }
    Ok(out)
}

/// The repository of --repo, opened as every command opens it.
pub fn from_ctx(ctx: &super::Ctx, rpo: u64) -> Result<Vec<Source>> {
    let repo = ctx.open()?;
    let target = CopyTarget {
        repository: ctx.location()?.to_string(),
        password_file: ctx.password_file.clone(),
        password_command: ctx.password_command.clone(),
        key_file: ctx.key_file.clone(),
        ..CopyTarget::default()
    };
    Ok(vec![Source {
        job: None,
        copy_of: None,
        copies: Vec::new(),
        target,
        repo: Arc::new(repo),
        rpo,
        max_rto: None,
        job_file: None,
        retention: None,
    }])
}
