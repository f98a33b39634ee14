//! The golden repositories, each made once with a fixed passphrase by the cairn that
//! introduced a format version, and committed under tests/fixtures/: golden-v1 (pack and
//! index version 1: a blob per frame), golden-v2 (version 2: frames of several blobs) and
//! golden-v3 (envelope version 2, pack version 3, tree version 2: a history of several
//! snapshots, index files, two keys and log entries; see golden/v3.rs), and
//! golden-content-rotation (key material version 3: a content key rotation stopped
//! halfway, below), and golden-maintenance (key material version 4, config version 3,
//! envelope version 3 and snapshot files with summaries, below). Every later
//! version must still list, check and restore each exactly, and prune, copy and change
//! the password of a copy of each. Make a new one only when a format version changes,
//! and keep the old ones (as root, for owners and devices):
//!     cargo test --test golden -- --ignored regenerate_golden_current

mod common;
#[path = "golden/v3.rs"]
mod v3;

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
    const V3: Golden = Golden { version: 3 };
    /// The one this cairn writes.
    const CURRENT: Golden = Golden::V3;

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

/// Run cairn with a passphrase and more environment; expect success, return stdout.
fn cairn_ok(repo: &Path, passphrase: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("-r").arg(repo).args(args).env("CAIRN_PASSWORD", passphrase).env("TZ", "UTC");
    for k in ["CAIRN_REPOSITORY", "CAIRN_PASSWORD_FILE", "CAIRN_KEY_FILE", "CAIRN_NEW_PASSWORD"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cairn");
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const KDF: [&str; 4] = ["--kdf-memory", "64M", "--kdf-iterations", "3"];

/// Back up `source` into the v3 fixture being made, check that it restores identical to
/// the source, and return its id.
fn witnessed_backup(repo: &Path, passphrase: &str, source: &str, args: &[&str]) -> String {
    let out = cairn_ok(repo, passphrase, &[], &[&["backup", source, "--json"][..], args].concat());
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let id = summary["snapshot"].as_str().unwrap().to_string();
    let target = tempfile::tempdir().unwrap();
    cairn_ok(repo, PASSPHRASE, &[], &["restore", &id, "--target", target.path().to_str().unwrap()]);
    common::assert_same_tree(Path::new(source), &target.path().join(source.trim_start_matches('/')));
    id
}

#[test]
#[ignore = "run by hand (as root) to make the fixture of a new format version"]
fn regenerate_golden_current() {
    assert!(common::is_root(), "owners and devices need root");
    let g = Golden::CURRENT;
    let repo = g.fixture();
    let _ = std::fs::remove_dir_all(&repo);
    cairn_ok(&repo, PASSPHRASE, &[], &[&["init", "--pack-size", "1M"][..], &KDF].concat());
    let mut manifest = String::new();
    let (src, host_src) = (Path::new(v3::SOURCE), Path::new(v3::HOST_SOURCE));
    v3::make_source(src);
    witnessed_backup(
        &repo,
        PASSPHRASE,
        v3::SOURCE,
        &["--host", "golden", "--tag", "v3", "--time", v3::TIMES[0]],
    );
    manifest += &format!("# snapshot {}\n{}", v3::TIMES[0], v3::full_manifest(src));
    v3::change_source(src);
    let second = witnessed_backup(
        &repo,
        PASSPHRASE,
        v3::SOURCE,
        &["--host", "golden", "--tag", "v3", "--time", v3::TIMES[1]],
    );
    manifest += &format!("# snapshot {}\n{}", v3::TIMES[1], v3::full_manifest(src));
    let new_pw = [("CAIRN_NEW_PASSWORD", v3::BACKUP_ONLY_PASSPHRASE)];
    cairn_ok(&repo, PASSPHRASE, &new_pw, &[&["key", "add", "--backup-only"][..], &KDF].concat());
    v3::make_host_source(host_src);
    witnessed_backup(
        &repo,
        v3::BACKUP_ONLY_PASSPHRASE,
        v3::HOST_SOURCE,
        &["--host", "golden-host", "--tag", "v3-backup-only", "--time", v3::TIMES[2]],
    );
    manifest += &format!("# snapshot {}\n{}", v3::TIMES[2], v3::full_manifest(host_src));
    cairn_ok(&repo, PASSPHRASE, &[], &["tag", &second, "--add", "kept", "--label", "owner=platform"]);
    // A backup whose data only prune can free, forgotten.
    common::write_random(&src.join("data/scratch.bin"), 16, 60_000);
    let scratch = witnessed_backup(
        &repo,
        PASSPHRASE,
        v3::SOURCE,
        &["--host", "golden", "--time", "2026-12-13T06:00:00Z"],
    );
    cairn_ok(&repo, PASSPHRASE, &[], &["forget", &scratch]);
    let log: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["log", "--json"])).unwrap();
    let ops: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["operation"].as_str().unwrap()).collect();
    manifest += &format!("# log {}\n", ops.join(","));
    std::fs::write(g.manifest(), manifest).unwrap();
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

