//! The failpoint matrix (issue 16, item 1): every command that changes a repository is
//! killed (SIGKILL, from inside, at a named failpoint or right after its N-th backend
//! write) and then the promise is checked, not a proxy for it:
//!
//! - every snapshot that existed before, minus the ones the command was asked to remove,
//!   is still listed and restores byte- and metadata-identical to what it restored to
//!   when it was made (`Witness`); a snapshot the killed command stored without saying
//!   so restores whole too;
//! - `check --read-data` is clean and nothing partial sits under an object's name;
//! - the next run of the same command completes.
//!
//! Needs the `failpoints` feature (Cargo.toml `[[test]]`; scripts/test.sh builds with
//! it). Each test prints its rows of the matrix (command × failpoint × outcome); run with
//! `--no-capture` to see them, or scripts/fault-report.sh to write benches/FAULTS.md.

mod common;

use common::*;
use std::fs;
use std::path::PathBuf;

/// Which named failpoints each command is killed at. `every_failpoint_is_in_the_matrix`
/// keeps this complete; backup and copy are also killed after each of their writes.
const MATRIX: &[(&str, &[&str])] = &[
    ("backup", &["pack-writer:after-packs", "backup:before-snapshot", "backup:after-snapshot"]),
    ("forget", &["forget:after-first-removal", "forget:after-removals"]),
    (
        "prune",
        &[
            "pack-writer:after-packs",
            "prune:after-repack",
            "prune:after-new-index",
            "prune:after-old-index-delete",
            "prune:mid-pack-deletion",
            "prune:after-pack-deletion",
        ],
    ),
    (
        "prune (maintenance key)",
        &[
            "prune:moved-pack-unindexed",
            "prune:after-repack",
            "prune:mid-pack-deletion",
            "prune:after-pack-deletion",
        ],
    ),
    ("repair index", &["repair-index:after-new-index", "repair-index:after-old-index-delete"]),
    ("repair snapshots", &["snapshot-rewrite:after-trees", "snapshot-replace:after-new"]),
    ("rewrite", &["pack-writer:after-packs", "snapshot-rewrite:after-trees", "snapshot-replace:after-new"]),
    ("tag", &["snapshot-replace:after-new", "snapshot-replace:after-old-removed"]),
    ("copy", &["pack-writer:after-packs", "copy:before-snapshot", "copy:after-snapshot"]),
    ("key add", &["key:after-store"]),
    ("key passwd", &["key:after-store", "key:after-remove"]),
    ("key remove", &["key:after-remove"]),
    ("run (job)", &["job:between-steps@1", "job:between-steps@2"]),
    (
        "key rotate",
        &[
            "rotate:after-key-in-use@1",
            "rotate:mid-key-rewrap@1",
            "rotate:after-config",
            "rotate:after-new-snapshot",
            "rotate:after-new-log",
            "pack-writer:after-packs",
            "prune:after-repack",
            "prune:after-new-index",
            "prune:after-old-index-delete",
            "prune:mid-pack-deletion",
            "rotate:mid-key-rewrap@3",
            "rotate:after-key-in-use@2",
        ],
    ),
    (
        "key add --maintenance",
        &[
            "rotate:mid-key-rewrap@1",
            "maintenance:after-key-files",
            "maintenance:after-config",
            "maintenance:after-summary@2",
        ],
    ),
    (
        "key rotate --content-keys",
        &[
            "rotate:after-key-in-use@1",
            "rotate:after-config",
            "pack-writer:after-packs",
            "rotate:after-stored-anew",
            "rotate:after-new-log",
            "prune:after-repack",
            "prune:mid-pack-deletion",
            "rotate:mid-key-rewrap@2",
            "rotate:after-key-in-use@2",
        ],
    ),
];

fn points_of(command: &str) -> &'static [&'static str] {
    MATRIX.iter().find(|(c, _)| *c == command).map(|(_, p)| *p).expect("a command of the matrix")
}

#[test]
fn every_failpoint_is_in_the_matrix() {
    for (name, _) in cairn::failpoint::POINTS {
        assert!(
            MATRIX.iter().any(|(_, points)| points.iter().any(|p| p.split('@').next() == Some(*name))),
            "failpoint {name} is killed at by no test of the matrix"
        );
    }
}

