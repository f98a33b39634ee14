//! `cairn copy` between repositories with their own keys: content survives, a second run
//! copies nothing, filters select, an interrupted copy resumes, repositories made with
//! `init --copy-chunker-params-from` need no data read for blobs they hold and dedup with
//! direct backups, and copies work into S3 and SFTP repositories on real local servers.

mod common;
mod servers;

use common::*;
use servers::Server;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FROM_PASSWORD: &str = "the source's own password";

/// A source repository with two snapshots (tags a and b) of two folders.
fn source(work: &Path) -> (Repo, PathBuf, PathBuf) {
    let src = Repo::new();
    let one = gateway_tree(&work.join("one"), 11, TreeSize::SMALL).root;
    let two = work.join("two");
    write_random(&two.join("blob.bin"), 5, 300 << 10);
    std::fs::write(two.join("note.txt"), b"second snapshot").unwrap();
    let two = std::fs::canonicalize(two).unwrap();
    src.backup(&[&one], &["--tag", "a", "--host", "gw1"]);
    src.backup(&[&two], &["--tag", "b", "--host", "gw2"]);
    (src, one, two)
}

/// A new repository made with `--copy-chunker-params-from` the source, whose password
/// comes from a file (CAIRN_FROM_PASSWORD is not set there).
fn sharing_chunker_params(work: &Path, src: &Repo) -> Repo {
    let pw_file = work.join("source-password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    Repo::with_options(&[
        "--copy-chunker-params-from",
        src.path.to_str().unwrap(),
        "--from-password-file",
        pw_file.to_str().unwrap(),
    ])
}

fn copy_from(dst: Cairn, src: &Path) -> Cairn {
    dst.env("CAIRN_FROM_PASSWORD", PASSWORD).arg("copy").arg("--json").arg("--from-repo").arg(src)
}

fn new_repo_with_password(pw: &str, extra: &[&str]) -> Repo {
    let dir = tempfile::Builder::new().prefix("cairn-repo-").tempdir().unwrap();
    let path = dir.path().join("repo");
    Cairn::new().repo(&path).password(pw).arg("init").args(FAST_KDF).args(extra).run().ok();
    Repo { dir, path }
}

