//! `cairn run`: run the jobs of a job file.

use super::{exit, Ctx};
use cairn::job::config::{self, Job, JobFile};
use cairn::job::run::{JobReport, Outcome, Runner, StepReport};
use cairn::{Error, ErrorKind, Result};
use std::path::PathBuf;

/// Where job files are looked for when --config is not given.
pub const DEFAULT_CONFIG: &str = "/etc/cairn/cairn.toml";

/// Run backup jobs from a job file: backup, dumps, retention, check, drill, copies
#[derive(clap::Args)]
#[command(after_help = "\
Each job runs its steps in order: ping start, hooks before, backup of the sources, each
database dump, then (if all of that worked) retention, check, drill and offsite copies,
then hooks after (or on-error) and ping success (or failure). Every step is a cairn
command; --dry-run prints them. An interrupt (exit 130) stops the running step, and
nothing after it runs.

Examples:
  cairn config example --preset axway-apigateway > /etc/cairn/cairn.toml
  cairn run                               # every job in /etc/cairn/cairn.toml
  cairn run apigateway --metrics-file /var/lib/node_exporter/cairn.prom")]
pub struct Args {
    /// Jobs to run, by name (default: every job in the file)
    jobs: Vec<String>,
    #[command(flatten)]
    file: ConfigFile,
    /// Write Prometheus metrics for each job run to this textfile
    #[arg(long)]
    metrics_file: Option<PathBuf>,
    /// Print the steps each job would run, run nothing
    #[arg(long)]
    dry_run: bool,
}

/// The job file option, shared by run, config and schedule.
#[derive(clap::Args)]
pub struct ConfigFile {
    /// The job file
    #[arg(long, env = "CAIRN_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

impl ConfigFile {
    /// Read and check the whole file; every mistake is printed with its line.
    pub fn load(&self) -> Result<JobFile> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidInput,
                format!(
                    "cannot read job file {} (--config or CAIRN_CONFIG; `cairn config example` prints one)",
                    self.config.display()
                ),
                e,
            )
        })?;
        config::parse(&text).map_err(|errors| {
            for e in &errors {
                eprintln!("cairn: {}:{}: {}", self.config.display(), e.line, e.message);
            }
            Error::invalid(format!(
                "{} has {} mistakes; nothing was run",
                self.config.display(),
                errors.len()
            ))
        })
    }
}

/// The jobs named (all when none), in the order of the file.
pub fn select<'f>(file: &'f JobFile, names: &[String]) -> Result<Vec<&'f Job>> {
    for n in names {
        if !file.jobs.iter().any(|j| &j.name == n) {
            let known: Vec<&str> = file.jobs.iter().map(|j| j.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "no job named '{n}' in the job file; it has: {}",
                known.join(", ")
            )));
        }
    }
    Ok(file.jobs.iter().filter(|j| names.is_empty() || names.contains(&j.name)).collect())
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let file = a.file.load()?;
    let jobs = select(&file, &a.jobs)?;
    let cairn = std::env::current_exe().map_err(|e| Error::io("cannot find the cairn binary", e))?;
    let mut worst = Outcome::Success;
    let mut locked = false;
    for job in jobs {
        let files =
            job.password_file.iter().chain(job.copies.iter().filter_map(|c| c.password_file.as_ref()));
        files.for_each(|f| super::warn_if_exposed(f, "password file"));
        let tokens = job.token_file.iter().chain(job.copies.iter().filter_map(|c| c.token_file.as_ref()));
        tokens.for_each(|f| super::warn_if_exposed(f, "token file"));
        let _guard = match a.dry_run {
            true => None,
            false => match JobLock::take(&job.name)? {
                Some(g) => Some(g),
                None => {
                    eprintln!("cairn: job {} is already running; this run of it is skipped", job.name);
                    locked = true;
                    continue;
                }
            },
        };
        let (quiet, json, dry_run) = (ctx.quiet, ctx.json, a.dry_run);
        let name = job.name.clone();
        let mut on_step = |s: &StepReport| print_step(&name, s, quiet || json, dry_run);
        let mut runner = Runner {
            cairn: cairn.clone(),
            interrupt: &ctx.interrupt,
            dry_run: a.dry_run,
            on_step: &mut on_step,
        };
        let report = runner.run(job);
        if let (Some(f), false) = (&a.metrics_file, a.dry_run) {
            if let Err(e) = cairn::job::metrics::update(f, &report) {
                eprintln!("cairn: warning: {e}");
            }
        }
        print_report(&report, ctx, a.dry_run);
        worst = worst.max(report.outcome);
        if worst == Outcome::Interrupted {
            break;
        }
    }
    Ok(match worst {
        Outcome::Interrupted => {
            eprintln!("cairn: run interrupted; the running step was stopped and no later step ran");
            exit::INTERRUPTED
        }
        Outcome::Failed => exit::COMMAND_FAILED,
        Outcome::Partial => exit::PARTIAL,
        Outcome::Success if locked => exit::LOCKED,
        Outcome::Success => exit::SUCCESS,
    })
}