fn assert_killed(out: &Out, point: &str) {
    assert_eq!(out.signal, Some(9), "failpoint {point} was never reached\n{}", out.context());
    let name = point.split('@').next().unwrap_or(point);
    assert!(out.stderr.contains(&format!("cairn: failpoint {name}")), "{}", out.context());
}

/// Run `cmd` with `CAIRN_FAILPOINT=point`: it must die there of SIGKILL.
fn kill(cmd: Cairn, point: &str, report: &mut FaultReport) -> Out {
    let out = cmd.env("CAIRN_FAILPOINT", point).run();
    assert_killed(&out, point);
    report.kills += 1;
    out
}

/// Backup killed at each failpoint and after each of its writes (lock, packs, index
/// file, snapshot, log entry): no snapshot is lost, a snapshot stored before the kill is
/// whole, and the next backup completes.
#[test]
fn backup_killed_at_each_failpoint_and_after_each_write() {
    let mut lab = Lab::new("failpoint", 1);
    let mut rounds: Vec<String> = points_of("backup").iter().map(|p| p.to_string()).collect();
    rounds.extend((1..=20).map(|n| format!("write:{n}")));
    for point in rounds {
        lab.add_data(150_000);
        let cmd = lab.repo.cairn().args(["backup", "--json"]).arg(&lab.src);
        let out = cmd.env("CAIRN_FAILPOINT", &point).run();
        if out.code == Some(0) {
            // write:N past the backup's last write: the sweep has covered every one.
            assert!(point.starts_with("write:"), "{}", out.context());
            let id = out.json()["snapshot"].as_str().expect("a snapshot id").to_string();
            lab.witness.record(&lab.repo, &id, &lab.src);
            lab.report.row("backup", &point, "no such write: the backup completes (the sweep's end)");
            break;
        }
        assert_killed(&out, &point);
        lab.report.kills += 1;
        let (verified, stored) = lab.witness.verify_and_adopt(&lab.repo, &lab.src);
        lab.report.verified += verified + stored.len();
        if point.starts_with("backup:") {
            let expected = usize::from(point == "backup:after-snapshot");
            assert_eq!(stored.len(), expected, "{point}: unacknowledged snapshots {stored:?}");
        }
        lab.check();
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        lab.report.row(
            "backup",
            &point,
            format!(
                "killed; {verified} snapshots restore identical; {} stored unacknowledged, whole; check clean; rerun completes",
                stored.len()
            ),
        );
        lab.forget_middle();
    }
    lab.verify();
    lab.check();
    lab.report.finish();
}

/// forget killed after its first deletion and after all of them: the snapshots it keeps
/// restore, the rerun removes exactly what the dry run named.
#[test]
fn forget_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 2);
    for point in points_of("forget") {
        for _ in 0..3 {
            lab.add_data(20_000);
            lab.witness.backup(&lab.repo, &lab.src, &["--tag", "round"]);
        }
        let policy = ["forget", "--json", "--tag", "round", "--keep-last", "1"];
        let dry = lab.repo.cairn().args(policy).arg("--dry-run").run().ok().json();
        let removed: Vec<String> =
            dry["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert!(removed.len() >= 2, "{dry}");
        removed.iter().for_each(|id| lab.witness.drop_id(id));
        kill(lab.repo.cairn().args(policy), point, &mut lab.report);
        let verified = lab.verify();
        lab.check();
        lab.repo.cairn().args(policy).run().ok();
        let left: Vec<String> = listed(&lab.repo).iter().map(|s| s["id"].as_str().unwrap().into()).collect();
        assert!(removed.iter().all(|id| !left.contains(id)), "{removed:?} still in {left:?}");
        lab.verify();
        lab.report.row(
            "forget",
            point,
            format!(
                "killed; {verified} kept snapshots restore identical; check clean; rerun removes the rest"
            ),
        );
    }
    lab.report.finish();
}

