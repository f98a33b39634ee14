//! A repository shared by several hosts: a step that needs the exclusive lock waits
//! (bounded) for another host's backup instead of failing, and a job can leave pruning
//! its repository to one designated host.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

/// Another host's backup that holds a shared lock for about `secs` seconds.
fn long_backup(repo: &Repo, secs: u32) -> std::process::Child {
    let child = repo
        .cairn()
        .args(["backup", "--host", "other", "--stdin-name", "slow.sql", "--stdin-from-command"])
        .arg(format!("sleep {secs}; echo done"))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(10), || !list_objects(&repo.path, "locks").is_empty()),
        "the other backup took no lock"
    );
    child
}

#[test]
fn forget_waits_for_a_running_backup_with_lock_wait_and_fails_at_once_without() {
    let work = tempdir("cairn-lockwait-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    repo.backup(&[&src], &[]);

    let other = long_backup(&repo, 3);
    let out = repo.cairn().args(["forget", "--keep-last", "1", "--host", "nohost"]).run().expect_code(11);
    assert!(out.one_line_error().contains("locked"), "{}", out.context());

    let started = Instant::now();
    let out = repo.cairn().args(["forget", "--keep-last", "1", "--lock-wait", "30s"]).run().ok();
    assert!(started.elapsed() >= Duration::from_secs(1), "it did not wait: {}", out.context());
    assert!(other.wait_with_output().unwrap().status.success());

    // A wait that runs out says so, with the lock's holder.
    let other = long_backup(&repo, 4);
    let out = repo.cairn().args(["prune", "--lock-wait", "1s"]).run().expect_code(11);
    assert!(out.one_line_error().contains("still locked after waiting 1 s"), "{}", out.context());
    other.wait_with_output().unwrap();
}

#[test]
fn a_jobs_retention_waits_for_another_hosts_backup_or_leaves_pruning_to_another_host() {
    let work = tempdir("cairn-lockwait-job-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let repo = Repo::new();
    let config = work.path().join("cairn.toml");
    let write = |extra: &str| {
        fs::write(
            &config,
            format!(
                "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\nlock-wait = \"1m\"\n[jobs.gw.retention]\nkeep-last = 1\n{extra}",
                repo.path.display(),
                src.display()
            ),
        )
        .unwrap();
    };
    let run = || Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", work.path()).run();
    write("");
    run().ok();
    let other = long_backup(&repo, 3);
    let out = run().ok();
    assert!(out.stdout.contains("removed 1 snapshot"), "{}", out.context());
    other.wait_with_output().unwrap();

    // at-repository = false: this host never prunes the shared repository.
    write("at-repository = false\n");
    let before = repo.snapshots().len();
    let out = run().ok();
    assert!(!out.stdout.contains("retention"), "{}", out.context());
    assert_eq!(repo.snapshots().len(), before + 1);
}
