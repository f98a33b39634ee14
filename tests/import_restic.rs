//! `cairn import restic` against Debian's restic: every snapshot of a changing tree with
//! hostile metadata, in repositories of format version 1 and 2 (compressed), becomes a
//! snapshot with restic's time, host, user, paths, tags and parent, and restores to what
//! `restic restore` gives for it; the newest also to the source tree itself. A second
//! import adds nothing, a new restic snapshot is imported alone, a wrong password and a
//! damaged pack are clear errors with their exit codes.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const RESTIC_PASS: &str = "restic secret";

fn restic(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", RESTIC_PASS)
        .output()
        .expect("run restic (Debian package restic; .ci/run installs it)");
    assert!(out.status.success(), "restic {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn restic_snapshots(repo: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&restic(repo, &["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().clone()
}

fn import(repo: &Repo, from: &Path) -> Out {
    repo.cairn()
        .args(["import", "restic", "--json", "--from-repo"])
        .arg(from)
        .env("CAIRN_FROM_PASSWORD", RESTIC_PASS)
        .run()
}

/// The nanoseconds since the epoch of an RFC 3339 time.
fn nanos(t: &str) -> i128 {
    let ts: jiff::Timestamp = t.parse().unwrap_or_else(|e| panic!("time {t}: {e}"));
    ts.as_nanosecond()
}

/// Change the tree between snapshots: a new file, a changed one, one removed.
fn change(src: &Path, round: u64) {
    std::fs::write(src.join(format!("added-{round}.xml")), format!("<policy round=\"{round}\"/>\n")).unwrap();
    write_random(&src.join("bin/readonly.cfg"), 90 + round, 5_000 + round as usize);
    set_times_everywhere(src, 700 + round);
}

fn import_history(version: &str, seed: u64) {
    let work = tempdir("cairn-restic-");
    let tree = gateway_tree(&work.path().join("src"), seed, TreeSize::SMALL);
    let src = tree.root.clone();
    let src_s = src.to_str().unwrap();
    let restic_repo = work.path().join("restic");
    restic(&restic_repo, &["init", "--repository-version", version]);
    restic(&restic_repo, &["backup", "--tag", "monday", "--tag", "prod", src_s]);
    change(&src, 1);
    restic(&restic_repo, &["backup", "--host", "gw2", "--tag", "tuesday", src_s]);
    change(&src, 2);
    // Its parent is the first snapshot (same host and paths), not the second.
    restic(&restic_repo, &["backup", src_s]);
    let history = restic_snapshots(&restic_repo);
    assert_eq!(history.len(), 3);

    let repo = Repo::new();
    let dry = repo
        .cairn()
        .args(["import", "restic", "--json", "--dry-run", "--from-repo"])
        .arg(&restic_repo)
        .env("CAIRN_FROM_PASSWORD", RESTIC_PASS)
        .run()
        .ok()
        .json();
    assert_eq!((&dry["to_import"], dry["imported"].as_array().unwrap().len()), (&Value::from(3), 0), "{dry}");
    assert!(repo.snapshots().is_empty());
    let first = import(&repo, &restic_repo).ok().json();
    assert_eq!(first["imported"].as_array().unwrap().len(), 3, "{first}");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    let by_restic = |id: &str| -> Value {
        snaps
            .iter()
            .find(|s| s["labels"]["restic-snapshot"] == id)
            .unwrap_or_else(|| panic!("no snapshot imported from {id}: {snaps:?}"))
            .clone()
    };
    let rel = src.strip_prefix("/").unwrap();
    for r in &history {
        let rid = r["id"].as_str().unwrap();
        let s = by_restic(rid);
        assert_eq!(s["host"], r["hostname"], "{s}");
        assert_eq!(s["user"], r["username"], "{s}");
        assert_eq!(s["paths"], r["paths"], "{s}");
        assert_eq!(s["tags"], r.get("tags").cloned().unwrap_or(serde_json::json!([])), "{s}");
        assert_eq!(nanos(s["time"].as_str().unwrap()), nanos(r["time"].as_str().unwrap()), "{s} {r}");
        // The parent restic recorded is the parent cairn records.
        match r.get("parent").and_then(Value::as_str) {
            Some(p) => {
                assert_eq!(s["labels"]["restic-parent"], p, "{s}");
                assert_eq!(s["parent"], by_restic(p)["id"], "{s}");
            }
            None => assert!(s["parent"].is_null(), "{s}"),
        }
        let by_restic_restore = work.path().join(format!("restic-{rid}"));
        restic(&restic_repo, &["restore", rid, "--target", by_restic_restore.to_str().unwrap()]);
        let by_cairn = work.path().join(format!("cairn-{rid}"));
        repo.restore(s["id"].as_str().unwrap(), &by_cairn, &[]).ok();
        let options = CompareOptions { owner: is_root(), atime: false, ..CompareOptions::default() };
        assert_trees_equal(&by_restic_restore.join(rel), &by_cairn.join(rel), &options);
    }
    // The newest snapshot restores to the tree itself (its name that is not UTF-8 too), but
    // for the symlink whose target is not UTF-8: restic 0.14 stores targets as UTF-8 text.
    let newest = history.iter().max_by_key(|r| nanos(r["time"].as_str().unwrap())).unwrap();
    let restored = work.path().join(format!("cairn-{}", newest["id"].as_str().unwrap()));
    let mut ignore = vec![PathBuf::from("links/dangling")];
    // restic 0.14 writes sparse files' holes as zeros; cairn restores what it was given.
    ignore.push(tree.sparse.clone());
    let options = CompareOptions { owner: is_root(), atime: false, ignore, ..CompareOptions::default() };
    assert_trees_equal(&src, &restored.join(rel), &options);
    assert_eq!(
        std::fs::read(src.join(&tree.sparse)).unwrap(),
        std::fs::read(restored.join(rel).join(&tree.sparse)).unwrap()
    );
    if tree.xattrs_supported {
        assert_eq!(
            xattr::get(src.join(&tree.xattr_file), "user.cairn.origin").unwrap(),
            xattr::get(restored.join(rel).join(&tree.xattr_file), "user.cairn.origin").unwrap()
        );
    }

    // A second import finds nothing new; a new restic snapshot is imported alone.
    let again = import(&repo, &restic_repo).ok().json();
    assert_eq!((again["imported"].as_array().unwrap().len(), &again["already_there"]), (0, &Value::from(3)));
    change(&src, 3);
    restic(&restic_repo, &["backup", "--tag", "thursday", src_s]);
    let more = import(&repo, &restic_repo).ok().json();
    assert_eq!(more["imported"].as_array().unwrap().len(), 1, "{more}");
    assert_eq!(more["already_there"], 3, "{more}");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 4);
    // Only its changed files were read: the rest came from the snapshot its restic parent
    // was imported as, in the earlier run.
    let fourth = &more["imported"][0]["snapshot"];
    let fourth = snaps.iter().find(|s| s["id"] == *fourth).unwrap();
    let summary = &fourth["summary"];
    assert!(summary["files_new"].as_u64().unwrap() <= 2, "{summary}");
    assert!(summary["files_unchanged"].as_u64().unwrap() > 10, "{summary}");
    let by_cairn = work.path().join("cairn-fourth");
    repo.restore(fourth["id"].as_str().unwrap(), &by_cairn, &[]).ok();
    let options = CompareOptions {
        owner: is_root(),
        atime: false,
        ignore: vec![PathBuf::from("links/dangling"), tree.sparse.clone()],
        ..CompareOptions::default()
    };
    assert_trees_equal(&src, &by_cairn.join(rel), &options);
    // The activity log records each import.
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let imports: Vec<&Value> =
        log["entries"].as_array().unwrap().iter().filter(|e| e["operation"] == "import restic").collect();
    assert_eq!(imports.len(), 3, "{log}");
    assert_eq!(imports[0]["figures"]["snapshots_imported"], "3", "{log}");
    assert_eq!(imports[2]["figures"]["snapshots_already_there"], "3", "{log}");
}