fn print_step(job: &str, s: &StepReport, quiet: bool, dry_run: bool) {
    let failed = s.outcome >= Outcome::Failed;
    if quiet && !failed {
        return;
    }
    if dry_run {
        // Nothing ran: no outcome, no time, only what would run.
        println!("[{job}] {:<20} would run  {}", s.step, s.detail);
        return;
    }
    let line = format!("[{job}] {:<20} {:<8} {:>6.1} s  {}", s.step, s.outcome.name(), s.seconds, s.detail);
    if failed {
        eprintln!("{}", line.trim_end());
    } else {
        println!("{}", line.trim_end());
    }
}

fn print_report(r: &JobReport, ctx: &Ctx, dry_run: bool) {
    let outcome = if dry_run { "dry-run" } else { r.outcome.name() };
    if ctx.json {
        let steps: Vec<_> = r
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({"step": s.step, "outcome": if dry_run { "would run" } else { s.outcome.name() }, "detail": s.detail, "seconds": s.seconds})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "type": "job", "job": r.job, "outcome": outcome, "dry_run": dry_run, "started": r.started.to_string(),
                "seconds": r.seconds, "snapshots": r.snapshots, "bytes_added": r.bytes_added,
                "snapshot_count": r.snapshot_count, "check_ok": r.check_ok,
                "rto_seconds": r.rto_seconds, "rpo_seconds": r.rpo_seconds, "steps": steps,
            })
        );
    } else if dry_run && !ctx.quiet {
        println!("[{}] would run {} steps; nothing ran (dry run)", r.job, r.steps.len());
    } else if !ctx.quiet {
        println!("[{}] {} in {:.1} s", r.job, r.outcome.name(), r.seconds);
    }
}

/// Where job locks live by default: a folder only this user can write to. Root's is
/// /run/cairn (not the world-writable /run/lock, where any user could create the lock
/// file first and so block a root job for good); another user's is its runtime folder.
fn private_lock_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let euid = rustix::process::geteuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if euid != 0 => PathBuf::from(d),
        _ if euid == 0 => PathBuf::from("/run/cairn"),
        _ => std::env::temp_dir().join(format!("cairn-{euid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(Error::io(format!("cannot create job lock folder {}", dir.display()), e))
        }
        _ => {}
    }
    let md = std::fs::symlink_metadata(&dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    if !md.is_dir() || md.uid() != euid || md.mode() & 0o022 != 0 {
        return Err(Error::invalid(format!(
            "job lock folder {} is not a folder of this user that only it can write to; remove it or set CAIRN_LOCK_DIR",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Keeps two runs of one job from overlapping: an exclusive flock on a file per job,
/// released when the process ends however it ends.
struct JobLock {
    /// Held open: closing it (at drop or exit) releases the lock.
    _file: std::fs::File,
}

impl JobLock {
    /// The lock, or None when another run of the job holds it.
    fn take(job: &str) -> Result<Option<JobLock>> {
        let dir = match std::env::var_os("CAIRN_LOCK_DIR") {
            Some(d) => PathBuf::from(d),
            None => private_lock_dir()?,
        };
        let path = dir.join(format!("cairn-job-{job}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open job lock {}", path.display()), e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(JobLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io(format!("cannot lock {}", path.display()), e.into())),
        }
    }
}
