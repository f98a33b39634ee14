//! The maintenance key: a retention host lists and forgets snapshots by their summaries,
//! with the same result as a full key on the same policy, and reads no file content,
//! name or metadata. Enabling it gives backup-only keys the maintenance public key, and a
//! key rotation carries it on.

use std::path::Path;
use std::process::{Command, Output};

fn run(repo: &Path, pw: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("-r").arg(repo).args(args).env("CAIRN_PASSWORD", pw).env_remove("CAIRN_REPOSITORY");
    c.env_remove("CAIRN_KEY_FILE").env_remove("CAIRN_NEW_PASSWORD").env("TZ", "UTC");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn json(o: Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// Fails with `code` and a one-line error containing `needle`.
fn fails(o: Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error expected: {err}");
}

const FAST: [&str; 4] = ["--kdf-memory", "64M", "--kdf-iterations", "3"];

fn add_key(repo: &Path, new_pw: &str, extra: &[&str]) -> serde_json::Value {
    json(run(
        repo,
        "full",
        &[("CAIRN_NEW_PASSWORD", new_pw)],
        &[&["--json", "key", "add"][..], extra, &FAST].concat(),
    ))
}

fn backup(repo: &Path, pw: &str, src: &Path, day: u32, extra_env: &[(&str, &str)]) -> Output {
    let time = format!("2026-11-{day:02} 12:00");
    run(repo, pw, extra_env, &["backup", "--time", &time, src.to_str().unwrap()])
}

fn snapshot_names(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// Full, backup-only and maintenance keys on one repository: snapshots from both writers
/// on eight days, every one with a summary.
fn gateway_history(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (repo, src) = (tmp.join("r"), tmp.join("src"));
    std::fs::create_dir_all(src.join("conf")).unwrap();
    std::fs::write(src.join("conf/nodemanager.xml"), b"<node/>").unwrap();
    ok(run(&repo, "full", &[], &[&["init"][..], &FAST].concat()));
    // A backup-only key made before maintenance is enabled: enabling gives it the
    // maintenance public key through its slot.
    add_key(&repo, "writer", &["--backup-only"]);
    for day in 1..=3 {
        std::fs::write(src.join("dump.sql"), format!("day {day}").repeat(1000)).unwrap();
        ok(backup(&repo, if day % 2 == 0 { "writer" } else { "full" }, &src, day, &[]));
    }
    let added = add_key(&repo, "keeper", &["--maintenance"]);
    assert_eq!(added["kind"], "maintenance");
    assert_eq!(added["enabled_now"], true);
    assert_eq!(added["summaries_written"], 3, "{added}");
    assert_eq!(added["key_files_written"], 1, "the backup-only key file: {added}");
    // A backup-only key made afterwards carries the maintenance public key too.
    add_key(&repo, "late-writer", &["--backup-only"]);
    for day in 4..=8 {
        std::fs::write(src.join("dump.sql"), format!("day {day}").repeat(1000)).unwrap();
        let writer = match day {
            8 => "late-writer",
            d if d % 2 == 0 => "writer",
            _ => "full",
        };
        let o = backup(&repo, writer, &src, day, &[]);
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("no summary"),
            "every writer now writes summaries"
        );
        ok(o);
    }
    (repo, src)
}

#[test]
fn a_maintenance_key_forgets_exactly_what_a_full_key_forgets() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = gateway_history(tmp.path());
    let listed = json(run(&repo, "keeper", &[], &["--json", "snapshots"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 8, "the maintenance key lists every snapshot by its summary");
    assert!(listed.iter().all(|s| s["host"].is_string()));
    // What it cannot know is shown as unknown, not made up.
    assert!(listed.iter().all(|s| s["type"] == "-" && s["user"] == ""), "{listed:?}");

    let (by_full, by_keeper) = (tmp.path().join("by-full"), tmp.path().join("by-keeper"));
    copy_dir(&repo, &by_full);
    copy_dir(&repo, &by_keeper);
    let policy = ["forget", "--keep-last", "2", "--keep-weekly", "2"];
    ok(run(&by_full, "full", &[], &policy));
    ok(run(&by_keeper, "keeper", &[], &policy));
    let (kept_full, kept_keeper) = (snapshot_names(&by_full), snapshot_names(&by_keeper));
    assert!(kept_full.len() < 8 && !kept_full.is_empty(), "the policy forgets some: {kept_full:?}");
    assert_eq!(kept_keeper, kept_full, "the maintenance key keeps exactly what the full key keeps");

    // What stays restores as it was made, and the full key's check is clean.
    ok(run(&by_keeper, "full", &[], &["check", "--read-data"]));
    let out = tmp.path().join("out");
    ok(run(&by_keeper, "full", &[], &["restore", "latest", "--target", out.to_str().unwrap()]));
    let restored =
        std::fs::read(out.join(src.to_str().unwrap().trim_start_matches('/')).join("dump.sql")).unwrap();
    assert_eq!(restored, std::fs::read(src.join("dump.sql")).unwrap());

    // Its forget is in the activity log, said to be a maintenance key's.
    let log = ok(run(&by_keeper, "full", &[], &["log"]));
    assert!(log.contains("forget"), "{log}");
}

#[test]
fn a_maintenance_key_reads_and_writes_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = gateway_history(tmp.path());
    let target = tmp.path().join("t");
    let (s, t) = (src.to_str().unwrap(), target.to_str().unwrap());
    for args in [
        &["restore", "latest", "--target", t][..],
        &["ls", "latest"],
        &["dump", "latest", "--archive", "tar"],
        &["cat", "latest", "/x"],
        &["backup", s],
        &["key", "list"],
        &["key", "rotate"],
        &["rewrite", "latest", "--exclude", "x"],
    ] {
        fails(run(&repo, "keeper", &[], args), 1, "maintenance key");
    }
    fails(run(&repo, "keeper", &[], &["check", "--read-data"]), 2, "structure only");
    fails(run(&repo, "keeper", &[], &["forget", "--path", s, "--keep-last", "1"]), 2, "keyed hashes");
    // Paths are keyed hashes to it: grouping by paths still works, the names never show.
    let listed = ok(run(&repo, "keeper", &[], &["--json", "snapshots"]));
    assert!(!listed.contains(s) && !listed.contains("src"), "{listed}");
    assert_eq!(snapshot_names(&repo).len(), 8, "nothing was removed");
}

#[test]
fn a_key_without_the_maintenance_public_key_writes_snapshots_a_maintenance_key_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    ok(run(&repo, "full", &[], &[&["init"][..], &FAST].concat()));
    // Kept apart before maintenance is enabled: enabling cannot reach it.
    let apart = tmp.path().join("apart.key");
    add_key(&repo, "apart", &["--backup-only", "--to-file", apart.to_str().unwrap()]);
    add_key(&repo, "keeper", &["--maintenance"]);
    ok(backup(&repo, "full", &src, 1, &[]));
    let o = backup(&repo, "apart", &src, 2, &[("CAIRN_KEY_FILE", apart.to_str().unwrap())]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success() && err.contains("no summary"), "{err}");
    ok(backup(&repo, "full", &src, 3, &[]));
    // The maintenance key keeps it whatever the policy, and says so; day 1 goes.
    let o = run(&repo, "keeper", &[], &["forget", "--keep-last", "1"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success() && err.contains("kept and counts toward no rule"), "{err}");
    assert_eq!(snapshot_names(&repo).len(), 2, "the snapshot without a summary stays");
    // Its prune cannot tell what that snapshot uses: it refuses, and deletes nothing.
    let packs_before = pack_names(&repo);
    fails(run(&repo, "keeper", &[], &["prune"]), 7, "repair maintenance");
    assert_eq!(pack_names(&repo), packs_before);
    // A full key gives it a summary; then the policy judges it like any other.
    assert_eq!(json(run(&repo, "full", &[], &["--json", "repair", "maintenance"]))["summaries_written"], 1);
    ok(run(&repo, "keeper", &[], &["forget", "--keep-last", "1"]));
    assert_eq!(snapshot_names(&repo).len(), 1);
    let latest = json(run(&repo, "full", &[], &["--json", "snapshots"]));
    assert_eq!(latest[0]["time"].as_str().map(|t| t.starts_with("2026-11-03")), Some(true), "{latest}");
}

#[test]
fn a_rotation_carries_the_maintenance_key_on_and_retires_its_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = gateway_history(tmp.path());
    let keys_before: Vec<_> =
        std::fs::read_dir(repo.join("keys")).unwrap().map(|e| e.unwrap().path()).collect();
    let old_files = tmp.path().join("old-keys");
    std::fs::create_dir(&old_files).unwrap();
    for k in &keys_before {
        std::fs::copy(k, old_files.join(k.file_name().unwrap())).unwrap();
    }
    // Enabling gave the backup-only key file a new id; the log says so, so the rotation
    // takes no key for one kept apart.
    let rotated = json(run(&repo, "full", &[], &["--json", "key", "rotate"]));
    assert_eq!(rotated["keys_left_behind"], serde_json::json!([]), "{rotated}");
    // Every writer and the maintenance key go on: a backup-only backup gets a summary the
    // maintenance key reads, and its forget keeps what a full key's would.
    std::fs::write(src.join("dump.sql"), b"after the rotation").unwrap();
    let o = backup(&repo, "writer", &src, 9, &[]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("no summary"));
    ok(o);
    assert_eq!(json(run(&repo, "keeper", &[], &["--json", "snapshots"])).as_array().unwrap().len(), 9);
    // Renewing the content keys renews the source-path key too: every summary is written
    // anew with it, and the maintenance key, given the new epoch, reads them all.
    ok(run(&repo, "full", &[], &["key", "rotate", "--content-keys"]));
    let listed = json(run(&repo, "keeper", &[], &["--json", "snapshots"]));
    assert_eq!(listed.as_array().unwrap().len(), 9);
    let paths: std::collections::BTreeSet<String> =
        listed.as_array().unwrap().iter().map(|s| s["paths"].to_string()).collect();
    assert_eq!(paths.len(), 1, "one source, one keyed hash for every snapshot: {paths:?}");
    let by_full = tmp.path().join("by-full");
    copy_dir(&repo, &by_full);
    ok(run(&by_full, "full", &[], &["forget", "--keep-last", "3"]));
    ok(run(&repo, "keeper", &[], &["forget", "--keep-last", "3"]));
    assert_eq!(snapshot_names(&repo), snapshot_names(&by_full));
    assert!(snapshot_names(&repo).len() < 9);
    ok(run(&repo, "full", &[], &["check", "--read-data"]));
    // The references records were made anew under the new content keys: both keys'
    // checks find every snapshot's whole and matching its trees.
    for pw in ["keeper", "full"] {
        let report = json(run(&repo, pw, &[], &["--json", "check"]));
        assert_eq!(report["status"], "success", "{pw}: {report}");
        assert!(!report["notes"].to_string().contains("name no references"), "{pw}: {report}");
    }
    // The maintenance key file from before the rotation (its password still opens it)
    // opens nothing now.
    let old_keeper: Vec<_> = std::fs::read_dir(&old_files)
        .unwrap()
        .map(|k| k.unwrap().path())
        .filter(|k| std::fs::read(k).unwrap()[5] == 3)
        .collect();
    assert_eq!(old_keeper.len(), 1);
    let o = run(&repo, "keeper", &[("CAIRN_KEY_FILE", old_keeper[0].to_str().unwrap())], &["snapshots"]);
    fails(o, 1, "retired by `cairn key rotate`");
}

/// A maintenance key's check: structure only, and it says so; it finds a missing pack and
/// a damaged snapshot file, which a full key's check finds too.
#[test]
fn a_maintenance_key_checks_structure() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _src) = gateway_history(tmp.path());
    let report = json(run(&repo, "keeper", &[], &["--json", "check"]));
    assert_eq!(report["status"], "success", "{report}");
    assert_eq!(report["snapshots"], 8);
    assert!(report["notes"].to_string().contains("structure only"), "{report}");
    assert_eq!(report["packs_read"], 0);

    // A lost pack, in one copy: every snapshot is valid, so every pack holds a blob
    // their records name, and the maintenance key's check names it.
    let lost = tmp.path().join("lost");
    copy_dir(&repo, &lost);
    let mut packs = Vec::new();
    for dir in std::fs::read_dir(lost.join("data")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            packs.push(f.unwrap().path());
        }
    }
    packs.sort();
    std::fs::remove_file(&packs[0]).unwrap();
    let o = run(&lost, "keeper", &[], &["check"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(4), "{err}");
    let pack_name = packs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&pack_name[..16]), "the maintenance key names the missing pack: {err}");
    assert_eq!(run(&lost, "full", &[], &["check"]).status.code(), Some(4));
    // A damaged summary, in another: both keys name the snapshot.
    let damaged = tmp.path().join("damaged");
    copy_dir(&repo, &damaged);
    let snapshot = damaged.join("snapshots").join(&snapshot_names(&damaged)[0]);
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // in the summary's tag
    std::fs::write(&snapshot, bytes).unwrap();
    for pw in ["keeper", "full"] {
        let o = run(&damaged, pw, &[], &["check"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(4), "{pw}: {err}");
        assert!(err.contains(&snapshot_names(&damaged)[0][..16]), "{pw} names the snapshot: {err}");
    }
}

