//! Damage in the repository: a flipped byte or a missing pack fails only the files whose
//! data it holds (exit 4, each named on stderr), and a damaged snapshot is reported as
//! such instead of being used.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

struct Setup {
    work: TempDir,
    repo: Repo,
    src: PathBuf,
    /// Relative path of the big random file.
    big: PathBuf,
    /// Packs written by the second backup that hold only the big file's chunks.
    big_packs: Vec<PathBuf>,
}

/// A repository with 1M packs: a first backup of small files, then a second that adds a
/// ~3 MB random file. Every data pack the second backup adds holds only that file's
/// chunks (the small files and unchanged trees are already stored; trees go in their own
/// packs, which are small).
fn setup() -> Setup {
    setup_with(false)
}

/// `hard_link`: the big file also gets a second name, conf/big-link.jar.
fn setup_with(hard_link: bool) -> Setup {
    let work = tempdir("cairn-tamper-");
    let src = work.path().join("src");
    for i in 0..12 {
        let sub = src.join(format!("conf/part-{}", i % 3));
        fs::create_dir_all(&sub).unwrap();
        let text = String::from_utf8(sql_dump(100 + i, 2_000 + 700 * i as usize)).unwrap();
        fs::write(sub.join(format!("file-{i}.xml")), text).unwrap();
    }
    write_random(&src.join("lib/small.jar"), 7, 90_000);
    std::os::unix::fs::symlink("conf/part-0", src.join("current")).unwrap();
    let src = fs::canonicalize(&src).unwrap();
    set_times_everywhere(&src, 9);

    let repo = Repo::with_options(&["--pack-size", "1M"]);
    repo.backup(&[&src], &[]);
    let before: BTreeSet<PathBuf> = repo.pack_paths().into_iter().collect();

    let big = PathBuf::from("lib/gateway-big.jar");
    write_random(&src.join(&big), 8, 3 << 20);
    if hard_link {
        fs::hard_link(src.join(&big), src.join("conf/big-link.jar")).unwrap();
    }
    set_times_everywhere(&src, 10);
    repo.backup(&[&src], &[]);
    let big_packs: Vec<PathBuf> = repo
        .pack_paths()
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| fs::metadata(p).unwrap().len() > 256 << 10)
        .collect();
    assert!(big_packs.len() >= 2, "a 3 MB random file should fill at least two 1M packs: {big_packs:?}");
    Setup { work, repo, src, big, big_packs }
}

/// Restore latest, expect exit 4 naming only the big file, and check everything else.
fn expect_only_big_file_damaged(s: &Setup) {
    let target = s.work.path().join("restore");
    let out = s.repo.restore("latest", &target, &[]).expect_code(4);
    let big_abs = restored(&target, &s.src).join(&s.big);
    let damaged_lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("cairn: damaged:")).collect();
    assert_eq!(damaged_lines.len(), 1, "{}", out.context());
    assert!(
        damaged_lines[0].contains(big_abs.to_str().unwrap()),
        "the damaged file is not named: {}",
        out.context()
    );
    let r = out.json();
    let damaged = r["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{r}");
    assert!(damaged[0].as_str().unwrap().contains("gateway-big.jar"), "{r}");
    assert!(!big_abs.exists(), "a damaged file must not be left looking restored");
    // Every other file is back, exactly.
    let back = restored(&target, &s.src);
    assert_trees_equal(
        &s.src,
        &back,
        &CompareOptions {
            ignore: vec![s.big.clone()],
            // lib/ lost an entry, but its metadata is still applied.
            ..Default::default()
        },
    );
    // The text output says so too.
    let target2 = s.work.path().join("restore-text");
    let text = s.repo.cairn().args(["restore", "latest", "--target"]).arg(&target2).run().expect_code(4);
    assert!(text.stdout.contains("DAMAGED"), "{}", text.context());
}

fn middle(p: &Path) -> u64 {
    fs::metadata(p).unwrap().len() / 2
}

#[test]
fn flipped_byte_in_a_pack_damages_only_the_file_using_it() {
    let s = setup();
    // Sanity: the untouched repository restores cleanly.
    let clean = s.work.path().join("clean");
    s.repo.restore("latest", &clean, &[]).ok();
    assert_same_tree(&s.src, &restored(&clean, &s.src));

    let pack = &s.big_packs[0];
    flip_byte(pack, middle(pack));
    expect_only_big_file_damaged(&s);
    // The older snapshot, which never had the big file, is unaffected.
    let first = s.repo.snapshots()[0]["id"].as_str().unwrap().to_string();
    let old = s.work.path().join("old");
    s.repo.restore(&first[..16], &old, &[]).ok();
    assert!(restored(&old, &s.src).join("conf/part-1/file-4.xml").is_file());
}

#[test]
fn deleted_pack_damages_only_the_file_using_it() {
    let s = setup();
    fs::remove_file(&s.big_packs[0]).unwrap();
    expect_only_big_file_damaged(&s);
}