// ---------------------------------------------------------------------------------------
// Golden-v3: a history, compared entry by entry
// ---------------------------------------------------------------------------------------

/// What each snapshot of a golden repository must restore to: (time, source path, the
/// manifest of that source when it was backed up).
fn expected_snapshots(g: &Golden) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(g.manifest()).unwrap();
    if g.version < 3 {
        return vec![("2026-11-24T06:00:00Z".into(), g.source(), text)];
    }
    let (sections, _) = v3::parse(&text);
    assert_eq!(sections.len(), v3::TIMES.len(), "a manifest section per snapshot");
    v3::TIMES
        .iter()
        .map(|t| {
            let source = if *t == v3::TIMES[2] { v3::HOST_SOURCE } else { v3::SOURCE };
            (t.to_string(), source.to_string(), sections[*t].clone())
        })
        .collect()
}

/// A restored tree described the way its golden manifest describes the source.
fn describe(g: &Golden, root: &Path) -> String {
    if g.version < 3 {
        write_manifest(&manifest(root))
    } else {
        v3::full_manifest(root)
    }
}

/// Every snapshot of `repo` (opened with `passphrase`) restores to what the golden
/// repository's manifest says, and there is one for each time the manifest names.
fn restores_as_made(g: &Golden, repo: &Path, passphrase: &str) -> usize {
    let list: serde_json::Value =
        serde_json::from_str(&cairn_ok(repo, passphrase, &[], &["snapshots", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    let expected = expected_snapshots(g);
    assert_eq!(list.len(), expected.len(), "{list:?}");
    for (time, source, want) in expected {
        let snap = list
            .iter()
            .find(|s| s["time"] == time.as_str())
            .unwrap_or_else(|| panic!("no snapshot at {time}"));
        assert_eq!(snap["paths"][0], source.as_str());
        let target = tempfile::tempdir().unwrap();
        let id = snap["id"].as_str().unwrap();
        cairn_ok(repo, passphrase, &[], &["restore", id, "--target", target.path().to_str().unwrap()]);
        let got = describe(g, &target.path().join(source.trim_start_matches('/')));
        if got != want {
            let diff = similar::TextDiff::from_lines(&want, &got).unified_diff().to_string();
            panic!("snapshot at {time} of {} restores otherwise than it was made:\n{diff}", repo.display());
        }
    }
    list.len()
}

/// The v3 repository with the library: its keys, who wrote each snapshot, its records,
/// and the folder stored in parts.
fn v3_records(repo: &Path) {
    use cairn::format::envelope::WrittenBy;
    let r =
        cairn::Repository::open(repo.to_str().unwrap(), PASSPHRASE.as_bytes(), &Default::default()).unwrap();
    let mut kinds: Vec<&str> = r.list_keys().unwrap().iter().map(|k| k.kind.name()).collect();
    kinds.sort();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_ne!(kinds[0], kinds[1], "a full key and a backup-only key: {kinds:?}");
    let snaps = r.snapshots().unwrap();
    let by_time = |t: &str| {
        let ts: jiff::Timestamp = t.parse().unwrap();
        snaps
            .iter()
            .find(|(_, s)| s.time.secs == ts.as_second())
            .unwrap_or_else(|| panic!("no snapshot at {t}"))
    };
    let (_, first) = by_time(v3::TIMES[0]);
    assert_eq!(
        (first.host.as_str(), first.tags.clone(), first.written_by),
        ("golden", vec!["v3".to_string()], WrittenBy::FullKey)
    );
    let (_, second) = by_time(v3::TIMES[1]);
    assert_eq!(second.tags, vec!["v3".to_string(), "kept".to_string()]);
    assert_eq!(second.labels, vec![("owner".to_string(), "platform".to_string())]);
    assert!(second.original.is_some(), "a tagged snapshot names its original");
    assert_eq!(second.written_by, WrittenBy::FullKey);
    let (_, third) = by_time(v3::TIMES[2]);
    assert_eq!((third.host.as_str(), third.written_by), ("golden-host", WrittenBy::BackupOnlyKey));
    // Down to the folder of 1,100 long symlinks: stored as a head and its parts.
    let index = cairn::index::Index::load(&r).unwrap();
    let reader = cairn::pack::PackReader::new(&r);
    let mut tree = first.tree;
    for name in v3::SOURCE.trim_start_matches('/').split('/').chain([v3::WIDE]) {
        let t = cairn::tree::load_tree(&reader, &index, &tree).unwrap();
        match &t.find(name.as_bytes()).unwrap_or_else(|| panic!("no {name}")).kind {
            cairn::format::tree::NodeKind::Dir { tree: sub } => tree = *sub,
            other => panic!("{name} is a {}", other.name()),
        }
    }
    let (wide, parts) = cairn::tree::load_tree_with_parts(&reader, &index, &tree).unwrap();
    assert!(parts.len() >= 2, "the wide folder is stored in {} parts", parts.len());
    assert_eq!(wide.nodes.len(), 1100);
}

#[test]
fn golden_v3_holds_its_whole_history() {
    if !common::require(common::is_root(), "golden-v3 restores owners and devices: run as root") {
        return;
    }
    let g = Golden::V3;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&g.fixture(), &repo);
    let packs = pack_versions(&repo);
    assert!(packs.len() >= 4 && packs.iter().all(|&v| v == 3), "{packs:?}");
    let count = |dir: &str| std::fs::read_dir(repo.join(dir)).unwrap().count();
    assert!(count("index") >= 4, "an index file per backup: {}", count("index"));
    assert_eq!(count("keys"), 2);
    v3_records(&repo);
    let log: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["log", "--json"])).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let ops: Vec<String> = entries.iter().map(|e| e["operation"].as_str().unwrap().to_string()).collect();
    let (_, want_ops) = v3::parse(&std::fs::read_to_string(g.manifest()).unwrap());
    assert_eq!(ops, want_ops);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "the log's entries are numbered without a gap");
    }
    // Check after reading the log: it adds an entry of its own.
    cairn_ok(&repo, PASSPHRASE, &[], &["check", "--read-data"]);
    assert_eq!(restores_as_made(&g, &repo, PASSPHRASE), 3);
}

