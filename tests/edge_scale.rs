//! Trees at the edges of what filesystems allow: a folder of 500,000 entries (more than
//! one 64 MiB tree blob holds), a sparse file larger than 4 GiB with data past 4 GiB,
//! names of 255 bytes and paths deeper than PATH_MAX. Each is backed up, restored and
//! compared.

mod common;

use common::*;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("'{key}' is not a number in {v}"))
}

/// Run `cairn`, noting its peak resident memory (VmHWM, polled until it ends) in MiB.
fn run_measured(c: Cairn) -> (Out, u64) {
    let describe = c.describe();
    let mut child = c.spawn();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        let status = fs::read_to_string(&status_file).unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (Out::new(describe, output.status, output.stdout, output.stderr), peak_kib / 1024)
}

#[test]
fn a_folder_of_500000_entries_backs_up_and_restores() {
    let work = tempdir("cairn-wide-");
    let src = work.path().join("wide");
    fs::create_dir(&src).unwrap();
    // 110-byte names: about 165 bytes a node, 83 MB for the folder, more than one blob.
    let pad = "n".repeat(100);
    let started = Instant::now();
    for i in 0..500_000u32 {
        let name = format!("{i:09}-{pad}");
        if i % 1000 == 0 {
            fs::write(src.join(&name), i.to_le_bytes()).unwrap();
        } else {
            fs::File::create(src.join(&name)).unwrap();
        }
    }
    let src = fs::canonicalize(&src).unwrap();
    eprintln!("made 500,000 entries in {:.1} s", started.elapsed().as_secs_f64());
    let repo = Repo::new();
    let started = Instant::now();
    let (out, peak) = run_measured(repo.cairn().args(["backup", "--json"]).arg(&src));
    let b = out.ok().json();
    eprintln!("backup of 500,000 entries: {:.1} s, peak memory {peak} MiB", started.elapsed().as_secs_f64());
    assert_eq!(b["partial"], false, "{b}");
    assert_eq!(u(&b, "files"), 500_000);

    // A second backup finds the folder unchanged and stores none of its 83 MB of tree
    // again (the folders above it may have changed: other tests write to /tmp).
    let again = repo.backup(&[&src], &[]);
    assert!(u(&again, "bytes_added") < 64 << 10, "{again}");

    let target = work.path().join("restore");
    let started = Instant::now();
    repo.restore("latest", &target, &[]).ok();
    eprintln!("restore of 500,000 entries: {:.1} s", started.elapsed().as_secs_f64());
    assert_same_tree(&src, &restored(&target, &src));
    let listed = repo.cairn().args(["ls", "latest"]).arg(&src).run().ok();
    assert_eq!(listed.stdout.lines().count(), 500_000, "ls lists every entry once");
    repo.cairn().args(["check", "--read-data"]).run().ok();
}

/// 5 GiB with data at 0, just past 4 GiB, and at the very end; holes between.
fn sparse_over_4gib(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let f = fs::File::create(path).unwrap();
    let size = 5u64 << 30;
    let pieces = vec![
        (0u64, Rng::new(1).bytes(200_000)),
        ((4u64 << 30) + 12_345, Rng::new(2).bytes(300_000)),
        (size - 70_000, Rng::new(3).bytes(70_000)),
    ];
    for (at, bytes) in &pieces {
        f.write_all_at(bytes, *at).unwrap();
    }
    f.set_len(size).unwrap();
    pieces
}

/// BLAKE3 of a file, read in pieces (a 5 GiB file must not be read into memory).
fn hash_file(path: &Path) -> blake3::Hash {
    let mut f = fs::File::open(path).unwrap();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finalize();
        }
        h.update(&buf[..n]);
    }
}

/// The file holds `pieces` at their offsets, has `size` bytes, and stayed sparse.
fn assert_sparse_copy(path: &Path, pieces: &[(u64, Vec<u8>)], size: u64, whole: blake3::Hash) {
    let md = fs::metadata(path).unwrap();
    assert_eq!(md.len(), size, "{}", path.display());
    assert!(
        md.blocks() * 512 < 64 << 20,
        "{}: {} bytes allocated: holes lost",
        path.display(),
        md.blocks() * 512
    );
    let f = fs::File::open(path).unwrap();
    for (at, bytes) in pieces {
        let mut back = vec![0u8; bytes.len()];
        f.read_exact_at(&mut back, *at).unwrap();
        assert!(back == *bytes, "{}: data at {at} differs", path.display());
    }
    assert_eq!(hash_file(path), whole, "{}: content differs", path.display());
}

