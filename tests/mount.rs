//! `cairn mount` through a real FUSE mount: the folders above the snapshots, the stored
//! tree with its metadata and content, read-only refusals, the repository lock, and
//! unmounting on SIGINT/SIGTERM (exit code 0: unmounting is how a mount ends).
//!
//! Where FUSE is not available (no /dev/fuse, or mounting is not permitted) each test
//! prints why and passes without checking anything else, except under
//! CAIRN_TEST_STRICT=1 (CI), where it fails.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const EROFS: i32 = 30;

/// Whether `dir` is a mount point now (from this process's mount table).
fn is_mountpoint(dir: &Path) -> bool {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let table = fs::read_to_string("/proc/self/mountinfo").expect("read the mount table");
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m.replace("\\040", " ") == dir.to_string_lossy())
}

/// Unmount `dir` whatever state the mount is in (lazily, so a busy one goes too).
fn force_unmount(dir: &Path) {
    for cmd in [&["fusermount3", "-u", "-z"][..], &["fusermount", "-u", "-z"], &["umount", "-l"]] {
        if !is_mountpoint(dir) {
            return;
        }
        let _ = std::process::Command::new(cmd[0]).args(&cmd[1..]).arg(dir).output();
    }
}

/// A running `cairn mount`; dropping it unmounts and stops it even when a test fails.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mount {
    /// Mount `repo` at a new folder under `work`; None (after saying why) where FUSE
    /// cannot mount here.
    fn start(repo: &Repo, work: &Path) -> Option<Mount> {
        Mount::start_with(repo, work, &[])
    }

    /// As `start`, with more options for `cairn mount` (a snapshot filter).
    fn start_with(repo: &Repo, work: &Path, extra: &[&str]) -> Option<Mount> {
        if !require(
            Path::new("/dev/fuse").exists(),
            "no /dev/fuse on this machine: the mount tests need FUSE",
        ) {
            return None;
        }
        let dir = work.join("mnt");
        fs::create_dir_all(&dir).unwrap();
        let child = repo.cairn().env("TZ", "UTC").arg("mount").arg(&dir).args(extra).spawn();
        let mut m = Mount { child: Some(child), dir };
        let mut exited = None;
        let up = wait_until(Duration::from_secs(30), || {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            is_mountpoint(&m.dir)
        });
        if let Some(status) = exited {
            let out = m.child.take().unwrap().wait_with_output().unwrap();
            let out = Out::new("cairn mount".into(), status, out.stdout, out.stderr);
            assert!(
                out.stderr.contains("cannot mount at"),
                "cairn mount ended before mounting, not for want of FUSE\n{}",
                out.context()
            );
            require(false, &format!("FUSE cannot mount here: {}", out.stderr.trim()));
            return None;
        }
        assert!(up, "the mount did not appear within 30 s");
        Some(m)
    }

    /// The path of `rel` in the mount.
    fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }

    /// Send `signal` and wait for the process to end; returns its output.
    fn stop(self, signal: rustix::process::Signal) -> Out {
        let pid = rustix::process::Pid::from_child(self.child.as_ref().expect("running"));
        rustix::process::kill_process(pid, signal).expect("send the signal");
        self.wait(&format!("{signal:?}"))
    }

    /// Wait (30 s at most) for the process to end after `what`; returns its output.
    fn wait(mut self, what: &str) -> Out {
        let mut child = self.child.take().expect("running");
        let done = wait_until(Duration::from_secs(30), || child.try_wait().unwrap().is_some());
        if !done {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(done, "cairn mount did not end within 30 s of {what}");
        Out::new(format!("cairn mount (ended by {what})"), out.status, out.stdout, out.stderr)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        force_unmount(&self.dir);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn os_error(r: std::io::Result<impl std::fmt::Debug>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn mount_shows_every_snapshot_with_its_metadata_and_content_read_only() {
    let work = tempdir("cairn-mount-");
    let g = gateway_tree(&work.path().join("src"), 9, TreeSize::SMALL);
    // Several MiB of random bytes: many chunks, read through the cache and read-ahead.
    let big = g.path("data/big.bin");
    write_random(&big, 77, 6 << 20);
    let repo = Repo::new();
    let t = "2026-01-31T23:00:00Z";
    repo.backup(&[&g.root], &["--host", "gw1", "--tag", "prod", "--time", t]);
    repo.backup(&[&g.root], &["--host", "gw2", "--time", t]);
    let mut snaps: Vec<String> =
        repo.snapshots().iter().map(|s| s["id"].as_str().unwrap()[..8].to_string()).collect();
    snaps.sort();
    let Some(m) = Mount::start(&repo, work.path()) else { return };

    // The folders above the snapshots. Equal times: the later id gets "-1", and is latest.
    assert_eq!(names(&m.dir), ["hosts", "ids", "latest", "tags", "times"]);
    assert_eq!(names(&m.path("ids")), snaps);
    assert_eq!(names(&m.path("times")), ["2026-01-31T23:00:00", "2026-01-31T23:00:00-1"]);
    assert_eq!(names(&m.path("hosts")), ["gw1", "gw2"]);
    assert_eq!(names(&m.path("hosts/gw2")), ["2026-01-31T23:00:00"]);
    assert_eq!(names(&m.path("tags")), ["prod"]);
    assert_eq!(names(&m.path("tags/prod")), ["2026-01-31T23:00:00"]);
    assert_eq!(fs::read_link(m.path("latest")).unwrap(), Path::new("ids").join(&snaps[1]));

    // Below a snapshot: the stored tree, compared entry by entry with the source (kinds,
    // modes, owners, mtimes, file atimes, symlink targets, xattrs, hard links, content).
    // The sparse file is compared by content only: the mount does not know its holes.
    let rel = g.root.strip_prefix("/").unwrap();
    let in_snapshot = |top: &str| m.path(top).join(rel);
    let opts = CompareOptions { ignore: vec![g.sparse.clone()], ..Default::default() };
    assert_trees_equal(&g.root, &in_snapshot(&format!("ids/{}", snaps[0])), &opts);
    assert_eq!(read_quietly(&in_snapshot("latest").join(&g.sparse)), read_quietly(&g.path(&g.sparse)));
    for top in
        ["times/2026-01-31T23:00:00-1", "hosts/gw1/2026-01-31T23:00:00", "tags/prod/2026-01-31T23:00:00"]
    {
        let copy = fs::read(in_snapshot(top).join("data/big.bin")).unwrap();
        assert!(copy == fs::read(&big).unwrap(), "{top}: data/big.bin differs from the source");
    }
    // The same checks stated on their own, so a failure names them.
    let (a, b) = (in_snapshot("latest").join(&g.hardlink.0), in_snapshot("latest").join(&g.hardlink.1));
    let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
    assert_eq!(ma.ino(), mb.ino(), "hard links share an inode number");
    assert_eq!((ma.nlink(), mb.nlink()), (2, 2));
    let src_md = fs::metadata(&big).unwrap();
    let md = fs::metadata(in_snapshot("latest").join("data/big.bin")).unwrap();
    assert_eq!(
        (md.mode(), md.uid(), md.gid(), md.len()),
        (src_md.mode(), src_md.uid(), src_md.gid(), 6 << 20)
    );
    assert_eq!((md.mtime(), md.mtime_nsec()), (src_md.mtime(), src_md.mtime_nsec()));
    // Nothing changed the source since the backup, so its ctime is the one stored.
    assert_eq!((md.ctime(), md.ctime_nsec()), (src_md.ctime(), src_md.ctime_nsec()));
    let link = &g.symlinks[0];
    assert_eq!(
        fs::read_link(in_snapshot("latest").join(link)).unwrap(),
        fs::read_link(g.path(link)).unwrap()
    );
    if require(g.xattrs_supported, "the source filesystem takes no user xattrs: xattrs not checked") {
        let value = xattr::get(in_snapshot("latest").join(&g.xattr_file), "user.cairn.origin").unwrap();
        assert_eq!(value.as_deref(), Some(&b"gateway\xff\x00binary-value"[..]));
    }

    // Read-only: creating, writing, removing and changing are refused with EROFS.
    let inside = in_snapshot("latest");
    assert_eq!(os_error(fs::write(inside.join("new-file"), b"x")), Some(EROFS));
    assert_eq!(os_error(fs::OpenOptions::new().append(true).open(inside.join("data/big.bin"))), Some(EROFS));
    assert_eq!(os_error(fs::create_dir(inside.join("new-dir"))), Some(EROFS));
    assert_eq!(os_error(fs::remove_file(inside.join("data/big.bin"))), Some(EROFS));
    assert_eq!(os_error(fs::set_permissions(&inside, md.permissions())), Some(EROFS));

    // The mount holds a shared lock: prune, which needs an exclusive one, is refused.
    repo.cairn().arg("prune").run().expect_code(11);

    // SIGINT unmounts, removes the lock and exits with 0.
    let dir = m.dir.clone();
    let out = m.stop(rustix::process::Signal::INT);
    assert_eq!(out.code, Some(0), "{}", out.context());
    assert!(!is_mountpoint(&dir), "the mount point is still mounted after SIGINT");
    assert!(repo.objects("locks").is_empty(), "the lock was left behind: {:?}", repo.objects("locks"));
}

#[test]
fn sigterm_releases_a_mountpoint_that_is_in_use() {
    let work = tempdir("cairn-mount-busy-");
    let src = work.path().join("src");
    write_random(&src.join("f.bin"), 5, 100_000);
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let Some(m) = Mount::start(&repo, work.path()) else { return };
    let inside = m.path("latest").join(fs::canonicalize(&src).unwrap().strip_prefix("/").unwrap());
    // An open file keeps the mount busy, so a plain unmount would fail.
    let open = fs::File::open(inside.join("f.bin")).unwrap();
    let dir = m.dir.clone();
    let out = m.stop(rustix::process::Signal::TERM);
    assert_eq!(out.code, Some(0), "{}", out.context());
    assert!(out.stderr.contains("detached"), "{}", out.context());
    assert!(!is_mountpoint(&dir), "the busy mount point was not released");
    drop(open);
}

#[test]
fn unmounting_from_outside_ends_the_mount() {
    let work = tempdir("cairn-mount-umount-");
    let src = work.path().join("src");
    write_random(&src.join("f.bin"), 6, 1000);
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let Some(m) = Mount::start(&repo, work.path()) else { return };
    assert_eq!(names(&m.path("ids")).len(), 1);
    let dir = m.dir.clone();
    // Root unmounts with umount(8); another user through the FUSE helper.
    let tools: &[&[&str]] =
        if is_root() { &[&["umount"]] } else { &[&["fusermount3", "-u"], &["fusermount", "-u"]] };
    let unmounted = tools.iter().any(|cmd| {
        let out = std::process::Command::new(cmd[0]).args(&cmd[1..]).arg(&dir).output();
        out.is_ok_and(|o| o.status.success())
    });
    assert!(unmounted, "could not unmount {} with {tools:?}", dir.display());
    let out = m.wait("an unmount from outside");
    assert_eq!(out.code, Some(0), "{}", out.context());
    assert!(!is_mountpoint(&dir));
    assert!(repo.objects("locks").is_empty(), "the lock was left behind");
    // Who mounted what, and where, is in the activity log.
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let mounts: Vec<&Value> =
        log["entries"].as_array().unwrap().iter().filter(|e| e["operation"] == "mount").collect();
    assert_eq!(mounts.len(), 1, "{log}");
    assert_eq!(mounts[0]["figures"]["mountpoint"], dir.to_str().unwrap());
    assert_eq!(mounts[0]["figures"]["snapshots"], "1");
}

#[test]
fn a_damaged_chunk_fails_only_the_reads_that_need_it() {
    let work = tempdir("cairn-mount-damage-");
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"intact\n").unwrap();
    let repo = Repo::with_options(&["--pack-size", "1M"]);
    repo.backup(&[&src], &[]);
    let before = repo.pack_paths();
    write_random(&src.join("big.bin"), 8, 3 << 20);
    repo.backup(&[&src], &[]);
    // Trees go in small packs of their own: the large new packs hold only big.bin's chunks.
    let pack = repo
        .pack_paths()
        .into_iter()
        .find(|p| !before.contains(p) && fs::metadata(p).unwrap().len() > 256 << 10)
        .expect("a data pack of big.bin");
    flip_byte(&pack, fs::metadata(&pack).unwrap().len() / 2);
    let Some(m) = Mount::start(&repo, work.path()) else { return };
    let inside = m.path("latest").join(fs::canonicalize(&src).unwrap().strip_prefix("/").unwrap());
    const EIO: i32 = 5;
    for attempt in ["first", "second"] {
        assert_eq!(
            os_error(fs::read(inside.join("big.bin"))),
            Some(EIO),
            "{attempt} read of the damaged file"
        );
    }
    assert_eq!(fs::read(inside.join("ok.txt")).unwrap(), b"intact\n", "other files still read");
    assert_eq!(names(&inside), ["big.bin", "ok.txt"]);
    let out = m.stop(rustix::process::Signal::INT);
    assert_eq!(out.code, Some(0), "{}", out.context());
    assert!(out.stderr.contains("cairn: mount:"), "the damage is reported\n{}", out.context());
}

#[test]
fn a_filtered_mount_shows_only_the_snapshots_that_pass_and_latest_among_them() {
    let work = tempdir("cairn-mount-filter-");
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let repo = Repo::new();
    let gw1 = repo.backup(&[&src], &["--host", "gw1", "--time", "2026-01-31T22:00:00Z"]);
    repo.backup(&[&src], &["--host", "gw2", "--time", "2026-01-31T23:00:00Z"]);
    let Some(m) = Mount::start_with(&repo, work.path(), &["--host", "gw1"]) else { return };
    assert_eq!(names(&m.path("hosts")), ["gw1"]);
    let id = &gw1["snapshot"].as_str().unwrap()[..8];
    assert_eq!(fs::read_link(m.path("latest")).unwrap(), Path::new("ids").join(id));
    m.stop(rustix::process::Signal::INT).expect_code(0);
}
