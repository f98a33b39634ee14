//! Backup then restore through the `cairn` binary: everything that goes in comes back out,
//! incremental backups store little, restores are incremental too, and snapshots are
//! listed and found the way the CLI documents.

mod common;

use common::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("'{key}' is not a number in {v}"))
}

#[test]
fn full_tree_round_trip_keeps_content_and_metadata() {
    let work = tempdir("cairn-rt-");
    let g = gateway_tree(&work.path().join("src"), 1, TreeSize::FULL);
    let repo = Repo::new();

    let b = repo.backup(&[&g.root], &[]);
    assert_eq!(b["partial"], false, "{b}");
    assert_eq!(b["errors"], serde_json::json!([]), "{b}");
    assert_eq!(u(&b, "files"), g.files, "files counted: {b}");
    assert_eq!(u(&b, "others"), g.others, "symlinks + fifo counted: {b}");
    assert_eq!(u(&b, "total_bytes"), g.total_bytes, "{b}");
    // Identical instance files and jar copies are stored once, and text compresses.
    assert!(
        u(&b, "bytes_added") < g.total_bytes / 2,
        "dedup/compression should store well under half of {} bytes: {b}",
        g.total_bytes
    );

    let target = work.path().join("restore");
    let out = repo.restore("latest", &target, &[]).ok();
    let r = out.json();
    assert_eq!(r["damaged"], serde_json::json!([]), "{r}");
    assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
    assert_eq!(u(&r, "links"), 1, "one hard link to recreate: {r}");
    assert_eq!(u(&r, "others"), g.others, "{r}");
    assert_eq!(
        u(&r, "files_written") + u(&r, "files_unchanged"),
        g.files - 1,
        "every file but the second hard link is written: {r}"
    );

    let back = restored(&target, &g.root);
    assert_same_tree(&g.root, &back);

    // The comparator covers these; spell out the headline features so a failure is plain.
    let md = fs::symlink_metadata(back.join(&g.fifo)).unwrap();
    assert!(md.file_type().is_fifo(), "fifo restored as {md:?}");
    assert!(back.join(&g.non_utf8).is_file(), "non-UTF-8 name lost");
    let (h1, h2) = &g.hardlink;
    assert_eq!(
        fs::metadata(back.join(h1)).unwrap().ino(),
        fs::metadata(back.join(h2)).unwrap().ino(),
        "hard links restored as copies"
    );
    let mode = |rel: &str| fs::symlink_metadata(back.join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/setuid-helper"), 0o4755);
    assert_eq!(mode("bin/setgid-tool"), 0o2751);
    assert_eq!(mode("shared-tmp"), 0o1777);
    assert_eq!(mode("groups/group-2/setgid-dir"), 0o2770);
    if require(g.sparse_supported, "this filesystem keeps no holes; the sparse check is skipped") {
        let md = fs::metadata(back.join(&g.sparse)).unwrap();
        assert_eq!(md.len(), 8 << 20);
        assert!(
            md.blocks() * 512 < 1 << 20,
            "sparse file restored with {} bytes allocated",
            md.blocks() * 512
        );
    }
    if require(g.xattrs_supported, "this filesystem refuses user xattrs; the xattr check is skipped") {
        assert_eq!(
            xattr::get(back.join(&g.xattr_file), "user.cairn.origin").unwrap(),
            Some(b"gateway\xff\x00binary-value".to_vec())
        );
    }
    if require(is_root(), "not root: foreign owners are not checked") {
        let md = fs::symlink_metadata(back.join("bin/setuid-helper")).unwrap();
        assert_eq!((md.uid(), md.gid()), (4242, 4243), "numeric owner lost");
    }
}

#[test]
fn second_backup_after_small_changes_adds_far_fewer_bytes() {
    let work = tempdir("cairn-inc-");
    let g = gateway_tree(&work.path().join("src"), 2, TreeSize::FULL);
    let repo = Repo::new();
    let first = repo.backup(&[&g.root], &[]);

    // Edit a few configs in place, append to the dump, add a file.
    for (i, rel) in g.configs.iter().take(3).enumerate() {
        let p = g.path(rel);
        let mut text = fs::read(&p).unwrap();
        text.extend_from_slice(format!("<!-- edited {i} -->\n").as_bytes());
        fs::write(&p, text).unwrap();
    }
    let dump = g.path("db/gwdb.sql");
    let mut sql = fs::read(&dump).unwrap();
    sql.extend_from_slice(b"INSERT INTO `kps_1` VALUES (1,'late','row');\n");
    fs::write(&dump, sql).unwrap();
    fs::write(g.path("groups/group-2/instance-1/conf/new.yaml"), b"new: true\n").unwrap();

    let second = repo.backup(&[&g.root], &[]);
    let (a1, a2) = (u(&first, "bytes_added"), u(&second, "bytes_added"));
    assert!(a1 > 1 << 20, "first backup stored only {a1} bytes: {first}");
    assert!(a2 * 10 < a1, "second backup added {a2} bytes, not far fewer than the first's {a1}: {second}");
    assert!(
        u(&second, "chunks_new") < u(&first, "chunks_new") / 5,
        "chunks_new: first {first}, second {second}"
    );
    assert_eq!(u(&second, "files"), g.files + 1);

    // The incremental snapshot is still complete on its own.
    let target = work.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    assert_same_tree(&g.root, &restored(&target, &g.root));
}

#[test]
fn restore_over_existing_tree_rewrites_only_what_differs() {
    let work = tempdir("cairn-over-");
    let g = gateway_tree(&work.path().join("src"), 3, TreeSize::SMALL);
    let repo = Repo::new();
    repo.backup(&[&g.root], &[]);
    let target = work.path().join("restore");
    let first = repo.restore("latest", &target, &[]).ok().json();
    let back = restored(&target, &g.root);
    assert_same_tree(&g.root, &back);
    let planned = u(&first, "files_written") + u(&first, "files_unchanged");

    // Damage the restored copy: same-size edit, truncation, deletion, a mode change, a
    // stray time change, and an extra file (which restore leaves alone).
    let same_size = back.join(&g.configs[0]);
    let mut bytes = fs::read(&same_size).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&same_size, &bytes).unwrap();
    let truncated = back.join("db/gwdb.sql");
    fs::OpenOptions::new().write(true).open(&truncated).unwrap().set_len(1000).unwrap();
    let deleted = back.join(&g.configs[1]);
    fs::remove_file(&deleted).unwrap();
    let chmodded = back.join("bin/readonly.cfg");
    fs::set_permissions(&chmodded, fs::Permissions::from_mode(0o666)).unwrap();
    let touched = back.join("system/lib/vendor-0.jar");
    set_times(
        &touched,
        rustix::fs::Timespec { tv_sec: 1, tv_nsec: 0 },
        rustix::fs::Timespec { tv_sec: 2, tv_nsec: 0 },
    );
    fs::write(back.join("logs/extra.log"), b"not in the snapshot").unwrap();

    let second = repo.restore("latest", &target, &[]).ok().json();
    assert_eq!(
        u(&second, "files_written"),
        3,
        "the edited, truncated and deleted files are rewritten: {second}"
    );
    assert_eq!(
        u(&second, "files_unchanged"),
        planned - 3,
        "every other file is recognised as identical: {second}"
    );
    assert!(u(&second, "bytes_written") < 1 << 20, "only the three files' bytes are written: {second}");
    assert_eq!(second["damaged"], serde_json::json!([]));
    let extra = back.join("logs/extra.log");
    assert_eq!(
        fs::read(&extra).unwrap(),
        b"not in the snapshot",
        "restore changed a file the snapshot does not have"
    );
    fs::remove_file(&extra).unwrap();
    // Removing it changed logs/'s times; give it the source's again.
    copy_times(&g.path("logs"), &back.join("logs"));
    // Restoring over an unchanged hard link leaves a temporary file beside it: that bug
    // has its own test (second_restore_over_hard_links_leaves_no_temporary_files), so it
    // is left out here to keep this test about the rest.
    let known_leftover = g.hardlink.1.with_file_name(".cairn-restore-startinstance.link");
    assert_trees_equal(
        &g.root,
        &back,
        &CompareOptions { ignore: vec![known_leftover], ..Default::default() },
    );
}

