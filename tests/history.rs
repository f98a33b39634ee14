//! Editing history: tags and labels, and erasing files from old snapshots so that, after
//! prune, no chunk of them is left in the repository.

mod common;

use cairn::repo::KeySource;
use common::{Repo, PASSWORD};
use std::collections::HashSet;
use std::fs;
use std::path::Path;

#[test]
fn tag_edits_tags_and_labels_and_records_the_change() {
    let repo = Repo::new();
    let tmp = common::tempdir("cairn-tag-");
    fs::write(tmp.path().join("f"), "x").unwrap();
    let first = repo.backup(&[tmp.path()], &["--tag", "daily", "--label", "env=test"]);
    let old = first["snapshot"].as_str().unwrap();

    let out = repo
        .cairn()
        .args(["tag", "--json", "latest", "--add", "before-sp7", "--remove", "daily"])
        .args(["--label", "owner=platform", "--remove-label", "env"])
        .run()
        .ok()
        .json();
    let new = out[0]["new"].as_str().unwrap();
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1, "the edited snapshot replaces the old one");
    assert_eq!(snaps[0]["id"], new);
    assert_eq!(snaps[0]["original"], old);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["before-sp7"]));
    assert_eq!(snaps[0]["labels"], serde_json::json!({"owner": "platform"}));
    let set = repo.cairn().args(["tag", "--json", "latest", "--set", "a", "--set", "b"]).run().ok().json();
    assert_eq!(set[0]["tags"], serde_json::json!(["a", "b"]));
    // A second edit keeps naming the snapshot the backup made: `original` is where the
    // chain of edits started (copy relies on it to know what it copied).
    assert_eq!(repo.snapshots()[0]["original"], old);
    // Nothing to change is not an edit; no snapshot named is an error, not "all".
    let same = repo.cairn().args(["tag", "--json", "latest", "--add", "a"]).run().ok().json();
    assert_eq!(same, serde_json::json!([]));
    repo.cairn().args(["tag", "--add", "x"]).run().expect_code(2).one_line_error();
    let log = repo.cairn().args(["log", "--json"]).run().ok().stdout;
    assert_eq!(log.matches("tag snapshot").count(), 2, "{log}");
    repo.cairn().args(["check"]).run().ok();
}

/// Chunk ids a file's content would have in this repository.
fn chunk_ids(repo: &Path, data: &[u8]) -> HashSet<[u8; 32]> {
    let r = cairn::Repository::open(repo.to_str().unwrap(), PASSWORD.as_bytes(), &KeySource::Stored).unwrap();
    let chunker = r.chunker().unwrap();
    chunker.split(data).map(|c| r.keys().chunk_id(c).0).collect()
}

fn stored_ids(repo: &Path) -> HashSet<[u8; 32]> {
    let r = cairn::Repository::open(repo.to_str().unwrap(), PASSWORD.as_bytes(), &KeySource::Stored).unwrap();
    cairn::ops::prune::stored_blob_ids(&r).unwrap().into_values().flatten().map(|b| *b.bytes()).collect()
}

#[test]
fn rewrite_then_prune_leaves_no_chunk_of_the_erased_files() {
    let repo = Repo::with_options(&["--pack-size", "1M"]);
    let tmp = common::tempdir("cairn-rewrite-");
    let src = tmp.path().join("gw");
    fs::create_dir_all(src.join("home/jdoe")).unwrap();
    fs::create_dir_all(src.join("conf")).unwrap();
    let mut rng = common::Rng::new(42);
    let personal = rng.bytes(700_000);
    let shared = rng.bytes(2_000_000);
    fs::write(src.join("home/jdoe/notes.bin"), &personal).unwrap();
    fs::write(src.join("conf/shared.bin"), &shared).unwrap();
    repo.backup(&[&src], &[]);
    fs::write(src.join("conf/more.txt"), "second backup").unwrap();
    repo.backup(&[&src], &[]);
    let before = repo.snapshots();
    let pattern = format!("{}/home/jdoe", src.display());

    // A dry run names what would go and changes nothing.
    let dry =
        repo.cairn().args(["rewrite", "--json", "--all", "--dry-run", "--exclude", &pattern]).run().ok();
    let dry = dry.json();
    assert_eq!(dry["rewritten"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(dry["rewritten"][0]["removed"], serde_json::json!([pattern]));
    assert_eq!(repo.snapshots(), before);

    let done = repo.cairn().args(["rewrite", "--json", "--all", "--exclude", &pattern]).run().ok().json();
    let after = repo.snapshots();
    assert_eq!(after.len(), 2);
    for (new, old) in after.iter().zip(&before) {
        assert_eq!(new["original"], old["id"]);
        assert_eq!(new["summary"]["files"].as_u64().unwrap(), old["summary"]["files"].as_u64().unwrap() - 1);
        assert_eq!(
            new["summary"]["total_bytes"].as_u64().unwrap(),
            old["summary"]["total_bytes"].as_u64().unwrap() - personal.len() as u64
        );
    }
    let found = repo.cairn().args(["find", "--json", "notes.bin"]).run().ok().json();
    assert_eq!(found, serde_json::json!([]), "rewrite output: {done}");
    // The log says what left which snapshot.
    let log = repo.cairn().args(["log"]).run().ok().stdout;
    assert_eq!(log.matches("rewrite snapshot").count(), 2, "{log}");
    assert!(log.contains(&format!("removed={pattern}")), "{log}");

    // Before prune the chunks are still stored; after prune --max-unused 0 none is.
    let gone = chunk_ids(&repo.path, &personal);
    assert!(gone.is_subset(&stored_ids(&repo.path)));
    repo.cairn().args(["prune", "--max-unused", "0"]).run().ok();
    let stored = stored_ids(&repo.path);
    assert!(gone.is_disjoint(&stored), "a chunk of the erased file is still stored");
    assert!(chunk_ids(&repo.path, &shared).is_subset(&stored), "prune lost data a snapshot uses");
    repo.cairn().args(["check", "--read-data"]).run().ok();
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[]).ok();
    assert_eq!(fs::read(common::restored(&out, &src).join("conf/shared.bin")).unwrap(), shared);
    assert!(!common::restored(&out, &src).join("home/jdoe").exists());

    // Erasing again finds nothing; a bad pattern is a usage error.
    let again = repo.cairn().args(["rewrite", "--json", "--all", "--exclude", &pattern]).run().ok().json();
    assert_eq!(again["rewritten"], serde_json::json!([]));
    repo.cairn().args(["rewrite", "--all", "--exclude", "["]).run().expect_code(2).one_line_error();
    repo.cairn().args(["rewrite", "--all"]).run().expect_code(2).one_line_error();
}