/// A retention host's job: the backup job's name, `sources = []`, no prune, the
/// maintenance key kept apart. Its run forgets by the job's policy and checks structure; the snapshots left
/// are those a full key's forget keeps.
#[test]
fn a_retention_hosts_job_runs_with_a_maintenance_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    ok(run(&repo, "full", &[], &[&["init"][..], &FAST].concat()));
    let key = tmp.path().join("retention.key");
    add_key(&repo, "keeper", &["--maintenance", "--to-file", key.to_str().unwrap()]);
    for day in 1..=4 {
        std::fs::write(src.join("gateway.xml"), format!("day {day}")).unwrap();
        let time = format!("2026-11-{day:02} 12:00");
        ok(run(&repo, "full", &[], &["backup", "--label", "job=gw", "--time", &time, src.to_str().unwrap()]));
    }
    let by_full = tmp.path().join("by-full");
    copy_dir(&repo, &by_full);
    ok(run(&by_full, "full", &[], &["forget", "--label", "job=gw", "--keep-last", "2"]));
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "keeper").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = tmp.path().join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = []\nkey-file = \"{}\"\npassword-file = \"{}\"\n[jobs.gw.retention]\nkeep-last = 2\n[jobs.gw.check]\n",
            repo.display(),
            key.display(),
            pw.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(["run", "--config", config.to_str().unwrap()])
        .env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_REPOSITORY")
        .env("CAIRN_LOCK_DIR", tmp.path());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot_names(&repo), snapshot_names(&by_full));
    assert_eq!(snapshot_names(&repo).len(), 2);
    // The job's retention prunes too, with the maintenance key.
    let log = ok(run(&repo, "full", &[], &["log"]));
    assert!(log.lines().any(|l| l.contains("prune") && l.contains("maintenance")), "{log}");
}