#[test]
fn a_version_1_history_imports_and_restores_as_restic_restores_it() {
    import_history("1", 41);
}

#[test]
fn a_compressed_version_2_history_imports_and_restores_as_restic_restores_it() {
    import_history("2", 42);
}

#[test]
fn a_wrong_password_is_a_one_line_error() {
    let work = tempdir("cairn-restic-pw-");
    let restic_repo = work.path().join("restic");
    restic(&restic_repo, &["init"]);
    let repo = Repo::new();
    let out = repo
        .cairn()
        .args(["import", "restic", "--from-repo"])
        .arg(&restic_repo)
        .env("CAIRN_FROM_PASSWORD", "not it")
        .run()
        .expect_code(12);
    assert!(out.one_line_error().contains("no key of the restic repository"), "{}", out.context());
    // Nor is a folder without a restic repository taken for one.
    let out = repo
        .cairn()
        .args(["import", "restic", "--from-repo"])
        .arg(work.path())
        .env("CAIRN_FROM_PASSWORD", RESTIC_PASS)
        .run()
        .expect_code(10);
    assert!(out.one_line_error().contains("holds no restic repository"), "{}", out.context());
    assert!(repo.snapshots().is_empty());
}

fn packs(restic_repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(restic_repo.join("data")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn a_damaged_pack_fails_only_the_snapshot_that_needs_it() {
    let work = tempdir("cairn-restic-damage-");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.conf"), "a\n").unwrap();
    let restic_repo = work.path().join("restic");
    restic(&restic_repo, &["init", "--repository-version", "2"]);
    restic(&restic_repo, &["backup", src.to_str().unwrap()]);
    let before = packs(&restic_repo);
    write_random(&src.join("new.bin"), 7, 300_000);
    restic(&restic_repo, &["backup", src.to_str().unwrap()]);
    let mut history = restic_snapshots(&restic_repo);
    history.sort_by_key(|r| nanos(r["time"].as_str().unwrap()));
    let (good, damaged) = (history[0]["id"].as_str().unwrap(), history[1]["id"].as_str().unwrap());
    // The largest new pack holds new.bin's data: flip a byte in its middle.
    let new_pack = packs(&restic_repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&new_pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::set_permissions(&new_pack, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&new_pack, &bytes).unwrap();

    let repo = Repo::new();
    let out = repo
        .cairn()
        .args(["import", "restic", "--from-repo"])
        .arg(&restic_repo)
        .env("CAIRN_FROM_PASSWORD", RESTIC_PASS)
        .run()
        .expect_code(4);
    let pack_name = new_pack.file_name().unwrap().to_str().unwrap();
    assert!(out.stderr.contains(&format!("restic snapshot {}", &damaged[..8])), "{}", out.context());
    assert!(out.stderr.contains(pack_name) && out.stderr.contains("fails its MAC"), "{}", out.context());
    assert!(out.stderr.contains("could not be imported"), "{}", out.context());
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["labels"]["restic-snapshot"], good);
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["operation"], &last["figures"]["snapshots_failed"]),
        (&Value::from("import restic"), &Value::from("1"))
    );
}

