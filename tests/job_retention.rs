//! A job's retention: the presets keep every run of a day (a job run many times a day
//! loses no same-day history), and each step that removes snapshots says how many and
//! which.

mod common;

use common::*;
use std::fs;
use std::path::Path;

/// The retention block of a preset, uncommented, for job `job`.
fn preset_retention(preset: &str, job: &str) -> String {
    let text = Cairn::new().args(["config", "example", "--preset", preset]).run().ok().stdout;
    let start = text.find("# [jobs.JOB.retention]").expect("the preset has a retention block");
    text[start..]
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| l.trim_start_matches("# ").replace("JOB", job) + "\n")
        .collect()
}

fn run_job(config: &Path, dir: &Path) -> Out {
    Cairn::new().args(["run", "--config"]).arg(config).env("CAIRN_LOCK_DIR", dir).run().ok()
}

#[test]
fn a_preset_run_many_times_a_day_keeps_every_run() {
    let work = tempdir("cairn-preset-retention-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    let repo = Repo::new();
    let retention = preset_retention("axway-apigateway", "gw");
    assert!(retention.contains("[jobs.gw.retention]"), "{retention}");
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n{retention}",
            repo.path.display(),
            src.display()
        ),
    )
    .unwrap();
    for run in 0..3 {
        fs::write(src.join("gateway.xml"), format!("run {run}")).unwrap();
        let out = run_job(&config, work.path());
        assert!(out.stdout.contains("removed no snapshot"), "{}", out.context());
    }
    assert_eq!(repo.snapshots().len(), 3, "the same day's runs were removed");
}

#[test]
fn a_retention_step_names_the_snapshots_it_removed() {
    let work = tempdir("cairn-retention-report-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    let repo = Repo::new();
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.gw.retention]\nkeep-last = 1\n",
            repo.path.display(),
            src.display()
        ),
    )
    .unwrap();
    run_job(&config, work.path());
    let first = repo.snapshots()[0]["id"].as_str().unwrap().to_string();
    let out = run_job(&config, work.path());
    let line = out.stdout.lines().find(|l| l.contains("retention")).unwrap_or_default();
    assert!(line.contains(&format!("removed 1 snapshot: {}", &first[..8])), "{}", out.context());
    // The activity log lists the removed id too.
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let forget =
        log["entries"].as_array().unwrap().iter().rev().find(|e| e["operation"] == "forget").cloned();
    assert_eq!(forget.unwrap()["figures"]["removed"], first.as_str());
}
