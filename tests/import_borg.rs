//! `cairn import borg` against Debian's borgbackup: every archive of a changing tree
//! becomes a snapshot with the archive's time, host, user and name, and restores to what
//! `borg extract` gives for it; a second import adds nothing.
//!
//! borg 1.2's `export-tar` writes GNU tar, which has times in whole seconds and no
//! extended attributes, so the tree is made with such times and without xattrs: the test
//! then compares everything else, byte and metadata, with borg's own extract.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const BORG_PASS: &str = "borg secret";

fn borg(args: &[&str], cwd: Option<&Path>) {
    let mut c = Command::new("borg");
    c.args(args)
        .env("BORG_PASSPHRASE", BORG_PASS)
        .env("BORG_BASE_DIR", std::env::temp_dir().join("cairn-borg-test-base"));
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("run borg (Debian package borgbackup; .ci/run installs it)");
    assert!(out.status.success(), "borg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// What borg 1.2's tar export can carry: whole-second times, no extended attributes.
fn make_exportable(root: &Path) {
    let mut all = Vec::new();
    collect_paths(root, &mut all);
    all.push(root.to_path_buf());
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if !md.file_type().is_symlink() {
            for name in xattr::list(&p).unwrap() {
                xattr::remove(&p, name).unwrap();
            }
        }
        use std::os::unix::fs::MetadataExt;
        let whole = |s: i64| rustix::fs::Timespec { tv_sec: s, tv_nsec: 0 };
        set_times(&p, whole(md.atime()), whole(md.mtime()));
    }
}

#[test]
fn borg_archives_become_snapshots_that_restore_as_borg_extracts_them() {
    let work = tempdir("cairn-borg-");
    let src = gateway_tree(&work.path().join("src"), 31, TreeSize::SMALL).root;
    make_exportable(&src);
    let borg_repo = work.path().join("borg");
    let borg_repo_s = borg_repo.to_str().unwrap();
    borg(&["init", "-e", "repokey", borg_repo_s], None);
    borg(&["create", &format!("{borg_repo_s}::monday"), src.to_str().unwrap()], None);
    std::fs::write(src.join("added.xml"), "<policy name=\"new\"/>\n").unwrap();
    write_random(&src.join("bin/readonly.cfg"), 99, 5_000);
    make_exportable(&src);
    borg(&["create", &format!("{borg_repo_s}::tuesday"), src.to_str().unwrap()], None);

    let repo = Repo::new();
    let import = || {
        repo.cairn()
            .args(["import", "borg", "--json", "--from-repo", borg_repo_s])
            .env("CAIRN_FROM_PASSWORD", BORG_PASS)
            .env("BORG_BASE_DIR", std::env::temp_dir().join("cairn-borg-test-base"))
            .run()
            .ok()
            .json()
    };
    let first = import();
    assert_eq!(first["imported"].as_array().unwrap().len(), 2, "{first}");
    let snaps = repo.snapshots();
    for archive in ["monday", "tuesday"] {
        let snap = snaps
            .iter()
            .find(|s| s["labels"]["name"] == archive)
            .unwrap_or_else(|| panic!("no snapshot named {archive}: {snaps:?}"));
        assert_eq!(snap["tags"], serde_json::json!(["borg-import"]), "{snap}");
        assert!(snap["labels"]["borg-archive"].as_str().is_some_and(|id| id.len() == 64), "{snap}");
        let id = snap["id"].as_str().unwrap();
        let extracted = work.path().join(format!("borg-{archive}"));
        std::fs::create_dir_all(&extracted).unwrap();
        borg(&["extract", &format!("{borg_repo_s}::{archive}")], Some(&extracted));
        let restored = work.path().join(format!("cairn-{archive}"));
        repo.restore(id, &restored, &[]).ok();
        let rel = src.strip_prefix("/").unwrap();
        let options = CompareOptions { owner: is_root(), atime: false, ..CompareOptions::default() };
        assert_trees_equal(&extracted.join(rel), &restored.join(rel), &options);
    }
    // The archives' order and times are the snapshots' order and times.
    let times: Vec<&str> = snaps.iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // A second import finds nothing new.
    let again = import();
    assert_eq!(again["imported"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_there"], 2, "{again}");
    assert_eq!(repo.snapshots().len(), 2);
}

#[test]
fn an_archive_borg_cannot_export_is_named_and_the_others_are_imported() {
    let work = tempdir("cairn-borg-fail-");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.conf"), "a\n").unwrap();
    let borg_repo = work.path().join("borg");
    let borg_repo_s = borg_repo.to_str().unwrap();
    borg(&["init", "-e", "repokey", borg_repo_s], None);
    borg(&["create", &format!("{borg_repo_s}::first"), src.to_str().unwrap()], None);
    std::fs::write(src.join("b.conf"), "b\n").unwrap();
    borg(&["create", &format!("{borg_repo_s}::second"), src.to_str().unwrap()], None);
    // The real borg, failing as it does on a damaged segment when asked for "first".
    let flaky = work.path().join("borg-flaky");
    std::fs::write(
        &flaky,
        "#!/bin/sh\ncase \"$*\" in *export-tar*::first*) echo 'Data integrity error: segment 1' >&2; exit 2;; esac\nexec borg \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&flaky, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let repo = Repo::new();
    let import = |program: &Path| {
        repo.cairn()
            .args(["import", "borg", "--from-repo", borg_repo_s, "--borg"])
            .arg(program)
            .env("CAIRN_FROM_PASSWORD", BORG_PASS)
            .env("BORG_BASE_DIR", std::env::temp_dir().join("cairn-borg-test-base"))
            .run()
    };
    let out = import(&flaky).expect_code(6);
    // borg's own message, then cairn's about the archive, then the summary.
    assert!(out.stderr.contains("Data integrity error"), "{}", out.context());
    assert!(out.stderr.contains("borg archive first:"), "{}", out.context());
    assert!(out.stderr.contains("could not be imported (first)"), "{}", out.context());
    // The message names borg's command, never the passphrase cairn gave it.
    assert!(out.stderr.contains("export-tar"), "{}", out.context());
    assert!(!out.stderr.contains(BORG_PASS) && !out.stdout.contains(BORG_PASS), "{}", out.context());
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["labels"]["name"], "second");
    // Once borg can read it, the next import brings the missing archive only.
    let out = import(Path::new("borg")).ok();
    assert!(out.stdout.contains("1 archives imported, 1 were already there"), "{}", out.context());
    assert_eq!(repo.snapshots().len(), 2);
}

#[test]
fn a_borg_repository_that_cannot_be_read_is_a_clear_error() {
    let work = tempdir("cairn-borg-bad-");
    let repo = Repo::new();
    let out = repo
        .cairn()
        .args(["import", "borg", "--from-repo"])
        .arg(work.path().join("nothing-here"))
        .env("CAIRN_FROM_PASSWORD", BORG_PASS)
        .run()
        .expect_code(6);
    assert!(out.one_line_error().contains("borg cannot list the archives"), "{}", out.context());
    assert!(repo.snapshots().is_empty());
}

/// The passphrase reaches borg through a pipe it inherits (BORG_PASSPHRASE_FD), never its
/// environment, and a passphrase or command the user's environment holds for borg is not
/// passed on (borg would prefer it). A stand-in `borg` records what it was given.
#[test]
fn the_passphrase_reaches_borg_through_a_pipe_not_its_environment() {
    let work = tempdir("cairn-borg-fd-");
    let tree = work.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("nodemanager.xml"), "<config/>\n").unwrap();
    let fake = work.path().join("borg");
    std::fs::write(
        &fake,
        r#"#!/bin/sh
set -e
[ "$2" = "--help" ] && exit 0
env > "$FAKE_BORG_DIR/env-$1"
cat <&"$BORG_PASSPHRASE_FD" > "$FAKE_BORG_DIR/pass-$1"
case "$1" in
  info) echo '{"archives": [{"name": "a", "id": "11", "hostname": "gw", "username": "root", "start": "2026-12-05T22:17:57+00:00"}]}' ;;
  export-tar) tar cf - -C "$FAKE_BORG_DIR/tree" . ;;
esac
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let pass = "pipe secret 1";
    let repo = Repo::new();
    let out = repo
        .cairn()
        .args(["import", "borg", "--from-repo", "/nowhere/borg", "--borg"])
        .arg(&fake)
        .env("CAIRN_FROM_PASSWORD", pass)
        .env("BORG_PASSPHRASE", "the user's own")
        .env("BORG_PASSCOMMAND", "echo the user's command")
        .env("FAKE_BORG_DIR", work.path())
        .run()
        .ok();
    assert_eq!(repo.snapshots().len(), 1, "{}", out.context());
    for call in ["info", "export-tar"] {
        let given = std::fs::read_to_string(work.path().join(format!("pass-{call}"))).unwrap();
        assert_eq!(given, pass, "borg {call} read another passphrase from its pipe");
        let env = std::fs::read_to_string(work.path().join(format!("env-{call}"))).unwrap();
        assert!(!env.contains(pass), "borg {call} had the passphrase in its environment");
        for name in ["BORG_PASSPHRASE=", "BORG_PASSCOMMAND="] {
            assert!(!env.lines().any(|l| l.starts_with(name)), "borg {call} was given {name}");
        }
    }
}
