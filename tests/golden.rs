//! The golden repositories, each made once with a fixed passphrase by the cairn that
//! introduced a format version, and committed under tests/fixtures/: golden-v1 (pack and
//! index version 1: a blob per frame) and golden-v2 (version 2: frames of several blobs).
//! Every later version must still list, check and restore each exactly. Make a new one
//! only when the format version changes, and keep the old ones:
//!     cargo test --test golden -- --ignored regenerate_golden_current

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSPHRASE: &str = "golden-passphrase-v1";

/// One golden repository: its folder under tests/fixtures, and the absolute path its
/// source tree was backed up from (also its tag's version).
struct Golden {
    version: u32,
}

impl Golden {
    const V1: Golden = Golden { version: 1 };
    const V2: Golden = Golden { version: 2 };
    /// The one this cairn writes.
    const CURRENT: Golden = Golden::V2;

    fn fixture(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/golden-v{}", self.version))
    }

    fn manifest(&self) -> PathBuf {
        self.fixture().with_extension("manifest")
    }

    fn source(&self) -> String {
        format!("/tmp/cairn-golden-v{}-src", self.version)
    }
}

fn cairn(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("CAIRN_PASSWORD", PASSPHRASE)
        .env_remove("CAIRN_REPOSITORY")
        .output()
        .expect("run cairn")
}

/// A line per entry: path, kind, mode, mtime, size and content hash or link target.
fn manifest(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else {
                let data = std::fs::read(&p).unwrap();
                format!("file {} {}", data.len(), blake3::hash(&data).to_hex())
            };
            let mtime = if md.file_type().is_symlink() || md.is_dir() { 0 } else { md.mtime() };
            out.insert(rel, format!("{what} mode={:o} mtime={mtime}", md.mode() & 0o7777));
        }
    }
    out
}

fn write_manifest(m: &BTreeMap<Vec<u8>, String>) -> String {
    m.iter().map(|(k, v)| format!("{}\t{v}\n", blake3_hex_name(k))).collect()
}

/// Names may not be UTF-8: store them hex-encoded in the manifest.
fn blake3_hex_name(name: &[u8]) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

fn make_source(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("conf/groups/instance-1")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    for i in 0..20 {
        let body = format!(
            "<entityStore id=\"{i}\">\n{}</entityStore>\n",
            "  <policy name=\"p\"/>\n".repeat(i * 10)
        );
        std::fs::write(root.join(format!("conf/groups/instance-1/store-{i:02}.xml")), body).unwrap();
    }
    let mut big = vec![0u8; 300_000];
    blake3::Hasher::new().update(b"golden").finalize_xof().fill(&mut big);
    std::fs::write(root.join("conf/ext.jar"), &big).unwrap();
    std::fs::write(root.join("conf/empty.properties"), b"").unwrap();
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"name-\xff\xfe.txt")), b"not utf-8").unwrap();
    std::os::unix::fs::symlink("groups/instance-1/store-01.xml", root.join("conf/link.xml")).unwrap();
    std::fs::write(root.join("conf/setuid-tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("conf/setuid-tool"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    for p in ["conf/ext.jar", "conf/empty.properties", "conf/setuid-tool"] {
        let f = std::fs::File::options().write(true).open(root.join(p)).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600)).unwrap();
    }
}

#[test]
#[ignore = "run by hand to make the fixture of a new format version"]
fn regenerate_golden_current() {
    let g = Golden::CURRENT;
    let source = g.source();
    make_source(Path::new(&source));
    let repo = g.fixture();
    let _ = std::fs::remove_dir_all(&repo);
    let ok = |o: std::process::Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3", "--pack-size", "1M"]));
    let tag = format!("v{}", g.version);
    ok(cairn(
        &repo,
        &["backup", &source, "--host", "golden", "--tag", &tag, "--time", "2026-11-24T06:00:00Z"],
    ));
    std::fs::write(g.manifest(), write_manifest(&manifest(Path::new(&source)))).unwrap();
}

/// Copy a golden repository and check that it lists, checks and restores exactly.
fn still_reads(g: &Golden) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&g.fixture(), &repo);

    let out = cairn(&repo, &["snapshots", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snap = &list.as_array().unwrap()[0];
    assert_eq!(snap["host"], "golden");
    assert_eq!(snap["tags"][0], format!("v{}", g.version));
    assert_eq!(snap["time"], "2026-11-24T06:00:00Z");
    assert_eq!(snap["paths"][0], g.source());

    let check = cairn(&repo, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // The activity log written by that version reads back with its chain intact.
    let log = cairn(&repo, &["log", "--json"]);
    assert!(log.status.success(), "{}", String::from_utf8_lossy(&log.stderr));
    let log: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    assert_eq!(log["entries"][0]["operation"], "backup");
    assert_eq!(log["entries"][0]["seq"], 0);

    let target = tmp.path().join("restore");
    let out = cairn(&repo, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = manifest(&target.join(g.source().trim_start_matches('/')));
    let expected = std::fs::read_to_string(g.manifest()).unwrap();
    assert_eq!(write_manifest(&restored), expected);
    tmp
}

/// The version byte of every pack of a repository, so each fixture is known to keep
/// testing the version it was made for.
fn pack_versions(repo: &Path) -> Vec<u8> {
    let mut packs = Vec::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            packs.push(std::fs::read(f.unwrap().path()).unwrap()[4]);
        }
    }
    packs.sort();
    packs
}

#[test]
fn golden_v1_still_reads() {
    let packs = pack_versions(&Golden::V1.fixture());
    assert!(!packs.is_empty() && packs.iter().all(|&v| v == 1), "{packs:?}");
    still_reads(&Golden::V1);
}

#[test]
fn golden_v2_still_reads() {
    let packs = pack_versions(&Golden::V2.fixture());
    assert!(!packs.is_empty() && packs.iter().all(|&v| v == 2), "{packs:?}");
    still_reads(&Golden::V2);
}

/// A version 1 repository that this cairn backs up into holds both versions side by
/// side: both snapshots restore, and check reads every pack.
#[test]
fn a_version_1_repository_takes_packs_of_the_current_version() {
    let tmp = still_reads(&Golden::V1);
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("new-src");
    make_source(&src);
    std::fs::write(src.join("conf/added.xml"), "<added/>\n".repeat(5000)).unwrap();
    let out = cairn(&repo, &["backup", src.to_str().unwrap(), "--host", "golden"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = cairn(&repo, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let mut versions = pack_versions(&repo);
    versions.dedup();
    assert_eq!(versions, vec![1, cairn::format::pack::VERSION]);
    let target = tmp.path().join("restore-new");
    let out = cairn(&repo, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = manifest(&target.join(src.strip_prefix("/").unwrap()));
    assert_eq!(restored, manifest(&src));
}