/// On a copy of a golden repository: prune (leaving no unused byte), copy every
/// snapshot into a new repository, change the password and rotate the keys (then the
/// content keys too); then every snapshot of both restores exactly as it was made, and
/// both check clean.
fn maintenance_on_a_copy(g: &Golden) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, dst) = (tmp.path().join("repo"), tmp.path().join("copy"));
    common::copy_dir(&g.fixture(), &repo);
    let pruned: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["prune", "--max-unused", "0", "--json"]))
            .unwrap();
    if g.version >= 3 {
        let touched = pruned["packs_delete"].as_u64().unwrap() + pruned["packs_repack"].as_u64().unwrap();
        assert!(touched > 0, "the forgotten backup's data is pruned: {pruned}");
    }
    cairn_ok(&repo, PASSPHRASE, &[], &["check", "--read-data"]);

    cairn_ok(&dst, "copy-passphrase", &[], &[&["init"][..], &KDF].concat());
    let from = [("CAIRN_FROM_PASSWORD", PASSPHRASE)];
    cairn_ok(&dst, "copy-passphrase", &from, &["copy", "--from-repo", repo.to_str().unwrap()]);

    let new_pw = [("CAIRN_NEW_PASSWORD", "golden-new-passphrase")];
    cairn_ok(&repo, PASSPHRASE, &new_pw, &[&["key", "passwd"][..], &KDF].concat());
    let old = cairn(&repo, &["snapshots"]);
    assert_eq!(old.status.code(), Some(12), "the old password no longer opens it");

    // Key rotation of an old repository (objects of older envelope and pack versions): a
    // version 1 key file of another holder stops it until its holder upgrades it.
    if g.version >= 3 {
        let refused = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["-r", repo.to_str().unwrap(), "key", "rotate"])
            .env("CAIRN_PASSWORD", "golden-new-passphrase")
            .env_remove("CAIRN_REPOSITORY")
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{refused:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("key passwd"), "{refused:?}");
        // A backup-only key cannot change its own key file: the owner replaces it.
        let old: serde_json::Value =
            serde_json::from_str(&cairn_ok(&repo, "golden-new-passphrase", &[], &["key", "list", "--json"]))
                .unwrap();
        let old = old.as_array().unwrap().iter().find(|k| k["kind"] == "backup-only").unwrap()["id"].clone();
        let new_pw = [("CAIRN_NEW_PASSWORD", v3::BACKUP_ONLY_PASSPHRASE)];
        cairn_ok(
            &repo,
            "golden-new-passphrase",
            &new_pw,
            &[&["key", "add", "--backup-only"][..], &KDF].concat(),
        );
        cairn_ok(&repo, "golden-new-passphrase", &[], &["key", "remove", old.as_str().unwrap()]);
    }
    let rotated: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, "golden-new-passphrase", &[], &["key", "rotate", "--json"]))
            .unwrap();
    assert_eq!(rotated["epoch"], 1, "{rotated}");
    assert!(
        pack_versions(&repo).iter().all(|v| *v == 4),
        "every pack sealed anew: {:?}",
        pack_versions(&repo)
    );
    let n = restores_as_made(g, &repo, "golden-new-passphrase");
    // Renewing the content keys reads every snapshot of the old encodings back (trees of
    // version 1 too) and stores it anew under new ids and cut points.
    let renewed: serde_json::Value = serde_json::from_str(&cairn_ok(
        &repo,
        "golden-new-passphrase",
        &[],
        &["key", "rotate", "--content-keys", "--json"],
    ))
    .unwrap();
    assert_eq!(
        (
            renewed["epoch"].as_u64(),
            renewed["content_keys_renewed"].as_bool(),
            renewed["stored_anew"].as_u64()
        ),
        (Some(2), Some(true), Some(n as u64)),
        "{renewed}"
    );
    assert_eq!(restores_as_made(g, &repo, "golden-new-passphrase"), n);

    assert_eq!(restores_as_made(g, &dst, "copy-passphrase"), n);
    cairn_ok(&repo, "golden-new-passphrase", &[], &["check", "--read-data"]);
    cairn_ok(&dst, "copy-passphrase", &[], &["check", "--read-data"]);
}