/// prune --max-unused 0 killed at each of its steps, with a pack to repack and several to
/// delete each time: every kept snapshot restores, and the rerun completes.
#[test]
fn prune_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 3);
    for point in points_of("prune") {
        lab.make_garbage();
        let plan =
            lab.repo.cairn().args(["prune", "--json", "--dry-run", "--max-unused", "0"]).run().ok().json();
        assert!(plan["packs_repack"].as_u64() >= Some(1), "{plan}");
        assert!(
            plan["packs_delete"].as_u64().unwrap() + plan["packs_repack"].as_u64().unwrap() >= 2,
            "{plan}"
        );
        kill(lab.repo.cairn().args(["prune", "--max-unused", "0"]), point, &mut lab.report);
        let verified = lab.verify();
        lab.check();
        lab.repo.cairn().args(["prune", "--max-unused", "0"]).run().ok();
        let after =
            lab.repo.cairn().args(["prune", "--json", "--dry-run", "--max-unused", "0"]).run().ok().json();
        assert_eq!(after["blobs_unused"], 0, "the rerun left garbage: {after}");
        lab.report.row(
            "prune",
            point,
            format!("killed; {verified} snapshots restore identical; check clean; rerun completes, no garbage left"),
        );
    }
    // What each rerun did is checked by the next round's checks, the last one's here.
    lab.verify();
    lab.check();
    lab.report.finish();
}

/// A maintenance key's prune killed while it moves frames, deletes packs and after: every
/// kept snapshot restores identical, check is clean, and its rerun deletes the rest.
#[test]
fn maintenance_prune_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 30);
    let before = listed(&lab.repo);
    lab.repo.cairn().args(["key", "add", "--maintenance"]).env("CAIRN_NEW_PASSWORD", "keeper").run().ok();
    // Enabling sealed every snapshot anew: the witness follows them to their new ids.
    lab.witness.verify_resealed(&lab.repo, &before);
    for point in points_of("prune (maintenance key)") {
        // A file in a snapshot of its own that is then forgotten, backed up with one that
        // stays: the packs of that backup hold both, so frames are moved out of them.
        lab.add_data(400_000);
        let file = lab.add_data(2_500_000);
        let out = lab.repo.cairn().args(["backup", "--json"]).arg(&lab.src).run().ok().json();
        let gone = out["snapshot"].as_str().expect("an id").to_string();
        fs::remove_file(&file).unwrap();
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        lab.forget(&[gone]);
        let keeper = |lab: &Lab| WithPassword(&lab.repo, "keeper").cairn();
        let all = ["prune", "--max-unused", "0"];
        let plan = keeper(&lab).args(all).args(["--json", "--dry-run"]).run().ok().json();
        assert!(plan["packs_repack"].as_u64() >= Some(1), "{plan}");
        let killed = keeper(&lab).args(all);
        kill(killed, point, &mut lab.report);
        let verified = lab.verify();
        lab.check();
        keeper(&lab).args(all).run().ok();
        let after = keeper(&lab).args(all).args(["--json", "--dry-run"]).run().ok().json();
        assert_eq!(after["packs_delete"], 0, "the rerun left packs it could delete: {after}");
        assert_eq!(after["packs_repack"], 0, "the rerun left packs it could repack: {after}");
        lab.report.row(
            "prune (maintenance key)",
            point,
            format!("killed; {verified} snapshots restore identical; check clean; rerun deletes the rest"),
        );
    }
    lab.verify();
    lab.check();
    lab.report.finish();
}

/// repair index killed after writing the new index and after deleting the old one.
#[test]
fn repair_index_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 4);
    for point in points_of("repair index") {
        lab.add_data(50_000);
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        kill(lab.repo.cairn().args(["repair", "index"]), point, &mut lab.report);
        let verified = lab.verify();
        lab.check();
        lab.repo.cairn().args(["repair", "index"]).run().ok();
        lab.verify();
        lab.report.row(
            "repair index",
            point,
            format!("killed; {verified} snapshots restore identical; check clean; rerun completes"),
        );
    }
    lab.report.finish();
}