/// Small files share frames; in the second snapshot their contents lie in tree order
/// so that each pass over the tree touches every frame, more frames than a plain cache of
/// recent frames holds. Restore still decrypts and decompresses each frame once.
#[test]
fn restore_reads_each_frame_once_however_files_spread_over_frames() {
    let work = tempdir("cairn-frames-");
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    fs::create_dir_all(&first).unwrap();
    fs::create_dir_all(&second).unwrap();
    // 64 compressible files of 256 KiB: about four to a 1 MiB frame, 16 frames.
    let content = |i: usize| {
        format!("<policy id='{i:04}' rule='allow' quota='{:08}'/>\n", i * 7).repeat(256 << 10 >> 6)
    };
    for i in 0..64 {
        fs::write(first.join(format!("f{i:03}")), content(i)).unwrap();
    }
    // Second tree: the file at place k holds content (k % 16) * 4 + k / 16, so its first
    // sixteen files take one blob of each frame, the next sixteen the next, and so on.
    let strided: Vec<usize> = (0..64).map(|k| (k % 16) * 4 + k / 16).collect();
    for (k, i) in strided.iter().enumerate() {
        fs::write(second.join(format!("f{k:03}")), content(*i)).unwrap();
    }
    let repo = Repo::new();
    let one = repo.backup(&[&first], &[]);
    repo.backup(&[&second], &[]);

    let in_order = repo.restore(one["snapshot"].as_str().unwrap(), &work.path().join("r1"), &[]).ok().json();
    let frames = u(&in_order, "frames_read");
    assert!((8..40).contains(&frames), "files of 256 KiB share 1 MiB frames: {in_order}");
    let spread = repo.restore("latest", &work.path().join("r2"), &[]).ok().json();
    assert_eq!(u(&spread, "frames_read"), frames, "each frame once: {spread}");
    assert_same_tree(&first, &restored(&work.path().join("r1"), &first));
    assert_same_tree(&second, &restored(&work.path().join("r2"), &second));
}

