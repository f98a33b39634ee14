//! Keys: several passwords, keys kept apart from the repository, backup-only keys that
//! can add snapshots but read and delete nothing, password changes and paper backups.

use std::path::Path;
use std::process::{Command, Output};

fn run(repo: &Path, pw: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("-r").arg(repo).args(args).env("CAIRN_PASSWORD", pw).env_remove("CAIRN_REPOSITORY");
    c.env_remove("CAIRN_KEY_FILE").env_remove("CAIRN_NEW_PASSWORD");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn fails(o: Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error expected: {err}");
}

/// A repository (password "first") holding one backup of a one-file folder.
fn with_one_backup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    init(&repo);
    ok(run(&repo, "first", &[], &["backup", src.to_str().unwrap()]));
    (tmp, repo, src)
}

const FAST: [&str; 4] = ["--kdf-memory", "64M", "--kdf-iterations", "3"];

fn init(repo: &Path) {
    ok(run(repo, "first", &[], &[&["init"][..], &FAST].concat()));
}

#[test]
fn several_passwords_open_the_same_repository_and_removal_is_guarded() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    init(&repo);
    ok(run(&repo, "first", &[("CAIRN_NEW_PASSWORD", "second")], &[&["key", "add"][..], &FAST].concat()));
    let list: serde_json::Value =
        serde_json::from_str(&ok(run(&repo, "second", &[], &["key", "list", "--json"]))).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let first = list.iter().find(|k| k["in_use"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let second = list.iter().find(|k| k["in_use"] == true).unwrap()["id"].as_str().unwrap().to_string();
    fails(run(&repo, "second", &[], &["key", "remove", &second[..8]]), 2, "key in use");
    ok(run(&repo, "second", &[], &["key", "remove", &first[..8]]));
    fails(run(&repo, "first", &[], &["snapshots"]), 12, "wrong password");
    ok(run(&repo, "second", &[], &["snapshots"]));
}

#[test]
fn a_password_change_replaces_the_old_password() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    init(&repo);
    ok(run(&repo, "first", &[("CAIRN_NEW_PASSWORD", "changed")], &[&["key", "passwd"][..], &FAST].concat()));
    fails(run(&repo, "first", &[], &["snapshots"]), 12, "wrong password");
    ok(run(&repo, "changed", &[], &["snapshots"]));
    assert_eq!(std::fs::read_dir(repo.join("keys")).unwrap().count(), 1);
}

#[test]
fn backup_only_keys_write_and_dedup_but_read_and_manage_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 600_000];
    blake3::Hasher::new().update(b"k").finalize_xof().fill(&mut data);
    std::fs::write(src.join("big.bin"), &data).unwrap();
    init(&repo);
    let s = src.to_str().unwrap();
    ok(run(&repo, "first", &[], &["backup", s]));
    let bo_file = tmp.path().join("backup.key");
    #[rustfmt::skip]
    ok(run(&repo, "first", &[("CAIRN_NEW_PASSWORD", "bo")],
        &[&["key", "add", "--backup-only", "--to-file", bo_file.to_str().unwrap()][..], &FAST].concat()));
    let bo = [("CAIRN_KEY_FILE", bo_file.to_str().unwrap())];

    std::fs::write(src.join("new.txt"), b"written by the backup host").unwrap();
    let out: serde_json::Value =
        serde_json::from_str(&ok(run(&repo, "bo", &bo, &["backup", s, "--json"]))).unwrap();
    assert!(out["bytes_added"].as_u64().unwrap() < 100_000, "no dedup against full-key data: {out}");

    let target = tmp.path().join("out");
    let t = target.to_str().unwrap();
    fails(run(&repo, "bo", &bo, &["restore", "latest", "--target", t]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["snapshots"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["check"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["key", "list"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["key", "add"]), 1, "backup-only");
    assert!(!target.exists(), "a refused restore wrote nothing");

    // The full key reads what the backup-only key wrote.
    ok(run(&repo, "first", &[], &["restore", "latest", "--target", t]));
    let restored = target.join(s.trim_start_matches('/'));
    assert_eq!(std::fs::read(restored.join("new.txt")).unwrap(), b"written by the backup host");
    assert_eq!(std::fs::read(restored.join("big.bin")).unwrap(), data);
    ok(run(&repo, "first", &[], &["check", "--read-data"]));
}

#[test]
fn a_key_kept_apart_is_needed_and_survives_paper_export() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    let key = tmp.path().join("repo.key");
    let k = [("CAIRN_KEY_FILE", key.to_str().unwrap())];
    ok(run(&repo, "pw", &k, &[&["init"][..], &FAST].concat()));
    assert_eq!(
        std::fs::read_dir(repo.join("keys")).unwrap().count(),
        0,
        "the key must not be in the repository"
    );
    fails(run(&repo, "pw", &[], &["snapshots"]), 12, "--key-file");
    ok(run(&repo, "pw", &k, &["snapshots"]));

    let paper = tmp.path().join("paper.txt");
    std::fs::write(&paper, ok(run(&repo, "pw", &k, &["key", "export"]))).unwrap();
    let back = tmp.path().join("back.key");
    #[rustfmt::skip]
    ok(run(&repo, "pw", &[], &["key", "from-paper", paper.to_str().unwrap(), "--output", back.to_str().unwrap()]));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&key).unwrap());

    // Wrong, truncated or missing key files give one clear line.
    let bad = tmp.path().join("bad.key");
    std::fs::write(&bad, &std::fs::read(&key).unwrap()[..20]).unwrap();
    fails(run(&repo, "pw", &[("CAIRN_KEY_FILE", bad.to_str().unwrap())], &["snapshots"]), 12, "key file");
    let none = tmp.path().join("none.key");
    fails(
        run(&repo, "pw", &[("CAIRN_KEY_FILE", none.to_str().unwrap())], &["snapshots"]),
        12,
        "cannot read key file",
    );
    fails(run(&repo, "nope", &k, &["snapshots"]), 12, "wrong password");
}