/// repair snapshots killed between storing the repaired trees and replacing a damaged
/// snapshot: the intact snapshots restore; after the rerun the damaged one is replaced
/// by one that restores to what it had less the lost file.
#[test]
fn repair_snapshots_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 5);
    for point in points_of("repair snapshots") {
        let before = lab.repo.pack_paths();
        let lost = lab.add_data(200_000);
        let mut damaged = Witness::new();
        let b = damaged.backup(&lab.repo, &lab.src, &[]);
        fs::remove_file(&lost).unwrap();
        // B's own data pack (the larger of the two it added) goes missing.
        let added: Vec<PathBuf> = lab.repo.pack_paths().into_iter().filter(|p| !before.contains(p)).collect();
        let data_pack = added.iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
        fs::remove_file(data_pack).unwrap();
        lab.repo.cairn().args(["repair", "index"]).run().expect_code(0);
        kill(lab.repo.cairn().args(["repair", "snapshots"]), point, &mut lab.report);
        let verified = lab.verify();
        let ids: Vec<String> = listed(&lab.repo).iter().map(|s| s["id"].as_str().unwrap().into()).collect();
        assert!(ids.len() <= lab.witness.ids().len() + 2, "{ids:?}");
        lab.repo.cairn().args(["repair", "snapshots"]).run().ok();
        lab.check();
        let rel = lost.strip_prefix(&lab.src).unwrap().to_path_buf();
        let repaired = damaged.verify_following(&lab.repo, &[rel]);
        lab.report.verified += repaired;
        assert!(!listed(&lab.repo).iter().any(|s| s["id"] == b.as_str()), "the damaged snapshot stayed");
        lab.report.row(
            "repair snapshots",
            point,
            format!("killed; {verified} intact snapshots restore identical; rerun completes; the repaired one restores less the lost file; check clean"),
        );
        lab.forget(&damaged.ids());
    }
    lab.report.finish();
}

/// rewrite --exclude killed before and between replacing: every snapshot restores, the
/// old one whole, a replacement less the excluded file; the rerun completes.
#[test]
fn rewrite_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 6);
    for point in points_of("rewrite") {
        let secret = lab.add_data(100_000);
        let target = lab.witness.backup(&lab.repo, &lab.src, &[]);
        fs::remove_file(&secret).unwrap();
        let rewrite =
            |lab: &Lab| lab.repo.cairn().args(["rewrite", "--exclude"]).arg(&secret).arg(&target[..12]);
        kill(rewrite(&lab), point, &mut lab.report);
        let rel = secret.strip_prefix(&lab.src).unwrap().to_path_buf();
        let verified = lab.witness.verify_following(&lab.repo, std::slice::from_ref(&rel));
        lab.check();
        rewrite(&lab).run().ok();
        lab.report.verified += verified + lab.witness.verify_following(&lab.repo, &[rel]);
        assert!(!listed(&lab.repo).iter().any(|s| s["id"] == target.as_str()), "not replaced");
        lab.report.row(
            "rewrite",
            point,
            format!("killed; {verified} snapshots restore identical (a replacement less the excluded file); check clean; rerun completes"),
        );
        lab.forget_middle();
    }
    lab.check();
    lab.report.finish();
}

/// tag --all killed after storing the first replacement and after the first whole
/// replacement: every snapshot's line restores, duplicates at worst; the rerun completes.
#[test]
fn tag_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 7);
    lab.add_data(30_000);
    lab.witness.backup(&lab.repo, &lab.src, &[]);
    for (round, point) in points_of("tag").iter().enumerate() {
        let tag = format!("round-{round}");
        kill(lab.repo.cairn().args(["tag", "--all", "--add", &tag]), point, &mut lab.report);
        let verified = lab.witness.verify_following(&lab.repo, &[]);
        lab.check();
        lab.repo.cairn().args(["tag", "--all", "--add", &tag]).run().ok();
        lab.report.verified += verified + lab.witness.verify_following(&lab.repo, &[]);
        assert!(listed(&lab.repo).iter().all(|s| s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == tag.as_str())));
        lab.report.row(
            "tag",
            point,
            format!("killed; {verified} snapshots (old or replaced) restore identical; check clean; rerun completes"),
        );
    }
    lab.report.finish();
}

