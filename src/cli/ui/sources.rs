//! The repositories the dashboard shows: each job's own and its copies, or the one given
//! with --repo. Each is opened once at start (a wrong password stops the dashboard before
//! it serves anything) and stays open; its keys are wiped when the dashboard ends.

use cairn::job::config::{Access, Job, JobFile};
use cairn::{Repository, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// What opens a repository, owned (a job file's `Access` borrows the job).
#[derive(Clone, Default)]
pub struct Opener {
    pub repository: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub key_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub s3_credentials_file: Option<PathBuf>,
}

impl Opener {
    fn of(a: &Access<'_>) -> Opener {
        Opener {
            repository: a.repository.to_string(),
            password_file: a.password_file.map(PathBuf::from),
            password_command: a.password_command.map(str::to_string),
            key_file: a.key_file.map(PathBuf::from),
            token_file: a.token_file.map(PathBuf::from),
            s3_credentials_file: a.s3_credentials_file.map(PathBuf::from),
        }
    }

    pub fn access(&self) -> Access<'_> {
        Access {
            repository: &self.repository,
            password_file: self.password_file.as_deref(),
            password_command: self.password_command.as_deref(),
            key_file: self.key_file.as_deref(),
            token_file: self.token_file.as_deref(),
            s3_credentials_file: self.s3_credentials_file.as_deref(),
        }
    }
}

/// One repository on the dashboard.
pub struct Source {
    /// The job whose repository or copy this is.
    pub job: Option<String>,
    /// For a copy target: the index of the job's own repository.
    pub copy_of: Option<usize>,
    /// For a job's own repository: the indexes of its copies.
    pub copies: Vec<usize>,
    pub opener: Opener,
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
            (None, _) => self.opener.repository.clone(),
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
        let at_repository = job.retention.as_ref().is_some_and(|r| r.at_repository);
        let follows = std::iter::once(at_repository).chain(job.copies.iter().map(|c| c.retention));
        let targets = std::iter::once(job.access()).chain(job.copies.iter().map(|c| c.access()));
        for (i, (access, follows)) in targets.zip(follows).enumerate() {
            let repo = access.open().map_err(|e| {
                cairn::Error::new(
                    e.kind(),
                    format!("job {}: cannot open {}: {e}", job.name, access.repository),
                )
            })?;
            out.push(Source {
                job: Some(job.name.clone()),
                copy_of: (i > 0).then_some(own),
                copies: Vec::new(),
                opener: Opener::of(&access),
                repo: Arc::new(repo),
                rpo,
                max_rto,
                job_file: Some(job_file.clone()),
                retention: policy.clone().filter(|_| follows),
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
    let opener = Opener {
        repository: ctx.location()?.to_string(),
        password_file: ctx.password_file.clone(),
        password_command: ctx.password_command.clone(),
        key_file: ctx.key_file.clone(),
        ..Opener::default()
    };
    Ok(vec![Source {
        job: None,
        copy_of: None,
        copies: Vec::new(),
        opener,
        repo: Arc::new(repo),
        rpo,
        max_rto: None,
        job_file: None,
        retention: None,
    }])
}