#[test]
fn second_restore_over_hard_links_leaves_no_temporary_files() {
    let work = tempdir("cairn-links-");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.sh"), b"#!/bin/sh\necho start\n").unwrap();
    fs::hard_link(src.join("a.sh"), src.join("sub/a-link.sh")).unwrap();
    fs::write(src.join("plain.txt"), b"plain").unwrap();
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let target = work.path().join("restore");
    let back = restored(&target, &src);
    for round in 1..=2 {
        let r = repo.restore("latest", &target, &[]).ok().json();
        assert_eq!(u(&r, "links"), 1, "round {round}: {r}");
        let leftovers: Vec<String> = scan(&back)
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .filter(|k| k.contains(".cairn-restore-"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: restore left temporary files: {leftovers:?}");
        assert_same_tree(&src, &back);
    }
}

#[test]
fn include_restores_only_the_given_subtrees() {
    let work = tempdir("cairn-inc-");
    let g = gateway_tree(&work.path().join("src"), 4, TreeSize::SMALL);
    let repo = Repo::new();
    repo.backup(&[&g.root], &[]);
    let target = work.path().join("restore");
    let inst2 = g.path("groups/group-2/instance-2");
    let dump = g.path("db/gwdb.sql");
    let out = repo
        .restore(
            "latest",
            &target,
            &["--include", inst2.to_str().unwrap(), "--include", dump.to_str().unwrap()],
        )
        .ok();
    let back = restored(&target, &g.root);
    assert_same_tree(&inst2, &back.join("groups/group-2/instance-2"));
    assert_eq!(fs::read(back.join("db/gwdb.sql")).unwrap(), fs::read(&dump).unwrap());
    // Nothing else: only the folders on the way to the includes.
    let mut top: Vec<String> =
        fs::read_dir(&back).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    assert_eq!(top, ["db", "groups"], "restored top level");
    let mut groups: Vec<String> = fs::read_dir(back.join("groups/group-2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    groups.sort();
    assert_eq!(groups, ["instance-2"], "siblings of the include leaked in");
    assert_eq!(fs::read_dir(back.join("db")).unwrap().count(), 1, "only the included file in db/");
    let r = out.json();
    let expected_files = scan(&inst2).values().filter(|e| e.kind == Kind::File).count() as u64 + 1;
    assert_eq!(u(&r, "files_written"), expected_files, "{r}");

    // Relative includes are refused as bad input.
    let bad = repo.restore("latest", &work.path().join("r2"), &["--include", "db/gwdb.sql"]);
    bad.expect_code(2);
}

#[test]
fn stdin_backup_round_trips_bytes() {
    let work = tempdir("cairn-stdin-");
    let repo = Repo::new();
    let mut data = sql_dump(5, 2 << 20);
    data.extend(Rng::new(6).bytes(300_000));
    data.extend(std::iter::repeat_n(0u8, 200_000));
    data.extend_from_slice(b"\n-- dump complete\n");
    let b = repo
        .cairn()
        .args(["backup", "--json", "--stdin", "--stdin-name", "gwdb.sql"])
        .args(["--time", "2026-01-31T23:00:00Z", "--tag", "db"])
        .stdin(data.clone())
        .run()
        .ok()
        .json();
    assert_eq!(u(&b, "files"), 1, "{b}");
    assert_eq!(u(&b, "total_bytes"), data.len() as u64, "{b}");
    assert_eq!(u(&b, "bytes_read"), data.len() as u64, "{b}");

    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["gwdb.sql"]));

    let target = work.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    let p = target.join("gwdb.sql");
    let got = fs::read(&p).unwrap();
    assert!(got == data, "restored stdin differs ({} vs {} bytes)", got.len(), data.len());
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.mtime(), 1_769_900_400, "stdin file takes the snapshot time");

    // Same bytes again: nothing new but the snapshot's tree.
    let again = repo
        .cairn()
        .args(["backup", "--json", "--stdin", "--stdin-name", "gwdb.sql"])
        .stdin(data)
        .run()
        .ok()
        .json();
    assert!(u(&again, "bytes_added") < 4096, "{again}");

    // A name with a slash is bad input, and leaves no snapshot.
    repo.cairn()
        .args(["backup", "--stdin", "--stdin-name", "../evil"])
        .stdin(b"x".to_vec())
        .run()
        .expect_code(2);
    assert_eq!(repo.snapshots().len(), 2);
}

#[test]
fn snapshots_json_reports_tags_labels_host_and_time() {
    let work = tempdir("cairn-snaps-");
    let src = work.path().join("conf");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.xml"), b"<a/>").unwrap();
    fs::write(src.join("b.json"), b"{\"b\": 1}").unwrap();
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::new();

    let a = repo
        .cairn()
        .env("TZ", "UTC")
        .args(["backup", "--json"])
        .arg(&src)
        .args(["--tag", "prod", "--tag", "nightly"])
        .args(["--label", "env=prod", "--label", "team=gateway"])
        .args(["--host", "gw-host-01", "--time", "2026-01-31 23:00"])
        .run()
        .ok()
        .json();
    let b = repo
        .cairn()
        .args(["backup", "--json"])
        .arg(&src)
        .args(["--tag", "test", "--time", "2021-06-01T12:00:00.5Z"])
        .run()
        .ok()
        .json();

    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2);
    // Oldest first: b was given the earlier time.
    let (sb, sa) = (&snaps[0], &snaps[1]);
    assert_eq!(sa["id"], a["snapshot"]);
    assert_eq!(sb["id"], b["snapshot"]);
    assert_eq!(sa["time"], "2026-01-31T23:00:00Z", "{sa}");
    assert_eq!(sb["time"], "2021-06-01T12:00:00.5Z", "{sb}");
    assert_eq!(sa["host"], "gw-host-01");
    let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
    assert_eq!(sb["host"], hostname.as_str());
    assert_eq!(sa["tags"], serde_json::json!(["prod", "nightly"]));
    assert_eq!(sb["tags"], serde_json::json!(["test"]));
    assert_eq!(sa["labels"], serde_json::json!({"env": "prod", "team": "gateway"}));
    assert_eq!(sb["labels"], serde_json::json!({}));
    assert_eq!(sa["paths"], serde_json::json!([src.to_str().unwrap()]));
    assert_eq!(sa["partial"], false);
    for s in [sa, sb] {
        let id = s["id"].as_str().unwrap();
        assert_eq!(id.len(), 64, "{s}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s["tree"].as_str().unwrap().len(), 64, "{s}");
        let sum = &s["summary"];
        assert_eq!(u(sum, "files"), 2, "{s}");
        assert!(u(sum, "dirs") >= 1, "{s}");
        assert_eq!(u(sum, "others"), 0, "{s}");
        assert_eq!(u(sum, "total_bytes"), 12, "{s}");
        assert_eq!(u(sum, "bytes_read"), 12, "{s}");
        assert_eq!(u(sum, "errors"), 0, "{s}");
        assert!(sum["duration_ms"].is_u64(), "{s}");
        assert!(sum["chunks_new"].is_u64(), "{s}");
    }
    // Same content twice: the file chunks are not stored again (only trees can be new:
    // folder atimes change when the first backup lists them).
    assert!(u(&sa["summary"], "chunks_new") >= 2, "{sa}");
    assert!(
        u(&sb["summary"], "chunks_new") < u(&sa["summary"], "chunks_new"),
        "second backup of the same files stored their chunks again: {sb}"
    );

    // Filters.
    let list = |args: &[&str]| -> Vec<String> {
        repo.cairn()
            .args(["snapshots", "--json"])
            .args(args)
            .run()
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (ida, idb) = (sa["id"].as_str().unwrap().to_string(), sb["id"].as_str().unwrap().to_string());
    assert_eq!(list(&["--tag", "nightly"]), std::slice::from_ref(&ida));
    assert_eq!(list(&["--tag", "test", "--tag", "prod"]), [idb.clone(), ida.clone()]);
    assert_eq!(list(&["--host", "gw-host-01"]), std::slice::from_ref(&ida));
    assert!(list(&["--tag", "nope"]).is_empty());
    assert!(list(&["--host", "gw-host-01", "--tag", "test"]).is_empty());

    // The text listing names both.
    let text = repo.cairn().arg("snapshots").run().ok();
    assert!(text.stdout.contains(&ida[..8]), "{}", text.context());
    assert!(text.stdout.contains("gw-host-01"), "{}", text.context());
    assert!(text.stdout.contains("2 snapshots"), "{}", text.context());
}

#[test]
fn snapshot_id_prefixes_resolve_and_ambiguity_is_refused() {
    let work = tempdir("cairn-ids-");
    let repo = Repo::new();
    // Back up distinct contents until two snapshot ids share a first hex digit (at most
    // 17 are needed).
    let mut ids: Vec<(String, Vec<u8>)> = Vec::new();
    let clash = loop {
        let n = ids.len();
        let body = format!("content of snapshot {n}\n").into_bytes();
        let b = repo
            .cairn()
            .args(["backup", "--json", "--stdin", "--stdin-name", "f.txt"])
            .arg("--time")
            .arg(format!("2025-01-01T00:00:{n:02}Z"))
            .stdin(body.clone())
            .run()
            .ok()
            .json();
        let id = b["snapshot"].as_str().unwrap().to_string();
        let c = id[..1].to_string();
        ids.push((id, body));
        if ids.iter().filter(|(i, _)| i.starts_with(&c)).count() > 1 {
            break c;
        }
        assert!(ids.len() <= 17, "pigeonhole says this cannot happen");
    };

    // A unique prefix of an older snapshot restores that snapshot, in either case.
    let (old_id, old_body) = &ids[0];
    let t1 = work.path().join("t1");
    let r = repo.restore(&old_id[..10], &t1, &[]).ok().json();
    assert_eq!(r["snapshot"], old_id.as_str());
    assert_eq!(fs::read(t1.join("f.txt")).unwrap(), *old_body);
    let t2 = work.path().join("t2");
    let r = repo.restore(&old_id[..12].to_ascii_uppercase(), &t2, &[]).ok().json();
    assert_eq!(r["snapshot"], old_id.as_str());
    // The full id works, and `latest` is the newest.
    repo.restore(old_id, &work.path().join("t3"), &[]).ok();
    let t4 = work.path().join("t4");
    let r = repo.restore("latest", &t4, &[]).ok().json();
    assert_eq!(r["snapshot"], ids.last().unwrap().0.as_str());

    // Ambiguous prefix: bad input, one line, says how many match.
    let t5 = work.path().join("t5");
    let out = repo.restore(&clash, &t5, &[]).expect_code(2);
    let line = out.one_line_error();
    assert!(line.contains("matches 2 snapshots") || line.contains("matches"), "{line}");
    assert!(!t5.exists(), "nothing is restored for an ambiguous id");

    // Unknown prefix: no snapshot starts with it.
    let unknown = (0..16u32)
        .map(|d| format!("{d:x}"))
        .flat_map(|a| (0..16u32).map(move |d| format!("{a}{d:x}")))
        .find(|p| !ids.iter().any(|(i, _)| i.starts_with(p.as_str())))
        .unwrap();
    let out = repo.restore(&unknown, &work.path().join("t6"), &[]);
    assert_ne!(out.code, Some(0), "{}", out.context());
    let line = out.one_line_error();
    assert!(line.contains("no snapshot") && line.contains(&unknown), "{line}");

    // Not hex at all: it could only be a snapshot name, and no snapshot has it.
    let out = repo.restore("xyz", &work.path().join("t7"), &[]).expect_code(1);
    assert!(out.one_line_error().contains("the name 'xyz'"), "{}", out.context());
}

#[test]
fn backup_of_several_paths_and_excludes() {
    let work = tempdir("cairn-multi-");
    let g = gateway_tree(&work.path().join("src"), 8, TreeSize::SMALL);
    let repo = Repo::new();
    let conf = g.path("groups/group-2/instance-1/conf");
    let db = g.path("db");
    let b = repo.backup(
        &[conf.as_os_str(), db.as_os_str()],
        &["--exclude", "*.properties", "--exclude", &format!("{}/fed", conf.display())],
    );
    assert_eq!(b["partial"], false);
    let snaps = repo.snapshots();
    // Both sources are recorded (cairn sorts them).
    let mut paths: Vec<&str> =
        snaps[0]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    paths.sort();
    let mut want = [conf.to_str().unwrap(), db.to_str().unwrap()];
    want.sort();
    assert_eq!(paths, want);
    let target = work.path().join("restore");
    repo.restore("latest", &target, &[]).ok();
    let back_conf = restored(&target, &conf);
    assert!(!back_conf.join("fed").exists(), "excluded folder restored");
    let props: Vec<_> = scan(&back_conf).keys().filter(|k| k.ends_with(b".properties")).cloned().collect();
    assert!(props.is_empty(), "excluded files restored");
    let mut ignore: Vec<_> = scan(&conf)
        .keys()
        .filter(|k| k.ends_with(b".properties"))
        .map(|k| Path::new(std::str::from_utf8(k).unwrap()).to_path_buf())
        .collect();
    ignore.push("fed".into());
    // The source folder's own mtime is kept even though entries were left out.
    assert_trees_equal(&conf, &back_conf, &CompareOptions { ignore, ..Default::default() });
    assert_same_tree(&db, &restored(&target, &db));
    // Siblings of the sources are not in the snapshot.
    assert!(!restored(&target, &g.path("bin")).exists());
    assert!(!restored(&target, &g.path("groups/group-2/instance-2")).exists());
}

/// The comparator is what makes the round-trip tests mean something: check it sees each
/// kind of difference (on a `cp -a` copy, which keeps everything it checks).
#[test]
fn comparator_reports_every_kind_of_difference() {
    let work = tempdir("cairn-cmp-");
    let g = gateway_tree(&work.path().join("src"), 11, TreeSize::SMALL);
    let copy = work.path().join("copy");
    let st = std::process::Command::new("cp").arg("-a").arg(&g.root).arg(&copy).status().unwrap();
    assert!(st.success());
    // cp read the source without O_NOATIME: give the source its atimes back from the copy.
    for (rel, e) in scan(&copy) {
        if e.kind == Kind::File {
            let rel = Path::new(std::ffi::OsStr::from_bytes(&rel));
            copy_times(&copy.join(rel), &g.root.join(rel));
        }
    }
    assert_same_tree(&g.root, &copy);

    let keep_times = |rel: &Path, f: &dyn Fn(&Path)| {
        let p = copy.join(rel);
        let parent = p.parent().unwrap().to_path_buf();
        f(&p);
        if fs::symlink_metadata(&p).is_ok() && fs::symlink_metadata(g.path(rel)).is_ok() {
            copy_times(&g.path(rel), &p);
        }
        copy_times(&g.root.join(parent.strip_prefix(&copy).unwrap()), &parent);
    };
    let mut expect: Vec<(String, &str)> = Vec::new();
    let c0 = g.configs[0].clone();
    keep_times(&c0, &|p| {
        let mut b = fs::read(p).unwrap();
        b[0] ^= 1;
        fs::write(p, b).unwrap();
    });
    expect.push((c0.display().to_string(), "content differs"));
    keep_times(Path::new("bin/setgid-tool"), &|p| {
        fs::set_permissions(p, fs::Permissions::from_mode(0o751)).unwrap()
    });
    expect.push(("bin/setgid-tool".into(), "mode"));
    let c1 = g.configs[1].clone();
    set_times(
        &copy.join(&c1),
        {
            let md = fs::metadata(g.path(&c1)).unwrap();
            rustix::fs::Timespec { tv_sec: md.atime(), tv_nsec: md.atime_nsec() as _ }
        },
        {
            let md = fs::metadata(g.path(&c1)).unwrap();
            rustix::fs::Timespec { tv_sec: md.mtime(), tv_nsec: (md.mtime_nsec() + 1) % 1_000_000_000 }
        },
    );
    expect.push((c1.display().to_string(), "mtime"));
    let inst = g.path("groups/group-2/instance-2/conf/instance.properties");
    let md = fs::metadata(&inst).unwrap();
    set_times(
        &copy.join("groups/group-2/instance-2/conf/instance.properties"),
        rustix::fs::Timespec { tv_sec: md.atime() + 1, tv_nsec: md.atime_nsec() as _ },
        rustix::fs::Timespec { tv_sec: md.mtime(), tv_nsec: md.mtime_nsec() as _ },
    );
    expect.push(("instance-2/conf/instance.properties".into(), "atime"));
    keep_times(Path::new("links/dangling"), &|p| {
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink("elsewhere", p).unwrap();
    });
    expect.push(("links/dangling".into(), "symlink target"));
    keep_times(&g.hardlink.1, &|p| {
        let bytes = read_quietly(p);
        fs::remove_file(p).unwrap();
        fs::write(p, bytes).unwrap();
    });
    expect.push(("startinstance".into(), "hard links"));
    keep_times(Path::new("logs/trace.log"), &|p| fs::remove_file(p).unwrap());
    expect.push(("logs/trace.log".into(), "missing"));
    keep_times(Path::new("logs/new.log"), &|p| fs::write(p, b"").unwrap());
    expect.push(("logs/new.log".into(), "extra"));
    if require(
        g.sparse_supported,
        "this filesystem keeps no holes; the comparator's hole check is not tested",
    ) {
        keep_times(&g.sparse, &|p| {
            let mut f = fs::OpenOptions::new().write(true).open(p).unwrap();
            let mut data = fs::read(p).unwrap();
            data[0] = 0;
            use std::io::Write;
            f.write_all(&data).unwrap();
        });
        expect.push(("sparse.img".into(), "holes lost"));
    }
    if require(
        g.xattrs_supported,
        "this filesystem refuses user xattrs; the comparator's xattr check is not tested",
    ) {
        keep_times(&g.xattr_file, &|p| xattr::set(p, "user.cairn.origin", b"changed").unwrap());
        expect.push(("xattr-bearer.xml".into(), "xattrs"));
    }
    if require(is_root(), "not root: the comparator's owner check is not tested") {
        keep_times(Path::new("bin/readonly.cfg"), &|p| std::os::unix::fs::lchown(p, Some(1), None).unwrap());
        expect.push(("bin/readonly.cfg".into(), "owner"));
    }

    let diffs = diff_trees(&g.root, &copy, &CompareOptions::default());
    for (path, what) in &expect {
        assert!(
            diffs.iter().any(|d| d.contains(path.as_str()) && d.contains(what)),
            "comparator missed '{what}' on {path}; it reported:\n{diffs:#?}"
        );
    }
    assert_eq!(diffs.len(), expect.len(), "unexpected extra differences:\n{diffs:#?}");
}