#[test]
fn prune_copy_key_passwd_and_key_rotate_on_a_copy_of_golden_v1() {
    maintenance_on_a_copy(&Golden::V1);
}

#[test]
fn prune_copy_key_passwd_and_key_rotate_on_a_copy_of_golden_v2() {
    maintenance_on_a_copy(&Golden::V2);
}

#[test]
fn prune_copy_key_passwd_and_key_rotate_on_a_copy_of_golden_v3() {
    if !common::require(common::is_root(), "golden-v3 restores owners and devices: run as root") {
        return;
    }
    maintenance_on_a_copy(&Golden::V3);
}

/// The golden repository of key material version 3: a content key rotation stopped after
/// its first snapshot was stored anew (`rotate:after-stored-anew@1`), so its key files
/// hold two content roots and it holds snapshots of both: the first twice (its old and
/// its new copy), the second under the old root only. Made once, by the cairn that
/// introduced material version 3, with a build that has failpoints:
///     cargo test --features failpoints --test golden -- --ignored regenerate_golden_content_rotation
const CONTENT_ROTATION: &str = "golden-content-rotation";
const CONTENT_ROTATION_SOURCE: &str = "/tmp/cairn-golden-content-rotation-src";
const CONTENT_ROTATION_TIMES: [&str; 2] = ["2026-12-07T06:00:00Z", "2026-12-07T12:00:00Z"];
const CONTENT_ROTATION_BACKUP_ONLY: &str = "golden-backup-only-passphrase";

fn content_rotation_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(CONTENT_ROTATION)
}

#[test]
#[ignore = "run by hand, with --features failpoints, to make the fixture of key material version 3"]
fn regenerate_golden_content_rotation() {
    let repo = content_rotation_fixture();
    let _ = std::fs::remove_dir_all(&repo);
    let src = Path::new(CONTENT_ROTATION_SOURCE);
    make_source(src);
    cairn_ok(&repo, PASSPHRASE, &[], &[&["init", "--pack-size", "1M"][..], &KDF].concat());
    let mut text = String::new();
    for (i, time) in CONTENT_ROTATION_TIMES.iter().enumerate() {
        if i > 0 {
            std::fs::write(src.join("conf/after-first.txt"), b"written between the two backups").unwrap();
        }
        cairn_ok(
            &repo,
            PASSPHRASE,
            &[],
            &["backup", CONTENT_ROTATION_SOURCE, "--host", "golden", "--time", time],
        );
        text += &format!("# snapshot {time}\n{}", write_manifest(&manifest(src)));
    }
    let new_pw = [("CAIRN_NEW_PASSWORD", CONTENT_ROTATION_BACKUP_ONLY)];
    cairn_ok(&repo, PASSPHRASE, &new_pw, &[&["key", "add", "--backup-only"][..], &KDF].concat());
    let killed = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["-r", repo.to_str().unwrap(), "key", "rotate", "--content-keys"])
        .env("CAIRN_PASSWORD", PASSPHRASE)
        .env("CAIRN_FAILPOINT", "rotate:after-stored-anew@1")
        .env_remove("CAIRN_REPOSITORY")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&killed.stderr).contains("failpoint rotate:after-stored-anew"),
        "this needs a build with failpoints: {killed:?}"
    );
    // The killed process's lock, as `cairn unlock` would remove it.
    for e in std::fs::read_dir(repo.join("locks")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(content_rotation_fixture().with_extension("manifest"), text).unwrap();
}

