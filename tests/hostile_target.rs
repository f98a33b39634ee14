//! Restoring into a target someone else can write to: a symlink or fifo planted at the
//! temporary name a restore uses, or a symlink planted where the snapshot has a folder,
//! must never be followed. Nothing outside the target changes, the restore still puts
//! the snapshot back exactly, and it says what it found in its way.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A source folder with a config file and a subfolder, backed up once.
struct Setup {
    work: TempDir,
    repo: Repo,
    src: PathBuf,
    target: PathBuf,
    /// A folder outside the target with a file in it that nothing may touch.
    outside: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let work = tempdir("cairn-hostile-");
        let src = work.path().join("src");
        fs::create_dir_all(src.join("conf/policies")).unwrap();
        fs::write(src.join("conf/app.xml"), b"<app port=\"8080\"/>\n").unwrap();
        fs::write(src.join("conf/policies/p.xml"), b"<policy/>\n").unwrap();
        let src = fs::canonicalize(&src).unwrap();
        set_times_everywhere(&src, 5);
        let repo = Repo::new();
        repo.backup(&[&src], &[]);
        let outside = work.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious.txt"), b"do not touch\n").unwrap();
        fs::set_permissions(outside.join("precious.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        set_times_everywhere(&outside, 6);
        let target = work.path().join("target");
        Setup { work, repo, src, target, outside }
    }

    /// Where a source path lands in the target.
    fn at(&self, rel: &str) -> PathBuf {
        restored(&self.target, &self.src).join(rel)
    }

    fn restore_within(&self, limit: Duration) -> Out {
        let mut child = self.repo.cairn().args(["restore", "latest", "--target"]).arg(&self.target).spawn();
        let done = wait_until(limit, || child.try_wait().unwrap().is_some());
        if !done {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let out = Out::new("cairn restore latest".into(), out.status, out.stdout, out.stderr);
        assert!(
            done,
            "restore did not finish within {limit:?} (blocked on a planted fifo?)\n{}",
            out.context()
        );
        out
    }
}

/// Everything about a folder outside the target, content included.
fn snapshot_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = scan(dir)
        .into_iter()
        .map(|(k, e)| {
            format!("{} {:?} {:o} {:?} {}", String::from_utf8_lossy(&k), e.kind, e.mode, e.mtime, e.size)
        })
        .collect();
    for f in files_below(dir) {
        v.push(format!("{}: {:?}", f.display(), fs::read(&f).unwrap()));
    }
    v
}

#[test]
fn a_symlink_at_the_temporary_name_is_not_followed() {
    let s = Setup::new();
    s.repo.restore("latest", &s.target, &[]).ok();
    // A changed file is replaced through the temporary name.
    fs::write(s.at("conf/app.xml"), b"changed by someone\n").unwrap();
    std::os::unix::fs::symlink(s.outside.join("precious.txt"), s.at("conf/.cairn-restore-app.xml")).unwrap();
    let before = snapshot_of(&s.outside);

    let out = s.restore_within(Duration::from_secs(60)).ok();
    assert_eq!(
        snapshot_of(&s.outside),
        before,
        "restore wrote through the planted symlink\n{}",
        out.context()
    );
    assert_same_tree(&s.src, &restored(&s.target, &s.src));
    assert!(
        out.stderr.contains(".cairn-restore-app.xml") && out.stderr.contains("not followed"),
        "the restore must say what it removed\n{}",
        out.context()
    );
}

#[test]
fn a_fifo_at_the_temporary_name_neither_blocks_nor_stays() {
    let s = Setup::new();
    s.repo.restore("latest", &s.target, &[]).ok();
    fs::write(s.at("conf/app.xml"), b"changed by someone\n").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.at("conf/.cairn-restore-app.xml"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    let before = snapshot_of(&s.outside);

    let out = s.restore_within(Duration::from_secs(60)).ok();
    assert_eq!(snapshot_of(&s.outside), before);
    assert_same_tree(&s.src, &restored(&s.target, &s.src));
    assert!(
        out.stderr.contains(".cairn-restore-app.xml") && out.stderr.contains("fifo"),
        "the restore must say what it removed\n{}",
        out.context()
    );
}

#[test]
fn a_symlink_in_place_of_a_folder_is_replaced_not_followed() {
    let s = Setup::new();
    fs::create_dir_all(restored(&s.target, &s.src)).unwrap();
    // The snapshot's conf/ is a symlink to the outside folder in the target.
    std::os::unix::fs::symlink(&s.outside, s.at("conf")).unwrap();
    let before = snapshot_of(&s.outside);

    let out = s.restore_within(Duration::from_secs(60)).ok();
    assert_eq!(
        snapshot_of(&s.outside),
        before,
        "restore wrote through the planted symlink\n{}",
        out.context()
    );
    assert_same_tree(&s.src, &restored(&s.target, &s.src));
    assert!(
        out.stderr.contains("symlink") && out.stderr.contains("conf") && out.stderr.contains("not followed"),
        "the restore must say what it replaced\n{}",
        out.context()
    );
    drop(s.work);
}

#[test]
fn a_symlink_in_place_of_a_folder_is_not_followed_by_an_include_restore() {
    let s = Setup::new();
    fs::create_dir_all(restored(&s.target, &s.src)).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.at("conf")).unwrap();
    let before = snapshot_of(&s.outside);
    let include = s.src.join("conf/policies");
    let out = s.repo.restore("latest", &s.target, &["--include", include.to_str().unwrap()]).ok();
    assert_eq!(
        snapshot_of(&s.outside),
        before,
        "restore wrote through the planted symlink\n{}",
        out.context()
    );
    assert_eq!(fs::read(s.at("conf/policies/p.xml")).unwrap(), b"<policy/>\n");
    assert!(fs::symlink_metadata(s.at("conf")).unwrap().is_dir());
}
