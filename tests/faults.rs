//! A failing store (issue 16, item 2): the real binary runs against a store that fails
//! the N-th write, read, list or delete with ENOSPC, EIO or a timeout, returns short
//! reads, or flips a bit in what it returns (`CAIRN_FAULTS`, src/backend/faulty.rs).
//! Backup, prune (mid-repack), copy, restore and repair must each end with a clear
//! one-line error (or ride the fault out), lose nothing (every witnessed snapshot still
//! restores identical, `check --read-data` clean), and complete when run again. A
//! flipped bit must be caught by authentication: restore never writes it.
//!
//! Needs the `failpoints` feature. Each test prints its rows (command × fault × outcome);
//! scripts/fault-report.sh collects them into benches/FAULTS.md.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// What a command run against the failing store must end with.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// This exit code and one clear error line.
    Fails(i32),
    /// Exit 4 with the damage named, or 0: the fault hit something the command could do
    /// without (it is caught either way; the checks after tell whether anything was lost).
    DamageOrRiddenOut,
    /// Success: the fault was caught and worked around (a read repeated, a file left out
    /// and stored again).
    RiddenOut,
}

/// Run `cmd` against a store with `faults`, and check how it ended. Returns the outcome
/// for the report.
fn inject(cmd: Cairn, faults: &str, expect: Expect, report: &mut FaultReport) -> (Out, String) {
    let out = cmd.env("CAIRN_FAULTS", faults).run();
    report.faults += 1;
    assert!(out.signal.is_none() && !out.stderr.contains("panicked"), "{faults}: crashed\n{}", out.context());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("cairn: ") && !l.starts_with("cairn: warning:"))
        .collect();
    match expect {
        Expect::Fails(code) => {
            assert_eq!(out.code, Some(code), "{faults}\n{}", out.context());
            assert_eq!(errors.len(), 1, "{faults}: one error line expected\n{}", out.context());
            assert!(
                names_the_failure(faults, errors[0]),
                "{faults}: the error must say what failed\n{}",
                out.context()
            );
        }
        Expect::DamageOrRiddenOut => {
            assert!(matches!(out.code, Some(0 | 4)), "{faults}\n{}", out.context());
            if out.code == Some(4) {
                assert!(
                    out.stderr.contains("damaged"),
                    "{faults}: exit 4 names the damage\n{}",
                    out.context()
                );
            }
        }
        Expect::RiddenOut => assert_eq!(out.code, Some(0), "{faults}\n{}", out.context()),
    }
    // What it said: its error line, else the first thing it reported (damage found).
    let first = out.stderr.lines().find(|l| !l.trim().is_empty() && !l.starts_with("cairn: warning:"));
    let said = errors.last().or(first.as_ref()).map(|l| shorten(l)).unwrap_or_else(|| "no error".into());
    let outcome = format!("exit {}: {said}", out.code.unwrap_or(-1));
    (out, outcome)
}

/// Whether an error line says what went wrong: the failed call (which the store named)
/// for an error the store returned; the damage for bytes that came back wrong.
fn names_the_failure(faults: &str, line: &str) -> bool {
    if faults.ends_with(":flip") || faults.ends_with(":short") {
        ["authentication failed", "does not match", "truncated", "damaged", "not a cairn"]
            .iter()
            .any(|w| line.contains(w))
    } else {
        line.contains("(injected fault)")
    }
}

/// An error line for the table: paths cut to their last name, object names to 8 hex
/// digits, at most 110 characters.
fn shorten(line: &str) -> String {
    let words: Vec<String> = line
        .trim_start_matches("cairn: ")
        .split(' ')
        .map(|w| match w.strip_prefix('/') {
            Some(rest) => format!("…/{}", rest.rsplit('/').next().unwrap_or(rest)),
            None => w.to_string(),
        })
        .collect();
    let mut out = String::new();
    let mut run = 0;
    for c in words.join(" ").chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run <= 8 {
            out.push(c);
        } else if run == 9 {
            out.push('…');
        }
    }
    if out.chars().count() > 110 {
        out = out.chars().take(109).collect::<String>() + "…";
    }
    out.replace('|', "/")
}