/// copy killed at each failpoint and after each of its writes: the copies made before
/// restore as their sources did, the source is untouched, the next copy completes.
#[test]
fn copy_killed_at_each_failpoint_and_after_each_write() {
    let mut lab = Lab::new("failpoint", 8);
    let dst = Repo::with_options(&["--pack-size", "1M"]);
    let mut copies = Witness::new();
    let copy = |lab: &Lab| lab.copy_into(&dst);
    copy(&lab).run().ok();
    copies.adopt_new(&dst, &lab.src);
    let mut rounds: Vec<String> = points_of("copy").iter().map(|p| p.to_string()).collect();
    // Writes 1 and 2 are the locks of the source and the target: a kill after a lock is
    // the backup sweep's write:1, a stale lock and nothing else.
    rounds.extend((3..=20).map(|n| format!("write:{n}")));
    for point in rounds {
        lab.add_data(100_000);
        // Its copy is checked against the source folder, unchanged until the next round.
        lab.repo.backup(&[&lab.src], &[]);
        let out = copy(&lab).env("CAIRN_FAILPOINT", &point).run();
        if out.code == Some(0) {
            assert!(point.starts_with("write:"), "{}", out.context());
            copies.adopt_new(&dst, &lab.src);
            lab.report.row("copy", &point, "no such write: the copy completes (the sweep's end)");
            break;
        }
        assert_killed(&out, &point);
        lab.report.kills += 1;
        let (verified, early) = copies.verify_and_adopt(&dst, &lab.src);
        check_clean(&dst);
        copy(&lab).run().ok();
        let copied = copies.adopt_new(&dst, &lab.src);
        assert_eq!(early.len() + copied.len(), 1, "the latest snapshot is copied once");
        lab.report.verified += verified + early.len() + copied.len();
        lab.report.row(
            "copy",
            &point,
            format!("killed; {verified} copies restore as their sources; {} copied unacknowledged, whole; check clean; rerun completes", early.len()),
        );
        // Keep the witness of the copies small (the source's is verified at the end).
        let ids = copies.ids();
        if ids.len() > 2 {
            dst.cairn().arg("forget").args(&ids[1..ids.len() - 1]).run().ok();
            ids[1..ids.len() - 1].iter().for_each(|id| copies.drop_id(id));
        }
    }
    lab.verify();
    check_clean(&dst);
    lab.report.finish();
}

/// key add, passwd and remove killed after storing or deleting a key file: the
/// repository always opens with a password the user was given or had, every snapshot
/// restores with it, and the next run completes (or finds nothing left to do).
#[test]
fn key_commands_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 9);
    let key_ids = |pw: &str| -> Vec<String> {
        let out = WithPassword(&lab.repo, pw).cairn().args(["key", "list", "--json"]).run().ok().json();
        out.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()).collect()
    };
    let opens = |pw: &str| WithPassword(&lab.repo, pw).cairn().arg("snapshots").run().code == Some(0);

    // key add: the new key may or may not be there; the old password still opens.
    let add = |pw: &str| lab.repo.cairn().args(["key", "add"]).env("CAIRN_NEW_PASSWORD", pw);
    let out = add("added-1").env("CAIRN_FAILPOINT", "key:after-store").run();
    assert_killed(&out, "key:after-store");
    let verified = lab.witness.verify_all(&lab.repo);
    assert!(opens("added-1"), "the key stored before the kill does not open");
    add("added-2").run().ok();
    assert!(opens("added-2"));
    lab.report.kills += 1;
    lab.report.verified += verified;
    lab.report.row("key add", "key:after-store", format!("killed; old password opens, {verified} snapshots restore identical; the new key works; rerun completes"));

    // key passwd killed with both keys stored: both passwords open.
    let passwd = |from: &str, to: &str| {
        WithPassword(&lab.repo, from).cairn().args(["key", "passwd"]).env("CAIRN_NEW_PASSWORD", to)
    };
    let out = passwd(PASSWORD, "changed-1").env("CAIRN_FAILPOINT", "key:after-store").run();
    assert_killed(&out, "key:after-store");
    assert!(opens(PASSWORD) && opens("changed-1"), "a kill between storing and deleting keeps both");
    let verified = lab.witness.verify_all(&lab.repo);
    passwd(PASSWORD, "changed-2").run().ok();
    assert!(!opens(PASSWORD) && opens("changed-2"));
    lab.report.kills += 1;
    lab.report.verified += verified;
    lab.report.row(
        "key passwd",
        "key:after-store",
        format!(
            "killed; old and new passwords open, {verified} snapshots restore identical; rerun completes"
        ),
    );

    // key passwd killed after the old key went: only the new password opens.
    let out = passwd("changed-2", "changed-3").env("CAIRN_FAILPOINT", "key:after-remove").run();
    assert_killed(&out, "key:after-remove");
    assert!(!opens("changed-2") && opens("changed-3"));
    let verified = lab.witness.verify_all(&WithPassword(&lab.repo, "changed-3"));
    passwd("changed-3", "changed-4").run().ok();
    assert!(opens("changed-4"));
    lab.report.kills += 1;
    lab.report.verified += verified;
    lab.report.row(
        "key passwd",
        "key:after-remove",
        format!(
            "killed; the new password opens, {verified} snapshots restore identical with it; rerun completes"
        ),
    );

    // key remove killed after the deletion: the key is gone, the rest still opens.
    let in_use = |pw: &str| -> String {
        let out = WithPassword(&lab.repo, pw).cairn().args(["key", "list", "--json"]).run().ok().json();
        let key =
            out.as_array().unwrap().iter().find(|k| k["in_use"] == true).expect("the key in use").clone();
        key["id"].as_str().unwrap().to_string()
    };
    let victim = in_use("added-1");
    let remove = || WithPassword(&lab.repo, "changed-4").cairn().args(["key", "remove", &victim[..12]]);
    let out = remove().env("CAIRN_FAILPOINT", "key:after-remove").run();
    assert_killed(&out, "key:after-remove");
    assert!(!key_ids("changed-4").contains(&victim) && !opens("added-1") && opens("changed-4"));
    let verified = lab.witness.verify_all(&WithPassword(&lab.repo, "changed-4"));
    let again = remove().run().expect_code(1);
    assert!(again.one_line_error().contains("no stored key"), "{}", again.context());
    lab.report.kills += 1;
    lab.report.verified += verified;
    lab.report.row("key remove", "key:after-remove", format!("killed; the key is gone, {verified} snapshots restore identical; rerun says no such key (nothing left to do)"));
    check_clean_with(&lab.repo, "changed-4");
    lab.report.finish();
}