/// What each snapshot time of a fixture made from one source at several times (its
/// manifest holds one section per time) restores to.
fn manifests_by_time(fixture: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixture.with_extension("manifest")).unwrap();
    text.split("# snapshot ")
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (time, body) = s.split_once('\n').unwrap();
            (time.to_string(), body.to_string())
        })
        .collect()
}

fn content_rotation_restores(repo: &Path, passphrase: &str) -> usize {
    restores_by_time(&content_rotation_fixture(), CONTENT_ROTATION_SOURCE, repo, passphrase)
}

/// Every snapshot of `repo` (a copy of `fixture`, backed up from `source`) restores to
/// the manifest of its time; returns how many there are.
fn restores_by_time(fixture: &Path, source: &str, repo: &Path, passphrase: &str) -> usize {
    let want = manifests_by_time(fixture);
    let list: serde_json::Value =
        serde_json::from_str(&cairn_ok(repo, passphrase, &[], &["snapshots", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    for snap in list {
        let time = snap["time"].as_str().unwrap();
        let target = tempfile::tempdir().unwrap();
        cairn_ok(
            repo,
            passphrase,
            &[],
            &["restore", snap["id"].as_str().unwrap(), "--target", target.path().to_str().unwrap()],
        );
        let got = write_manifest(&manifest(&target.path().join(source.trim_start_matches('/'))));
        assert_eq!(
            &got,
            want.get(time).unwrap_or_else(|| panic!("no manifest for {time}")),
            "snapshot at {time}"
        );
    }
    list.len()
}

/// Key material version 3 stays readable: the stopped rotation's repository lists and
/// restores every snapshot (of both content roots) as made, waits with `rewrite` (the key
/// holds two roots), and a plain `key rotate` finishes the rotation; then the two
/// snapshots restore as made, check reads clean, and the backup-only key backs up.
#[test]
fn golden_content_rotation_reads_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&content_rotation_fixture(), &repo);
    assert_eq!(content_rotation_restores(&repo, PASSPHRASE), 3, "the first snapshot twice, the second once");
    let rewrite = cairn(&repo, &["rewrite", "--exclude", "*.none", "--all"]);
    assert_eq!(rewrite.status.code(), Some(11), "{rewrite:?}");
    let done: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["key", "rotate", "--json"])).unwrap();
    assert_eq!(
        (done["content_keys_renewed"].as_bool(), done["stored_anew"].as_u64()),
        (Some(true), Some(2)),
        "{done}"
    );
    assert_eq!(content_rotation_restores(&repo, PASSPHRASE), 2);
    cairn_ok(&repo, PASSPHRASE, &[], &["check", "--read-data"]);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"after the rotation").unwrap();
    cairn_ok(&repo, CONTENT_ROTATION_BACKUP_ONLY, &[], &["backup", src.path().to_str().unwrap()]);
}

/// The maintenance key's repository: config version 3, a maintenance key and a backup-only
/// key of material version 4, snapshot files with summaries from a full key, from the
/// backup-only key and from before maintenance was enabled (given one when it was), and
/// a bare snapshot from a backup-only key kept apart before then (version 2 material).
/// Made once, by the cairn that introduced them:
///     cargo test --test golden -- --ignored regenerate_golden_maintenance
const MAINTENANCE: &str = "golden-maintenance";
const MAINTENANCE_SOURCE: &str = "/tmp/cairn-golden-maintenance-src";
const MAINTENANCE_TIMES: [&str; 4] =
    ["2026-12-01T06:00:00Z", "2026-12-01T12:00:00Z", "2026-12-02T06:00:00Z", "2026-12-03T06:00:00Z"];
const MAINTENANCE_WRITER: &str = "golden-writer-passphrase";
const MAINTENANCE_KEEPER: &str = "golden-keeper-passphrase";

fn maintenance_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(MAINTENANCE)
}

