//! Exclude options: gitignore-style patterns (with re-includes and folder-only rules),
//! pattern files, marker files, cache folders, size limits and one-file-system.

mod common;

use std::path::Path;
use std::process::Command;

fn cairn(repo: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("CAIRN_PASSWORD", "pw")
        .env_remove("CAIRN_REPOSITORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn every_exclude_option_leaves_out_what_it_names_and_only_that() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("gw"));
    for f in
        ["conf/a.xml", "conf/trace.log", "conf/keep.log", "conf/opsdb.d/db.bin", "build/x.o", "docs/build"]
    {
        write(&src.join(f), b"data");
    }
    write(&src.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n");
    write(&src.join("cache/blob"), b"cached");
    write(&src.join("private/.nobackup"), b"");
    write(&src.join("private/secret"), b"s");
    write(&src.join("big.dump"), &vec![7u8; 5000]);
    write(&src.join("from-file.tmp"), b"t");
    let list = tmp.path().join("excludes.txt");
    std::fs::write(&list, "# temporary files\n*.tmp\n\n").unwrap();

    let s = src.to_str().unwrap();
    let opsdb = format!("{s}/conf/opsdb.d");
    cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3"]);
    #[rustfmt::skip]
    cairn(&repo, &[
        "backup", s, "--exclude", &opsdb, "--exclude", "*.log", "--exclude", "!keep.log",
        "--exclude", "build/", "--exclude-file", list.to_str().unwrap(),
        "--exclude-if-present", ".nobackup", "--exclude-caches", "--exclude-larger-than", "4K",
    ]);
    let target = tmp.path().join("out");
    cairn(&repo, &["restore", "latest", "--target", target.to_str().unwrap()]);
    let root = target.join(s.trim_start_matches('/'));
    for kept in ["conf/a.xml", "conf/keep.log", "docs/build"] {
        assert!(root.join(kept).exists(), "{kept} should be backed up");
    }
    for gone in ["conf/trace.log", "conf/opsdb.d", "build", "cache", "private", "big.dump", "from-file.tmp"] {
        assert!(!root.join(gone).exists(), "{gone} should be excluded");
    }
}

#[test]
fn one_file_system_stays_on_the_source_filesystem() {
    if !common::require(
        rustix::process::geteuid().is_root(),
        "--one-file-system test: mounting a tmpfs needs root",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    write(&src.join("here.txt"), b"here");
    let mnt = src.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&mnt).status();
    if !common::require(
        mounted.is_ok_and(|s| s.success()),
        "--one-file-system test: cannot mount a tmpfs here",
    ) {
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    write(&mnt.join("other-fs.txt"), b"there");
    cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3"]);
    let s = src.to_str().unwrap();
    cairn(&repo, &["backup", s, "--one-file-system"]);
    let target = tmp.path().join("out");
    cairn(&repo, &["restore", "latest", "--target", target.to_str().unwrap()]);
    let root = target.join(s.trim_start_matches('/'));
    assert!(root.join("here.txt").exists());
    assert!(!root.join("mnt").exists(), "a mount point below the source is another filesystem");
    // Without the flag the mounted filesystem is backed up too.
    cairn(&repo, &["backup", s]);
    let again = tmp.path().join("out2");
    cairn(&repo, &["restore", "latest", "--target", again.to_str().unwrap()]);
    assert!(again.join(s.trim_start_matches('/')).join("mnt/other-fs.txt").exists());
}
