//! A repository the user can only read: every command that only reads works on it,
//! warning once that it reads without a lock (or silently with --no-lock), and the
//! repository is left exactly as it was. Two ways of being read-only: files and folders
//! without write bits, read by an unprivileged user (uid 65534 through setpriv), and a
//! read-only bind mount (EROFS even for root), which `mount` is tried on too.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WARNING: &str = "reading without a lock";

/// A work folder anyone may enter, with a source tree backed up twice (a file changed in
/// between), and a folder uid 65534 may write its outputs into.
struct Setup {
    work: TempDir,
    repo: Repo,
    src: PathBuf,
    out: PathBuf,
    first: String,
}

impl Setup {
    fn new() -> Setup {
        let work = tempdir("cairn-ro-");
        fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let src = work.path().join("src");
        fs::create_dir_all(src.join("conf")).unwrap();
        fs::write(src.join("conf/app.xml"), b"<app port=\"8080\"/>\n").unwrap();
        write_random(&src.join("lib/gateway.jar"), 3, 300_000);
        let src = fs::canonicalize(&src).unwrap();
        let repo = Repo::new();
        fs::set_permissions(repo.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let first = repo.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
        fs::write(src.join("conf/app.xml"), b"<app port=\"9090\"/>\n").unwrap();
        set_times_everywhere(&src, 4);
        repo.backup(&[&src], &[]);
        let out = work.path().join("out");
        fs::create_dir(&out).unwrap();
        std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
        Setup { work, repo, src, out, first }
    }

    /// The reading commands, as argument lists; outputs go below `out`.
    fn reads(&self, out: &Path) -> Vec<Vec<String>> {
        let s = |x: &str| x.to_string();
        let src = self.src.display().to_string();
        let app = format!("{src}/conf/app.xml");
        let target = out.join("restore").display().to_string();
        vec![
            vec![s("snapshots")],
            vec![s("ls"), s("latest")],
            vec![s("cat"), s("latest"), app.clone()],
            vec![s("find"), s("app.xml")],
            vec![s("diff"), self.first.clone(), s("latest")],
            vec![
                s("dump"),
                s("latest"),
                s("--archive"),
                s("tar"),
                s("--output"),
                out.join("gw.tar").display().to_string(),
            ],
            vec![s("restore"), s("latest"), s("--target"), target.clone(), s("--verify")],
            vec![s("check"), s("--read-data")],
            vec![s("stats")],
        ]
    }
}

/// Every file of the repository with its bytes.
fn contents(repo: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_below(repo).into_iter().map(|f| (f.clone(), fs::read(&f).unwrap())).collect()
}

fn chmod_tree(dir: &Path, writable: bool) {
    let spec = if writable { "u+w" } else { "a+rX,a-w" };
    let ok = Command::new("chmod").args(["-R", spec]).arg(dir).status().unwrap().success();
    assert!(ok, "chmod -R {spec} failed");
}

#[test]
fn every_reading_command_works_for_a_user_who_can_only_read() {
    if !require(is_root(), "dropping to uid 65534 with setpriv needs root") {
        return;
    }
    let s = Setup::new();
    chmod_tree(&s.repo.path, false);
    let before = contents(&s.repo.path);
    for args in s.reads(&s.out) {
        let out = s.repo.cairn().args(&args).run_as_nobody().run().ok();
        let warnings = out.stderr.matches(WARNING).count();
        let expected = if args[0] == "snapshots" { 0 } else { 1 };
        assert_eq!(warnings, expected, "warn once that it reads without a lock\n{}", out.context());
        if args[0] == "cat" {
            assert_eq!(out.stdout, "<app port=\"9090\"/>\n");
        }
        if args[0] == "diff" {
            assert!(out.stdout.contains("conf/app.xml"), "{}", out.context());
        }
        if args[0] == "check" {
            let log_warnings = out.stderr.matches("could not append to the activity log").count();
            assert_eq!(log_warnings, 1, "the log cannot be written: one warning\n{}", out.context());
        }
        // --no-lock: no attempt, no warning.
        let quiet = s.repo.cairn().arg("--no-lock").args(&args).run_as_nobody().run().ok();
        assert!(!quiet.stderr.contains(WARNING), "{}", quiet.context());
    }
    let opts = CompareOptions { owner: false, atime: false, root_meta: false, ..Default::default() };
    assert_trees_equal(&s.src, &restored(&s.out.join("restore"), &s.src), &opts);
    assert_eq!(contents(&s.repo.path), before, "a reading command changed the repository");
    chmod_tree(&s.repo.path, true);
}

#[test]
fn no_lock_is_refused_for_commands_that_change_the_repository() {
    let s = Setup::new();
    let out = s.repo.cairn().args(["--no-lock", "backup"]).arg(&s.src).run().expect_code(2);
    assert!(out.one_line_error().contains("--no-lock is for commands that only read"), "{}", out.context());
    assert_eq!(s.repo.snapshots().len(), 2, "no snapshot was added");
    let out = s.repo.cairn().args(["--no-lock", "forget", "--keep-last", "1"]).run().expect_code(2);
    assert!(out.one_line_error().contains("--no-lock"));
    assert_eq!(s.repo.snapshots().len(), 2, "nothing was forgotten");
}

/// A read-only bind mount of `dir`, undone when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(dir: &Path, at: &Path) -> Option<ReadOnlyMount> {
        fs::create_dir_all(at).unwrap();
        let bind = Command::new("mount").arg("--bind").arg(dir).arg(at).status();
        if !require(bind.is_ok_and(|s| s.success()), "cannot make a bind mount here") {
            return None;
        }
        let m = ReadOnlyMount(at.to_path_buf());
        let ro = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(at).status();
        require(ro.is_ok_and(|s| s.success()), "cannot remount a bind mount read-only here").then_some(m)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_bind_mount_is_read_and_mounted_without_a_lock() {
    if !require(is_root(), "bind mounts need root") {
        return;
    }
    let s = Setup::new();
    let ro_path = s.work.path().join("ro-repo");
    let Some(_ro) = ReadOnlyMount::new(&s.repo.path, &ro_path) else { return };
    let before = contents(&s.repo.path);
    let out_dir = s.work.path().join("root-out");
    fs::create_dir(&out_dir).unwrap();
    for args in s.reads(&out_dir) {
        let out = Cairn::new().repo(&ro_path).args(&args).run().ok();
        let expected = if args[0] == "snapshots" { 0 } else { 1 };
        assert_eq!(out.stderr.matches(WARNING).count(), expected, "{}", out.context());
    }
    // --verify read the files back, which sets their access times.
    let opts = CompareOptions { atime: false, ..Default::default() };
    assert_trees_equal(&s.src, &restored(&out_dir.join("restore"), &s.src), &opts);

    // `mount` of the read-only repository serves the snapshot.
    if require(Path::new("/dev/fuse").exists(), "no /dev/fuse: the mount part needs FUSE") {
        let mnt = s.work.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mut child = Cairn::new().repo(&ro_path).arg("mount").arg(&mnt).spawn();
        let app = mnt.join("latest").join(s.src.strip_prefix("/").unwrap()).join("conf/app.xml");
        let up = wait_until(Duration::from_secs(30), || app.exists());
        let read = fs::read(&app);
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let done = wait_until(Duration::from_secs(30), || child.try_wait().unwrap().is_some());
        if !done {
            let _ = Command::new("umount").arg("-l").arg(&mnt).status();
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        let out = Out::new("cairn mount".into(), output.status, output.stdout, output.stderr);
        assert!(up && done, "the mount did not serve the snapshot\n{}", out.context());
        assert_eq!(read.unwrap(), b"<app port=\"9090\"/>\n");
        assert_eq!(out.code, Some(0), "{}", out.context());
        assert_eq!(out.stderr.matches(WARNING).count(), 1, "{}", out.context());
    }
    assert_eq!(contents(&s.repo.path), before, "a reading command changed the repository");
}
