//! Schedules for jobs: systemd service and timer units, and crontab lines, as text. Pure:
//! `cairn schedule` writes what these return.
//!
//! Quoting is the part that breaks silently, so each target has its own rules here:
//! systemd splits ExecStart= on whitespace, takes double quotes with C escapes, and
//! expands `%` specifiers and `$` variables (so `%` becomes `%%` and `$` becomes `$$`);
//! cron hands the command to /bin/sh but first turns every unescaped `%` into a newline
//! (so `%` becomes `\%`, which cron gives to the shell as `%`), and the shell needs single
//! quotes around anything but plain characters.

use crate::error::{Error, Result};
use crate::units::parse_duration;

/// When a job runs: a systemd OnCalendar expression and, where cron can say the same, a
/// cron schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    pub calendar: String,
    pub cron: Option<String>,
}

/// The schedule for `--every` (minutes dividing an hour, hours dividing a day, or 1d),
/// `--at HH:MM` (the time of day; alone it means daily), or a raw OnCalendar expression.
pub fn when(every: Option<&str>, at: Option<&str>, on_calendar: Option<&str>) -> Result<When> {
    if let Some(expr) = on_calendar {
        if every.is_some() || at.is_some() {
            return Err(Error::invalid("--on-calendar replaces --every and --at; give one or the other"));
        }
        if expr.is_empty() || expr.contains(['\n', '%']) {
            return Err(Error::invalid(format!("--on-calendar '{expr}' is not a calendar expression")));
        }
        return Ok(When { calendar: expr.to_string(), cron: None });
    }
    let (hour, minute) = match at {
        Some(at) => {
            let bad = || Error::invalid(format!("--at {at}: give a time of day as HH:MM, e.g. 02:30"));
            let (h, m) = at.split_once(':').ok_or_else(bad)?;
            let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            (Some(h), m)
        }
        None => (None, 0),
    };
    let every = every.unwrap_or("1d");
    let secs = parse_duration(every).map_err(Error::invalid)?;
    let bad = || {
        Error::invalid(format!(
            "--every {every}: use minutes that divide an hour (5m, 15m, 30m), hours that divide a day (1h, 6h, 12h) or 1d"
        ))
    };
    match secs {
        s if s < 3600 && s % 60 == 0 && 3600 % s == 0 => {
            if at.is_some() {
                return Err(Error::invalid("--at sets a time of day: use it with --every of hours or 1d"));
            }
            let m = s / 60;
            Ok(When { calendar: format!("*-*-* *:00/{m}:00"), cron: Some(format!("*/{m} * * * *")) })
        }
        s if s < 86400 && s % 3600 == 0 && 86400 % s == 0 => {
            let h = s / 3600;
            // The first run of the day at --at's hour, then every h hours.
            let first = hour.map_or(0, |x| u64::from(x) % h);
            Ok(When {
                calendar: format!("*-*-* {first:02}/{h}:{minute:02}:00"),
                cron: Some(format!("{minute} {first}-23/{h} * * *")),
            })
        }
        86400 => {
            let h = hour.unwrap_or(0);
            Ok(When {
                calendar: format!("*-*-* {h:02}:{minute:02}:00"),
                cron: Some(format!("{minute} {h} * * *")),
            })
        }
        _ => Err(bad()),
    }
}

/// One argument of an ExecStart= line.
pub fn systemd_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c));
    if plain {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One argument of a crontab command: shell single quotes, and `%` escaped for cron.
pub fn cron_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c));
    let quoted = if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', "'\\''")) };
    quoted.replace('%', "\\%")
}

/// What a service unit needs besides the command.
#[derive(Clone, Debug, Default)]
pub struct ServiceOptions {
    /// TimeoutStartSec=, in seconds.
    pub timeout: u64,
    /// OnFailure= units (a hook point: mail, a pager).
    pub on_failure: Vec<String>,
}