#[test]
fn a_sparse_file_over_4gib_round_trips_through_restore_dump_and_mount() {
    let work = tempdir("cairn-big-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("disk.img");
    let pieces = sparse_over_4gib(&file);
    if !require(fs::metadata(&file).unwrap().blocks() * 512 < 64 << 20, "this filesystem keeps no holes") {
        return;
    }
    let size = fs::metadata(&file).unwrap().len();
    let whole = hash_file(&file);
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::new();
    let b = repo.backup(&[&src], &[]);
    assert_eq!(u(&b, "total_bytes"), size, "{b}");

    let target = work.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    assert_sparse_copy(&restored(&target, &src).join("disk.img"), &pieces, size, whole);

    // dump: GNU tar extracts it, holes and all.
    let archive = work.path().join("big.tar");
    repo.cairn().args(["dump", "latest", "--archive", "tar", "--output"]).arg(&archive).arg(&file).run().ok();
    assert!(fs::metadata(&archive).unwrap().len() < 64 << 20, "the archive holds the holes as data");
    let out = work.path().join("untar");
    fs::create_dir(&out).unwrap();
    let tar =
        std::process::Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&out).output().unwrap();
    assert!(tar.status.success(), "tar: {}", String::from_utf8_lossy(&tar.stderr));
    assert_sparse_copy(&restored(&out, &file), &pieces, size, whole);

    // mount: reads past 4 GiB come back right.
    if require(Path::new("/dev/fuse").exists(), "no /dev/fuse: the mount part needs FUSE") {
        let mnt = work.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mut child = repo.cairn().arg("mount").arg(&mnt).spawn();
        let inside = mnt.join("latest").join(file.strip_prefix("/").unwrap());
        let up = wait_until(Duration::from_secs(30), || inside.exists());
        let mut checked = Vec::new();
        if up {
            let f = fs::File::open(&inside).unwrap();
            assert_eq!(f.metadata().unwrap().len(), size);
            for (at, bytes) in &pieces {
                let mut back = vec![0u8; bytes.len()];
                f.read_exact_at(&mut back, *at).unwrap();
                checked.push(back == *bytes);
            }
            let mut zeros = vec![1u8; 4096];
            f.read_exact_at(&mut zeros, 3 << 30).unwrap();
            checked.push(zeros.iter().all(|b| *b == 0));
        }
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let done = wait_until(Duration::from_secs(30), || child.try_wait().unwrap().is_some());
        if !done {
            let _ = std::process::Command::new("umount").arg("-l").arg(&mnt).status();
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        let out = Out::new("cairn mount".into(), output.status, output.stdout, output.stderr);
        assert!(up && done, "the mount did not serve the file\n{}", out.context());
        assert_eq!(checked, vec![true; 4], "data read through the mount differs (past 4 GiB?)");
    }
}
/// Every entry below `dir` (an open folder), walked with handles so that paths longer
/// than PATH_MAX work: relative path, kind, mode, mtime, size and content.
fn scan_at(dir: &OwnedFd, rel: &Path, out: &mut Vec<String>) {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let mut names: Vec<OsString> = rustix::fs::Dir::read_from(dir)
        .unwrap()
        .map(|e| OsStr::from_bytes(e.unwrap().file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    for name in names {
        let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        let kind = FileType::from_raw_mode(st.st_mode);
        let path = rel.join(&name);
        let mut line = format!(
            "{} {kind:?} {:o} {}.{} {}",
            path.display(),
            st.st_mode & 0o7777,
            st.st_mtime,
            st.st_mtime_nsec,
            st.st_size
        );
        match kind {
            FileType::Directory => {
                out.push(line);
                let sub = rustix::fs::openat(dir, &name, OFlags::DIRECTORY | OFlags::NOFOLLOW, Mode::empty())
                    .unwrap();
                scan_at(&sub, &path, out);
                continue;
            }
            FileType::RegularFile => {
                let fd =
                    rustix::fs::openat(dir, &name, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty()).unwrap();
                let mut content = Vec::new();
                fs::File::from(fd).read_to_end(&mut content).unwrap();
                line.push_str(&format!(" {}", blake3::hash(&content)));
            }
            _ => {}
        }
        out.push(line);
    }
}

fn scan_deep(root: &Path) -> Vec<String> {
    let fd = rustix::fs::open(root, rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap();
    let mut out = Vec::new();
    scan_at(&fd, Path::new(""), &mut out);
    out
}

/// Build a chain of folders with 255-byte names below `root` until the path is longer
/// than PATH_MAX (4096), working relative to folder handles; a file of 255-byte name at
/// each level. Returns the depth.
fn make_deep_tree(root: &Path) -> usize {
    use rustix::fs::{Mode, OFlags};
    let mut dir = rustix::fs::open(root, OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut length = root.as_os_str().len();
    let mut depth = 0;
    while length <= 4096 + 600 {
        let name = format!("{depth:03}{}", "d".repeat(252));
        let file = format!("{depth:03}{}", "f".repeat(252));
        assert_eq!(name.len(), 255);
        let fd = rustix::fs::openat(
            &dir,
            file.as_str(),
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o640),
        )
        .unwrap();
        fs::File::from(fd).write_all_at(format!("level {depth}\n").as_bytes(), 0).unwrap();
        rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o750)).unwrap();
        dir = rustix::fs::openat(&dir, name.as_str(), OFlags::DIRECTORY, Mode::empty()).unwrap();
        length += 1 + name.len();
        depth += 1;
    }
    depth
}

#[test]
fn names_of_255_bytes_and_paths_deeper_than_path_max_round_trip() {
    let work = tempdir("cairn-deep-");
    let src = work.path().join("deep");
    fs::create_dir(&src).unwrap();
    let src = fs::canonicalize(&src).unwrap();
    let depth = make_deep_tree(&src);
    assert!(depth >= 16, "deeper than PATH_MAX");
    let repo = Repo::new();
    let b = repo.backup(&[&src], &[]);
    assert_eq!(b["partial"], false, "{b}");
    assert_eq!(b["errors"], serde_json::json!([]), "{b}");
    assert_eq!(u(&b, "files"), depth as u64, "{b}");

    let target = work.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    let back = restored(&target, &src);
    let (a, z) = (scan_deep(&src), scan_deep(&back));
    assert_eq!(a.len(), z.len(), "entry count differs");
    for (x, y) in a.iter().zip(&z) {
        assert_eq!(x, y);
    }
}
