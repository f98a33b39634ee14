//! The damage matrix: each kind of damage to a real repository is reported by `check`
//! with the right object, `restore` restores everything intact, and the repair commands
//! bring the repository back to a state that checks clean, with the loss recorded.

mod common;

use cairn::backend::FileType;
use cairn::format::index::IndexFile;
use cairn::format::pack::Entry;
use cairn::id::BlobKind;
use cairn::repo::KeySource;
use common::{copy_dir, files_below};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cairn(repo: &Path, args: &[&str]) -> Output {
    common::cairn_with(repo, "pw", args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A repository with one big file in packs of its own, small files, and a second key.
fn build(tmp: &Path) -> (PathBuf, PathBuf) {
    let (repo, src) = (tmp.join("pristine"), tmp.join("src"));
    std::fs::create_dir_all(src.join("conf/sub")).unwrap();
    let mut big = vec![0u8; 2_500_000];
    blake3::Hasher::new().update(b"big").finalize_xof().fill(&mut big);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("conf/sub/c{i}.xml")), format!("<c n=\"{i}\"/>\n").repeat(50))
            .unwrap();
    }
    let ok = |o: Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(cairn(&repo, &["init", "--kdf-memory", "64M", "--kdf-iterations", "3", "--pack-size", "1M"]));
    let s = src.to_str().unwrap();
    ok(cairn(&repo, &["backup", s]));
    let add = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["-r", repo.to_str().unwrap(), "key", "add", "--kdf-memory", "64M", "--kdf-iterations", "3"])
        .env("CAIRN_PASSWORD", "pw")
        .env("CAIRN_NEW_PASSWORD", "pw2")
        .output()
        .unwrap();
    ok(add);
    (repo, src)
}

/// The packs, largest (a part of big.bin) first.
fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut p = files_below(&repo.join("data"));
    p.sort_by_key(|f| std::cmp::Reverse(std::fs::metadata(f).unwrap().len()));
    p
}

/// The pack holding the trees (trees go in packs of their own), found through the
/// index: by size it is not always the smallest, since the small files' chunks share
/// one well-compressed frame.
fn tree_pack(repo: &Path) -> PathBuf {
    let r = cairn::Repository::open(repo.to_str().unwrap(), b"pw", &KeySource::Stored).unwrap();
    let (lists, _) = cairn::index::load_pack_lists(&r).unwrap();
    let (id, _) =
        lists.iter().find(|(_, entries)| entries.iter().any(|e| e.id.kind() == BlobKind::Tree)).unwrap();
    packs(repo).into_iter().find(|f| f.file_name().unwrap().to_str() == Some(id.to_hex().as_str())).unwrap()
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 20);
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