fn check_clean_with(repo: &Repo, password: &str) {
    WithPassword(repo, password).cairn().args(["check", "--read-data"]).run().ok();
}

/// cairn run killed between a job's steps (after the backup, after the retention): the
/// snapshots made outside the job restore, the job's own snapshots restore to its
/// sources, and the next run completes.
#[test]
fn job_runner_killed_between_steps() {
    let mut lab = Lab::new("failpoint", 10);
    let config = lab.src.parent().unwrap().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.fp]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.fp.retention]\nkeep-last = 1\n",
            lab.repo.path.display(),
            lab.src.display()
        ),
    )
    .unwrap();
    let locks = tempdir("cairn-job-locks-");
    let run = || Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", locks.path());
    for point in points_of("run (job)") {
        lab.add_data(40_000);
        kill(run(), point, &mut lab.report);
        let verified = lab.verify();
        // The job's snapshots (the outside one is witnessed already) are of the source.
        let mut jobs = Witness::new();
        let witnessed = lab.witness.ids();
        let made: Vec<String> = listed(&lab.repo)
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .filter(|id| !witnessed.contains(id))
            .collect();
        made.iter().for_each(|id| jobs.record(&lab.repo, id, &lab.src));
        assert!(!made.is_empty(), "the job's backup step ended before the kill, its snapshot must be there");
        lab.check();
        run().run().ok();
        let after: Vec<Value> = listed(&lab.repo);
        let job_snaps = after.iter().filter(|s| s["job"] == "fp").count();
        assert_eq!(job_snaps, 1, "keep-last 1 for the job's own snapshots");
        lab.verify();
        // The next round's job snapshots are then all of the source as it will be.
        let job_ids: Vec<String> = after
            .iter()
            .filter(|s| s["job"] == "fp")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        lab.forget(&job_ids);
        lab.report.row(
            "run (job)",
            point,
            format!("killed; {verified} snapshots made outside the job and {} of the job's restore identical; check clean; rerun completes", made.len()),
        );
    }
    lab.report.finish();
}