#[test]
#[ignore = "run by hand to make the fixture of key material version 4 and config version 3"]
fn regenerate_golden_maintenance() {
    let repo = maintenance_fixture();
    let _ = std::fs::remove_dir_all(&repo);
    let src = Path::new(MAINTENANCE_SOURCE);
    make_source(src);
    let apart_dir = tempfile::tempdir().unwrap();
    let apart = apart_dir.path().join("apart.key");
    cairn_ok(&repo, PASSPHRASE, &[], &[&["init", "--pack-size", "1M"][..], &KDF].concat());
    let add = |pw: &str, extra: &[&str]| {
        cairn_ok(
            &repo,
            PASSPHRASE,
            &[("CAIRN_NEW_PASSWORD", pw)],
            &[&["key", "add"][..], extra, &KDF].concat(),
        );
    };
    add(MAINTENANCE_WRITER, &["--backup-only"]);
    add("golden-apart-passphrase", &["--backup-only", "--to-file", apart.to_str().unwrap()]);
    let mut text = String::new();
    for (i, time) in MAINTENANCE_TIMES.iter().enumerate() {
        std::fs::write(src.join("conf/round.txt"), format!("round {i}")).unwrap();
        let (pw, env): (&str, Vec<(&str, &str)>) = match i {
            0 | 1 => (PASSPHRASE, vec![]),
            2 => (MAINTENANCE_WRITER, vec![]),
            _ => ("golden-apart-passphrase", vec![("CAIRN_KEY_FILE", apart.to_str().unwrap())]),
        };
        if i == 1 {
            add(MAINTENANCE_KEEPER, &["--maintenance"]);
        }
        cairn_ok(&repo, pw, &env, &["backup", MAINTENANCE_SOURCE, "--host", "golden", "--time", time]);
        text += &format!("# snapshot {time}\n{}", write_manifest(&manifest(src)));
    }
    std::fs::write(maintenance_fixture().with_extension("manifest"), text).unwrap();
}

/// The snapshots the maintenance key lists (it cannot judge the bare one: exit 4).
fn listed_by_keeper(repo: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["-r", repo.to_str().unwrap(), "snapshots", "--json"])
        .env("CAIRN_PASSWORD", MAINTENANCE_KEEPER)
        .env_remove("CAIRN_REPOSITORY")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 4)), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array().unwrap().iter().map(|s| s["time"].as_str().unwrap().to_string()).collect()
}

/// Key material version 4, config version 3, envelope version 3 and snapshot files with
/// summaries stay readable: every snapshot restores as made and checks clean; the
/// maintenance key lists the three with a summary; after `repair maintenance` (which gives
/// every snapshot its references records, none having them) all four,
/// and its forget keeps what a full key's keeps; both backup-only keys still back up;
/// a key rotation carries the maintenance key on.
#[test]
fn golden_maintenance_reads_and_forgets_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&maintenance_fixture(), &repo);
    let fixture = maintenance_fixture();
    assert_eq!(restores_by_time(&fixture, MAINTENANCE_SOURCE, &repo, PASSPHRASE), 4);
    cairn_ok(&repo, PASSPHRASE, &[], &["check", "--read-data"]);
    assert_eq!(listed_by_keeper(&repo), MAINTENANCE_TIMES[..3].to_vec());
    let done: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["repair", "maintenance", "--json"]))
            .unwrap();
    // Its summaries are from before references records: each gets its records and is
    // sealed anew, the bare one too.
    assert_eq!(done["summaries_written"], 4);
    assert_eq!(listed_by_keeper(&repo), MAINTENANCE_TIMES.to_vec());
    let by_full = tmp.path().join("by-full");
    common::copy_dir(&repo, &by_full);
    cairn_ok(&by_full, PASSPHRASE, &[], &["forget", "--keep-daily", "2"]);
    cairn_ok(&repo, MAINTENANCE_KEEPER, &[], &["forget", "--keep-daily", "2"]);
    let names = |r: &Path| {
        let mut n: Vec<_> =
            std::fs::read_dir(r.join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&repo), names(&by_full));
    assert!(names(&repo).len() < 4);
    restores_by_time(&fixture, MAINTENANCE_SOURCE, &repo, PASSPHRASE);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"later").unwrap();
    cairn_ok(&repo, MAINTENANCE_WRITER, &[], &["backup", src.path().to_str().unwrap()]);
    cairn_ok(&repo, PASSPHRASE, &[], &["key", "rotate"]);
    assert_eq!(listed_by_keeper(&repo).len(), names(&repo).len());
    cairn_ok(&repo, PASSPHRASE, &[], &["check", "--read-data"]);
}

/// References records: a repository with maintenance from its first snapshot, so every
/// snapshot's records were written by its backup (a full key's and a backup-only key's),
/// in references packs (pack version 5, class 2) beside data packs with maintenance
/// tables (class 1), named by index files of version 3; then a tag (the record carried)
/// and a full key's prune. Made once, by the cairn that introduced them:
///     cargo test --test golden -- --ignored regenerate_golden_records
const RECORDS: &str = "golden-records";
const RECORDS_SOURCE: &str = "/tmp/cairn-golden-records-src";
const RECORDS_TIMES: [&str; 3] = ["2026-12-05T06:00:00Z", "2026-12-06T06:00:00Z", "2026-12-07T06:00:00Z"];

fn records_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(RECORDS)
}