#[test]
fn truncated_pack_damages_only_the_file_using_it() {
    let s = setup();
    let pack = &s.big_packs[0];
    let len = fs::metadata(pack).unwrap().len();
    fs::OpenOptions::new().write(true).open(pack).unwrap().set_len(len / 3).unwrap();
    expect_only_big_file_damaged(&s);
}

fn one_snapshot_repo() -> (TempDir, Repo, PathBuf, PathBuf) {
    let work = tempdir("cairn-snapdmg-");
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), b"<a/>").unwrap();
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let snaps: Vec<PathBuf> =
        fs::read_dir(repo.path.join("snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(snaps.len(), 1);
    let snap = snaps[0].clone();
    (work, repo, src, snap)
}

fn mentions_damage(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    ["corrupt", "damaged", "tamper", "does not match", "authentic"].iter().any(|w| l.contains(w))
}

#[test]
fn flipped_byte_in_a_snapshot_file_is_reported_as_corruption() {
    let (work, repo, _src, snap) = one_snapshot_repo();
    let name = snap.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte(&snap, middle(&snap));

    let out = repo.cairn().args(["snapshots", "--json"]).run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    let line = out.one_line_error();
    assert!(mentions_damage(line), "error should name corruption: {line}");
    assert!(line.contains(&name[..16]), "error should name the snapshot: {line}");

    let target = work.path().join("t");
    let out = repo.restore("latest", &target, &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    assert!(mentions_damage(out.one_line_error()), "{}", out.context());
    let out = repo.restore(&name[..8], &target, &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    assert!(mentions_damage(out.one_line_error()), "{}", out.context());
}

#[test]
fn resealed_snapshot_with_a_flipped_byte_fails_authentication() {
    // Someone flips a byte and renames the file to the hash of its new bytes: the name
    // check passes, and the sealed envelope must still refuse it.
    let (work, repo, _src, snap) = one_snapshot_repo();
    flip_byte(&snap, middle(&snap));
    let bytes = fs::read(&snap).unwrap();
    let new_name = blake3::hash(&bytes).to_hex().to_string();
    fs::rename(&snap, snap.with_file_name(&new_name)).unwrap();

    let out = repo.cairn().args(["snapshots", "--json"]).run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    let line = out.one_line_error();
    assert!(mentions_damage(line), "error should name corruption: {line}");
    assert!(line.contains(&new_name[..16]), "{line}");
    let out = repo.restore("latest", &work.path().join("t"), &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    assert!(!work.path().join("t").exists());
}

#[test]

fn damaged_snapshot_message_says_it_is_damaged() {
    let (_work, repo, _src, snap) = one_snapshot_repo();
    flip_byte(&snap, middle(&snap));
    let out = repo.cairn().arg("snapshots").run();
    assert_ne!(out.code, Some(0), "{}", out.context());
    let line = out.one_line_error().to_ascii_lowercase();
    assert!(
        line.contains("corrupt") || line.contains("damaged"),
        "the message should say the snapshot is corrupt or damaged: {line}"
    );
}

#[test]

fn damaged_hard_linked_file_names_every_link() {
    let s = setup_with(true);
    fs::remove_file(&s.big_packs[0]).unwrap();
    let target = s.work.path().join("restore");
    let out = s.repo.restore("latest", &target, &[]).expect_code(4);
    let back = restored(&target, &s.src);
    for rel in ["lib/gateway-big.jar", "conf/big-link.jar"] {
        assert!(!back.join(rel).exists(), "{rel} restored from damaged data");
        let p = back.join(rel);
        assert!(
            out.stderr.lines().any(|l| l.starts_with("cairn: damaged:") && l.contains(p.to_str().unwrap())),
            "{rel} is damaged (not restored) but not named\n{}",
            out.context()
        );
    }
    assert_trees_equal(
        &s.src,
        &back,
        &CompareOptions { ignore: vec![s.big.clone(), "conf/big-link.jar".into()], ..Default::default() },
    );
}

/// When the newest snapshot object cannot be read, `latest` is not quietly the one before
/// it: a disaster-recovery restore must not bring back older data without a word.
#[test]
fn latest_is_refused_while_a_snapshot_cannot_be_read() {
    let (work, repo, src, _) = one_snapshot_repo();
    fs::write(src.join("newer.xml"), "<newer/>").unwrap();
    let older = repo.snapshots()[0]["id"].as_str().unwrap().to_string();
    repo.backup(&[&src], &[]);
    let newest = repo.objects("snapshots").into_iter().find(|n| *n != older).unwrap();
    flip_byte(&repo.path.join("snapshots").join(&newest), 60);
    for extra in [&[][..], &["--host", "any-host"][..]] {
        let out = repo.restore("latest", &work.path().join("t"), extra);
        assert_ne!(out.code, Some(0), "{}", out.context());
        let line = out.one_line_error();
        assert!(line.contains("'latest' cannot be decided") && line.contains(&newest[..8]), "{line}");
    }
    // Named by id, the older one restores.
    repo.restore(&older[..12], &work.path().join("by-id"), &[]).ok();
}