/// Stored pack names (a failed repair must not delete or rewrite any).
fn pack_names(repo: &Repo) -> BTreeSet<String> {
    repo.pack_paths().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn backup_against_a_failing_store_stops_cleanly_and_loses_nothing() {
    let mut lab = Lab::new("fault", 21);
    let cases = [
        ("write/pack:1:enospc", Expect::Fails(13)),
        ("write/pack:2+:enospc", Expect::Fails(13)),
        ("write/index:1:eio", Expect::Fails(1)),
        ("write/snapshot:1:timeout", Expect::Fails(1)),
        ("read/index:1:eio", Expect::Fails(1)),
        ("read/index:1:flip", Expect::RiddenOut),
        ("read/pack:1+:flip", Expect::RiddenOut),
    ];
    for (faults, expect) in cases {
        lab.add_data(150_000);
        let mut cmd = lab.repo.cairn().args(["backup", "--json"]);
        if faults.starts_with("read/index") {
            // This machine's index cache is current (the check before made it anew), so a
            // backup would read no index file; without it, it reads them all from the
            // store, as on a new host, which is what the fault is about.
            cmd = cmd.arg("--no-cache");
        }
        let cmd = cmd.arg(&lab.src);
        let (out, outcome) = inject(cmd, faults, expect, &mut lab.report);
        let (verified, stored) = lab.witness.verify_and_adopt(&lab.repo, &lab.src);
        lab.report.verified += verified + stored.len();
        assert_eq!(stored.len(), usize::from(out.code == Some(0)), "{faults}: {stored:?}");
        lab.check();
        lab.witness.backup(&lab.repo, &lab.src, &[]);
        lab.report.row(
            "backup",
            faults,
            format!("{outcome}; {verified} snapshots restore identical; check clean; rerun completes"),
        );
        lab.forget_middle();
    }
    lab.report.finish();
}

#[test]
fn prune_against_a_failing_store_deletes_nothing_in_use() {
    let mut lab = Lab::new("fault", 22);
    let cases = [
        ("write/pack:1:enospc", Expect::Fails(13)),
        ("read/pack:4:flip", Expect::Fails(1)),
        ("read/pack:3+:short", Expect::Fails(1)),
        ("write/index:2:eio", Expect::Fails(1)),
        ("delete/index:1:eio", Expect::Fails(1)),
        ("delete/pack:2:eio", Expect::Fails(1)),
    ];
    let prune = ["prune", "--json", "--max-unused", "0"];
    for (faults, expect) in cases {
        lab.make_garbage();
        let (_, outcome) = inject(lab.repo.cairn().args(prune), faults, expect, &mut lab.report);
        let verified = lab.verify();
        lab.check();
        lab.repo.cairn().args(prune).run().ok();
        let left =
            lab.repo.cairn().args(["prune", "--json", "--dry-run", "--max-unused", "0"]).run().ok().json();
        assert_eq!(left["blobs_unused"], 0, "{faults}: the rerun left garbage: {left}");
        lab.report.row(
            "prune",
            faults,
            format!("{outcome}; {verified} snapshots restore identical; check clean; rerun completes"),
        );
    }
    // What each rerun did is checked by the next case's checks, the last one's here.
    lab.verify();
    lab.check();
    lab.report.finish();
}

#[test]
fn copy_against_a_failing_store_stops_cleanly_and_loses_nothing() {
    let mut lab = Lab::new("fault", 23);
    let dst = Repo::with_options(&["--pack-size", "1M"]);
    let mut copies = Witness::new();
    let copy = |lab: &Lab| lab.copy_into(&dst);
    copy(&lab).run().ok();
    copies.adopt_new(&dst, &lab.src);
    let cases = [
        ("write/pack:1:enospc", Expect::Fails(13)),
        ("write/snapshot:1:eio", Expect::Fails(1)),
        ("list/snapshot:1:timeout", Expect::Fails(1)),
        ("read/pack:2:flip", Expect::Fails(1)),
        ("read/pack:1+:short", Expect::Fails(1)),
    ];
    for (faults, expect) in cases {
        lab.add_data(100_000);
        // Its copy is checked against the source folder, unchanged until the next round.
        lab.repo.backup(&[&lab.src], &[]);
        let (out, outcome) = inject(copy(&lab), faults, expect, &mut lab.report);
        let (verified, early) = copies.verify_and_adopt(&dst, &lab.src);
        assert_eq!(early.len(), usize::from(out.code == Some(0)), "{faults}: {early:?}");
        check_clean(&dst);
        copy(&lab).run().ok();
        let copied = copies.adopt_new(&dst, &lab.src);
        lab.report.verified += verified + copied.len();
        lab.report.row(
            "copy",
            faults,
            format!("{outcome}; {verified} copies restore as their sources; check clean; rerun completes"),
        );
    }
    lab.verify();
    check_clean(&dst);
    lab.report.finish();
}

/// Every difference between `reference` and its restore at `tree` is a missing entry
/// the restore named as damaged, or that lies in a folder it named: never a wrong byte.
fn only_named_entries_missing(reference: &Path, tree: &Path, stderr: &str) {
    let named: Vec<PathBuf> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("cairn: damaged: "))
        .filter_map(|l| l.split_once(": ").map(|(p, _)| PathBuf::from(p)))
        .collect();
    for d in diff_trees(reference, tree, &CompareOptions::default()) {
        // Links of a group whose data was damaged are missing, so they are no longer one
        // inode: that is the missing entries again (each is checked below), not a new
        // difference, as long as a member is missing and every missing one was named.
        let group =
            d.strip_prefix("hard links [").and_then(|r| r.strip_suffix("] are not one inode in the restore"));
        if let Some(list) = group {
            let members: Vec<PathBuf> = list.split(", ").map(|m| tree.join(m.trim_matches('"'))).collect();
            let missing: Vec<&PathBuf> = members.iter().filter(|m| !m.exists()).collect();
            assert!(!missing.is_empty(), "a restore from a failing store differs: {d}\n{stderr}");
            for m in missing {
                assert!(
                    named.iter().any(|p| m.starts_with(p)),
                    "{} is missing but was not named\n{stderr}",
                    m.display()
                );
            }
            continue;
        }
        let Some(rel) = d.strip_suffix(": missing in restore") else {
            panic!("a restore from a failing store differs: {d}\n{stderr}")
        };
        let missing = tree.join(rel);
        assert!(
            named.iter().any(|p| missing.starts_with(p)),
            "{rel} is missing but was not named as damaged\n{stderr}"
        );
    }
}