#[test]
#[ignore = "run by hand to make the fixture of references records and pack version 5"]
fn regenerate_golden_records() {
    let repo = records_fixture();
    let _ = std::fs::remove_dir_all(&repo);
    let src = Path::new(RECORDS_SOURCE);
    make_source(src);
    cairn_ok(&repo, PASSPHRASE, &[], &[&["init", "--pack-size", "1M"][..], &KDF].concat());
    for (pw, extra) in [(MAINTENANCE_KEEPER, "--maintenance"), (MAINTENANCE_WRITER, "--backup-only")] {
        cairn_ok(
            &repo,
            PASSPHRASE,
            &[("CAIRN_NEW_PASSWORD", pw)],
            &[&["key", "add", extra][..], &KDF].concat(),
        );
    }
    let mut text = String::new();
    for (i, time) in RECORDS_TIMES.iter().enumerate() {
        std::fs::write(src.join("conf/round.txt"), format!("round {i}")).unwrap();
        std::fs::create_dir_all(src.join(format!("conf/groups/instance-{}", i + 2))).unwrap();
        std::fs::write(src.join(format!("conf/groups/instance-{}/store.xml", i + 2)), format!("<s{i}/>"))
            .unwrap();
        let pw = if i == 1 { MAINTENANCE_WRITER } else { PASSPHRASE };
        cairn_ok(&repo, pw, &[], &["backup", RECORDS_SOURCE, "--host", "golden", "--time", time]);
        text += &format!("# snapshot {time}\n{}", write_manifest(&manifest(src)));
    }
    cairn_ok(&repo, PASSPHRASE, &[], &["tag", "--add", "golden", "latest"]);
    cairn_ok(&repo, PASSPHRASE, &[], &["prune", "--max-unused", "0"]);
    std::fs::write(records_fixture().with_extension("manifest"), text).unwrap();
}

/// The version 5 packs of a repository, by class.
fn version_5_classes(repo: &Path) -> BTreeMap<u8, usize> {
    let mut out = BTreeMap::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let head = std::fs::read(f.unwrap().path()).unwrap();
            if head[4] == 5 {
                *out.entry(head[7]).or_default() += 1;
            }
        }
    }
    out
}

/// Pack version 5 (both classes), index files of version 3 and summaries naming their
/// root records stay readable: every snapshot restores as made; both keys' checks find the
/// records whole and matching their trees; `repair maintenance` finds nothing to do; a
/// full key's prune after a forget keeps the records of what stays; a new backup and a
/// key rotation carry them on.
#[test]
fn golden_records_read_check_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&records_fixture(), &repo);
    let classes = version_5_classes(&repo);
    assert!(
        classes.get(&1).is_some_and(|n| *n > 0) && classes.get(&2).is_some_and(|n| *n > 0),
        "{classes:?}"
    );
    let fixture = records_fixture();
    assert_eq!(restores_by_time(&fixture, RECORDS_SOURCE, &repo, PASSPHRASE), 3);
    let healthy = |pw: &str, args: &[&str]| {
        let report: serde_json::Value =
            serde_json::from_str(&cairn_ok(&repo, pw, &[], &[&["--json", "check"][..], args].concat()))
                .unwrap();
        assert_eq!(report["status"], "success", "{report}");
        assert!(!report["notes"].to_string().contains("name no references"), "{report}");
    };
    healthy(PASSPHRASE, &["--read-data"]);
    healthy(MAINTENANCE_KEEPER, &[]);
    let done: serde_json::Value =
        serde_json::from_str(&cairn_ok(&repo, PASSPHRASE, &[], &["repair", "maintenance", "--json"]))
            .unwrap();
    assert_eq!(done["summaries_written"], 0, "{done}");
    cairn_ok(&repo, MAINTENANCE_KEEPER, &[], &["forget", "--keep-last", "1"]);
    cairn_ok(&repo, PASSPHRASE, &[], &["prune", "--max-unused", "0"]);
    healthy(MAINTENANCE_KEEPER, &[]);
    assert_eq!(restores_by_time(&fixture, RECORDS_SOURCE, &repo, PASSPHRASE), 1);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"later").unwrap();
    cairn_ok(&repo, MAINTENANCE_WRITER, &[], &["backup", src.path().to_str().unwrap()]);
    cairn_ok(&repo, PASSPHRASE, &[], &["key", "rotate"]);
    healthy(PASSPHRASE, &["--read-data"]);
    healthy(MAINTENANCE_KEEPER, &[]);
}

/// Moved frames: a repository with maintenance from its first snapshot (data packs of a
/// blob per frame), whose maintenance key forgot the first two of four snapshots and
/// pruned with `--max-unused 0`, so the frames still used were moved out of mixed packs,
/// unopened, into moved-frames packs (pack version 5, class 3) indexed by index files it
/// wrote (writer byte 3). Made once, by the cairn that introduced them:
///     cargo test --test golden -- --ignored regenerate_golden_moved
const MOVED: &str = "golden-moved";
const MOVED_SOURCE: &str = "/tmp/cairn-golden-moved-src";
const MOVED_TIMES: [&str; 4] =
    ["2026-12-04T06:00:00Z", "2026-12-05T06:00:00Z", "2026-12-06T06:00:00Z", "2026-12-07T06:00:00Z"];