/// The service unit that runs `argv` for `job`. Exit 3 (a backup missed unreadable
/// files) counts as success for systemd: the job's own report and metrics say partial.
pub fn service_unit(job: &str, argv: &[String], opts: &ServiceOptions) -> String {
    let exec: Vec<String> = argv.iter().map(|a| systemd_quote(a)).collect();
    let mut unit = format!(
        "[Unit]\nDescription=cairn backup job {job}\nWants=network-online.target\nAfter=network-online.target\n"
    );
    for f in &opts.on_failure {
        unit.push_str(&format!("OnFailure={f}\n"));
    }
    unit.push_str(&format!(
        "\n[Service]\nType=oneshot\nExecStart={}\nSuccessExitStatus=3\nTimeoutStartSec={}\nNice=10\nIOSchedulingClass=idle\n",
        exec.join(" "),
        opts.timeout
    ));
    unit
}

/// The timer unit for `job`.
pub fn timer_unit(job: &str, when: &When, randomized_delay: Option<u64>) -> String {
    let mut timer = format!(
        "[Unit]\nDescription=Run cairn backup job {job} ({})\n\n[Timer]\nOnCalendar={}\nPersistent=true\n",
        when.calendar, when.calendar
    );
    if let Some(d) = randomized_delay {
        timer.push_str(&format!("RandomizedDelaySec={d}\n"));
    }
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    timer
}

/// A line for /etc/cron.d (with the user field).
pub fn cron_line(spec: &str, argv: &[String], randomized_delay: Option<u64>) -> String {
    let sleep = randomized_delay.map(|d| format!("sleep $(shuf -i 0-{d} -n 1) && ")).unwrap_or_default();
    let command: Vec<String> = argv.iter().map(|a| cron_quote(a)).collect();
    format!("{spec} root {sleep}{}", command.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_times_of_day_become_calendar_and_cron_specs() {
        let w = |e: Option<&str>, at: Option<&str>| when(e, at, None).unwrap();
        assert_eq!(
            w(Some("15m"), None),
            When { calendar: "*-*-* *:00/15:00".into(), cron: Some("*/15 * * * *".into()) }
        );
        assert_eq!(w(Some("6h"), None).calendar, "*-*-* 00/6:00:00");
        assert_eq!(w(Some("1d"), None).cron.unwrap(), "0 0 * * *");
        assert_eq!(
            w(None, Some("02:30")),
            When { calendar: "*-*-* 02:30:00".into(), cron: Some("30 2 * * *".into()) }
        );
        assert_eq!(
            w(Some("6h"), Some("02:30")),
            When { calendar: "*-*-* 02/6:30:00".into(), cron: Some("30 2-23/6 * * *".into()) }
        );
        assert_eq!(
            when(None, None, Some("Mon..Fri 22:00")).unwrap(),
            When { calendar: "Mon..Fri 22:00".into(), cron: None }
        );
        for (every, at) in [
            (Some("7m"), None),
            (Some("5h"), None),
            (Some("2d"), None),
            (Some("15m"), Some("02:30")),
            (None, Some("25:00")),
        ] {
            assert!(when(every, at, None).is_err(), "{every:?} {at:?}");
        }
        assert!(when(Some("1h"), None, Some("daily")).is_err());
    }

    #[test]
    fn units_keep_exit_3_a_warning_and_have_a_timeout_and_failure_hook() {
        let argv = ["/usr/bin/cairn".to_string(), "run".into()];
        let opts = ServiceOptions { timeout: 3600, on_failure: vec!["notify@%n.service".into()] };
        let unit = service_unit("gw", &argv, &opts);
        for line in [
            "SuccessExitStatus=3\n",
            "TimeoutStartSec=3600\n",
            "OnFailure=notify@%n.service\n",
            "ExecStart=/usr/bin/cairn run\n",
        ] {
            assert!(unit.contains(line), "{line}: {unit}");
        }
    }
}
