//! `latest` under a snapshot filter: in a repository shared by several hosts and jobs,
//! `latest --host H` (or `--tag`, `--label`, `--path`) is the newest snapshot of that
//! host, for every command that takes a snapshot, and a job's drill and check stay with
//! the job's own snapshots.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// Two hosts back up the same path with different content; gw2 backs up last.
fn shared_repository(work: &Path) -> (Repo, PathBuf) {
    let src = work.join("src");
    fs::create_dir_all(&src).unwrap();
    let src = fs::canonicalize(src).unwrap();
    let repo = Repo::new();
    fs::write(src.join("gateway.xml"), "gw1 config").unwrap();
    repo.backup(&[&src], &["--host", "gw1", "--tag", "prod", "--label", "job=gw1-files"]);
    fs::write(src.join("gateway.xml"), "gw2 config, which is longer").unwrap();
    repo.backup(&[&src], &["--host", "gw2", "--tag", "test", "--label", "job=gw2-files"]);
    (repo, src)
}

#[test]
fn latest_is_the_newest_snapshot_the_filter_passes_in_every_command() {
    let work = tempdir("cairn-latest-");
    let (repo, src) = shared_repository(work.path());
    let file = src.join("gateway.xml");
    let cat =
        |filter: &[&str]| repo.cairn().args(["cat", "latest"]).arg(&file).args(filter).run().ok().stdout;
    assert_eq!(cat(&[]), "gw2 config, which is longer", "no filter: the newest of all");
    for filter in [
        &["--host", "gw1"][..],
        &["--tag", "prod"],
        &["--label", "job=gw1-files"],
        &["--host", "gw3", "--host", "gw1"],
    ] {
        assert_eq!(cat(filter), "gw1 config", "cat latest {filter:?}");
    }

    let target = work.path().join("restore");
    repo.restore("latest", &target, &["--host", "gw1"]).ok();
    assert_eq!(fs::read_to_string(restored(&target, &file)).unwrap(), "gw1 config");

    let ls = repo.cairn().args(["ls", "--json", "-l", "latest"]).arg(&src).args(["--host", "gw1"]).run().ok();
    let sizes: Vec<u64> = ls.json_lines().iter().filter_map(|v| v["size"].as_u64()).collect();
    assert_eq!(sizes, [10], "{}", ls.stdout);

    let dump = repo
        .cairn()
        .args(["dump", "latest"])
        .arg(&file)
        .args(["--archive", "tar", "--tag", "prod"])
        .run()
        .ok();
    let text = String::from_utf8_lossy(&dump.stdout_bytes);
    assert!(text.contains("gw1 config") && !text.contains("gw2 config"), "dump took another host's snapshot");

    let gw1 =
        repo.snapshots().iter().find(|s| s["host"] == "gw1").unwrap()["id"].as_str().unwrap().to_string();
    let diff = repo.cairn().args(["diff", &gw1, "latest"]).args(["--host", "gw1"]).run().ok();
    assert!(!diff.stdout.contains("gateway.xml"), "a snapshot against itself differs:\n{}", diff.stdout);
    let diff = repo.cairn().args(["diff", &gw1, "latest"]).run().ok();
    assert!(diff.stdout.contains("gateway.xml"), "{}", diff.stdout);

    let find = repo.cairn().args(["find", "--json", "gateway.xml", "--host", "gw2"]).run().ok().json();
    let versions = find[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{find}");
    assert_eq!(versions[0]["snapshots"].as_array().unwrap().len(), 1, "{find}");
    let find_latest = repo.cairn().args(["find", "gateway.xml", "--snapshot", "latest", "--path"]).arg(&src);
    assert!(find_latest.args(["--host", "gw1"]).run().ok().stdout.contains("1 snapshots searched"));

    let drill = repo.cairn().args(["drill", "--json", "--host", "gw1"]).run().ok().json();
    assert!(gw1.starts_with(drill["snapshot"].as_str().unwrap()), "drill picked {drill}");

    let listed = repo.cairn().args(["snapshots", "--json", "--label", "job=gw2-files"]).run().ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["host"], "gw2");

    // A filter nothing passes is a clear error, not another host's snapshot.
    let out = repo
        .cairn()
        .args(["restore", "latest", "--host", "gw9", "--target"])
        .arg(work.path().join("x"))
        .run();
    let line = out.expect_code(1).one_line_error().to_string();
    assert!(line.contains("no snapshot matches --host gw9"), "{line}");
    assert!(!work.path().join("x").exists());
}
