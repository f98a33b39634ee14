//! `cairn schedule`: run a job periodically with a systemd timer, or a crontab line.

use super::run::{select, ConfigFile};
use super::{exit, format, Ctx};
use cairn::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(about = "Run a job periodically (systemd timer or cron)")]
pub enum Command {
    /// Write a systemd service and timer for a job (or print a crontab line with --cron)
    #[command(after_help = "\
Two runs of a job never overlap: systemd does not start a service that is still
running, and `cairn run` itself holds a lock per job (the cron line relies on that).

Examples:
  cairn schedule install apigateway --every 1h --randomized-delay 10m
  systemctl daemon-reload && systemctl enable --now cairn-apigateway.timer
  cairn schedule install apigateway --every 6h --cron >> /etc/cron.d/cairn")]
    Install {
        /// The job to run
        job: String,
        #[command(flatten)]
        file: ConfigFile,
        /// How often: 15m, 1h, 6h, 1d (minutes dividing an hour, hours dividing a day, or 1d)
        #[arg(long)]
        every: String,
        /// Start each run up to this much later, at random (spreads load over many hosts)
        #[arg(long)]
        randomized_delay: Option<String>,
        /// Also write Prometheus metrics to this textfile
        #[arg(long)]
        metrics_file: Option<PathBuf>,
        /// Print a crontab line instead of writing systemd units
        #[arg(long)]
        cron: bool,
        /// Folder for the systemd units
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
    },
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    let Command::Install { job, file, every, randomized_delay, metrics_file, cron, unit_dir } = cmd;
    let jobs = file.load()?;
    select(&jobs, std::slice::from_ref(&job))?;
    let (calendar, cron_spec) = calendar(&every)?;
    let delay =
        randomized_delay.as_deref().map(format::parse_duration).transpose().map_err(Error::invalid)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the cairn binary", e))?;
    let config = std::path::absolute(&file.config).map_err(|e| Error::io("cannot resolve --config", e))?;
    let mut command = format!("{} run --quiet --config {}", exe.display(), config.display());
    if let Some(m) = &metrics_file {
        let m = std::path::absolute(m).map_err(|e| Error::io("cannot resolve --metrics-file", e))?;
        command.push_str(&format!(" --metrics-file {}", m.display()));
    }
    command.push_str(&format!(" {job}"));
    if cron {
        let sleep = delay.map(|d| format!("sleep $(shuf -i 0-{d} -n 1) && ")).unwrap_or_default();
        println!("{cron_spec} root {sleep}{command}");
        return Ok(exit::SUCCESS);
    }
    let unit = format!("cairn-{job}");
    let service = format!(
        "[Unit]\nDescription=cairn backup job {job}\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nType=oneshot\nExecStart={command}\nNice=10\nIOSchedulingClass=idle\n"
    );
    let mut timer = format!(
        "[Unit]\nDescription=Run cairn backup job {job} every {every}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n"
    );
    if let Some(d) = delay {
        timer.push_str(&format!("RandomizedDelaySec={d}\n"));
    }
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    for (name, text) in [(format!("{unit}.service"), service), (format!("{unit}.timer"), timer)] {
        let path = unit_dir.join(&name);
        std::fs::write(&path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        if !ctx.quiet {
            println!("wrote {}", path.display());
        }
    }
    if !ctx.quiet {
        println!("now run: systemctl daemon-reload && systemctl enable --now {unit}.timer");
    }
    Ok(exit::SUCCESS)
}

/// A systemd OnCalendar expression and a cron schedule for "every N units".
fn calendar(every: &str) -> Result<(String, String)> {
    let secs = format::parse_duration(every).map_err(Error::invalid)?;
    let bad = || {
        Error::invalid(format!(
            "--every {every}: use minutes that divide an hour (5m, 15m, 30m), hours that divide a day (1h, 6h, 12h) or 1d"
        ))
    };
    match secs {
        s if s < 3600 && s % 60 == 0 && 3600 % s == 0 => {
            let m = s / 60;
            Ok((format!("*-*-* *:00/{m}:00"), format!("*/{m} * * * *")))
        }
        s if s < 86400 && s % 3600 == 0 && 86400 % s == 0 => {
            let h = s / 3600;
            Ok((format!("*-*-* 00/{h}:00:00"), format!("0 */{h} * * *")))
        }
        86400 => Ok(("*-*-* 00:00:00".into(), "0 0 * * *".into())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn periods_become_calendar_and_cron_specs() {
        assert_eq!(super::calendar("15m").unwrap(), ("*-*-* *:00/15:00".into(), "*/15 * * * *".into()));
        assert_eq!(super::calendar("6h").unwrap(), ("*-*-* 00/6:00:00".into(), "0 */6 * * *".into()));
        assert_eq!(super::calendar("1d").unwrap().1, "0 0 * * *");
        assert!(
            super::calendar("7m").is_err()
                && super::calendar("5h").is_err()
                && super::calendar("2d").is_err()
        );
    }
}
