//! Drills that prove more: RPO is the gap between backups (a drill right after a backup
//! no longer reports seconds), an application check runs on the restored files, a job
//! drills its offsite copies, and the report names the repository, job, host, version
//! and time zone.

mod common;

use common::*;
use std::fs;

const XML_CHECK: &str = "for f in $(find . -name '*.xml'); do grep -q '</config>' \"$f\" || { echo \"$f does not parse\" >&2; exit 1; }; done";

#[test]
fn rpo_is_the_gap_between_backups_and_an_application_check_can_fail_the_drill() {
    let work = tempdir("cairn-drill-more-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("gateway.xml"), "<config></config>").unwrap();
    let repo = Repo::new();
    let hour_ago = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(3600)).unwrap();
    repo.backup(&[&src], &["--time", &hour_ago.to_string(), "--label", "job=gw"]);
    repo.backup(&[&src], &["--label", "job=gw"]);

    let drill =
        |extra: &[&str]| repo.cairn().args(["drill", "--json", "--label", "job=gw"]).args(extra).run();
    let v = drill(&["--check-command", XML_CHECK]).ok().json();
    let gap = v["gap_seconds"].as_i64().unwrap();
    assert!((3590..=3610).contains(&gap), "{v}");
    assert!(v["snapshot_age_seconds"].as_i64().unwrap() < 60, "{v}");
    assert!(v["rpo_seconds"].as_i64().unwrap() >= gap, "the RPO is the gap, not the newest's age: {v}");
    assert_eq!(v["repository"], repo.path.to_str().unwrap());
    assert_eq!(v["job"], "gw");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        v["time_zone"].as_str().is_some_and(|z| !z.is_empty()) && v["drill_host"].as_str().is_some(),
        "{v}"
    );
    // Right after a backup, a 30 minute RPO limit is still missed: backups are an hour apart.
    let out = drill(&["--max-rpo", "30m"]).expect_code(5);
    assert!(out.json()["limits_missed"][0].as_str().unwrap().contains("RPO"), "{}", out.context());
    // Against the job's schedule: hourly backups an hour apart are on time; half-hourly
    // ones would have missed a run.
    drill(&["--schedule-every", "1h"]).ok();
    let out = drill(&["--schedule-every", "30m"]).expect_code(5);
    let missed = out.json()["limits_missed"][0].as_str().unwrap().to_string();
    assert!(missed.contains("schedule of every 30m 00s") && missed.contains("missed"), "{missed}");

    // A restore that verifies but whose application check fails is a failed drill.
    fs::write(src.join("gateway.xml"), "<config>").unwrap();
    repo.backup(&[&src], &["--label", "job=gw"]);
    let report = work.path().join("drill.md");
    let report_arg = report.to_str().unwrap();
    let out = drill(&["--check-command", XML_CHECK, "--report", report_arg]).expect_code(4);
    let problems = out.json()["problems"].to_string();
    assert!(
        problems.contains("application check") && problems.contains("gateway.xml does not parse"),
        "{problems}"
    );
    let md = fs::read_to_string(&report).unwrap();
    for part in ["NO-GO", "| repository |", "| job | gw |", "with cairn", "time zone", "application check"] {
        assert!(md.contains(part), "{part} missing:\n{md}");
    }
}

#[test]
fn a_job_drills_its_offsite_copy_too() {
    let work = tempdir("cairn-drill-copies-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("gateway.xml"), "<config></config>").unwrap();
    let repo = Repo::new();
    let offsite = Repo::new();
    let pass = work.path().join("pass");
    fs::write(&pass, PASSWORD).unwrap();
    fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{}\"\nsources = [\"{}\"]\n[jobs.gw.drill]\ncopies = true\ncheck-command = \"{}\"\n\
             [[jobs.gw.copy]]\nrepository = \"{}\"\npassword-file = \"{}\"\n",
            repo.path.display(),
            pass.display(),
            src.display(),
            XML_CHECK.replace('\\', "\\\\").replace('"', "\\\""),
            offsite.path.display(),
            pass.display()
        ),
    )
    .unwrap();
    let out =
        Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", work.path()).run().ok();
    let line = out.stdout.lines().find(|l| l.contains(&format!("drill at {}", offsite.path.display())));
    assert!(line.is_some_and(|l| l.contains("success")), "{}", out.context());
    let log = offsite.cairn().args(["log", "--json"]).run().ok().json();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "drill" && e["outcome"] == "success"),
        "{log}"
    );
}