/// The packs of a repository whose header says version 5 and `class`.
/// The packs of version 5, whatever their class.
fn packs_of_class_any(repo: &Path) -> Vec<std::path::PathBuf> {
    (1..=3).flat_map(|class| packs_of_class(repo, class)).collect()
}

fn packs_of_class(repo: &Path, class: u8) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let head = std::fs::read(&path).unwrap();
            if head[4] == 5 && head[7] == class {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every snapshot names its references records, which every writer made; a full key's
/// prune keeps them; a lost references pack is a problem to both keys' checks, and
/// `repair maintenance` writes the records again without touching a snapshot.
#[test]
fn references_records_are_kept_checked_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = gateway_history(tmp.path());
    assert!(!packs_of_class(&repo, 2).is_empty(), "records are in references packs");
    assert!(!packs_of_class(&repo, 1).is_empty(), "new data packs are version 5");
    let no_bare = |report: &serde_json::Value| !report["notes"].to_string().contains("name no references");
    // Prune (a full key) after a forget: the kept snapshots' records stay.
    ok(run(&repo, "full", &[], &["forget", "--keep-last", "5", "--prune"]));
    for pw in ["keeper", "full"] {
        let report = json(run(&repo, pw, &[], &["--json", "check"]));
        assert_eq!(report["status"], "success", "{pw}: {report}");
        assert!(no_bare(&report), "{pw}: every snapshot names its records: {report}");
    }

    let damaged = tmp.path().join("damaged");
    copy_dir(&repo, &damaged);
    for pack in packs_of_class(&damaged, 2) {
        std::fs::remove_file(pack).unwrap();
    }
    let before = snapshot_names(&damaged);
    for pw in ["keeper", "full"] {
        let o = run(&damaged, pw, &[], &["check"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(4), "{pw}: {err}");
        assert!(err.contains("references record"), "{pw} names the lost records: {err}");
        assert!(err.contains("repair maintenance"), "{pw} says what to do: {err}");
    }
    // The maintenance key cannot tell what the snapshots use: its prune refuses and
    // deletes nothing.
    let packs = pack_names(&damaged);
    fails(run(&damaged, "keeper", &[], &["prune"]), 7, "repair maintenance");
    assert_eq!(pack_names(&damaged), packs);
    let done = json(run(&damaged, "full", &[], &["--json", "repair", "maintenance"]));
    assert_eq!(done["summaries_written"], 0, "the summaries were right: {done}");
    assert_eq!(snapshot_names(&damaged), before);
    let report = json(run(&damaged, "full", &[], &["--json", "check"]));
    assert_eq!(report["status"], "success", "after repair: {report}");
    // The index still names the lost packs, which the maintenance key's check counts as
    // damage until a prune drops their entries.
    ok(run(&damaged, "full", &[], &["prune"]));
    for pw in ["keeper", "full"] {
        let report = json(run(&damaged, pw, &[], &["--json", "check"]));
        assert_eq!(report["status"], "success", "{pw} after repair and prune: {report}");
    }
    // The data was never at risk: the newest snapshot restores as backed up.
    let target = tmp.path().join("restored");
    ok(run(&damaged, "full", &[], &["restore", "latest", "--target", target.to_str().unwrap()]));
    let restored = target.join(src.strip_prefix("/").unwrap()).join("dump.sql");
    assert_eq!(std::fs::read(restored).unwrap(), std::fs::read(src.join("dump.sql")).unwrap());
}

/// Copies into a repository with maintenance get their references records, whether the
/// two repositories name data alike (tree blobs copied byte for byte) or not (trees
/// encoded anew): the offsite copy's maintenance key checks every snapshot's records.
#[test]
fn copies_into_a_repository_with_maintenance_name_their_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _src) = gateway_history(tmp.path());
    let from = [("CAIRN_FROM_PASSWORD", "full")];
    for (name, alike) in [("alike", true), ("apart", false)] {
        let dst = tmp.path().join(name);
        let init = [&["init"][..], &FAST].concat();
        let init = if alike {
            [&init[..], &["--copy-chunker-params-from", repo.to_str().unwrap()]].concat()
        } else {
            init
        };
        ok(run(&dst, "full", &from, &init));
        ok(run(
            &dst,
            "full",
            &[("CAIRN_NEW_PASSWORD", "keeper")],
            &[&["key", "add", "--maintenance"][..], &FAST].concat(),
        ));
        ok(run(&dst, "full", &from, &["copy", "--from-repo", repo.to_str().unwrap()]));
        assert_eq!(snapshot_names(&dst).len(), 8, "{name}");
        for pw in ["keeper", "full"] {
            let report = json(run(&dst, pw, &[], &["--json", "check"]));
            assert_eq!(report["status"], "success", "{name}, {pw}: {report}");
            assert!(!report["notes"].to_string().contains("name no references"), "{name}, {pw}: {report}");
        }
    }
}

