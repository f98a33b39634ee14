//! `backup --stdin-tar`: a tar stream from GNU tar becomes a snapshot that restores to the
//! tree the archive was made from, with its metadata: pax archives (nanosecond times,
//! xattrs, owners, modes, hard links, symlinks, fifos, devices) and GNU archives with a
//! sparse file. A path that climbs out of the archive is left out and reported.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// `tar c` of `root`'s contents, with the options given.
fn tar_of(root: &Path, options: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(options)
        .args(["--numeric-owner", "-C"])
        .arg(root)
        .args(["-cf", "-", "."])
        .stderr(Stdio::piped())
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn backup_tar(repo: &Repo, tar: Vec<u8>, name: &str) -> serde_json::Value {
    let out =
        repo.cairn().args(["backup", "--stdin-tar", "--json", "--stdin-name", name]).stdin(tar).run().ok();
    out.json_lines().into_iter().find(|l| l["type"] == "summary").expect("a summary")
}

#[test]
fn a_pax_stream_restores_as_the_tree_it_was_made_from() {
    let work = tempdir("cairn-tar-");
    let src = gateway_tree(&work.path().join("src"), 21, TreeSize::SMALL).root;
    let repo = Repo::new();
    let tar = tar_of(&src, &["--format=posix", "--xattrs", "--xattrs-include=*", "--acls"]);
    let summary = backup_tar(&repo, tar, "gw.tar");
    let id = summary["snapshot"].as_str().unwrap().to_string();
    let snap = repo.snapshots().into_iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(snap["paths"], serde_json::json!(["gw.tar"]), "{snap}");
    let target = work.path().join("restored");
    repo.restore(&id, &target, &[]).ok();
    // tar's own reading moved the source's atimes (the archive has the times before), and
    // a snapshot's root folder has no entry of its own to restore.
    let options =
        CompareOptions { owner: is_root(), atime: false, root_meta: false, ..CompareOptions::default() };
    assert_trees_equal(&src, &target, &options);
    // A second stream of the same tree stores no content again: only folder listings,
    // whose atimes tar's reading moved.
    let again =
        backup_tar(&repo, tar_of(&src, &["--format=posix", "--xattrs", "--xattrs-include=*"]), "gw.tar");
    assert!(again["bytes_read"].as_u64().unwrap() > 10 << 20, "{again}");
    assert!(again["bytes_added"].as_u64().unwrap() < 64 << 10, "content stored again: {again}");
}

#[test]
fn a_gnu_stream_with_a_sparse_file_restores_its_bytes() {
    let work = tempdir("cairn-tar-sparse-");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let f = std::fs::File::create(src.join("disk.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"boot sector", 0).unwrap();
    f.write_all_at(b"the middle", 32 << 20).unwrap();
    drop(f);
    write_random(&src.join("dense.bin"), 4, 100_000);
    let repo = Repo::new();
    let tar = tar_of(&src, &["--format=gnu", "--sparse"]);
    assert!(tar.len() < 8 << 20, "tar did not store the file sparse ({} bytes)", tar.len());
    let id = backup_tar(&repo, tar, "img.tar")["snapshot"].as_str().unwrap().to_string();
    let target = work.path().join("restored");
    repo.restore(&id, &target, &[]).ok();
    for name in ["disk.img", "dense.bin"] {
        assert!(
            std::fs::read(src.join(name)).unwrap() == std::fs::read(target.join(name)).unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn entries_that_leave_the_archive_are_left_out_and_reported() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append_data(&mut header.clone(), "etc/ok.conf", &b"fine\n"[..]).unwrap();
    // The tar crate refuses to write a '..' path; set the name bytes directly.
    let mut evil = header.clone();
    evil.as_old_mut().name[..17].copy_from_slice(b"../../etc/evil.sh");
    evil.set_cksum();
    builder.append(&evil, &b"evil\n"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let repo = Repo::new();
    let out =
        repo.cairn().args(["backup", "--stdin-tar", "--stdin-name", "x.tar"]).stdin(tar).run().expect_code(3);
    assert!(out.stderr.contains("leaves the archive"), "{}", out.context());
    let work = tempdir("cairn-tar-evil-");
    let target = work.path().join("t");
    let id = repo.snapshots()[0]["id"].as_str().unwrap().to_string();
    repo.restore(&id, &target, &[]).ok();
    assert_eq!(std::fs::read(target.join("etc/ok.conf")).unwrap(), b"fine\n");
    assert!(!work.path().join("etc").exists() && !target.join("etc/evil.sh").exists());
    // Not a tar stream at all: a clear error, no snapshot.
    let bad = repo
        .cairn()
        .args(["backup", "--stdin-tar"])
        .stdin(b"hello, not a tar".repeat(40))
        .run()
        .expect_code(2);
    assert!(bad.one_line_error().contains("not a readable tar stream"), "{}", bad.context());
    assert_eq!(repo.snapshots().len(), 1);
}
