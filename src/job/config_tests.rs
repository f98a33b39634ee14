//! Tests of job file parsing (kept apart so config.rs stays readable).

use super::*;

const GOOD: &str = r#"
[jobs.gateway]
repository = "/backups/gw"
password-file = "/etc/cairn/pass"
limit-upload = 2048
threads = 2
sources = ["/opt/gw/conf", "/opt/gw/groups"]
optional-sources = ["/etc/init.d/vshell-*"]
excludes = ["/opt/gw/conf/opsdb.d"]
tags = ["prod"]
labels = { environment = "prod", application = "apigw" }
snapshot-name = "{application}-{environment}-{time:%Y%m%d-%H%M}-{kind}"

[[jobs.gateway.dumps]]
name = "gwdb.sql"
command = "mysqldump gwdb"

[jobs.gateway.hooks]
before = ["true"]
on-error = ["logger cairn failed"]

[jobs.gateway.retention]
keep-daily = 7
keep-monthly = 12

[jobs.gateway.check]
read-data-parts = 7
full-read-every-days = 30

[jobs.gateway.drill]
max-rto = "15m"
max-rpo = "4h"

[[jobs.gateway.copy]]
repository = "sftp:backup@offsite/srv/cairn"
password-file = "/etc/cairn/offsite.pass"

[[jobs.gateway.copy]]
repository = "s3:https://vault.example/gw"
key-file = "/etc/cairn/vault.key"
retention = false

[jobs.gateway.monitoring]
ping-success = "https://hc.example/ping/abc"
ping-timeout = "5s"
"#;

#[test]
fn a_complete_job_parses() {
    let f = parse(GOOD).unwrap();
    let j = &f.jobs[0];
    assert_eq!(j.name, "gateway");
    assert_eq!(j.sources.len(), 2);
    assert_eq!(j.labels[0], ("application".into(), "apigw".into()));
    assert_eq!(j.dumps, vec![Dump { name: "gwdb.sql".into(), command: "mysqldump gwdb".into() }]);
    let r = j.retention.as_ref().unwrap();
    assert_eq!(r.keep, vec![("keep-daily".into(), 7), ("keep-monthly".into(), 12)]);
    assert!(r.prune);
    assert_eq!(j.check.as_ref().unwrap().read_data_parts, Some(7));
    assert_eq!(j.copies[0].repository, "sftp:backup@offsite/srv/cairn");
    assert_eq!((j.copies[0].retention, j.copies[1].retention), (true, false));
    assert_eq!(j.monitoring.ping_timeout, 5);
    assert_eq!((j.limit_upload, j.limit_download), (Some(2048), None));
    // Every cairn step of the job keeps to the limit.
    let (steps, _) = crate::job::steps::data_steps(std::path::Path::new("cairn"), j, jiff::Timestamp::now());
    let env = |var: &str| {
        steps[0].command.get_envs().find(|(k, _)| *k == var).and_then(|(_, v)| v).map(|v| v.to_owned())
    };
    assert_eq!(env("CAIRN_LIMIT_UPLOAD"), Some("2048".into()));
    assert_eq!(env("CAIRN_THREADS"), Some("2".into()));
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let bad = "\
[jobs.gw]
repository = \"/b\"
sources = \"/opt/gw\"
exclude-caches = \"yes\"
snapshot-name = \"{team}-{time}\"

[jobs.gw.retention]
keep-dayly = 7
keep-weekly = 0

[jobs.gw.drill]
max-rto = \"soon\"

[jobs.other]
sources = [\"/x\"]
";
    let errors = parse(bad).unwrap_err();
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines, [3, 4, 5, 8, 9, 12, 14], "{text:#?}");
    assert!(text[0].contains("sources must be a list of strings"), "{text:#?}");
    assert!(text[2].contains("unknown placeholder {team}"), "{text:#?}");
    assert!(text[3].contains("unknown key `keep-dayly`") && text[3].contains("keep-daily"), "{text:#?}");
    assert!(text[6].contains("no `repository`"), "{text:#?}");
}

#[test]
fn syntax_errors_and_empty_files_are_reported() {
    let errors = parse("[jobs.a]\nrepository = \nsources = [\"/x\"]\n").unwrap_err();
    assert_eq!(errors[0].line, 2, "{errors:?}");
    assert!(errors[0].message.contains("quoted"), "{errors:?}");
    assert!(parse("").unwrap_err()[0].message.contains("no jobs"));
    assert!(parse("[paths]\n").unwrap_err()[0].message.contains("unknown key `paths`"));
}

#[test]
fn what_would_fail_at_run_time_is_a_mistake_now() {
    let text = "\
[jobs.gw]
repository = \"backups/gw\"
password-file = \"gw.pass\"
sources = [\"/opt/*/conf\", \"conf\"]

[jobs.gw.retention]
keep-within = \"thirty days\"

[[jobs.gw.copy]]
repository = \"/offsite/gw\"
";
    let errors = parse(text).unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 4, 7, 9], "{text:#?}");
    assert!(text[0].contains("repository \"backups/gw\" is relative"), "{text:#?}");
    assert!(text[1].contains("password-file \"gw.pass\" is relative"), "{text:#?}");
    assert!(text[2].contains("glob before its last part"), "{text:#?}");
    assert!(text[3].contains("source \"conf\" is relative"), "{text:#?}");
    assert!(text[4].contains("keep-within") && text[4].contains("30d"), "{text:#?}");
    assert!(text[5].contains("copy target /offsite/gw needs its own password-file"), "{text:#?}");
}
