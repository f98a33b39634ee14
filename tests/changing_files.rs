//! Files that change, shrink or vanish while a backup reads them: each is noticed by
//! comparing size, modification and change time (and the bytes read) before and after
//! the read, reported, and the snapshot is marked partial (exit 3). The rest of the tree
//! is stored and restores identically.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A tree with one large file that the test will disturb, and a few small ones that it
/// leaves alone.
fn tree(root: &Path) -> (PathBuf, PathBuf) {
    for i in 0..4u64 {
        write_random(&root.join(format!("steady/f{i}.bin")), 10 + i, 100_000);
    }
    let big = root.join("moving/big.bin");
    write_random(&big, 99, 256 << 20);
    (fs::canonicalize(root).unwrap(), fs::canonicalize(big).unwrap())
}

/// Back up `src`, doing `disturb` to `big` as soon as the backup reads it; returns the
/// finished run.
fn backup_disturbing(repo: &Repo, src: &Path, big: &Path, disturb: impl FnOnce(&Path)) -> Out {
    let child = repo.cairn().args(["backup", "--json"]).arg(src).spawn();
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(30), || has_file_open(pid, true, |t| t == big)),
        "the backup never read {}",
        big.display()
    );
    disturb(big);
    let output = child.wait_with_output().unwrap();
    Out::new("cairn backup".into(), output.status, output.stdout, output.stderr)
}

/// The run is partial, names `big` with `reason`, and the steady files restore exactly.
fn assert_partial_with(repo: &Repo, out: Out, big: &Path, reason: &str, src: &Path, work: &Path) -> Value {
    let out = out.expect_code(3);
    let warning = out.stderr.lines().find(|l| l.contains(&*big.to_string_lossy()));
    let warning = warning.unwrap_or_else(|| panic!("no warning names the file\n{}", out.context()));
    assert!(warning.starts_with("cairn: warning: ") && warning.contains(reason), "{warning}");
    let summary = out.json();
    assert_eq!(summary["partial"], true, "{summary}");
    let snaps = repo.snapshots();
    assert!(snaps.last().unwrap()["partial"] == true, "{snaps:?}");
    let target = work.join(format!("restore-{}", snaps.len()));
    repo.restore(&summary["snapshot"].as_str().unwrap()[..12], &target, &[]).ok();
    assert_same_tree(&src.join("steady"), &restored(&target, &src.join("steady")));
    summary
}

#[test]
fn a_file_written_to_while_it_is_read_is_reported_and_the_snapshot_is_partial() {
    let work = tempdir("cairn-changing-");
    let (src, big) = tree(&work.path().join("src"));
    let repo = Repo::new();
    let out = backup_disturbing(&repo, &src, &big, |p| {
        use std::io::Write;
        fs::OpenOptions::new().append(true).open(p).unwrap().write_all(b"appended").unwrap();
    });
    let summary = assert_partial_with(&repo, out, &big, "changed while it was read", &src, work.path());
    assert_eq!(summary["changed"].as_array().map(|a| a.len()), Some(1), "{summary}");
    // Stored as read: the file is in the snapshot.
    let ls = repo.cairn().args(["ls", "latest"]).arg(big.parent().unwrap()).run().ok();
    assert!(ls.stdout.contains("big.bin"), "{}", ls.context());
    // The next backup reads it again (its times differ from the stored ones) and is whole.
    let again = repo.backup(&[&src], &[]);
    assert_eq!(again["partial"], false, "{again}");
    let target = work.path().join("restore-again");
    repo.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn a_file_that_shrinks_while_it_is_read_is_reported() {
    let work = tempdir("cairn-shrinking-");
    let (src, big) = tree(&work.path().join("src"));
    let repo = Repo::new();
    let out = backup_disturbing(&repo, &src, &big, |p| {
        fs::OpenOptions::new().write(true).open(p).unwrap().set_len(4096).unwrap();
    });
    assert_partial_with(&repo, out, &big, "changed while it was read", &src, work.path());
}

#[test]
fn a_file_that_vanishes_while_it_is_read_is_left_out_and_reported() {
    let work = tempdir("cairn-vanishing-");
    let (src, big) = tree(&work.path().join("src"));
    let repo = Repo::new();
    let out = backup_disturbing(&repo, &src, &big, |p| fs::remove_file(p).unwrap());
    let summary = assert_partial_with(&repo, out, &big, "vanished while it was read", &src, work.path());
    assert_eq!(summary["errors"].as_array().map(|a| a.len()), Some(1), "{summary}");
    let ls = repo.cairn().args(["ls", "latest"]).arg(big.parent().unwrap()).run().ok();
    assert!(!ls.stdout.contains("big.bin"), "{}", ls.context());
}