#[test]
fn restore_from_a_failing_store_never_writes_a_wrong_byte() {
    let mut lab = Lab::new("fault", 24);
    let id = lab.witness.ids()[0].clone();
    let cases = [
        ("read/pack:1:flip", Expect::DamageOrRiddenOut),
        ("read/pack:4:flip", Expect::DamageOrRiddenOut),
        ("read/pack:3:short", Expect::DamageOrRiddenOut),
        ("read/pack:2+:flip", Expect::DamageOrRiddenOut),
        ("read/pack:2:eio", Expect::Fails(1)),
        ("read/index:1:eio", Expect::Fails(1)),
        ("read/snapshot:1:flip", Expect::Fails(1)),
    ];
    for (n, (faults, expect)) in cases.into_iter().enumerate() {
        let target = lab.work.path().join(format!("restore-{n}"));
        let cmd = lab.repo.cairn().args(["restore", &id, "--target"]).arg(&target);
        let (out, outcome) = inject(cmd, faults, expect, &mut lab.report);
        let tree = restored(&target, &lab.src);
        if tree.exists() {
            only_named_entries_missing(&lab.src, &tree, &out.stderr);
        }
        // Run again into the same target: it completes, the tree identical.
        lab.repo.cairn().args(["restore", &id, "--target"]).arg(&target).run().ok();
        assert_same_tree(&lab.src, &tree);
        let verified = lab.verify();
        lab.report.row(
            "restore",
            faults,
            format!("{outcome}; no wrong byte written; rerun into the same target restores identical; {verified} snapshots verified"),
        );
    }
    lab.check();
    lab.report.finish();
}