/// key rotate --content-keys killed at each of its steps: every snapshot restores
/// identical (under its old id, or stored anew under a new one), every key opens and the
/// backup-only key backs up in between (its snapshot then stored anew too), check is
/// clean, and the next run completes; afterwards an old key file opens nothing.
#[test]
fn content_key_rotate_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 8);
    lab.repo.cairn().args(["key", "add", "--backup-only"]).env("CAIRN_NEW_PASSWORD", "writer").run().ok();
    let opens = |repo: &Repo| repo.cairn().args(["key", "list"]).run().code == Some(0);
    let writer_backs_up = |repo: &Repo, src: &std::path::Path| {
        WithPassword(repo, "writer").cairn().arg("backup").arg(src).run().code == Some(0)
    };
    let rotate = |repo: &Repo| repo.cairn().args(["key", "rotate", "--content-keys"]);
    for point in points_of("key rotate --content-keys") {
        lab.add_data(60_000);
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        let kept = lab.work.path().join("before.key");
        let in_use = lab.repo.cairn().args(["key", "list", "--json"]).run().ok().json();
        let in_use = in_use.as_array().unwrap().iter().find(|k| k["in_use"] == true).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        fs::copy(lab.repo.path.join("keys").join(&in_use), &kept).unwrap();
        let before = listed(&lab.repo);
        kill(rotate(&lab.repo), point, &mut lab.report);
        let verified = lab.witness.verify_stored_anew(&lab.repo, &before);
        lab.report.verified += verified;
        assert!(opens(&lab.repo), "the full key no longer opens after a kill at {point}");
        assert!(
            writer_backs_up(&lab.repo, &lab.src),
            "the backup-only key cannot back up after a kill at {point}"
        );
        // A full key's backup in between compares with no parent of the old content keys
        // (else its snapshot would keep their blobs, and the rerun below would refuse).
        lab.add_data(20_000);
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        if *point != "rotate:after-key-in-use@2" {
            // The key in use holds both content roots: rewrite waits for the rotation.
            let out = lab.repo.cairn().args(["rewrite", "--exclude", "*.none", "--all"]).run();
            assert_eq!(out.code, Some(11), "{}", out.context());
            assert!(out.one_line_error().contains("content key rotation is under way"), "{}", out.context());
        }
        lab.check();
        let before = listed(&lab.repo);
        rotate(&lab.repo).run().ok();
        lab.witness.verify_stored_anew(&lab.repo, &before);
        assert!(opens(&lab.repo) && writer_backs_up(&lab.repo, &lab.src));
        lab.check();
        // The key file from before opens nothing.
        let out = lab.repo.cairn().args(["snapshots", "--key-file"]).arg(&kept).run();
        assert_ne!(out.code, Some(0), "{}", out.context());
        lab.forget_middle();
        lab.report.row(
            "key rotate --content-keys",
            point,
            format!("killed; {verified} snapshots restore identical; every key opens; check clean; rerun completes; the old key opens nothing"),
        );
    }
    lab.verify();
    lab.check();
    lab.report.finish();
}

/// `key add --maintenance` killed at each of its steps, on a fresh repository each time
/// (it enables summaries once): every snapshot restores identical under its old id or its
/// new one, the full and backup-only keys go on, check is clean, and a rerun completes:
/// then the maintenance key lists every snapshot, and the backup-only key's next snapshot
/// has a summary.
#[test]
fn maintenance_enabling_killed_at_each_failpoint() {
    let mut report = FaultReport::new("failpoint");
    for (seed, point) in points_of("key add --maintenance").iter().enumerate() {
        let mut lab = Lab::new("failpoint", 20 + seed as u64);
        lab.repo.cairn().args(["key", "add", "--backup-only"]).env("CAIRN_NEW_PASSWORD", "writer").run().ok();
        let writer_backs_up = |repo: &Repo, src: &std::path::Path| {
            let out = WithPassword(repo, "writer").cairn().arg("backup").arg(src).run();
            out.code == Some(0) && !out.stderr.contains("no summary")
        };
        for size in [60_000, 30_000] {
            lab.add_data(size);
            lab.witness.backup(&lab.repo, &lab.src, &[]);
        }
        let add = |repo: &Repo| {
            repo.cairn().args(["key", "add", "--maintenance"]).env("CAIRN_NEW_PASSWORD", "keeper")
        };
        let before = listed(&lab.repo);
        kill(add(&lab.repo), point, &mut report);
        let verified = lab.witness.verify_resealed(&lab.repo, &before);
        report.verified += verified;
        assert!(
            WithPassword(&lab.repo, "writer").cairn().arg("backup").arg(&lab.src).run().code == Some(0),
            "the backup-only key cannot back up after a kill at {point}"
        );
        lab.check();
        let before = listed(&lab.repo);
        add(&lab.repo).run().ok();
        lab.witness.verify_resealed(&lab.repo, &before);
        assert!(writer_backs_up(&lab.repo, &lab.src), "after the rerun the backup-only key writes summaries");
        let by_keeper =
            WithPassword(&lab.repo, "keeper").cairn().args(["snapshots", "--json"]).run().ok().json();
        assert_eq!(
            by_keeper.as_array().unwrap().len(),
            listed(&lab.repo).len(),
            "the maintenance key lists every snapshot after a kill at {point}"
        );
        lab.check();
        report.row(
            "key add --maintenance",
            point,
            format!("killed; {verified} snapshots restore identical; the backup-only key backs up; check clean; rerun completes and every snapshot has a summary"),
        );
    }
    report.finish();
}

