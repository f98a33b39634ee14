//! Reading history without restoring it: ls, cat, find, diff and stats against what the
//! test put on disk.

mod common;

use common::{gateway_tree, scan, Kind, Repo, TreeSize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A stored path as the commands print it (non-UTF-8 bytes replaced).
fn shown(root: &Path, rel: &[u8]) -> String {
    let mut p = root.as_os_str().as_encoded_bytes().to_vec();
    if !rel.is_empty() {
        p.push(b'/');
        p.extend_from_slice(rel);
    }
    String::from_utf8_lossy(&p).into_owned()
}

#[test]
fn ls_cat_and_stats_show_what_was_backed_up() {
    let repo = Repo::new();
    let tmp = common::tempdir("cairn-browse-");
    let g = gateway_tree(&tmp.path().join("gw"), 7, TreeSize::SMALL);
    repo.backup(&[&g.root], &[]);
    let root = g.root.to_str().unwrap();

    // ls -R --json lists exactly the entries on disk, with their types, sizes and modes.
    let listed: BTreeMap<String, common::Value> = repo
        .cairn()
        .args(["ls", "--json", "--recursive", "latest", root])
        .run()
        .ok()
        .json_lines()
        .into_iter()
        .map(|v| (v["path"].as_str().unwrap().to_string(), v))
        .collect();
    let disk = scan(&g.root);
    let want: BTreeSet<String> = disk.keys().filter(|k| !k.is_empty()).map(|k| shown(&g.root, k)).collect();
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (rel, e) in disk.iter().filter(|(k, _)| !k.is_empty()) {
        let v = &listed[&shown(&g.root, rel)];
        assert_eq!(v["mode"], format!("{:04o}", e.mode), "{v}");
        let kind = match e.kind {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            _ => "other",
        };
        assert_eq!(v["type"], kind, "{v}");
        if e.kind == Kind::File {
            assert_eq!(v["size"], e.size, "{v}");
        }
    }
    // Without --recursive: one folder's entries; the long form shows mode and size.
    let conf = repo.cairn().args(["ls", "-l", "latest"]).arg(g.root.join("groups")).run().ok().stdout;
    let names: Vec<&str> = conf.lines().map(|l| l.rsplit('/').next().unwrap()).collect();
    let mut on_disk: Vec<String> = fs::read_dir(g.root.join("groups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(names, on_disk);
    assert!(conf.lines().all(|l| l.starts_with('d')), "{conf}");

    // cat gives back a file byte for byte, small and multi-chunk alike.
    for rel in [g.configs[0].as_path(), Path::new("db/gwdb.sql"), Path::new("system/lib/vendor-0.jar")] {
        let out = repo.cairn().args(["cat", "latest"]).arg(g.path(rel)).run().ok();
        assert!(out.stdout_bytes == fs::read(g.path(rel)).unwrap(), "{} differs", rel.display());
    }
    let err = repo.cairn().args(["cat", "latest", root]).run().expect_code(2);
    assert!(err.one_line_error().contains("not a regular file"));
    let err = repo.cairn().args(["ls", "latest"]).arg(g.root.join("no-such")).run().expect_code(1);
    assert!(err.one_line_error().contains("is not in this snapshot"));

    // stats: the logical size is what is on disk; shared configs and jars dedup.
    let stats = repo.cairn().args(["stats", "--json"]).run().ok().json();
    let snap = &stats["snapshots"][0];
    assert_eq!(snap["logical_bytes"].as_u64().unwrap() - g.total_bytes, 0, "{stats}");
    assert_eq!(snap["files"], g.files, "{stats}");
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.0, "{stats}");
    assert!(stats["stored_bytes"].as_u64().unwrap() < stats["unique_bytes"].as_u64().unwrap(), "{stats}");
    assert_eq!(stats["missing_blobs"], 0);
}

/// `diff --json` as (change, path relative to `root`) pairs.
fn changes(repo: &Repo, old: &str, new: &str, root: &Path) -> BTreeSet<(String, String)> {
    let v = repo.cairn().args(["diff", "--json", old, new]).arg(root).run().ok().json();
    let prefix = format!("{}/", root.display());
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let path = c["path"].as_str().unwrap();
            (
                c["change"].as_str().unwrap().to_string(),
                path.strip_prefix(&prefix).unwrap_or(path).to_string(),
            )
        })
        .collect()
}

