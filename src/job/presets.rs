//! Commented example job files, one per kind of installation (`cairn config example
//! --preset NAME`). Each is a valid job file as printed; tests parse every one.

/// Preset names and what each is for.
pub const PRESETS: &[(&str, &str)] = &[
    ("axway-apigateway", "Axway API Gateway: conf, groups, ext, nodemanager.xml (daily use)"),
    ("axway-apigateway-full", "Axway API Gateway, whole installation (before a service pack)"),
    ("axway-analytics", "Axway API Gateway Analytics: conf, ext"),
    ("kong", "Kong: declarative configuration exported by a command, plus kong.conf"),
    ("files", "any tree of files"),
];

/// The example for `preset`, or None for an unknown name.
pub fn example(preset: &str) -> Option<String> {
    let body = match preset {
        "axway-apigateway" => gateway(false),
        "axway-apigateway-full" => gateway(true),
        "axway-analytics" => ANALYTICS.to_string(),
        "kong" => KONG.to_string(),
        "files" => FILES.to_string(),
        _ => return None,
    };
    Some(format!("{HEADER}{body}{COMMON}"))
}

const HEADER: &str = "\
# cairn job file. Run with: cairn run --config THIS_FILE [JOB...]
# Check it with: cairn config check --config THIS_FILE
# Paths below are the usual defaults; change them to your installation.
";

fn gateway(full: bool) -> String {
    let (job, extra, comment) = if full {
        (
            "apigateway-full",
            "\n  \"/opt/Axway/apigateway/samples\", \"/opt/Axway/apigateway/skel\", \"/opt/Axway/apigateway/system\",\
             \n  \"/opt/Axway/apigateway/platform\", \"/opt/Axway/apigateway/tools\", \"/opt/Axway/apigateway/upgrade\",\
             \n  \"/opt/Axway/apigateway/webapps\",",
            "# The whole installation: run this job by hand before applying a service pack.\n",
        )
    } else {
        ("apigateway", "", "# Configuration only: small and quick, run it many times a day.\n")
    };
    format!(
        r#"
{comment}[jobs.{job}]
repository = "/var/backups/cairn/apigateway"
password-file = "/etc/cairn/apigateway.pass"
sources = [
  "/opt/Axway/apigateway/conf",
  "/opt/Axway/apigateway/groups",
  "/opt/Axway/apigateway/ext",
  "/opt/Axway/apigateway/system/conf/nodemanager.xml",{extra}
]
# Service scripts, when the gateway runs as a service.
optional-sources = ["/etc/init.d/vshell-*"]
# The OPS database is large, rebuilt by the gateway, and not configuration.
excludes = ["/opt/Axway/apigateway/conf/opsdb.d"]
tags = ["apigateway"]
labels = {{ application = "apigateway", environment = "prod", owner = "platform" }}
snapshot-name = "{{application}}-{{environment}}-{{time:%Y%m%d-%H%M%S}}-{{kind}}"

# The API Manager or KPS database, streamed into the repository (no temporary file).
# [[jobs.{job}.dumps]]
# name = "apimanager.sql"
# command = "mysqldump --single-transaction --routines apimanager"
"#
    )
}

const ANALYTICS: &str = r#"
[jobs.analytics]
repository = "/var/backups/cairn/analytics"
password-file = "/etc/cairn/analytics.pass"
sources = ["/opt/Axway/analytics/conf", "/opt/Axway/analytics/ext"]
tags = ["analytics"]
labels = { application = "analytics", environment = "prod" }
snapshot-name = "{application}-{environment}-{time:%Y%m%d-%H%M%S}-{kind}"

# The metrics database the reports read.
# [[jobs.analytics.dumps]]
# name = "metrics.sql"
# command = "mysqldump --single-transaction reports"
"#;

const KONG: &str = r#"
[jobs.kong]
repository = "/var/backups/cairn/kong"
password-file = "/etc/cairn/kong.pass"
sources = ["/etc/kong/kong.conf"]
tags = ["kong"]
labels = { application = "kong", environment = "prod" }
snapshot-name = "{application}-{environment}-{time:%Y%m%d-%H%M%S}-{kind}"

# The declarative configuration, exported from the database the nodes share.
[[jobs.kong.dumps]]
name = "kong.yaml"
command = "kong config db_export /dev/stdout"

# Or the database itself:
# [[jobs.kong.dumps]]
# name = "kong.sql"
# command = "pg_dump --clean kong"
"#;

const FILES: &str = r#"
[jobs.files]
repository = "/var/backups/cairn/files"
password-file = "/etc/cairn/files.pass"
sources = ["/etc", "/srv"]
excludes = ["*.tmp", "/srv/cache"]
exclude-caches = true
one-file-system = true
tags = ["files"]
"#;

/// The steps every preset shares, appended to each (the job is the last one defined).
const COMMON: &str = r#"
# The optional steps below run in this order after the backup. To use one, uncomment it
# and put the job's name in place of JOB.

# Shell commands before the backup, after every step succeeded, and when a step failed.
# [jobs.JOB.hooks]
# before = ["test -d /opt/Axway"]
# on-error = ["logger -t cairn 'backup job failed'"]

# Keep every run of the last 2 days (a job run many times a day keeps its same-day
# history), then 7 daily, 4 weekly and 12 monthly snapshots; delete the rest and their
# data. Each run prints how many snapshots it removed, and which.
# [jobs.JOB.retention]
# keep-within = "2d"
# keep-daily = 7
# keep-weekly = 4
# keep-monthly = 12
# prune = true

# Check the structure every run, read a seventh of the data each day (all of it every
# week), and everything at least every 30 days.
# [jobs.JOB.check]
# read-data-parts = 7
# full-read-every-days = 30

# Prove the newest snapshot restores within 15 minutes and is at most 4 hours old.
# [jobs.JOB.drill]
# max-rto = "15m"
# max-rpo = "4h"

# Offsite copies (3-2-1): any repository location, each with its own key. The job's
# retention runs there too; set `retention` to false in a target when another host
# prunes the copy or its key may not delete.
# [[jobs.JOB.copy]]
# repository = "sftp:backup@offsite/srv/cairn/gw"
# password-file = "/etc/cairn/offsite.pass"

# Ping a monitor (healthchecks-style) on start, success and failure.
# [jobs.JOB.monitoring]
# ping-start = "https://hc-ping.com/UUID/start"
# ping-success = "https://hc-ping.com/UUID"
# ping-failure = "https://hc-ping.com/UUID/fail"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_job_file() {
        for (name, _) in PRESETS {
            let text = example(name).unwrap();
            let file = crate::job::config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(file.jobs.len(), 1, "{name}");
            // Uncommenting the shared steps (with the job's name) keeps the file valid.
            let job = &file.jobs[0].name;
            let enabled = text
                .lines()
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest.replace("JOB", job),
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let file =
                crate::job::config::parse(&enabled).unwrap_or_else(|e| panic!("{name} enabled: {e:?}"));
            let j = &file.jobs[0];
            assert!(j.retention.is_some() && j.check.is_some() && j.drill.is_some(), "{name}");
            assert!(!j.copies.is_empty() && j.monitoring.ping_success.is_some(), "{name}");
        }
        assert!(example("nginx").is_none());
    }
}