/// key rotate killed at each of its steps (and prune's, whose repack it uses): every
/// snapshot restores identical under its new id or its old one, every key (the one in use,
/// another full key, a backup-only key) still opens, check is clean, and the next run
/// completes the rotation; a key removed before the rotation opens nothing afterwards.
#[test]
fn key_rotate_killed_at_each_failpoint() {
    let mut lab = Lab::new("failpoint", 8);
    let add = |repo: &Repo, pw: &str, extra: &[&str]| {
        repo.cairn().args(["key", "add"]).args(extra).env("CAIRN_NEW_PASSWORD", pw).run().ok();
    };
    add(&lab.repo, "second", &[]);
    add(&lab.repo, "writer", &["--backup-only"]);
    let opens =
        |repo: &Repo, pw: &str| WithPassword(repo, pw).cairn().args(["key", "list"]).run().code == Some(0);
    let writer_backs_up = |repo: &Repo, src: &std::path::Path| {
        WithPassword(repo, "writer").cairn().arg("backup").arg(src).run().code == Some(0)
    };
    for point in points_of("key rotate") {
        lab.add_data(60_000);
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        let before = listed(&lab.repo);
        kill(lab.repo.cairn().args(["key", "rotate"]), point, &mut lab.report);
        let verified = lab.witness.verify_resealed(&lab.repo, &before);
        lab.report.verified += verified;
        assert!(
            opens(&lab.repo, PASSWORD) && opens(&lab.repo, "second"),
            "a full key no longer opens after a kill at {point}"
        );
        assert!(
            writer_backs_up(&lab.repo, &lab.src),
            "the backup-only key cannot back up after a kill at {point}"
        );
        lab.check();
        let before = listed(&lab.repo);
        lab.repo.cairn().args(["key", "rotate"]).run().ok();
        lab.witness.verify_resealed(&lab.repo, &before);
        assert!(
            opens(&lab.repo, PASSWORD) && opens(&lab.repo, "second") && writer_backs_up(&lab.repo, &lab.src)
        );
        lab.check();
        lab.forget_middle();
        lab.report.row(
            "key rotate",
            point,
            format!("killed; {verified} snapshots restore identical; every key opens; check clean; rerun completes"),
        );
    }
    // A key removed before a rotation, its file kept by its holder, opens nothing after it.
    add(&lab.repo, "leaver", &[]);
    let leaver =
        lab.repo.cairn().args(["key", "list", "--json"]).env("CAIRN_PASSWORD", "leaver").run().ok().json();
    let leaver = leaver.as_array().unwrap().iter().find(|k| k["in_use"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = lab.work.path().join("leaver.key");
    fs::copy(lab.repo.path.join("keys").join(&leaver), &kept).unwrap();
    lab.repo.cairn().args(["key", "remove", &leaver[..12]]).run().ok();
    let before = listed(&lab.repo);
    lab.repo.cairn().args(["key", "rotate"]).run().ok();
    lab.witness.verify_resealed(&lab.repo, &before);
    let out =
        lab.repo.cairn().args(["snapshots", "--key-file"]).arg(&kept).env("CAIRN_PASSWORD", "leaver").run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    assert!(out.one_line_error().contains("retired by `cairn key rotate`"), "{}", out.context());
    lab.verify();
    lab.check();
    lab.report.finish();
}
