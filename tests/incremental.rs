//! Change detection against the parent snapshot: unchanged files are not read again,
//! changed ones are, and --force / --parent choose what to compare with.

mod common;

use std::path::Path;
use std::process::Command;

fn cairn(repo: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(repo)
        .args(args)
        .arg("--json")
        .env("CAIRN_PASSWORD", "pw")
        .env_remove("CAIRN_REPOSITORY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    // The last line is the result; a long backup prints progress events before it.
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn unchanged_files_are_not_read_and_changed_ones_are() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    std::fs::create_dir_all(src.join("conf")).unwrap();
    for i in 0..30 {
        std::fs::write(src.join(format!("conf/f{i}.xml")), format!("<v>{i}</v>\n").repeat(100)).unwrap();
    }
    cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3"]);
    let s = src.to_str().unwrap();
    let first = cairn(&repo, &["backup", s]);
    assert_eq!(first["files_new"], 30);
    assert_eq!(first["parent"], serde_json::Value::Null);

    let second = cairn(&repo, &["backup", s]);
    assert_eq!(second["files_unchanged"], 30);
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["parent"], first["snapshot"]);

    // Same size, new content: mtime and ctime change, so the file is read again.
    std::fs::write(src.join("conf/f3.xml"), "<v>X</v>\n".repeat(100)).unwrap();
    std::fs::write(src.join("conf/new.xml"), "<new/>").unwrap();
    let third = cairn(&repo, &["backup", s]);
    assert_eq!(third["files_changed"], 1);
    assert_eq!(third["files_new"], 1);
    assert_eq!(third["files_unchanged"], 29);
    assert_eq!(third["bytes_read"], 900 + 6);

    let forced = cairn(&repo, &["backup", s, "--force"]);
    assert_eq!(forced["files_unchanged"], 0);
    assert_eq!(forced["files_new"], 31);
    assert!(forced["bytes_added"].as_u64().unwrap() < 2000, "forced re-read stored data again");

    // A different host has no parent unless one is named.
    let other = cairn(&repo, &["backup", s, "--host", "other"]);
    assert_eq!(other["files_unchanged"], 0);
    let prefix = &first["snapshot"].as_str().unwrap()[..10];
    let named = cairn(&repo, &["backup", s, "--host", "other2", "--parent", prefix]);
    assert_eq!(named["parent"], first["snapshot"]);
    assert_eq!(named["files_unchanged"], 29, "f3 changed since the first snapshot");

    // The restored tree holds the new content, not the parent's.
    let target = tmp.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["-r", repo.to_str().unwrap(), "restore", "latest", "--target", target.to_str().unwrap()])
        .env("CAIRN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(out.status.success());
    let restored = target.join(s.trim_start_matches('/')).join("conf/f3.xml");
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "<v>X</v>\n".repeat(100));
}

#[test]
fn an_unchanged_tree_stores_no_new_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::write(src.join("a/b/c/f.txt"), b"x").unwrap();
    cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3"]);
    let s = src.to_str().unwrap();
    cairn(&repo, &["backup", s]);
    // The first backup listed the folders, which changed their access times (relatime
    // updates an access time not newer than the modification time).
    let again = cairn(&repo, &["backup", s]);
    // The folders of the source (src, a, a/b, a/b/c) must all be reused. Only the root
    // tree may be new: it holds /tmp, whose times change whenever any test makes a
    // temporary folder there.
    assert!(again["chunks_new"].as_u64().unwrap() <= 1, "an unchanged tree stored new trees: {again}");
}

#[test]
fn xattrs_set_or_removed_between_backups_are_in_the_next_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    std::fs::create_dir_all(src.join("conf")).unwrap();
    let f = src.join("conf/a.xml");
    std::fs::write(&f, "<a/>").unwrap();
    if !common::require(
        xattr::set(&f, "user.cairn.test", b"1").is_ok(),
        "this filesystem refuses user xattrs",
    ) {
        return;
    }
    cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3"]);
    let s = src.to_str().unwrap();
    cairn(&repo, &["backup", s]);
    // Unchanged backups take xattrs from the parent; a change sets the ctime, so the next
    // backup reads them again even though the content is the same.
    xattr::set(&f, "user.cairn.test", b"2").unwrap();
    xattr::set(src.join("conf"), "user.cairn.dir", b"d").unwrap();
    let second = cairn(&repo, &["backup", s]);
    assert_eq!(second["files_changed"], 1, "{second}");
    xattr::remove(&f, "user.cairn.test").unwrap();
    cairn(&repo, &["backup", s]);
    let restore = |snap: &str, to: &str| {
        let target = tmp.path().join(to);
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["-r", repo.to_str().unwrap(), "restore", snap, "--target", target.to_str().unwrap()])
            .env("CAIRN_PASSWORD", "pw")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        target.join(s.trim_start_matches('/'))
    };
    let snaps: Vec<String> = cairn(&repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let middle = restore(&snaps[1], "mid");
    assert_eq!(xattr::get(middle.join("conf/a.xml"), "user.cairn.test").unwrap(), Some(b"2".to_vec()));
    assert_eq!(xattr::get(middle.join("conf"), "user.cairn.dir").unwrap(), Some(b"d".to_vec()));
    let last = restore("latest", "last");
    assert_eq!(xattr::get(last.join("conf/a.xml"), "user.cairn.test").unwrap(), None);
}