#[test]
fn a_restic_repository_whose_index_is_lost_is_read_from_its_pack_headers() {
    let work = tempdir("cairn-restic-noindex-");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/gw.conf"), "port=8080\n").unwrap();
    write_random(&src.join("etc/store.bin"), 5, 1_500_000);
    let restic_repo = work.path().join("restic");
    restic(&restic_repo, &["init", "--repository-version", "2"]);
    restic(&restic_repo, &["backup", src.to_str().unwrap()]);
    let rid = restic_snapshots(&restic_repo)[0]["id"].as_str().unwrap().to_string();
    let by_restic = work.path().join("by-restic");
    restic(&restic_repo, &["restore", &rid, "--target", by_restic.to_str().unwrap()]);
    for f in std::fs::read_dir(restic_repo.join("index")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let repo = Repo::new();
    let out = import(&repo, &restic_repo).ok().json();
    assert_eq!(out["imported"].as_array().unwrap().len(), 1, "{out}");
    let by_cairn = work.path().join("by-cairn");
    repo.restore("latest", &by_cairn, &[]).ok();
    let rel = src.strip_prefix("/").unwrap();
    let options = CompareOptions { owner: is_root(), atime: false, ..CompareOptions::default() };
    assert_trees_equal(&by_restic.join(rel), &by_cairn.join(rel), &options);
}

mod servers;

/// A restic repository on a server (made in the server's storage by restic itself) is
/// imported through cairn's SFTP or S3 backend, and restores as restic restores it.
fn import_from_server(server: servers::Server) {
    let work = tempdir("cairn-restic-remote-");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("conf")).unwrap();
    std::fs::write(src.join("conf/a.xml"), "<a/>\n").unwrap();
    write_random(&src.join("conf/big.bin"), 11, 700_000);
    let storage = server.storage("restic");
    std::fs::create_dir_all(storage.parent().unwrap()).unwrap();
    restic(&storage, &["init", "--repository-version", "2"]);
    restic(&storage, &["backup", "--tag", "first", src.to_str().unwrap()]);
    write_random(&src.join("conf/big.bin"), 12, 800_000);
    restic(&storage, &["backup", "--tag", "second", src.to_str().unwrap()]);

    let repo = Repo::new();
    let mut cmd = repo
        .cairn()
        .args(["import", "restic", "--json", "--from-repo", &server.location("restic")])
        .env("CAIRN_FROM_PASSWORD", RESTIC_PASS);
    for (k, v) in &server.env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run().ok().json();
    assert_eq!(out["imported"].as_array().unwrap().len(), 2, "{out}");
    let rel = src.strip_prefix("/").unwrap();
    for r in restic_snapshots(&storage) {
        let rid = r["id"].as_str().unwrap();
        let snap = repo.snapshots().into_iter().find(|s| s["labels"]["restic-snapshot"] == rid).unwrap();
        assert_eq!(snap["tags"], r["tags"], "{snap}");
        let by_restic = work.path().join(format!("restic-{rid}"));
        restic(&storage, &["restore", rid, "--target", by_restic.to_str().unwrap()]);
        let by_cairn = work.path().join(format!("cairn-{rid}"));
        repo.restore(snap["id"].as_str().unwrap(), &by_cairn, &[]).ok();
        let options = CompareOptions { owner: is_root(), atime: false, ..CompareOptions::default() };
        assert_trees_equal(&by_restic.join(rel), &by_cairn.join(rel), &options);
    }
}

#[test]
fn a_restic_repository_over_sftp_is_imported() {
    import_from_server(servers::Server::sftp());
}

#[test]
fn a_restic_repository_in_s3_is_imported() {
    import_from_server(servers::Server::s3());
}
