//! A backup killed (SIGKILL) or interrupted (SIGINT) part way leaves no snapshot and no
//! partial object under a real name; the repository opens, and the next backup reuses
//! what was stored and restores correctly.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// 60 random files of 1 MiB in 6 folders (many files, so SIGINT, which is checked
/// between entries, lands mid-walk). Returns the root and the total size.
fn random_tree(root: &Path, seed: u64) -> (PathBuf, u64) {
    let mut total = 0;
    for i in 0..60u64 {
        let n = 1 << 20;
        write_random(&root.join(format!("dir-{}/blob-{i:02}.bin", i % 6)), seed + i, n);
        total += n as u64;
    }
    (fs::canonicalize(root).unwrap(), total)
}

fn final_names(repo: &Path, kind: &str) -> Vec<String> {
    list_objects(repo, kind).into_iter().filter(|n| !n.starts_with(".tmp-")).collect()
}

/// What must hold after any interruption: no snapshot, nothing partial under a final
/// name, and the repository opens.
fn check_consistent(repo: &Repo) {
    assert!(
        final_names(&repo.path, "snapshots").is_empty(),
        "a snapshot was written by an interrupted backup"
    );
    let problems = objects_complete(&repo.path);
    assert!(problems.is_empty(), "partial objects: {problems:#?}");
    assert!(repo.snapshots().is_empty(), "snapshots listed");
}

/// Back up again, check the restore, and return the new backup's summary.
fn back_up_and_restore(repo: &Repo, src: &Path, work: &Path) -> Value {
    let b = repo.backup(&[src], &[]);
    assert_eq!(b["partial"], false, "{b}");
    let target = work.join("restore");
    repo.restore("latest", &target, &[]).ok();
    assert_same_tree(src, &restored(&target, src));
    assert_eq!(repo.snapshots().len(), 1);
    b
}

#[test]
fn sigkill_during_backup_leaves_a_usable_repository() {
    let work = tempdir("cairn-kill-");
    let (src, total) = random_tree(&work.path().join("src"), 1000);
    let repo = Repo::with_options(&["--pack-size", "1M"]);

    let mut child = repo.cairn().args(["backup", "--json"]).arg(&src).spawn();
    let start = Instant::now();
    let mut finished = false;
    wait_until(Duration::from_secs(20), || {
        if child.try_wait().unwrap().is_some() {
            finished = true;
            return true;
        }
        !final_names(&repo.path, "index").is_empty()
            || (!pack_paths(&repo.path).is_empty() && start.elapsed() >= Duration::from_millis(300))
    });
    assert!(!finished, "the backup finished before it could be killed; make the test tree larger");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let packs_after_kill = pack_paths(&repo.path).len();
    let index_after_kill = final_names(&repo.path, "index");
    eprintln!(
        "killed after {:?}: {packs_after_kill} packs, {} index files",
        start.elapsed(),
        index_after_kill.len()
    );
    assert!(packs_after_kill >= 1);

    check_consistent(&repo);

    let b = back_up_and_restore(&repo, &src, work.path());
    let added = b["bytes_added"].as_u64().unwrap();
    if !index_after_kill.is_empty() {
        // Random data does not compress: a full backup adds at least `total` bytes.
        assert!(
            added < total,
            "the packs indexed before the kill were stored again: added {added} of {total}"
        );
    }
}

#[test]
fn sigint_during_backup_exits_130_and_keeps_what_was_stored() {
    let work = tempdir("cairn-int-");
    let (src, total) = random_tree(&work.path().join("src"), 2000);
    let repo = Repo::with_options(&["--pack-size", "1M"]);

    let child = repo.cairn().args(["backup", "--json"]).arg(&src).spawn();
    let mut child = child;
    let finished = !wait_until(Duration::from_secs(20), || {
        !pack_paths(&repo.path).is_empty() || child.try_wait().unwrap().is_some()
    }) || child.try_wait().unwrap().is_some();
    assert!(!finished, "the backup finished before it could be interrupted; make the test tree larger");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = Out::new("cairn backup (SIGINT)".into(), output.status, output.stdout, output.stderr)
        .expect_code(130);
    let line = out.one_line_error();
    assert!(line.contains("interrupted"), "{line}");
    assert!(out.stdout.is_empty(), "{}", out.context());

    check_consistent(&repo);
    let temps: Vec<String> = ["data", "index", "snapshots"]
        .iter()
        .flat_map(|k| list_objects(&repo.path, k))
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "a clean interrupt leaves no temporary files: {temps:?}");
    assert!(
        !final_names(&repo.path, "index").is_empty(),
        "what was stored before the interrupt must be indexed"
    );

    let b = back_up_and_restore(&repo, &src, work.path());
    let added = b["bytes_added"].as_u64().unwrap();
    // Random data does not compress: a full backup adds at least `total` bytes.
    assert!(added < total, "the data stored before the interrupt was stored again: added {added} of {total}");
}
