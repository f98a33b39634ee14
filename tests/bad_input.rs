//! Wrong passwords, wrong paths, unreadable sources, full disks, missing passwords: each
//! gets its documented exit code and a one-line "cairn: ..." message, and none of them
//! damages the repository.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn small_source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("conf")).unwrap();
    fs::write(src.join("conf/a.xml"), b"<a/>\n").unwrap();
    fs::write(src.join("conf/b.json"), b"{\"b\": 2}\n").unwrap();
    fs::write(src.join("readme.txt"), b"gateway").unwrap();
    fs::canonicalize(&src).unwrap()
}

#[test]
fn wrong_password_exits_12_with_one_line() {
    let repo = Repo::new();
    for cmd in [&["snapshots"][..], &["restore", "latest", "--target", "/nonexistent/t"]] {
        let out = repo.cairn().password("not the password").args(cmd).run().expect_code(12);
        let line = out.one_line_error();
        assert!(line.contains("password"), "{line}");
        assert!(out.stdout.is_empty(), "{}", out.context());
    }
    // The same through a password file, and the right password through a file works.
    let dir = tempdir("cairn-pw-");
    let wrong = dir.path().join("wrong");
    fs::write(&wrong, "nope\n").unwrap();
    let right = dir.path().join("right");
    fs::write(&right, format!("{PASSWORD}\n")).unwrap();
    // Private, as password files should be (one every user can read gets a warning).
    for f in [&wrong, &right] {
        fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    repo.cairn()
        .env_remove("CAIRN_PASSWORD")
        .arg("--password-file")
        .arg(&wrong)
        .arg("snapshots")
        .run()
        .expect_code(12)
        .one_line_error();
    repo.cairn().env_remove("CAIRN_PASSWORD").env("CAIRN_PASSWORD_FILE", &right).arg("snapshots").run().ok();
    // A wrong password writes nothing.
    let src = small_source(dir.path());
    repo.cairn().password("not the password").arg("backup").arg(&src).run().expect_code(12);
    assert!(repo.snapshots().is_empty());
    assert!(repo.pack_paths().is_empty(), "packs written with a wrong password");
}

#[test]
fn not_a_repository_exits_10() {
    let dir = tempdir("cairn-norepo-");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"not a repository").unwrap();
    for location in [dir.path().join("missing"), empty, other] {
        for cmd in [&["snapshots"][..], &["restore", "latest", "--target", "/nonexistent/t"]] {
            let out = Cairn::new().repo(&location).args(cmd).run().expect_code(10);
            let line = out.one_line_error();
            assert!(line.contains("not a cairn repository"), "{line}");
            assert!(line.contains(location.to_str().unwrap()), "{line}");
        }
    }
    // CAIRN_REPOSITORY is honoured too.
    let out = Cairn::new()
        .env("CAIRN_REPOSITORY", dir.path().join("missing"))
        .arg("snapshots")
        .run()
        .expect_code(10);
    out.one_line_error();
    // No repository at all: bad arguments.
    let out = Cairn::new().arg("snapshots").run().expect_code(2);
    assert!(out.one_line_error().contains("--repo"), "{}", out.context());
}

#[test]
fn init_on_an_existing_repository_refuses_and_leaves_it_intact() {
    let repo = Repo::new();
    let dir = tempdir("cairn-reinit-");
    let src = small_source(dir.path());
    repo.backup(&[&src], &[]);
    let config_before = fs::read(repo.path.join("config")).unwrap();
    let keys_before = list_objects(&repo.path, "keys");

    let out = repo.cairn().password("another password").arg("init").args(FAST_KDF).run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    let line = out.one_line_error();
    assert!(
        line.contains("already") || line.contains("exists"),
        "message should say a repository exists: {line}"
    );

    assert_eq!(fs::read(repo.path.join("config")).unwrap(), config_before);
    assert_eq!(list_objects(&repo.path, "keys"), keys_before, "a key was added");
    assert_eq!(repo.snapshots().len(), 1, "the repository still opens");
    repo.cairn().password("another password").arg("snapshots").run().expect_code(12);
    let target = dir.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &restored(&target, &src));

    // A non-empty folder that is not a repository is refused as well.
    let busy = dir.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("keep.txt"), b"mine").unwrap();
    let out = Cairn::new().repo(&busy).arg("init").args(FAST_KDF).run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    out.one_line_error();
    assert_eq!(fs::read(busy.join("keep.txt")).unwrap(), b"mine");
    assert!(!busy.join("config").exists());
}

