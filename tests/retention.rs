//! forget and prune: calendar retention over a built history, deletion that leaves no byte
//! of forgotten data in any pack, locks against concurrent use, and prune killed at any
//! moment leaving every snapshot it keeps restoring as it did.

mod common;

use cairn::repo::KeySource;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cairn(repo: &Path, args: &[&str]) -> Output {
    common::cairn_with(repo, "pw", args)
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn json(o: Output) -> serde_json::Value {
    let text = ok(o);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn init(repo: &Path, pack_size: &str) {
    ok(cairn(repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3", "--pack-size", pack_size]));
}

#[test]
fn forget_keeps_what_the_calendar_policy_says() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    // In the past: a snapshot dated after now is kept and counts toward no rule.
    let times = [
        "2025-11-30 10:00",
        "2025-11-30 22:00",
        "2025-12-27 09:00",
        "2025-12-28 09:00",
        "2025-12-31 23:00",
        "2026-01-01 08:00",
        "2026-01-03 20:00",
        "2026-01-04 07:00",
    ];
    let mut ids = Vec::new();
    for (i, t) in times.iter().enumerate() {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        ids.push(
            json(cairn(&repo, &["backup", src.to_str().unwrap(), "--json", "--time", t]))["snapshot"].clone(),
        );
    }
    // Daily 2 and monthly 3 (hand-computed): Jan 4, Jan 3 (daily); Jan 4 (Jan),
    // Dec 31 (Dec), Nov 30 22:00 (Nov).
    let dry =
        json(cairn(&repo, &["forget", "--keep-daily", "2", "--keep-monthly", "3", "--dry-run", "--json"]));
    assert_eq!(dry["removed"].as_array().unwrap().len(), 4);
    assert_eq!(
        json(cairn(&repo, &["snapshots", "--json"])).as_array().unwrap().len(),
        8,
        "dry run changed nothing"
    );
    let done = json(cairn(&repo, &["forget", "--keep-daily", "2", "--keep-monthly", "3", "--json"]));
    let kept: HashSet<String> = json(cairn(&repo, &["snapshots", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let want: HashSet<String> = [1, 4, 6, 7].iter().map(|&i| ids[i].as_str().unwrap().to_string()).collect();
    assert_eq!(kept, want, "forget output: {done}");
    let reasons = &done["groups"][0]["snapshots"][0]["reasons"];
    assert_eq!(reasons, &serde_json::json!(["daily 2", "monthly 3"]));
    ok(cairn(&repo, &["check"]));
}

/// Chunk ids a file's content would have in this repository.
fn chunk_ids(repo: &Path, data: &[u8]) -> Vec<[u8; 32]> {
    let r = cairn::Repository::open(repo.to_str().unwrap(), b"pw", &KeySource::Stored).unwrap();
    let chunker = r.chunker().unwrap();
    chunker.split(data).map(|c| r.keys().chunk_id(c).0).collect()
}

/// Ids of every blob some pack of the repository holds.
fn stored_blob_ids(repo: &Path) -> HashSet<[u8; 32]> {
    let r = cairn::Repository::open(repo.to_str().unwrap(), b"pw", &KeySource::Stored).unwrap();
    cairn::ops::prune::stored_blob_ids(&r).unwrap().into_values().flatten().map(|b| *b.bytes()).collect()
}

#[test]
fn forget_and_prune_leave_no_chunk_of_forgotten_data_in_any_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    let mut shared = vec![0u8; 3_000_000];
    blake3::Hasher::new().update(b"shared").finalize_xof().fill(&mut shared);
    let mut personal = vec![0u8; 700_000];
    blake3::Hasher::new().update(b"personal data").finalize_xof().fill(&mut personal);
    std::fs::write(src.join("shared.bin"), &shared).unwrap();
    std::fs::write(src.join("person.bin"), &personal).unwrap();
    let s = src.to_str().unwrap();
    let with = json(cairn(&repo, &["backup", s, "--json"]))["snapshot"].as_str().unwrap().to_string();
    std::fs::remove_file(src.join("person.bin")).unwrap();
    ok(cairn(&repo, &["backup", s]));

    let dry = json(cairn(&repo, &["prune", "--dry-run", "--json"]));
    assert_eq!(dry["packs_delete"], 0, "both snapshots still use everything: {dry}");
    ok(cairn(&repo, &["forget", &with[..12]]));
    let report = json(cairn(&repo, &["check", "--json"]));
    // The forgotten file's content (and the forgotten root tree, a few hundred bytes) is
    // what no snapshot uses now; the shared file's is used still.
    let notes = report["notes"].to_string();
    let unused_bytes: u64 = notes
        .split(" bytes of content) are used by no snapshot")
        .next()
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no unused-blob note: {report}"));
    assert!((700_000..710_000).contains(&unused_bytes), "{unused_bytes} bytes unused: {report}");
    let pruned = json(cairn(&repo, &["prune", "--max-unused", "0", "--json"]));
    assert!(
        pruned["bytes_delete"].as_u64().unwrap() + pruned["bytes_repack_unused"].as_u64().unwrap() > 600_000
    );

    let gone: HashSet<[u8; 32]> = chunk_ids(&repo, &personal).into_iter().collect();
    let kept: HashSet<[u8; 32]> = chunk_ids(&repo, &shared).into_iter().collect();
    let stored = stored_blob_ids(&repo);
    assert!(gone.iter().all(|c| !stored.contains(c)), "a chunk of the forgotten file is still stored");
    assert!(kept.iter().all(|c| stored.contains(c)), "prune lost data a snapshot uses");
    ok(cairn(&repo, &["check", "--read-data"]));
    let out = tmp.path().join("out");
    ok(cairn(&repo, &["restore", "latest", "--target", out.to_str().unwrap()]));
    assert_eq!(std::fs::read(out.join(s.trim_start_matches('/')).join("shared.bin")).unwrap(), shared);
}

/// Small compressible files share frames (format-spec/packs.md), so forgetting some of
/// them leaves frames partly unused: prune counts that share and repacks it away.
#[test]
fn prune_repacks_frames_that_forgotten_files_shared_with_kept_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    let body = |i: usize| format!("<policy id='{i}' name='route-{i}'/>\n").repeat(300 + i);
    for i in 0..40 {
        std::fs::write(src.join(format!("p{i:02}.xml")), body(i)).unwrap();
    }
    let s = src.to_str().unwrap();
    let with = json(cairn(&repo, &["backup", s, "--json"]))["snapshot"].as_str().unwrap().to_string();
    let gone: HashSet<[u8; 32]> =
        (0..40).step_by(2).flat_map(|i| chunk_ids(&repo, body(i).as_bytes())).collect();
    assert!(!gone.is_empty());
    for i in (0..40).step_by(2) {
        std::fs::remove_file(src.join(format!("p{i:02}.xml"))).unwrap();
    }
    ok(cairn(&repo, &["backup", s]));
    ok(cairn(&repo, &["forget", &with[..12]]));
    let pruned = json(cairn(&repo, &["prune", "--max-unused", "0", "--json"]));
    assert!(pruned["bytes_repack_unused"].as_u64().unwrap() > 0, "{pruned}");

    let stored = stored_blob_ids(&repo);
    assert!(gone.iter().all(|c| !stored.contains(c)), "a chunk of a forgotten file is still stored");
    ok(cairn(&repo, &["check", "--read-data"]));
    let out = tmp.path().join("out");
    ok(cairn(&repo, &["restore", "latest", "--target", out.to_str().unwrap()]));
    for i in (1..40).step_by(2) {
        let restored = out.join(s.trim_start_matches('/')).join(format!("p{i:02}.xml"));
        assert_eq!(std::fs::read_to_string(restored).unwrap(), body(i));
    }
}

#[test]
fn prune_waits_for_a_running_backup_and_backups_share() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    init(&repo, "1M");
    // A stdin backup holds its shared lock until its input ends.
    let mut running = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--stdin", "--stdin-name", "dump.sql"])
        .env("CAIRN_PASSWORD", "pw")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(repo.join("locks")).unwrap().count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the backup never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let refused = cairn(&repo, &["prune"]);
    assert_eq!(refused.status.code(), Some(11), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cairn unlock"));
    // A second backup shares the repository with the first.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    ok(cairn(&repo, &["backup", src.to_str().unwrap()]));
    {
        use std::io::Write;
        running.stdin.take().unwrap().write_all(b"INSERT INTO t VALUES (1);\n").unwrap();
    }
    assert!(running.wait().unwrap().success());
    ok(cairn(&repo, &["prune"]));
    assert_eq!(json(cairn(&repo, &["snapshots", "--json"])).as_array().unwrap().len(), 2);
}

/// The repository at a path, opened with this file's password (for `Witness`).
struct At<'a>(&'a Path);

impl common::AtRepo for At<'_> {
    fn cairn(&self) -> common::Cairn {
        common::Cairn::new().repo(self.0).password("pw")
    }
}

/// Start `args` on `repo` and kill it (SIGKILL) after `wait`.
fn kill_after(repo: &Path, args: &[&str], wait: std::time::Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("CAIRN_PASSWORD", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(wait);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn prune_killed_at_any_moment_leaves_a_valid_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    let s = src.to_str().unwrap();
    // The two snapshots forget keeps are witnessed: after every kill they restore as
    // they did when they were made.
    let mut witness = common::Witness::new();
    for round in 0..6u8 {
        for f in 0..4u8 {
            let mut data = vec![0u8; 400_000];
            blake3::Hasher::new().update(&[round, f]).finalize_xof().fill(&mut data);
            std::fs::write(src.join(format!("f{f}")), &data).unwrap();
        }
        if round >= 4 {
            witness.backup(&At(&repo), &src, &[]);
        } else {
            ok(cairn(&repo, &["backup", s]));
        }
    }
    ok(cairn(&repo, &["forget", "--keep-last", "2"]));
    for attempt in 0..8u64 {
        kill_after(
            &repo,
            &["prune", "--max-unused", "0"],
            std::time::Duration::from_millis(5 + attempt * 15),
        );
        // The killed prune's lock is stale (its process is gone): check proceeds.
        let check = cairn(&repo, &["check", "--read-data"]);
        assert!(check.status.success(), "attempt {attempt}: {}", String::from_utf8_lossy(&check.stderr));
        assert_eq!(witness.verify_all(&At(&repo)), 2, "attempt {attempt}");
    }
    ok(cairn(&repo, &["prune", "--max-unused", "0"]));
    ok(cairn(&repo, &["check", "--read-data"]));
    witness.verify_all(&At(&repo));
    witness.backup(&At(&repo), &src, &[]);
    assert_eq!(witness.verify_all(&At(&repo)), 3);
}

#[test]
fn backup_and_forget_killed_at_many_moments_leave_a_valid_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    for f in 0..40u32 {
        let mut data = vec![0u8; 250_000];
        blake3::Hasher::new().update(&f.to_le_bytes()).finalize_xof().fill(&mut data);
        std::fs::write(src.join(format!("f{f:02}")), &data).unwrap();
    }
    let s = src.to_str().unwrap();
    // Every acknowledged snapshot is witnessed; one a killed backup stored before it
    // could say so is adopted (the source never changes, so it must restore to it).
    let mut witness = common::Witness::new();
    for (attempt, op) in ["backup", "backup", "backup", "backup", "backup", "forget"].iter().enumerate() {
        if *op == "forget" {
            for _ in 0..3 {
                witness.backup(&At(&repo), &src, &[]);
            }
            let dry = json(cairn(&repo, &["forget", "--keep-last", "1", "--dry-run", "--json"]));
            for id in dry["removed"].as_array().unwrap() {
                witness.drop_id(id.as_str().unwrap());
            }
        }
        let args: Vec<&str> =
            if *op == "backup" { vec!["backup", s] } else { vec!["forget", "--keep-last", "1"] };
        kill_after(&repo, &args, std::time::Duration::from_millis(10 + attempt as u64 * 40));
        let check = cairn(&repo, &["check", "--read-data"]);
        assert!(check.status.success(), "{op} attempt {attempt}: {}", String::from_utf8_lossy(&check.stderr));
        if *op == "backup" {
            witness.verify_and_adopt(&At(&repo), &src);
        } else {
            witness.verify_all(&At(&repo));
        }
    }
    let done = json(cairn(&repo, &["backup", s, "--json", "--force"]));
    assert!(done["bytes_added"].as_u64().unwrap() < 1_000_000, "data stored before the kills was not reused");
    ok(cairn(&repo, &["check", "--read-data"]));
    witness.verify_all(&At(&repo));
}

#[test]
fn two_hosts_back_up_at_once_and_dedup_against_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    init(&repo, "1M");
    for f in 0..8u32 {
        let mut data = vec![0u8; 500_000];
        blake3::Hasher::new().update(&f.to_le_bytes()).finalize_xof().fill(&mut data);
        std::fs::write(src.join(format!("f{f}")), &data).unwrap();
    }
    let s = src.to_str().unwrap();
    let spawn = |host: &str| {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("-r")
            .arg(&repo)
            .args(["backup", s, "--host", host, "--json"])
            .env("CAIRN_PASSWORD", "pw")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("gw-a"), spawn("gw-b"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    ok(cairn(&repo, &["check", "--read-data"]));
    // A third host's backup of the same data stores nothing new.
    let third = json(cairn(&repo, &["backup", s, "--host", "gw-c", "--json"]));
    assert!(third["bytes_added"].as_u64().unwrap() < 10_000, "no dedup across hosts: {third}");
    assert_eq!(json(cairn(&repo, &["snapshots", "--json"])).as_array().unwrap().len(), 3);
}

/// Temporary files that interrupted writes left are deleted by prune once an hour old;
/// fresh ones (a write may still be under way) and files that are not cairn's stay.
#[test]
fn prune_deletes_old_temporary_files_and_nothing_else() {
    let dir = common::tempdir("cairn-leftovers-");
    let repo = dir.path().join("repo");
    init(&repo, "1M");
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>".repeat(1000)).unwrap();
    ok(cairn(&repo, &["backup", src.to_str().unwrap()]));
    let age = |path: &Path, ago: &str| {
        let s = Command::new("touch").arg("-d").arg(ago).arg(path).status().unwrap();
        assert!(s.success());
    };
    let old_pack = repo.join("data/ab").join(format!(".tmp-ab{}-0011223344556677", "0".repeat(62)));
    let old_index = repo.join("index/.tmp-cd-8899aabbccddeeff");
    let fresh = repo.join("data/cd/.tmp-cd-fresh");
    let stranger = repo.join("data/ab/notes.txt");
    for (f, ago) in
        [(&old_pack, "2 hours ago"), (&old_index, "3 hours ago"), (&fresh, "now"), (&stranger, "1 day ago")]
    {
        fs::write(f, vec![7u8; 5000]).unwrap();
        age(f, ago);
    }
    let dry = json(cairn(&repo, &["prune", "--dry-run", "--json"]));
    let mut listed: Vec<&str> =
        dry["leftovers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    listed.sort();
    let want_pack = format!("data/ab/.tmp-ab{}-0011223344556677", "0".repeat(62));
    assert_eq!(listed, [want_pack.as_str(), "index/.tmp-cd-8899aabbccddeeff"]);
    assert_eq!(dry["bytes_leftovers"], 10_000);
    assert!(old_pack.exists() && old_index.exists(), "a dry run deletes nothing");
    let done = json(cairn(&repo, &["prune", "--json"]));
    assert_eq!(done["leftovers"].as_array().unwrap().len(), 2);
    assert!(!old_pack.exists() && !old_index.exists());
    assert!(fresh.exists() && stranger.exists(), "only old temporary files go");
    ok(cairn(&repo, &["check", "--read-data"]));
    let log = ok(cairn(&repo, &["log"]));
    assert!(log.contains("leftovers_deleted=2"), "{log}");
}

/// Unindexed packs are judged only after a grace period: a backup whose lock looks stale
/// may still be about to index them. Aged past it, unused ones go.
#[test]
fn prune_spares_young_unindexed_packs_and_deletes_them_once_old() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "<config/>".repeat(10_000)).unwrap();
    init(&repo, "1M");
    let id = json(cairn(&repo, &["backup", src.to_str().unwrap(), "--json"]))["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    ok(cairn(&repo, &["forget", &id]));
    // As a backup killed before its index: packs no index file names.
    for f in std::fs::read_dir(repo.join("index")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let packs = common::pack_paths(&repo);
    assert!(!packs.is_empty());
    let young = json(cairn(&repo, &["prune", "--json"]));
    assert_eq!(young["packs_too_new"], packs.len(), "{young}");
    assert!(common::pack_paths(&repo).len() == packs.len(), "young unindexed packs were deleted");
    let two_hours_ago = rustix::fs::Timespec {
        tv_sec: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
            - 7200,
        tv_nsec: 0,
    };
    for p in &packs {
        common::set_times(p, two_hours_ago, two_hours_ago);
    }
    let old = json(cairn(&repo, &["prune", "--json"]));
    assert_eq!(old["packs_too_new"], 0, "{old}");
    assert!(common::pack_paths(&repo).is_empty(), "old unused unindexed packs stay: {old}");
    ok(cairn(&repo, &["check", "--read-data"]));
}
