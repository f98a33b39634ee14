//! --limit-upload and --limit-download (KiB/s): a backup and a restore take at least as
//! long as their bytes need at the limit (a floor the limit sets, not a speed target),
//! restore identical, and a paced backup still stops at once when interrupted.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn uploads_and_downloads_keep_to_their_limits() {
    let repo = Repo::with_options(&["--compression", "0"]);
    let work = tempdir("cairn-limits-");
    let src = work.path().join("src");
    write_random(&src.join("a.bin"), 21, 1 << 20);
    // 1 MiB at 256 KiB/s: four seconds of the link, so at least three whatever the clock.
    let started = Instant::now();
    let b = repo.cairn().args(["--limit-upload", "256", "backup", "--json"]).arg(&src).run().ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "a 1 MiB backup at 256 KiB/s took {took:?}");
    let id = b.json_lines().into_iter().find(|v| v["type"] == "summary").unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    let target = work.path().join("restored");
    let started = Instant::now();
    repo.cairn()
        .env("CAIRN_LIMIT_DOWNLOAD", "256")
        .args(["restore", &id, "--target"])
        .arg(&target)
        .run()
        .ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "a 1 MiB restore at 256 KiB/s took {took:?}");
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn a_paced_backup_stops_at_once_when_interrupted() {
    let repo = Repo::new();
    let work = tempdir("cairn-limits-int-");
    let src = work.path().join("src");
    write_random(&src.join("a.bin"), 22, 2 << 20);
    // 2 MiB at 16 KiB/s would take two minutes.
    let child = repo.cairn().args(["--limit-upload", "16", "backup"]).arg(&src).spawn();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(5), "took {:?} to stop", stopped.elapsed());
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(repo.snapshots().is_empty(), "an interrupted backup leaves no snapshot");
}

#[test]
fn threads_sets_how_many_threads_work() {
    let repo = Repo::new();
    let work = tempdir("cairn-threads-");
    let src = work.path().join("src");
    write_random(&src.join("a.bin"), 23, 2 << 20);
    // A paced backup holds still long enough to count its threads.
    let count = |threads: &str| {
        let mut child =
            repo.cairn().args(["--threads", threads, "--limit-upload", "16", "backup"]).arg(&src).spawn();
        std::thread::sleep(Duration::from_millis(1500));
        let n = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().count();
        child.kill().unwrap();
        child.wait().unwrap();
        repo.cairn().arg("unlock").run().ok();
        n
    };
    let (one, seven) = (count("1"), count("7"));
    assert!(seven >= one + 6, "--threads 1: {one} threads, --threads 7: {seven}");
}