#[test]
fn copy_reencrypts_restores_and_a_second_run_copies_nothing() {
    let work = tempdir("cairn-copy-");
    let (src, one, two) = source(work.path());
    let dst = new_repo_with_password(FROM_PASSWORD, &[]);
    let dst_cairn = || dst.cairn().password(FROM_PASSWORD);

    let first = copy_from(dst_cairn(), &src.path).run().ok().json();
    assert_eq!(first["copied"], 2, "{first}");
    assert_eq!(first["same_ids"], false, "{first}");
    assert!(first["chunks_read"].as_u64().unwrap() > 0, "{first}");
    dst_cairn().args(["check", "--read-data"]).run().ok();
    for (snap, dir) in [("a", &one), ("b", &two)] {
        let snaps = dst_cairn().args(["snapshots", "--json", "--tag", snap]).run().ok().json();
        let id = snaps[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no snapshot tagged {snap}: {snaps}"))
            .to_string();
        let target = work.path().join(format!("restore-{snap}"));
        dst_cairn().args(["restore", &id, "--target"]).arg(&target).run().ok();
        assert_same_tree(dir, &restored(&target, dir));
    }
    // The destination's packs are its own: the source's key opens none of them.
    let src_packs: Vec<String> = src.objects("data");
    assert!(dst.objects("data").iter().all(|p| !src_packs.contains(p)));

    let second = copy_from(dst_cairn(), &src.path).run().ok().json();
    assert_eq!(second["copied"], 0, "{second}");
    assert_eq!(second["blobs_new"], 0, "{second}");
    assert_eq!(second["chunks_read"], 0, "{second}");
    assert_eq!(second["trees_read"], 0, "{second}");
    assert_eq!(dst_cairn().args(["snapshots", "--json"]).run().ok().json().as_array().unwrap().len(), 2);
}

#[test]
fn filters_choose_what_is_copied() {
    let work = tempdir("cairn-copy-filter-");
    let (src, _, _) = source(work.path());
    let by_tag = Repo::new();
    let out = copy_from(by_tag.cairn(), &src.path).args(["--tag", "b"]).run().ok().json();
    assert_eq!(out["copied"], 1, "{out}");
    assert_eq!(by_tag.snapshots()[0]["tags"][0], "b");

    let by_host = Repo::new();
    let out = copy_from(by_host.cairn(), &src.path).args(["--host", "gw1"]).run().ok().json();
    assert_eq!(out["copied"], 1, "{out}");
    assert_eq!(by_host.snapshots()[0]["host"], "gw1");

    let by_id = Repo::new();
    let first = src.snapshots()[0]["id"].as_str().unwrap().to_string();
    let out = copy_from(by_id.cairn(), &src.path).arg(&first[..8]).run().ok().json();
    assert_eq!(out["snapshots"][0]["source"], first.as_str(), "{out}");

    // Copying a repository into itself is refused.
    let out = copy_from(src.cairn(), &src.path).run().expect_code(2);
    assert!(out.one_line_error().contains("same repository"), "{}", out.context());
    // A wrong source password is the wrong-password exit code, naming the source.
    let out =
        by_id.cairn().env("CAIRN_FROM_PASSWORD", "wrong").arg("copy").arg("--from-repo").arg(&src.path).run();
    let out = out.expect_code(12);
    assert!(out.one_line_error().contains("source repository"), "{}", out.context());
}

#[test]
fn shared_chunker_params_need_no_data_read_and_dedup_with_direct_backups() {
    let work = tempdir("cairn-copy-shared-");
    let (src, one, two) = source(work.path());
    let dst = sharing_chunker_params(work.path(), &src);
    // Without the source's password, no shared parameters.
    let refused = Cairn::new()
        .repo(&work.path().join("other"))
        .env("CAIRN_FROM_PASSWORD", "wrong")
        .arg("init")
        .args(FAST_KDF)
        .arg("--copy-chunker-params-from")
        .arg(&src.path)
        .run()
        .expect_code(12);
    refused.one_line_error();

    // A backup made directly into the destination holds the same data as snapshot a...
    dst.backup(&[&one], &[]);
    let out = copy_from(dst.cairn(), &src.path).args(["--tag", "a"]).run().ok().json();
    assert_eq!(out["same_ids"], true, "{out}");
    // ...so copying a reads its trees and no data; at most trees are new (access times
    // differ between the two backups' metadata), never chunks.
    assert_eq!(out["chunks_read"], 0, "{out}");
    let trees = out["trees_read"].as_u64().unwrap();
    assert!(trees > 0 && out["blobs_new"].as_u64().unwrap() <= trees, "{out}");

    // Copies dedup with later direct backups too.
    copy_from(dst.cairn(), &src.path).args(["--tag", "b"]).run().ok();
    let b = dst.backup(&[&two], &["--force"]);
    // Every file read again, all its chunks found: only the trees (new times) are added.
    assert!(b["bytes_read"].as_u64().unwrap() > 300_000, "{b}");
    assert!(b["bytes_added"].as_u64().unwrap() < 2048, "{b}");
    dst.cairn().args(["check", "--read-data"]).run().ok();
    let target = work.path().join("restore");
    let id =
        dst.snapshots().iter().find(|s| s["tags"][0] == "a").unwrap()["id"].as_str().unwrap().to_string();
    dst.restore(&id, &target, &[]).ok();
    assert_same_tree(&one, &restored(&target, &one));
}

#[test]
fn an_interrupted_copy_resumes_and_reuses_what_it_stored() {
    let work = tempdir("cairn-copy-int-");
    let big = work.path().join("big");
    for i in 0..24u64 {
        write_random(&big.join(format!("f{i:02}.bin")), 900 + i, 1 << 20);
    }
    let big = std::fs::canonicalize(big).unwrap();
    let src = Repo::with_options(&["--pack-size", "1M"]);
    src.backup(&[&big], &[]);
    let dst = Repo::with_options(&["--pack-size", "1M"]);

    let child = copy_from(dst.cairn(), &src.path).spawn();
    let started = wait_until(Duration::from_secs(60), || pack_paths(&dst.path).len() >= 3);
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(started, "the copy stored no packs in time");
    let out = Out::new("copy".into(), out.status, out.stdout, out.stderr);
    if out.code == Some(0) {
        panic!("the copy finished before the interrupt; make the source larger\n{}", out.context());
    }
    assert_eq!(out.code, Some(130), "{}", out.context());
    assert!(dst.snapshots().is_empty(), "an interrupted copy left a snapshot");
    assert!(objects_complete(&dst.path).is_empty());

    let again = copy_from(dst.cairn(), &src.path).run().ok().json();
    assert_eq!(again["copied"], 1, "{again}");
    let total_chunks = again["chunks_read"].as_u64().unwrap();
    assert!(again["blobs_new"].as_u64().unwrap() < total_chunks, "nothing reused: {again}");
    dst.cairn().args(["check", "--read-data"]).run().ok();
    let target = work.path().join("restore");
    dst.restore("latest", &target, &[]).ok();
    assert_same_tree(&big, &restored(&target, &big));
}

fn copy_to_remote(server: &Server) {
    let work = tempdir("cairn-copy-remote-");
    let (src, one, _) = source(work.path());
    let loc = server.location("copy");
    let remote = || {
        let mut c = Cairn::new().arg("-r").arg(&loc);
        for (k, v) in &server.env {
            c = c.env(k, v);
        }
        c
    };
    remote()
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .arg("init")
        .args(FAST_KDF)
        .arg("--copy-chunker-params-from")
        .arg(&src.path)
        .run()
        .ok();
    let out = copy_from(remote(), &src.path).run().ok().json();
    assert_eq!((out["copied"].as_u64(), out["same_ids"].as_bool()), (Some(2), Some(true)), "{out}");
    let again = copy_from(remote(), &src.path).run().ok().json();
    assert_eq!(again["copied"], 0, "{again}");
    remote().args(["check", "--read-data"]).run().ok();
    let target = work.path().join("restore");
    let snaps = remote().args(["snapshots", "--json", "--tag", "a"]).run().ok().json();
    let id = snaps[0]["id"].as_str().unwrap().to_string();
    remote().args(["restore", &id, "--target"]).arg(&target).run().ok();
    assert_same_tree(&one, &restored(&target, &one));

    // And back from the remote repository into a fresh local one.
    let local = Repo::new();
    let mut back = local.cairn().env("CAIRN_FROM_PASSWORD", PASSWORD);
    for (k, v) in &server.env {
        back = back.env(k, v);
    }
    let back = back.args(["copy", "--json", "--from-repo", &loc]).run().ok().json();
    assert_eq!(back["copied"], 2, "{back}");
    local.cairn().args(["check", "--read-data"]).run().ok();
}

#[test]
fn copy_into_s3() {
    copy_to_remote(&Server::s3());
}

#[test]
fn copy_into_sftp() {
    copy_to_remote(&Server::sftp());
}

/// A key rotation of a repository whose offsite copy was made with
/// `--copy-chunker-params-from` leaves the copy working: blob ids and chunk boundaries
/// stay, so the next copy still compares id lists and reads no chunk the copy holds; the
/// snapshots sealed anew under new ids are known as copied (no duplicates); a backup made
/// after the rotation copies over, and everything restores identical.
#[test]
fn a_key_rotation_of_the_source_leaves_a_shared_id_copy_working() {
    let work = tempdir("cairn-copy-rotate-");
    let (src, one, two) = source(work.path());
    let dst = sharing_chunker_params(work.path(), &src);
    copy_from(dst.cairn(), &src.path).run().ok();
    let before: Vec<String> = src.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let rotated = src.cairn().args(["key", "rotate", "--json"]).run().ok().json();
    assert_eq!(rotated["epoch"], 1, "{rotated}");
    let after: Vec<String> = src.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert!(after.iter().all(|id| !before.contains(id)), "the rotation kept a snapshot id");
    // After the rotation, a new backup of one, with one new small file.
    std::fs::write(one.join("after-rotation.txt"), b"written after the keys were rotated").unwrap();
    src.backup(&[&one], &["--tag", "c", "--host", "gw1"]);
    let out = copy_from(dst.cairn(), &src.path).run().ok().json();
    assert_eq!(out["same_ids"], true, "{out}");
    assert_eq!(out["chunks_read"], 1, "only the new file's chunk is read: {out}");
    assert_eq!(dst.snapshots().len(), 3, "the snapshots sealed anew were copied again");
    dst.cairn().args(["check", "--read-data"]).run().ok();
    for (tag, tree) in [("b", &two), ("c", &one)] {
        let target = work.path().join(format!("restore-{tag}"));
        let id =
            dst.snapshots().iter().find(|s| s["tags"][0] == tag).unwrap()["id"].as_str().unwrap().to_string();
        dst.restore(&id, &target, &[]).ok();
        assert_same_tree(tree, &restored(&target, tree));
    }
}

/// A content key rotation of a copy's source makes the two name data differently: the
/// next copy still works, reading and naming each chunk anew, and copies no snapshot twice
/// (the source's snapshots stored anew are known by what they say of themselves). Once the
/// copy takes the source's new content keys (`--content-from`), a copy reads only new
/// chunks again; everything restores identical throughout.
#[test]
fn a_content_key_rotation_then_content_from_makes_a_copy_dedup_again() {
    let work = tempdir("cairn-copy-content-keys-");
    let (src, one, two) = source(work.path());
    let dst = sharing_chunker_params(work.path(), &src);
    copy_from(dst.cairn(), &src.path).run().ok();
    let rotated = src.cairn().args(["key", "rotate", "--content-keys", "--json"]).run().ok().json();
    assert_eq!(
        (rotated["content_keys_renewed"].as_bool(), rotated["stored_anew"].as_u64()),
        (Some(true), Some(2))
    );
    std::fs::write(one.join("after-rotation.txt"), b"written after the content keys were renewed").unwrap();
    src.backup(&[&one], &["--tag", "c", "--host", "gw1"]);
    let out = copy_from(dst.cairn(), &src.path).run().ok().json();
    assert_eq!((out["same_ids"].as_bool(), out["copied"].as_u64()), (Some(false), Some(1)), "{out}");
    assert!(out["chunks_read"].as_u64().unwrap() > 1, "{out}");

    dst.cairn()
        .args(["key", "rotate", "--content-keys", "--content-from"])
        .arg(&src.path)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .run()
        .ok();
    std::fs::write(two.join("after-content-from.txt"), b"written after the copy took the source's keys")
        .unwrap();
    src.backup(&[&two], &["--tag", "d", "--host", "gw1"]);
    let out = copy_from(dst.cairn(), &src.path).run().ok().json();
    assert_eq!((out["same_ids"].as_bool(), out["copied"].as_u64()), (Some(true), Some(1)), "{out}");
    assert_eq!(out["chunks_read"], 1, "only the new file's chunk is read: {out}");
    assert_eq!(dst.snapshots().len(), 4, "{:?}", dst.snapshots());
    dst.cairn().args(["check", "--read-data"]).run().ok();
    for (tag, tree) in [("c", &one), ("d", &two)] {
        let target = work.path().join(format!("restore-{tag}"));
        let id =
            dst.snapshots().iter().find(|s| s["tags"][0] == tag).unwrap()["id"].as_str().unwrap().to_string();
        dst.restore(&id, &target, &[]).ok();
        assert_same_tree(tree, &restored(&target, tree));
    }
    // Taken twice, the same keys are refused: nothing is left to take.
    let again = dst
        .cairn()
        .args(["key", "rotate", "--content-keys", "--content-from"])
        .arg(&src.path)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .run()
        .expect_code(2);
    assert!(again.one_line_error().contains("already share their content keys"), "{}", again.context());
}