/// Every pack file of a repository.
fn pack_names(repo: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.insert(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Ids of every blob the packs hold, by their own tables (read with a full key), with
/// repeats: what a prune left stored.
fn stored_blobs(repo: &Path) -> Vec<[u8; 32]> {
    let r =
        cairn::Repository::open(repo.to_str().unwrap(), b"full", &cairn::repo::KeySource::Stored).unwrap();
    let mut ids: Vec<[u8; 32]> =
        cairn::ops::prune::stored_blob_ids(&r).unwrap().into_values().flatten().map(|b| *b.bytes()).collect();
    ids.sort();
    ids
}

/// Every file under `root`: its path, bytes, mode and modification time.
fn tree_listing(root: &Path) -> Vec<(String, Vec<u8>, u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let bytes = if m.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
            out.push((name, bytes, m.mode(), m.mtime()));
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Eight days of a text dump (it compresses, so the chunks of a day would share frames
/// but for the frame per blob) and a config file, backed up by the full and backup-only
/// keys in turn (from `enabled_on` on; before it, by the full key in a repository
/// without maintenance, which `key add --maintenance` then enables). Each day rewrites a
/// tenth of the rows, so most chunks stay in use by later days and packs come to hold
/// used and forgotten chunks side by side. Returns the repository, the source and each
/// day's dump.
fn dump_history(tmp: &Path, enabled_on: u32) -> (std::path::PathBuf, std::path::PathBuf, Vec<Vec<u8>>) {
    let (repo, src) = (tmp.join("r"), tmp.join("src"));
    std::fs::create_dir_all(src.join("conf")).unwrap();
    ok(run(&repo, "full", &[], &[&["init", "--pack-size", "1M"][..], &FAST].concat()));
    let mut version = vec![0u32; 30_000];
    let mut dumps = Vec::new();
    for day in 1..=8u32 {
        if day == enabled_on {
            add_key(&repo, "keeper", &["--maintenance"]);
            add_key(&repo, "writer", &["--backup-only"]);
        }
        let at = (day as usize * 2_400) % (version.len() - 3_000);
        version[at..at + 3_000].iter_mut().for_each(|v| *v = day);
        let row = |(i, v): (usize, &u32)| {
            let name = (i as u64 * 2654435761 + *v as u64 * 40503) % 1_000_003;
            format!("INSERT INTO routes VALUES ({i}, 'route-{name:x}', {v});\n")
        };
        let dump: String = version.iter().enumerate().map(row).collect();
        std::fs::write(src.join("dump.sql"), &dump).unwrap();
        std::fs::write(src.join("conf/nodemanager.xml"), format!("<node day='{}'/>", day.min(5))).unwrap();
        let pw = if day % 2 == 0 && day >= enabled_on { "writer" } else { "full" };
        ok(backup(&repo, pw, &src, day, &[]));
        dumps.push(dump.into_bytes());
    }
    (repo, src, dumps)
}

/// Forget and prune `repo` with the maintenance key and a copy of it with the full key, on
/// the same two policies in turn: the same snapshots and the same blobs must stay, blob
/// for blob, and each kept snapshot restore byte- and metadata-identical from both, with
/// its own day's dump; both checks clean. Frames must have been moved.
fn prunes_alike(tmp: &Path, repo: &Path, src: &Path, dumps: &[Vec<u8>]) {
    let by_full = tmp.join("by-full");
    copy_dir(repo, &by_full);
    let before = pack_names(repo);
    for policy in [&["--keep-last", "5"][..], &["--keep-last", "2", "--max-unused", "0"]] {
        ok(run(&by_full, "full", &[], &[&["forget", "--prune"][..], policy].concat()));
        ok(run(repo, "keeper", &[], &[&["forget", "--prune"][..], policy].concat()));
        assert_eq!(snapshot_names(repo), snapshot_names(&by_full), "{policy:?}");
        assert_eq!(stored_blobs(repo), stored_blobs(&by_full), "{policy:?}: the same blobs stay");
    }
    assert!(!packs_of_class(repo, 3).is_empty(), "frames were moved, not only packs deleted");
    assert!(!before.is_subset(&pack_names(repo)), "packs were deleted");
    ok(run(repo, "full", &[], &["check", "--read-data"]));
    let report = json(run(repo, "keeper", &[], &["--json", "check"]));
    assert_eq!(report["status"], "success", "{report}");
    let list = json(run(repo, "full", &[], &["--json", "snapshots"]));
    assert!(list.as_array().unwrap().len() < 5, "snapshots were forgotten: {list}");
    for snap in list.as_array().unwrap() {
        let id = snap["id"].as_str().unwrap();
        let day: usize = snap["time"].as_str().unwrap()[8..10].parse().unwrap();
        let (mine, theirs) = (tmp.join(format!("m-{id}")), tmp.join(format!("f-{id}")));
        ok(run(repo, "full", &[], &["restore", id, "--target", mine.to_str().unwrap()]));
        ok(run(&by_full, "full", &[], &["restore", id, "--target", theirs.to_str().unwrap()]));
        assert!(
            tree_listing(&mine) == tree_listing(&theirs),
            "snapshot {id} restores as the full key's copy"
        );
        let restored = std::fs::read(mine.join(src.strip_prefix("/").unwrap()).join("dump.sql")).unwrap();
        assert!(restored == dumps[day - 1], "snapshot {} restores its own day's dump", snap["time"]);
    }
    // A full key reads, repacks and prunes the moved frames like any pack.
    ok(run(repo, "full", &[], &["prune", "--max-unused", "0"]));
    ok(run(repo, "full", &[], &["check", "--read-data"]));
}

/// The issue's promise: a maintenance key's forget and prune leave exactly what a full
/// key's leave on the same policy: the same snapshots, and the same blobs stored, blob
/// for blob (a repository with maintenance seals a blob per frame, so moving whole frames
/// moves exactly the used ones). It moves frames it cannot open into moved-frames packs,
/// and every kept snapshot restores byte- and metadata-identical to the full key's copy.
#[test]
fn a_maintenance_key_prunes_with_exactly_the_result_of_a_full_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src, dumps) = dump_history(tmp.path(), 1);
    prunes_alike(tmp.path(), &repo, &src, &dumps);
}

/// Turned on late: the packs written before have no maintenance table, so a maintenance
/// key's prune leaves them alone (and says so) until `repair maintenance --repack`
/// rewrites them; from then on its prune leaves exactly a full key's result here too.
#[test]
fn packs_from_before_maintenance_are_repacked_once_and_then_pruned_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src, dumps) = dump_history(tmp.path(), 5);
    let older = |repo: &Path| pack_names(repo).len() - packs_of_class_any(repo).len();
    assert!(older(&repo) > 0, "packs of version 3 from the first four days");
    let probe = tmp.path().join("probe");
    copy_dir(&repo, &probe);
    let out = ok(run(&probe, "keeper", &[], &["forget", "--keep-last", "2", "--prune", "--max-unused", "0"]));
    assert!(out.contains("whose tables it cannot read"), "{out}");
    let done = json(run(&repo, "full", &[], &["--json", "repair", "maintenance", "--repack"]));
    assert!(done["older_packs_repacked"].as_u64() > Some(0), "{done}");
    assert_eq!(older(&repo), 0, "every pack has a maintenance table now");
    ok(run(&repo, "full", &[], &["check", "--read-data"]));
    prunes_alike(tmp.path(), &repo, &src, &dumps);
}
