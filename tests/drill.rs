//! Integrity proofs: verified restores, disaster-recovery drills with RTO/RPO limits, and
//! read-data subsets that together cover every pack.

mod common;

use cairn::repo::KeySource;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::AtomicBool;

fn cairn(repo: &Path, args: &[&str]) -> Output {
    common::cairn_with(repo, "pw", args)
}

fn setup(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (repo, src) = (tmp.join("r"), tmp.join("src"));
    std::fs::create_dir_all(src.join("conf")).unwrap();
    for i in 0..12u32 {
        let mut data = vec![0u8; 150_000];
        blake3::Hasher::new().update(&i.to_le_bytes()).finalize_xof().fill(&mut data);
        std::fs::write(src.join(format!("conf/f{i}.bin")), &data).unwrap();
    }
    let o = cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3", "--pack-size", "1M"]);
    assert!(o.status.success());
    (repo, src)
}

#[test]
fn a_drill_passes_reports_and_fails_on_limits_and_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = setup(tmp.path());
    let s = src.to_str().unwrap();
    assert!(cairn(&repo, &["backup", s, "--tag", "prod"]).status.success());
    let report = tmp.path().join("drill.md");
    let o = cairn(
        &repo,
        &["drill", "--max-rto", "10m", "--max-rpo", "1h", "--report", report.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["passed"], true);
    assert_eq!(j["files"], 12);
    assert!(j["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&report).unwrap().contains("drill: GO"));

    // An old newest snapshot misses the RPO limit: exit 5, NO-GO.
    let old = tmp.path().join("old");
    let (repo2, _) = setup(&old);
    assert!(cairn(&repo2, &["backup", s, "--time", "2020-01-01 00:00"]).status.success());
    let o = cairn(&repo2, &["drill", "--max-rpo", "4h"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NO-GO"));

    // Damage in a pack: the drill names it and exits 4; the activity log records both.
    let pack = common::largest_pack(&repo);
    let mut b = std::fs::read(&pack).unwrap();
    b[5000] ^= 1;
    std::fs::write(&pack, b).unwrap();
    let o = cairn(&repo, &["drill", "--json"]);
    assert_eq!(o.status.code(), Some(4));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!j["problems"].as_array().unwrap().is_empty());
    let log: serde_json::Value = serde_json::from_slice(&cairn(&repo, &["log", "--json"]).stdout).unwrap();
    let drills: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "drill")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(drills, ["success", "failed"]);
}

#[test]
fn verification_finds_every_kind_of_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = setup(tmp.path());
    assert!(cairn(&repo, &["backup", src.to_str().unwrap()]).status.success());
    let r = cairn::Repository::open(repo.to_str().unwrap(), b"pw", &KeySource::Stored).unwrap();
    let (_, snap) = r.find_snapshot("latest").unwrap();
    let target = tmp.path().join("t");
    let no = AtomicBool::new(false);
    cairn::ops::restore::restore(&r, &snap.tree, &target, &Default::default(), &no).unwrap();
    let all_paths = cairn::ops::restore_delete::restored_paths(&snap, &[]);
    let v = cairn::ops::verify::verify(&r, &snap.tree, &target, &[], &all_paths, &no).unwrap();
    assert!(v.ok(), "{:?}", v.differences);
    assert_eq!(v.files, 12);
    let conf = target.join(src.to_str().unwrap().trim_start_matches('/')).join("conf");
    let mut data = std::fs::read(conf.join("f1.bin")).unwrap();
    data[70_000] ^= 1;
    std::fs::write(conf.join("f1.bin"), data).unwrap();
    std::fs::set_permissions(conf.join("f2.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(conf.join("f3.bin")).unwrap();
    std::fs::OpenOptions::new().append(true).open(conf.join("f4.bin")).unwrap().set_len(10).unwrap();
    std::fs::write(conf.join("f5.extra"), b"stale").unwrap();
    let v = cairn::ops::verify::verify(&r, &snap.tree, &target, &[], &all_paths, &no).unwrap();
    let all = v.differences.join("\n");
    for (file, what) in [
        ("f1.bin", "content differs"),
        ("f2.bin", "mode"),
        ("f3.bin", "missing"),
        ("f4.bin", "bytes"),
        ("f5.extra", "not in the snapshot"),
    ] {
        assert!(
            v.differences.iter().any(|d| d.contains(file) && d.contains(what)),
            "{file}: {what} not in\n{all}"
        );
    }
}

#[test]
fn read_data_subsets_cover_every_pack_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = setup(tmp.path());
    assert!(cairn(&repo, &["backup", src.to_str().unwrap()]).status.success());
    let packs: usize = std::fs::read_dir(repo.join("data"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert!(packs >= 2);
    let read = |subset: &str| -> serde_json::Value {
        let o = cairn(&repo, &["check", "--read-data-subset", subset, "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(read("1/3")["status"], "partial");
    let parts: Vec<u64> = (1..=3).map(|n| read(&format!("{n}/3"))["packs_read"].as_u64().unwrap()).collect();
    assert_eq!(parts.iter().sum::<u64>() as usize, packs, "parts 1/3..3/3 read every pack exactly once");
    assert_eq!(read("100%")["packs_read"].as_u64().unwrap() as usize, packs);
    assert_eq!(read("0%")["packs_read"], 0);
    let o = cairn(&repo, &["check", "--read-data-subset", "4/3"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn repair_index_rebuilds_a_lost_or_damaged_index_from_the_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = setup(tmp.path());
    let s = src.to_str().unwrap();
    assert!(cairn(&repo, &["backup", s]).status.success());
    let index_files =
        || std::fs::read_dir(repo.join("index")).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    // Damage one index file and delete the others: check finds damage.
    let files = index_files();
    let mut b = std::fs::read(&files[0]).unwrap();
    b[60] ^= 1;
    std::fs::write(&files[0], b).unwrap();
    for f in &files[1..] {
        std::fs::remove_file(f).unwrap();
    }
    assert_eq!(cairn(&repo, &["check"]).status.code(), Some(4));
    let dry = cairn(&repo, &["repair", "index", "--dry-run"]);
    assert!(dry.status.success());
    assert_eq!(index_files(), vec![files[0].clone()], "a dry run changes nothing");
    let o = cairn(&repo, &["repair", "index", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["blobs_indexed"].as_u64().unwrap() >= 13);
    assert!(!index_files().contains(&files[0]), "the damaged index file is gone");
    let check = cairn(&repo, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = tmp.path().join("out");
    let o = cairn(&repo, &["restore", "latest", "--target", out.to_str().unwrap(), "--verify"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn check_names_the_files_a_damaged_pack_affects() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = setup(tmp.path());
    let s = src.to_str().unwrap();
    assert!(cairn(&repo, &["backup", s]).status.success());
    assert!(cairn(&repo, &["backup", s]).status.success());
    let pack = common::largest_pack(&repo);
    let mut b = std::fs::read(&pack).unwrap();
    b[2000] ^= 1;
    std::fs::write(&pack, b).unwrap();
    let o = cairn(&repo, &["check", "--read-data", "--json"]);
    assert_eq!(o.status.code(), Some(4));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "failed");
    let affected: Vec<String> = j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["affected"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
        .collect();
    assert!(!affected.is_empty(), "no affected file named: {j}");
    assert!(affected.iter().all(|a| a.contains("/conf/f") && a.starts_with("snapshot ")), "{affected:?}");
    // Both snapshots hold the damaged file.
    let snaps: std::collections::HashSet<&str> = affected.iter().map(|a| &a[..17]).collect();
    assert_eq!(snaps.len(), 2, "{affected:?}");
}