fn moved_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(MOVED)
}

#[test]
#[ignore = "run by hand to make the fixture of moved frames (pack version 5, class 3)"]
fn regenerate_golden_moved() {
    let repo = moved_fixture();
    let _ = std::fs::remove_dir_all(&repo);
    let src = Path::new(MOVED_SOURCE);
    make_source(src);
    cairn_ok(&repo, PASSPHRASE, &[], &[&["init", "--pack-size", "1M"][..], &KDF].concat());
    for (pw, extra) in [(MAINTENANCE_KEEPER, "--maintenance"), (MAINTENANCE_WRITER, "--backup-only")] {
        cairn_ok(
            &repo,
            PASSPHRASE,
            &[("CAIRN_NEW_PASSWORD", pw)],
            &[&["key", "add", extra][..], &KDF].concat(),
        );
    }
    let mut text = String::new();
    for (i, time) in MOVED_TIMES.iter().enumerate() {
        // Each round rewrites a few stores: the packs of a round hold blobs later rounds
        // still use beside ones only forgotten snapshots used.
        for s in 0..4 {
            let body =
                format!("<entityStore round=\"{i}\">\n{}</entityStore>\n", "  <policy/>\n".repeat(40 + s));
            std::fs::write(
                src.join(format!("conf/groups/instance-1/store-{:02}.xml", (i * 3 + s) % 20)),
                body,
            )
            .unwrap();
        }
        cairn_ok(&repo, PASSPHRASE, &[], &["backup", MOVED_SOURCE, "--host", "golden", "--time", time]);
        text += &format!("# snapshot {time}\n{}", write_manifest(&manifest(src)));
    }
    cairn_ok(&repo, MAINTENANCE_KEEPER, &[], &["forget", "--keep-last", "2", "--prune", "--max-unused", "0"]);
    assert!(version_5_classes(&repo).contains_key(&3), "frames were moved");
    std::fs::write(moved_fixture().with_extension("manifest"), text).unwrap();
}

/// Moved-frames packs stay readable: the kept snapshots restore as made from frames that
/// open under their origins' keys; both keys' checks are clean; the maintenance key's
/// prune moves them again and a full key's prune follows; a key rotation, which must not
/// leave a frame sealed under the old epoch, reads them and seals them anew.
#[test]
fn golden_moved_frames_read_move_again_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy_dir(&moved_fixture(), &repo);
    assert!(version_5_classes(&repo).get(&3).is_some_and(|n| *n > 0));
    let fixture = moved_fixture();
    let healthy = |repo: &Path, pw: &str, args: &[&str]| {
        let report: serde_json::Value =
            serde_json::from_str(&cairn_ok(repo, pw, &[], &[&["--json", "check"][..], args].concat()))
                .unwrap();
        assert_eq!(report["status"], "success", "{report}");
    };
    assert_eq!(restores_by_time(&fixture, MOVED_SOURCE, &repo, PASSPHRASE), 2);
    healthy(&repo, PASSPHRASE, &["--read-data"]);
    healthy(&repo, MAINTENANCE_KEEPER, &[]);
    // Moved again, by the maintenance key: a snapshot forgotten, its frames moved on.
    let again = tmp.path().join("again");
    common::copy_dir(&repo, &again);
    cairn_ok(
        &again,
        MAINTENANCE_KEEPER,
        &[],
        &["forget", "--keep-last", "1", "--prune", "--max-unused", "0"],
    );
    assert_eq!(restores_by_time(&fixture, MOVED_SOURCE, &again, PASSPHRASE), 1);
    healthy(&again, PASSPHRASE, &["--read-data"]);
    // A full key's prune judges moved-frames packs like any pack.
    cairn_ok(&again, PASSPHRASE, &[], &["prune", "--max-unused", "0"]);
    assert_eq!(restores_by_time(&fixture, MOVED_SOURCE, &again, PASSPHRASE), 1);
    // A key rotation reseals them (their frames are of the old epoch).
    cairn_ok(&repo, PASSPHRASE, &[], &["key", "rotate"]);
    assert!(!version_5_classes(&repo).contains_key(&3), "every moved frame resealed");
    assert_eq!(restores_by_time(&fixture, MOVED_SOURCE, &repo, PASSPHRASE), 2);
    healthy(&repo, PASSPHRASE, &["--read-data"]);
    healthy(&repo, MAINTENANCE_KEEPER, &[]);
}
