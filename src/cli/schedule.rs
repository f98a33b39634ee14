//! `cairn schedule`: run a job periodically with a systemd timer, or a crontab line; list
//! and remove the timers it wrote. The unit and cron text comes from `cairn::job::schedule`.

use super::run::{select, ConfigFile};
use super::{exit, format, Ctx};
use cairn::job::schedule::{cron_line, service_unit, timer_unit, when, ServiceOptions};
use cairn::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
#[command(about = "Run a job periodically (systemd timer or cron); list and remove timers")]
pub enum Command {
    /// Write a systemd service and timer for a job (or print a crontab line with --cron)
    #[command(after_help = "\
Two runs of a job never overlap: systemd does not start a service that is still
running, and `cairn run` itself holds a lock per job (the cron line relies on that).
The service treats exit 3 (a backup missed unreadable files) as success: the job's
report and metrics still say partial. Paths with spaces or '%' are quoted for systemd
and escaped for cron.

Examples:
  cairn schedule install apigateway --every 1h --randomized-delay 10m
  systemctl daemon-reload && systemctl enable --now cairn-apigateway.timer
  cairn schedule install apigateway --at 02:30 --on-failure notify@%n.service
  cairn schedule install apigateway --on-calendar 'Mon..Fri *-*-* 22:00'
  cairn schedule install apigateway --every 6h --cron >> /etc/cron.d/cairn")]
    Install {
        /// The job to run
        job: String,
        #[command(flatten)]
        file: ConfigFile,
        /// How often: 15m, 1h, 6h, 1d (minutes dividing an hour, hours dividing a day, or 1d)
        #[arg(long, required_unless_present_any = ["at", "on_calendar"])]
        every: Option<String>,
        /// Time of day of the (first) run, HH:MM; alone it means once a day
        #[arg(long, value_name = "HH:MM")]
        at: Option<String>,
        /// A systemd OnCalendar expression instead of --every/--at (not with --cron)
        #[arg(long, value_name = "EXPR", conflicts_with_all = ["every", "at", "cron"])]
        on_calendar: Option<String>,
        /// Start each run up to this much later, at random (spreads load over many hosts)
        #[arg(long)]
        randomized_delay: Option<String>,
        /// Also write Prometheus metrics to this textfile
        #[arg(long)]
        metrics_file: Option<PathBuf>,
        /// Stop a run that takes longer than this (systemd TimeoutStartSec)
        #[arg(long, default_value = "6h")]
        timeout: String,
        /// A unit systemd starts when the job fails, e.g. notify@%n.service (repeatable)
        #[arg(long, value_name = "UNIT")]
        on_failure: Vec<String>,
        /// Print a crontab line instead of writing systemd units
        #[arg(long)]
        cron: bool,
        /// Folder for the systemd units
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
    },
    /// List the timers cairn wrote: job, schedule and command
    #[command(after_help = "Example:\n  cairn schedule list")]
    List {
        /// Folder of the systemd units
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
    },
    /// Remove a job's timer and service
    #[command(
        after_help = "Example:\n  systemctl disable --now cairn-apigateway.timer && cairn schedule remove apigateway"
    )]
    Remove {
        /// The job whose units to remove
        job: String,
        /// Folder of the systemd units
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
    },
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Install {
            job,
            file,
            every,
            at,
            on_calendar,
            randomized_delay,
            metrics_file,
            timeout,
            on_failure,
            cron,
            unit_dir,
        } => {
            let jobs = file.load()?;
            select(&jobs, std::slice::from_ref(&job))?;
            let when = when(every.as_deref(), at.as_deref(), on_calendar.as_deref())?;
            let delay = randomized_delay
                .as_deref()
                .map(format::parse_duration)
                .transpose()
                .map_err(Error::invalid)?;
            let timeout = format::parse_duration(&timeout).map_err(Error::invalid)?;
            let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the cairn binary", e))?;
            let config =
                std::path::absolute(&file.config).map_err(|e| Error::io("cannot resolve --config", e))?;
            let mut argv: Vec<String> =
                vec![text(&exe)?, "run".into(), "--quiet".into(), "--config".into(), text(&config)?];
            if let Some(m) = &metrics_file {
                let m = std::path::absolute(m).map_err(|e| Error::io("cannot resolve --metrics-file", e))?;
                argv.extend(["--metrics-file".into(), text(&m)?]);
            }
            argv.push(job.clone());
            if cron {
                let spec = when.cron.as_deref().expect("--on-calendar conflicts with --cron");
                println!("{}", cron_line(spec, &argv, delay));
                return Ok(exit::SUCCESS);
            }
            let unit = format!("cairn-{job}");
            let service = service_unit(&job, &argv, &ServiceOptions { timeout, on_failure });
            for (name, text) in [
                (format!("{unit}.service"), service),
                (format!("{unit}.timer"), timer_unit(&job, &when, delay)),
            ] {
                let path = unit_dir.join(&name);
                std::fs::write(&path, text)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                if !ctx.quiet {
                    println!("wrote {}", path.display());
                }
            }
            if !ctx.quiet {
                println!("now run: systemctl daemon-reload && systemctl enable --now {unit}.timer");
            }
            Ok(exit::SUCCESS)
        }
        Command::List { unit_dir } => list(ctx, &unit_dir),
        Command::Remove { job, unit_dir } => {
            let timer = unit_dir.join(format!("cairn-{job}.timer"));
            if !timer.exists() {
                return Err(Error::invalid(format!(
                    "no timer {} for job {job}; `cairn schedule list` shows them",
                    timer.display()
                )));
            }
            for ext in ["timer", "service"] {
                let path = unit_dir.join(format!("cairn-{job}.{ext}"));
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io(format!("cannot remove {}", path.display()), e))
                    }
                    _ if !ctx.quiet => println!("removed {}", path.display()),
                    _ => {}
                }
            }
            if !ctx.quiet {
                println!("now run: systemctl daemon-reload (and `systemctl disable --now cairn-{job}.timer` if it was enabled)");
            }
            Ok(exit::SUCCESS)
        }
    }
}

/// A path as unit text; one that is not UTF-8 cannot be written into a unit.
fn text(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("{} is not UTF-8; a unit file cannot name it", p.display())))
}

fn list(ctx: &Ctx, unit_dir: &Path) -> Result<i32> {
    let entries = std::fs::read_dir(unit_dir)
        .map_err(|e| Error::io(format!("cannot list {}", unit_dir.display()), e))?;
    let mut rows = Vec::new();
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let Some(job) = name.strip_prefix("cairn-").and_then(|n| n.strip_suffix(".timer")) else { continue };
        let read = |f: &str| std::fs::read_to_string(unit_dir.join(f)).unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_default().to_string()
        };
        let timer = read(&name);
        let service = read(&format!("cairn-{job}.service"));
        rows.push(vec![job.to_string(), field(&timer, "OnCalendar="), field(&service, "ExecStart=")]);
    }
    if ctx.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"job": r[0], "on_calendar": r[1], "exec_start": r[2]}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if rows.is_empty() {
        if !ctx.quiet {
            println!("no cairn timers in {}", unit_dir.display());
        }
    } else {
        format::table(&["Job", "OnCalendar", "Command"], &rows);
    }
    Ok(exit::SUCCESS)
}