#[test]
fn diff_reports_exactly_the_changes_made_on_disk() {
    let repo = Repo::new();
    let tmp = common::tempdir("cairn-diff-");
    let src = tmp.path().join("gw");
    fs::create_dir_all(src.join("conf/sub")).unwrap();
    fs::write(src.join("conf/a.xml"), "<a>\n  <port>8080</port>\n</a>\n").unwrap();
    fs::write(src.join("conf/b.yaml"), "b: 1\n").unwrap();
    fs::write(src.join("conf/gone.json"), "{}\n").unwrap();
    fs::write(src.join("conf/mode.properties"), "k=v\n").unwrap();
    fs::write(src.join("conf/becomes-dir"), "x").unwrap();
    fs::write(src.join("conf/sub/same.txt"), "unchanged\n").unwrap();
    let first = repo.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    assert!(changes(&repo, &first, "latest", &src).is_empty(), "a snapshot differs from itself");

    fs::write(src.join("conf/a.xml"), "<a>\n  <port>8443</port>\n</a>\n").unwrap();
    fs::remove_file(src.join("conf/gone.json")).unwrap();
    fs::write(src.join("conf/new.xml"), "<new/>\n").unwrap();
    fs::set_permissions(src.join("conf/mode.properties"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(src.join("conf/becomes-dir")).unwrap();
    fs::create_dir(src.join("conf/becomes-dir")).unwrap();
    fs::write(src.join("conf/becomes-dir/inner"), "i").unwrap();
    fs::create_dir(src.join("ext")).unwrap();
    fs::write(src.join("ext/lib.jar"), vec![7u8; 5000]).unwrap();
    repo.backup(&[&src], &[]);

    let got = changes(&repo, &first, "latest", &src);
    let want: BTreeSet<(String, String)> = [
        ("modified", "conf/a.xml"),
        ("removed", "conf/gone.json"),
        ("added", "conf/new.xml"),
        ("metadata", "conf/mode.properties"),
        ("type-changed", "conf/becomes-dir"),
        ("added", "conf/becomes-dir/inner"),
        ("added", "ext"),
        ("added", "ext/lib.jar"),
    ]
    .iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);

    // --content shows the changed setting as a unified diff; a path limits the diff.
    let text =
        repo.cairn().args(["diff", "--content", &first, "latest"]).arg(src.join("conf/a.xml")).run().ok();
    assert!(text.stdout.contains("-  <port>8080</port>\n+  <port>8443</port>"), "{}", text.stdout);
    assert!(text.stdout.contains("1 modified"), "{}", text.stdout);
    assert!(!text.stdout.contains("gone.json"), "{}", text.stdout);
    let sub = changes(&repo, &first, "latest", &src.join("conf/sub"));
    assert!(sub.is_empty(), "{sub:?}");
    // A path in neither snapshot is an error, not an empty diff; a bad pattern is bad input.
    let none = repo.cairn().args(["diff", &first, "latest"]).arg(src.join("no-such")).run().expect_code(1);
    assert!(none.one_line_error().contains("is in neither snapshot"), "{}", none.context());
    repo.cairn().args(["find", "[unclosed"]).run().expect_code(2).one_line_error();
}

#[test]
fn find_lists_each_path_once_with_its_versions() {
    let repo = Repo::new();
    let tmp = common::tempdir("cairn-find-");
    let src = tmp.path().join("gw");
    fs::create_dir_all(src.join("system/conf")).unwrap();
    let nm = src.join("system/conf/nodemanager.xml");
    fs::write(&nm, "<nm v='1'/>\n").unwrap();
    fs::write(src.join("big.sql"), vec![b'x'; 300_000]).unwrap();
    let s1 = repo.backup(&[&src], &["--time", "2026-11-01 10:00"])["snapshot"].as_str().unwrap().to_string();
    fs::write(&nm, "<nm v='2'/>\n").unwrap();
    common::set_times(
        &nm,
        rustix::fs::Timespec { tv_sec: 1_800_000_000, tv_nsec: 0 },
        rustix::fs::Timespec { tv_sec: 1_800_000_000, tv_nsec: 0 },
    );
    let s2 = repo.backup(&[&src], &["--time", "2026-11-02 10:00"])["snapshot"].as_str().unwrap().to_string();
    let s3 = repo.backup(&[&src], &["--time", "2026-11-03 10:00"])["snapshot"].as_str().unwrap().to_string();

    let found = repo.cairn().args(["find", "--json", "nodemanager.xml"]).run().ok().json();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["path"], nm.to_str().unwrap());
    let versions = found[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["snapshots"], serde_json::json!([s1]));
    assert_eq!(versions[1]["snapshots"], serde_json::json!([s2, s3]));

    // Path patterns, size and time filters.
    let by_path =
        repo.cairn().args(["find", "--json", &format!("{}/**/*.xml", src.display())]).run().ok().json();
    assert_eq!(by_path.as_array().unwrap().len(), 1);
    let large = repo.cairn().args(["find", "--json", "*", "--larger", "100K"]).run().ok().json();
    let large: Vec<&str> = large.as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(large, [src.join("big.sql").to_str().unwrap()]);
    let newer =
        repo.cairn().args(["find", "--json", "*.xml", "--newer", "2027-01-01 00:00"]).run().ok().json();
    assert_eq!(newer[0]["versions"].as_array().unwrap().len(), 1, "{newer}");
    let one =
        repo.cairn().args(["find", "--json", "nodemanager.xml", "--snapshot", &s1[..8]]).run().ok().json();
    assert_eq!(one[0]["versions"][0]["snapshots"], serde_json::json!([s1]));
}