#[test]
fn a_backup_only_key_cannot_forget_or_prune_and_changes_nothing_trying() {
    let (tmp, repo, _) = with_one_backup();
    let bo_file = tmp.path().join("bo.key");
    #[rustfmt::skip]
    ok(run(&repo, "first", &[("CAIRN_NEW_PASSWORD", "bo")],
        &[&["key", "add", "--backup-only", "--to-file", bo_file.to_str().unwrap()][..], &FAST].concat()));
    let bo = [("CAIRN_KEY_FILE", bo_file.to_str().unwrap())];
    let before: Vec<_> =
        std::fs::read_dir(repo.join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
    fails(run(&repo, "bo", &bo, &["forget", "--keep-last", "0", "--keep-daily", "1"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["prune"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["key", "remove", "abcd"]), 1, "backup-only");
    fails(run(&repo, "bo", &bo, &["key", "rotate"]), 1, "backup-only");
    let after: Vec<_> =
        std::fs::read_dir(repo.join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_dir(repo.join("locks")).unwrap().count(), 0, "refused commands leave no lock");
}

#[test]
fn removing_a_key_leaves_the_data_alone_and_a_tampered_log_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = (tmp.path().join("r"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), vec![9u8; 100_000]).unwrap();
    init(&repo);
    ok(run(&repo, "first", &[], &["backup", src.to_str().unwrap()]));
    ok(run(&repo, "first", &[("CAIRN_NEW_PASSWORD", "second")], &[&["key", "add"][..], &FAST].concat()));
    let list: serde_json::Value =
        serde_json::from_str(&ok(run(&repo, "second", &[], &["key", "list", "--json"]))).unwrap();
    let first = list.as_array().unwrap().iter().find(|k| k["in_use"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(run(&repo, "second", &[], &["key", "remove", &first]));
    ok(run(&repo, "second", &[], &["check", "--read-data"]));

    let log: serde_json::Value =
        serde_json::from_str(&ok(run(&repo, "second", &[], &["log", "--json"]))).unwrap();
    let ops: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["backup", "key add", "key remove", "check"]);
    // Alter the second entry: check reports the log as damaged.
    let mut names: Vec<_> = std::fs::read_dir(repo.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut bytes = std::fs::read(&names[1]).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&names[1], bytes).unwrap();
    let out = run(&repo, "second", &[], &["check"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("activity log"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Removing it instead leaves a gap that is found too.
    std::fs::remove_file(&names[1]).unwrap();
    let out = run(&repo, "second", &[], &["log"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

/// key rotate refuses, changing nothing, while a snapshot cannot be read (exit 7, as
/// prune): it could not seal that snapshot anew. Once the snapshot is forgotten it runs.
#[test]
fn key_rotate_refuses_while_a_snapshot_cannot_be_read() {
    // `_tmp` keeps the folders until the test ends.
    let (_tmp, repo, src) = with_one_backup();
    ok(run(&repo, "first", &[], &["backup", src.to_str().unwrap(), "--force"]));
    let snaps: Vec<_> =
        std::fs::read_dir(repo.join("snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
    let mut bytes = std::fs::read(&snaps[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&snaps[0], bytes).unwrap();
    let keys_before: Vec<_> =
        std::fs::read_dir(repo.join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let config_before = std::fs::read(repo.join("config")).unwrap();
    fails(run(&repo, "first", &[], &["key", "rotate"]), 7, "cannot be read");
    let keys_after: Vec<_> =
        std::fs::read_dir(repo.join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(keys_before, keys_after, "a refused rotation touched the key files");
    assert_eq!(config_before, std::fs::read(repo.join("config")).unwrap());
    let damaged = snaps[0].file_name().unwrap().to_str().unwrap()[..12].to_string();
    ok(run(&repo, "first", &[], &["forget", &damaged]));
    ok(run(&repo, "first", &[], &["key", "rotate"]));
    ok(run(&repo, "first", &[], &["check", "--read-data"]));
}

/// A rotation cannot reach a key kept apart or a paper copy: it names each one made since
/// the last rotation (from the activity log), and they indeed no longer open the
/// repository. A key added to the repository itself and the key in use keep working, and
/// a later rotation names nothing already named.
#[test]
fn key_rotate_names_the_kept_apart_and_paper_keys_it_leaves_behind() {
    let (tmp, repo, _src) = with_one_backup();
    let apart = tmp.path().join("apart.key");
    let second = [("CAIRN_NEW_PASSWORD", "second")];
    ok(run(
        &repo,
        "first",
        &second,
        &[&["key", "add", "--to-file", apart.to_str().unwrap()][..], &FAST].concat(),
    ));
    let apart_env = [("CAIRN_KEY_FILE", apart.to_str().unwrap())];
    ok(run(&repo, "second", &apart_env, &["snapshots"]));
    let third = [("CAIRN_NEW_PASSWORD", "third")];
    ok(run(&repo, "first", &third, &[&["key", "add"][..], &FAST].concat()));
    let paper = ok(run(&repo, "first", &[], &["key", "export"]));
    let paper_file = tmp.path().join("paper.txt");
    std::fs::write(&paper_file, paper).unwrap();
    let from_paper = tmp.path().join("from-paper.key");
    ok(run(
        &repo,
        "first",
        &[],
        &["key", "from-paper", paper_file.to_str().unwrap(), "--output", from_paper.to_str().unwrap()],
    ));

    let out = run(&repo, "first", &[], &["key", "rotate", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("no longer opens the repository")).collect();
    assert_eq!(warned.len(), 2, "{err}");
    assert!(warned.iter().any(|l| l.contains("added to a file kept apart")), "{err}");
    assert!(warned.iter().any(|l| l.contains("the paper copy of key")), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keys_left_behind"].as_array().unwrap().len(), 2, "{json}");

    // What it said holds: the two no longer open the repository; the others do.
    assert!(!run(&repo, "second", &apart_env, &["snapshots"]).status.success());
    let paper_env = [("CAIRN_KEY_FILE", from_paper.to_str().unwrap())];
    assert!(!run(&repo, "first", &paper_env, &["snapshots"]).status.success());
    ok(run(&repo, "first", &[], &["snapshots"]));
    ok(run(&repo, "third", &[], &["snapshots"]));

    let again = run(&repo, "first", &[], &["key", "rotate"]);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("no longer opens"), "named twice");
}

/// `key rotate --content-keys --dry-run` tells what the rotation would read (each
/// distinct file once, however many snapshots hold it) and changes nothing; the rotation
/// then stores that many snapshots anew, and a second dry run finds none left to store.
#[test]
fn a_content_key_rotation_dry_run_counts_each_file_once_and_changes_nothing() {
    let (tmp, repo, src) = with_one_backup();
    std::fs::write(src.join("b"), vec![7u8; 300_000]).unwrap();
    ok(run(&repo, "first", &[], &["backup", src.to_str().unwrap()]));
    std::fs::write(src.join("c"), vec![9u8; 50_000]).unwrap();
    ok(run(&repo, "first", &[], &["backup", src.to_str().unwrap()]));
    let listing = || ok(run(&repo, "first", &[], &["snapshots", "--json"]));
    let keys = || {
        let mut names: Vec<_> =
            std::fs::read_dir(repo.join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        names
    };
    let (before, keys_before) = (listing(), keys());
    let dry = |repo: &Path| -> serde_json::Value {
        let out = ok(run(repo, "first", &[], &["key", "rotate", "--content-keys", "--dry-run", "--json"]));
        serde_json::from_str(&out).unwrap()
    };
    let plan = dry(&repo);
    assert_eq!(
        (plan["snapshots"].as_u64(), plan["file_bytes"].as_u64()),
        (Some(3), Some(1 + 300_000 + 50_000))
    );
    assert!(plan["pack_bytes"].as_u64().unwrap() > 0 && plan["free_bytes"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!((listing(), keys()), (before, keys_before), "a dry run changed the repository");
    let rotated = ok(run(&repo, "first", &[], &["key", "rotate", "--content-keys", "--json"]));
    let rotated: serde_json::Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(rotated["stored_anew"], 3, "{rotated}");
    // Renewed content keys name the same content anew: a new dry run would store all again.
    assert_eq!(dry(&repo)["snapshots"], 3);
    let target = tmp.path().join("restore");
    ok(run(&repo, "first", &[], &["restore", "latest", "--target", target.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(target.join(src.strip_prefix("/").unwrap()).join("b")).unwrap(),
        vec![7u8; 300_000]
    );
    let plain = run(&repo, "first", &[], &["key", "rotate", "--dry-run"]);
    assert_eq!(plain.status.code(), Some(2), "a dry run is only for --content-keys");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--content-keys"));
}