#[test]
fn missing_source_path_writes_no_snapshot() {
    let repo = Repo::new();
    let dir = tempdir("cairn-nosrc-");
    let src = small_source(dir.path());
    let missing = dir.path().join("no-such-folder");
    for paths in [vec![missing.clone()], vec![src.clone(), missing.clone()]] {
        let out = repo.cairn().arg("backup").args(&paths).run();
        assert_ne!(out.code, Some(0), "{}", out.context());
        assert_ne!(out.code, Some(3), "a missing source is not a partial backup");
        let line = out.one_line_error();
        assert!(line.contains("no-such-folder"), "{line}");
        assert!(repo.snapshots().is_empty(), "a snapshot was written");
    }
    // No paths at all is bad input.
    repo.cairn().arg("backup").run().expect_code(2);
    assert!(repo.snapshots().is_empty());
}

/// Whether a chmod 000 file is unreadable to the current user (not so for root or with
/// CAP_DAC_OVERRIDE).
fn chmod_denies_reading(dir: &Path) -> bool {
    let p = dir.join("probe");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    let denied = fs::File::open(&p).is_err();
    fs::remove_file(&p).unwrap();
    denied
}

struct Unlock(PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn unreadable_file_makes_a_partial_snapshot_with_exit_3() {
    let dir = tempdir("cairn-unread-");
    let root = is_root();
    if root {
        // cairn runs as nobody below: it must reach the sources and own the repository.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let src = small_source(dir.path());
    fs::write(src.join("conf/secret.key"), b"top secret").unwrap();
    fs::create_dir(src.join("locked")).unwrap();
    // Even if the test fails, open the folder again so the temporary folder can be removed.
    let _unlock = Unlock(src.join("locked"));
    fs::write(src.join("locked/inside.txt"), b"hidden").unwrap();

    let repo_path = dir.path().join("repo");
    let as_user = |c: Cairn| if root { c.run_as_nobody() } else { c };
    if root {
        fs::create_dir(&repo_path).unwrap();
        std::os::unix::fs::chown(&repo_path, Some(65534), Some(65534)).unwrap();
    }
    as_user(Cairn::new().repo(&repo_path).arg("init").args(FAST_KDF)).run().ok();

    let (sources, expected_errors, ignore): (Vec<PathBuf>, usize, Vec<PathBuf>) =
        if root || chmod_denies_reading(dir.path()) {
            fs::set_permissions(src.join("conf/secret.key"), fs::Permissions::from_mode(0o000)).unwrap();
            fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
            (vec![src.clone()], 2, vec!["conf/secret.key".into(), "locked".into()])
        } else {
            // Permissions stop nobody here; a file whose read fails does the same job:
            // /proc/self/mem has no mapping at offset 0, so reading it fails with EIO.
            eprintln!("note: chmod 000 does not stop reads here; using /proc/self/mem");
            (vec![src.clone(), "/proc/self/mem".into()], 1, vec![])
        };

    let out =
        as_user(Cairn::new().repo(&repo_path).args(["backup", "--json"])).args(&sources).run().expect_code(3);
    let b = out.json();
    assert_eq!(b["partial"], true, "{b}");
    let errors = b["errors"].as_array().unwrap();
    assert_eq!(errors.len(), expected_errors, "{b}");
    let warnings: Vec<&str> =
        out.stderr.lines().filter(|l| l.starts_with("cairn: warning: not backed up:")).collect();
    assert_eq!(warnings.len(), expected_errors, "{}", out.context());
    if expected_errors == 2 {
        assert!(out.stderr.contains("secret.key"), "{}", out.context());
        assert!(out.stderr.contains("locked"), "{}", out.context());
    }
    assert_eq!(b["files"], 3, "the readable files are backed up: {b}");

    let snaps = as_user(Cairn::new().repo(&repo_path).args(["snapshots", "--json"])).run().ok().json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["partial"], true, "{}", snaps[0]);
    assert_eq!(snaps[0]["summary"]["errors"], expected_errors as u64);
    let text = as_user(Cairn::new().repo(&repo_path).arg("snapshots")).run().ok();
    assert!(text.stdout.contains("(partial)"), "{}", text.context());

    // Everything readable is restored exactly; the unreadable entries are absent.
    let target = dir.path().join("restore");
    Cairn::new().repo(&repo_path).args(["restore", "latest", "--target"]).arg(&target).run().ok();
    let back = restored(&target, &src);
    assert!(!back.join("conf/secret.key").exists());
    assert!(!back.join("locked").exists());
    assert_trees_equal(
        &src,
        &back,
        &CompareOptions {
            ignore,
            // Listing src/ and conf/ for the comparison is fine, but as nobody the backup
            // could not set O_NOATIME: regular files' atimes may have moved.
            atime: !root,
            // Folders lost entries in the snapshot, so their times were restored but not
            // their listing: compare everything but the skipped entries.
            ..Default::default()
        },
    );
}

/// A small tmpfs mounted for the life of the value (root only).
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempdir("cairn-tmpfs-");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs failed: {st}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

fn disk_full(init_extra: &[&str]) {
    if !require(is_root(), "the disk-full test mounts a small tmpfs, which needs root") {
        return;
    }
    let fs_ = Tmpfs::mount("2m");
    let repo_path = fs_.path().to_path_buf();
    Cairn::new().repo(&repo_path).arg("init").args(FAST_KDF).args(init_extra).run().ok();
    let dir = tempdir("cairn-full-src-");
    let big = dir.path().join("big");
    for i in 0..4 {
        write_random(&big.join(format!("blob-{i}.bin")), 40 + i, 2 << 20);
    }

    let out = Cairn::new().repo(&repo_path).arg("backup").arg(&big).run().expect_code(13);
    let line = out.one_line_error();
    assert!(line.contains("space"), "message should mention space: {line}");

    // The repository still opens, shows no snapshot, holds no partial object.
    let snaps = Cairn::new().repo(&repo_path).args(["snapshots", "--json"]).run().ok().json();
    assert_eq!(snaps, serde_json::json!([]));
    let problems = objects_complete(&repo_path);
    assert!(problems.is_empty(), "{problems:#?}");
    let temps: Vec<String> = ["data", "index", "snapshots"]
        .iter()
        .flat_map(|k| list_objects(&repo_path, k))
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temporary files left on the full disk: {temps:?}");

    // A small backup then succeeds and restores.
    let small = small_source(dir.path());
    let b = Cairn::new().repo(&repo_path).args(["backup", "--json"]).arg(&small).run().ok().json();
    assert_eq!(b["partial"], false);
    let snaps = Cairn::new().repo(&repo_path).args(["snapshots", "--json"]).run().ok().json();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let target = dir.path().join("restore");
    Cairn::new().repo(&repo_path).args(["restore", "latest", "--target"]).arg(&target).run().ok();
    assert_same_tree(&small, &restored(&target, &small));
}

#[test]
fn disk_full_at_the_final_pack_exits_13_and_repository_stays_usable() {
    // Default 16M packs: the one pack is written at the end and does not fit.
    disk_full(&[]);
}

#[test]
fn disk_full_while_packs_are_written_exits_13_and_repository_stays_usable() {
    // 1M packs: the disk fills up in the middle of the walk.
    disk_full(&["--pack-size", "1M"]);
}

/// Renewing the content keys stores everything a second time before the old data goes:
/// on a disk without that much room it refuses before it changes anything (exit 13), and
/// the repository and its keys are as they were.
#[test]
fn a_content_key_rotation_without_room_for_a_second_copy_is_refused_before_it_starts() {
    if !require(is_root(), "the content-rotation room test mounts a small tmpfs, which needs root") {
        return;
    }
    let fs_ = Tmpfs::mount("12m");
    let repo_path = fs_.path().join("repo");
    Cairn::new().repo(&repo_path).arg("init").args(FAST_KDF).run().ok();
    let dir = tempdir("cairn-room-src-");
    write_random(&dir.path().join("data.bin"), 7, 7 << 20);
    Cairn::new().repo(&repo_path).arg("backup").arg(dir.path()).run().ok();
    let before = Cairn::new().repo(&repo_path).args(["snapshots", "--json"]).run().ok().json();
    let keys_before = list_objects(&repo_path, "keys");
    let out = Cairn::new().repo(&repo_path).args(["key", "rotate", "--content-keys"]).run().expect_code(13);
    assert!(out.one_line_error().contains("make room"), "{}", out.context());
    assert_eq!(Cairn::new().repo(&repo_path).args(["snapshots", "--json"]).run().ok().json(), before);
    assert_eq!(list_objects(&repo_path, "keys"), keys_before, "a key file changed");
    Cairn::new().repo(&repo_path).args(["check", "--read-data"]).run().ok();
    let target = tempdir("cairn-room-restore-");
    Cairn::new().repo(&repo_path).args(["restore", "latest", "--target"]).arg(target.path()).run().ok();
    assert_same_tree(dir.path(), &restored(target.path(), dir.path()));
}

#[test]
fn restore_to_a_full_disk_exits_13_and_leaves_no_temporary_file() {
    if !require(is_root(), "the restore-to-full-disk test mounts a tmpfs, which needs root") {
        return;
    }
    let repo = Repo::new();
    let dir = tempdir("cairn-fullrestore-");
    let src = dir.path().join("src");
    write_random(&src.join("big.bin"), 77, 6 << 20);
    fs::write(src.join("small.txt"), b"fits").unwrap();
    let src = fs::canonicalize(&src).unwrap();
    repo.backup(&[&src], &[]);
    let fs_ = Tmpfs::mount("2m");
    let out = repo.restore("latest", fs_.path(), &[]).expect_code(13);
    assert!(out.one_line_error().contains("space"), "{}", out.context());
    let leftovers: Vec<String> = scan(fs_.path())
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| k.contains(".cairn-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
    assert!(
        !restored(fs_.path(), &src).join("big.bin").exists(),
        "a file that did not fit must not appear restored"
    );
}

#[test]
fn missing_password_without_terminal_exits_2_naming_cairn_password() {
    let repo = Repo::new();
    let out =
        repo.cairn().env_remove("CAIRN_PASSWORD").without_terminal().arg("snapshots").run().expect_code(2);
    let line = out.one_line_error();
    assert!(line.contains("CAIRN_PASSWORD"), "{line}");

    // init without a password creates nothing.
    let dir = tempdir("cairn-nopw-");
    let fresh = dir.path().join("repo");
    Cairn::new()
        .repo(&fresh)
        .env_remove("CAIRN_PASSWORD")
        .without_terminal()
        .arg("init")
        .args(FAST_KDF)
        .run()
        .expect_code(2)
        .one_line_error();
    assert!(!fresh.join("config").exists());

    // A password file that cannot be read is bad input too.
    let out = repo
        .cairn()
        .env_remove("CAIRN_PASSWORD")
        .arg("--password-file")
        .arg(dir.path().join("no-such-file"))
        .arg("snapshots")
        .run()
        .expect_code(2);
    assert!(out.one_line_error().contains("no-such-file"), "{}", out.context());
}

#[test]
fn empty_repository_lists_no_snapshots() {
    let repo = Repo::new();
    let out = repo.cairn().args(["snapshots", "--json"]).run().ok();
    assert_eq!(out.json(), serde_json::json!([]));
    let text = repo.cairn().arg("snapshots").run().ok();
    assert!(text.stdout.contains("0 snapshots"), "{}", text.context());
    // `latest` of nothing is an error, not an empty restore.
    let dir = tempdir("cairn-empty-");
    let target = dir.path().join("t");
    let out = repo.restore("latest", &target, &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    assert!(out.one_line_error().contains("no snapshots"), "{}", out.context());
}

#[test]
fn restore_of_unknown_snapshot_fails_and_creates_nothing() {
    let repo = Repo::new();
    let dir = tempdir("cairn-unknown-");
    let src = small_source(dir.path());
    let b = repo.backup(&[&src], &[]);
    let id = b["snapshot"].as_str().unwrap();
    // A prefix that differs from the only id in its first digit.
    let other = if id.starts_with('0') { "1234abcd" } else { "0123abcd" };
    let target = dir.path().join("t");
    let out = repo.restore(other, &target, &[]);
    assert_eq!(out.code, Some(1), "{}", out.context());
    let line = out.one_line_error();
    assert!(line.contains(other), "{line}");
    assert!(!target.exists(), "the target was created for a failed restore");
    // Too long to be an id prefix.
    let out = repo.restore(&format!("{id}00"), &target, &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    out.one_line_error();
    assert!(!target.exists());
}

#[test]

fn include_of_a_path_not_in_the_snapshot_is_reported() {
    let repo = Repo::new();
    let dir = tempdir("cairn-badinc-");
    let src = small_source(dir.path());
    repo.backup(&[&src], &[]);
    let typo = src.join("conff");
    let out = repo.restore("latest", &dir.path().join("t"), &["--include", typo.to_str().unwrap()]);
    assert!(
        out.code != Some(0) || out.stderr.contains("conff"),
        "a typo in --include restores nothing and reports success\n{}",
        out.context()
    );
}