/// `check --read-data` on a local disk that fails to read a pack, or gives wrong bytes,
/// reports damage (exit 4) and goes on: a sector the disk cannot read is data lost, and
/// the report names what it takes. (A remote store that keeps failing is not damage:
/// tests/backends.rs.) An index file it cannot read stops it (exit 1). Nothing changes:
/// the next check is clean and every snapshot restores identical.
#[test]
fn check_against_a_failing_disk_reports_damage_and_changes_nothing() {
    let mut lab = Lab::new("fault", 27);
    lab.add_data(150_000);
    lab.witness.backup(&lab.repo, &lab.src, &[]);
    let cases = [
        ("read/pack:2:eio", Expect::DamageOrRiddenOut),
        ("read/pack:2:flip", Expect::DamageOrRiddenOut),
        ("read/pack:1:short", Expect::DamageOrRiddenOut),
        ("read/index:1:eio", Expect::Fails(1)),
    ];
    for (faults, expect) in cases {
        let cmd = lab.repo.cairn().args(["check", "--read-data", "--no-cache"]);
        let (out, outcome) = inject(cmd, faults, expect, &mut lab.report);
        if matches!(expect, Expect::DamageOrRiddenOut) {
            assert_eq!(out.code, Some(4), "{faults}: damage must be reported\n{}", out.context());
        }
        let verified = lab.verify();
        lab.check();
        lab.report.row(
            "check",
            faults,
            format!("{outcome}; {verified} snapshots restore identical; check clean"),
        );
    }
    lab.report.finish();
}

#[test]
fn repair_index_on_a_failing_store_deletes_nothing() {
    let mut lab = Lab::new("fault", 25);
    lab.add_data(200_000);
    lab.witness.backup(&lab.repo, &lab.src, &[]);
    let cases = [
        ("read/pack:2:flip", Expect::RiddenOut),
        ("read/pack:2:eio", Expect::Fails(1)),
        ("write/index:1:enospc", Expect::Fails(13)),
        ("delete/index:1:eio", Expect::Fails(1)),
        ("read/pack:1+:flip", Expect::DamageOrRiddenOut),
    ];
    for (faults, expect) in cases {
        let packs = pack_names(&lab.repo);
        let (out, outcome) =
            inject(lab.repo.cairn().args(["repair", "index"]), faults, expect, &mut lab.report);
        let after = pack_names(&lab.repo);
        assert!(after.is_superset(&packs), "{faults}: packs were deleted\n{}", out.context());
        // A store that damages every read leaves an index of what read back intact: the
        // snapshots come back with the next run on a healthy store.
        let mut verified = 0;
        if out.code != Some(4) {
            verified = lab.verify();
            lab.check();
        }
        // After a store that damaged every read, the rerun finds (and names) the damaged
        // copies that run stored beside the packs it kept: prune deletes them later.
        let rerun = lab.repo.cairn().args(["repair", "index"]).run();
        let expected = if out.code == Some(4) { 4 } else { 0 };
        rerun.expect_code(expected);
        verified += lab.verify();
        lab.check();
        lab.report.row(
            "repair index",
            faults,
            format!("{outcome}; no pack deleted; {verified} snapshot restores identical; rerun completes"),
        );
    }
    lab.report.finish();
}

#[test]
fn repair_snapshots_on_a_failing_store_stops_cleanly() {
    let mut lab = Lab::new("fault", 26);
    let cases = [("write/snapshot:1:enospc", Expect::Fails(13)), ("write/pack:1:eio", Expect::Fails(1))];
    for (faults, expect) in cases {
        let before = lab.repo.pack_paths();
        let lost = lab.add_data(200_000);
        let mut damaged = Witness::new();
        damaged.backup(&lab.repo, &lab.src, &[]);
        fs::remove_file(&lost).unwrap();
        let added: Vec<PathBuf> = lab.repo.pack_paths().into_iter().filter(|p| !before.contains(p)).collect();
        fs::remove_file(added.iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap()).unwrap();
        lab.repo.cairn().args(["repair", "index"]).run().ok();
        let (_, outcome) =
            inject(lab.repo.cairn().args(["repair", "snapshots"]), faults, expect, &mut lab.report);
        let verified = lab.verify();
        assert!(
            listed(&lab.repo).iter().any(|s| s["id"] == damaged.ids()[0].as_str()),
            "{faults}: the damaged snapshot went"
        );
        lab.repo.cairn().args(["repair", "snapshots"]).run().ok();
        lab.check();
        let rel = lost.strip_prefix(&lab.src).unwrap().to_path_buf();
        lab.report.verified += damaged.verify_following(&lab.repo, &[rel]);
        lab.report.row(
            "repair snapshots",
            faults,
            format!("{outcome}; {verified} intact snapshots restore identical; the damaged one stays until the rerun replaces it; check clean"),
        );
        lab.forget(&damaged.ids());
    }
    lab.report.finish();
}