struct Case {
    name: &'static str,
    damage: fn(&Path),
    /// What check must name.
    object: &'static str,
    /// Repair commands that must bring the repository back (run in order).
    repair: &'static [&'static [&'static str]],
}

/// Stands in a repair step for the name of the snapshot object that no longer matches it.
const DAMAGED_SNAPSHOT: &str = "<damaged snapshot>";

fn damaged_snapshot(repo: &Path) -> String {
    files_below(&repo.join("snapshots"))
        .into_iter()
        .map(|f| (blake3::hash(&std::fs::read(&f).unwrap()).to_hex().to_string(), f))
        .find(|(hash, f)| f.file_name().unwrap().to_str() != Some(hash.as_str()))
        .map(|(_, f)| f.file_name().unwrap().to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn every_kind_of_damage_is_reported_survived_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let (pristine, src) = build(tmp.path());
    let cases = [
        Case {
            name: "flipped byte in a data pack",
            damage: |r| flip(&packs(r)[0], 5000),
            object: "pack ",
            // Repair keeps the damaged pack (its bytes might have been damaged only on the
            // way); prune deletes it, its intact blobs having a verified copy.
            repair: &[&["repair", "index"], &["repair", "snapshots"], &["prune"]],
        },
        Case {
            name: "truncated data pack",
            damage: |r| {
                let p = &packs(r)[0];
                let len = std::fs::metadata(p).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len / 2).unwrap();
            },
            object: "pack ",
            repair: &[&["repair", "index"], &["repair", "snapshots"], &["prune"]],
        },
        Case {
            name: "deleted data pack",
            damage: |r| std::fs::remove_file(&packs(r)[0]).unwrap(),
            object: "pack ",
            repair: &[&["repair", "index"], &["repair", "snapshots"]],
        },
        Case {
            name: "renamed pack",
            damage: |r| {
                let p = &packs(r)[0];
                let name = p.file_name().unwrap().to_str().unwrap();
                let renamed = format!("{}{}", &name[..2], "0".repeat(62));
                std::fs::rename(p, p.with_file_name(renamed)).unwrap();
            },
            object: "pack ",
            repair: &[&["repair", "index"]],
        },
        Case {
            name: "deleted index",
            damage: |r| files_below(&r.join("index")).iter().for_each(|f| std::fs::remove_file(f).unwrap()),
            object: "is not in the index",
            repair: &[&["repair", "index"]],
        },
        Case {
            name: "corrupted index",
            damage: |r| files_below(&r.join("index")).iter().for_each(|f| flip(f, 100)),
            object: "index",
            repair: &[&["repair", "index"]],
        },
        Case {
            name: "corrupted snapshot",
            damage: |r| flip(&files_below(&r.join("snapshots"))[0], 80),
            object: "snapshot ",
            // Removing a snapshot that cannot be read is the user's call, by name.
            repair: &[&["forget", DAMAGED_SNAPSHOT]],
        },
        Case {
            name: "corrupted tree",
            damage: |r| flip(&tree_pack(r), 60),
            object: "tree ",
            repair: &[&["repair", "index"], &["repair", "snapshots"]],
        },
        Case {
            name: "corrupted key file",
            damage: |r| flip(&files_below(&r.join("keys"))[0], 30),
            object: "key ",
            repair: &[],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let repo = tmp.path().join(format!("case{i}"));
        copy_dir(&pristine, &repo);
        (case.damage)(&repo);
        let check = cairn(&repo, &["check", "--read-data"]);
        // A corrupted key file may be the one that opens: then the other key must work.
        let (check, pw_ok) = if check.status.code() == Some(12) {
            let c = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["-r", repo.to_str().unwrap(), "check", "--read-data"])
                .env("CAIRN_PASSWORD", "pw2")
                .output()
                .unwrap();
            (c, "pw2")
        } else {
            (check, "pw")
        };
        assert_eq!(check.status.code(), Some(4), "{}: check must find damage: {}", case.name, stderr(&check));
        assert!(
            stderr(&check).contains(case.object),
            "{}: check must name '{}':\n{}",
            case.name,
            case.object,
            stderr(&check)
        );

        // Restore saves everything intact: the small config files at least.
        let out = tmp.path().join(format!("out{i}"));
        let r = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["-r", repo.to_str().unwrap(), "restore", "latest", "--target", out.to_str().unwrap()])
            .env("CAIRN_PASSWORD", pw_ok)
            .output()
            .unwrap();
        // Damage to data packs takes only the files in them; without an index, a snapshot
        // or a tree, restore must wait for repair.
        if case.name.contains("data pack") {
            // Every file is either restored intact or named as damaged (which files share the
            // damaged pack depends on which worker packed them; tests/tamper.rs pins that).
            let err = stderr(&r);
            let base = out.join(src.to_str().unwrap().trim_start_matches('/'));
            for f in files_below(&src) {
                let rel = f.strip_prefix(&src).unwrap();
                match std::fs::read(base.join(rel)) {
                    Ok(b) if b == std::fs::read(&f).unwrap() => {}
                    _ => assert!(
                        err.contains(rel.to_str().unwrap()),
                        "{}: {rel:?} neither intact nor named",
                        case.name
                    ),
                }
            }
        }

        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .arg("-r")
                .arg(&repo)
                .args(args)
                .env("CAIRN_PASSWORD", pw_ok)
                .output()
                .unwrap()
        };
        for step in case.repair {
            let named = damaged_snapshot(&repo);
            let step: Vec<&str> =
                step.iter().map(|a| if *a == DAMAGED_SNAPSHOT { named.as_str() } else { a }).collect();
            let o = run(&step);
            assert!(
                o.status.code().is_some_and(|c| c == 0 || c == 4),
                "{}: {step:?}: {}",
                case.name,
                stderr(&o)
            );
        }
        if case.name.contains("key") {
            let list = run(&["key", "list", "--json"]);
            let keys: serde_json::Value =
                serde_json::from_slice(&list.stdout).unwrap_or(serde_json::json!([]));
            let _ = keys;
            // The damaged key file is removed by name.
            let damaged = files_below(&repo.join("keys"))
                .into_iter()
                .find(|f| {
                    let b = std::fs::read(f).unwrap();
                    blake3::hash(&b).to_hex().as_str() != f.file_name().unwrap().to_str().unwrap()
                })
                .unwrap();
            let o = run(&["key", "remove", damaged.file_name().unwrap().to_str().unwrap()]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        let after = run(&["check", "--read-data"]);
        assert!(
            after.status.success(),
            "{}: after repair check must be clean: {}",
            case.name,
            stderr(&after)
        );
        // A new backup works and a full restore of it is verified.
        assert!(run(&["backup", src.to_str().unwrap()]).status.success(), "{}", case.name);
        let fresh = tmp.path().join(format!("fresh{i}"));
        let v = run(&["restore", "latest", "--target", fresh.to_str().unwrap(), "--verify"]);
        assert!(v.status.success(), "{}: {}", case.name, stderr(&v));
    }
}

/// Replace the index with one where `edit` changed the entries of the first frame that
/// holds several blobs; returns the ids of that frame's blobs.
fn rewrite_frame_entries(repo: &Path, edit: fn(&mut [Entry])) -> Vec<String> {
    let r = cairn::Repository::open(repo.to_str().unwrap(), b"pw", &KeySource::Stored).unwrap();
    let (mut lists, _) = cairn::index::load_pack_lists(&r).unwrap();
    let mut ids = Vec::new();
    for entries in lists.values_mut() {
        let Some(frame) = entries.chunk_by_mut(|a, b| a.same_frame(b)).find(|f| f.len() > 1) else {
            continue;
        };
        ids = frame.iter().map(|e| e.id.to_string()).collect();
        edit(frame);
        break;
    }
    assert!(!ids.is_empty(), "the small files share a frame");
    for name in r.backend().list(FileType::Index).unwrap() {
        r.backend().remove(FileType::Index, &name).unwrap();
    }
    r.save_index(&IndexFile { supersedes: Vec::new(), packs: lists.into_iter().collect() }).unwrap();
    ids
}

/// A case of `check_finds_index_entries_that_misplace_blobs_in_a_frame`.
type Misplacement = (&'static str, fn(&mut [Entry]), &'static str, usize);

/// Index entries that misplace a blob in its frame, or disagree on the frame's length,
/// are damage that check --read-data names, down to the blobs it concerns.
#[test]
fn check_finds_index_entries_that_misplace_blobs_in_a_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let (pristine, _) = build(tmp.path());
    // (case, edit, what check says, which blob of the frame it names: the misplaced one,
    // or for the frame as a whole its first)
    let cases: [Misplacement; 2] = [
        ("wrong start", |f| f[1].start += 1, "content does not match its id", 1),
        ("wrong length", |f| f[1].length += 1, "disagree on its length", 0),
    ];
    for (i, (name, edit, says, named)) in cases.into_iter().enumerate() {
        let repo = tmp.path().join(format!("case{i}"));
        copy_dir(&pristine, &repo);
        let ids = rewrite_frame_entries(&repo, edit);
        let check = cairn(&repo, &["check", "--read-data"]);
        assert_eq!(check.status.code(), Some(4), "{name}: {}", stderr(&check));
        let err = stderr(&check);
        assert!(err.contains(says), "{name}: {err}");
        assert!(err.contains(&ids[named]), "{name}: the damaged blob is named: {err}");
    }
}
