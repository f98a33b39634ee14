//! S3 Object Lock against a server that enforces it (moto, scripts/servers/s3-lock.sh),
//! with a second S3 client (scripts/servers/s3-raw.py) in the part of someone holding
//! the bucket's credentials: every version cairn wrote refuses deletion, a mass deletion
//! is undone by `repair undelete` and every snapshot restores identical, locks are
//! renewed only once a third of the period is left, forget and prune complete, and
//! forgotten data is deleted for good once its lock ends.

mod common;
mod servers;

use common::*;
use serde_json::Value;
use servers::Server;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock period of the test repository: short, so that renewals and expiry happen
/// within the test (a loaded machine must still get through the steps before the first
/// renewal in two thirds of it); a renewal is due with less than a third left.
const PERIOD: f64 = 30.0;
const RENEW_BEFORE: f64 = PERIOD / 3.0;

struct Locked {
    server: Server,
    loc: String,
    prefix: String,
}

impl AtRepo for Locked {
    fn cairn(&self) -> Cairn {
        let mut c = Cairn::new().arg("-r").arg(&self.loc);
        for (k, v) in &self.server.env {
            c = c.env(k, v);
        }
        c
    }
}

impl Locked {
    fn raw(&self, args: &[&str]) -> std::process::Output {
        self.raw_with_input(args, "")
    }

    fn raw_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/servers/s3-raw.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).args(args).env("S3_ENDPOINT", format!("http://127.0.0.1:{}", self.server.port));
        for (k, v) in &self.server.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run s3-raw.py");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().expect("run s3-raw.py")
    }

    /// Every version and delete marker below the repository, as the other client sees them.
    fn versions(&self) -> Vec<Value> {
        let out = self.raw(&["versions", "cairn-locked", &self.prefix]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The current versions of cairn's objects (lock files aside), by key.
    fn current(&self) -> HashMap<String, Value> {
        self.versions()
            .into_iter()
            .filter(|v| v["latest"] == true && v["marker"] == false && !is_lock_file(v))
            .map(|v| (v["key"].as_str().unwrap().to_string(), v))
            .collect()
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn is_lock_file(v: &Value) -> bool {
    v["key"].as_str().unwrap().contains("/locks/")
}

fn until(v: &Value) -> f64 {
    v["until"].as_f64().unwrap_or_else(|| panic!("not locked: {v}"))
}

fn sleep_until(t: f64) {
    let left = t - now_secs();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}

/// A few configuration files and a larger one: what a gateway's conf/ looks like.
fn small_tree(root: &Path) {
    std::fs::create_dir_all(root.join("conf")).unwrap();
    for (i, name) in ["gateway.xml", "policies.xml", "nodemanager.xml"].iter().enumerate() {
        std::fs::write(root.join("conf").join(name), format!("<config n=\"{i}\"/>\n").repeat(200)).unwrap();
    }
    write_random(&root.join("ext.jar"), 3, 200_000);
}

#[test]
fn locked_bucket_survives_its_credentials_and_lets_forgotten_data_go() {
    let server = Server::s3_lock();
    let repo = Locked { loc: server.location("gw"), prefix: "gw/".into(), server };
    let work = tempdir("cairn-lock-");
    let src = work.path().join("src");
    small_tree(&src);
    let t_init = now_secs();
    repo.cairn().arg("init").args(FAST_KDF).args(["--object-lock", &format!("{PERIOD}s")]).run().ok();
    let mut witness = Witness::new();
    let first = witness.backup(&repo, &src, &[]);
    // The second snapshot adds a file the third drops: only the second uses its data.
    let dropped = src.join("dropped.bin");
    write_random(&dropped, 5, 300_000);
    let with_dropped = witness.backup(&repo, &src, &[]);
    std::fs::remove_file(&dropped).unwrap();
    write_random(&src.join("added.bin"), 6, 200_000);
    witness.backup(&repo, &src, &[]);
    // Nothing is renewed while more than a third of the period is left.
    let quiet = repo.cairn().arg("backup").arg(&src).run().ok();
    assert!(!quiet.stdout.contains("renewed"), "{}", quiet.context());
    witness.record(&repo, &newest(&repo), &src);

    // Every object cairn wrote is locked for the period from when it was written: the
    // other client cannot delete a single version of any of them.
    let written: Vec<Value> = repo.current().into_values().collect();
    assert!(written.iter().any(|v| v["key"].as_str().unwrap().contains("/data/")), "{written:?}");
    let mut tries = String::new();
    for v in &written {
        assert!(until(v) >= t_init + PERIOD - 1.0, "locked too briefly: {v}");
        tries += &format!("{} {}\n", v["key"].as_str().unwrap(), v["version"].as_str().unwrap());
    }
    let out = repo.raw_with_input(&["try-delete-versions", "cairn-locked"], &tries);
    let answers = String::from_utf8_lossy(&out.stdout);
    assert_eq!(answers.lines().count(), written.len(), "{answers}");
    for a in answers.lines() {
        assert!(a.contains("\"refused\": true"), "a locked version was deleted: {a}");
    }

    // The other client deletes everything it can, which hides each object under a delete
    // marker: cairn no longer finds a repository.
    let attack = SystemTime::now() - Duration::from_secs(1);
    let mut delete = vec!["delete", "cairn-locked"];
    delete.extend(written.iter().map(|v| v["key"].as_str().unwrap()));
    let out = repo.raw(&delete);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = repo.cairn().args(["snapshots", "--json"]).run();
    assert_ne!(listed.code, Some(0), "a repository without its config opened: {}", listed.context());
    // Deletions since the attack are undone with the store's credentials alone, and every
    // snapshot restores identical.
    let since = jiff::Timestamp::try_from(attack).unwrap().to_string();
    let dry =
        repo.cairn().args(["repair", "undelete", "--dry-run", "--json", "--since", &since]).run().ok().json();
    assert_eq!(dry["objects"].as_array().unwrap().len(), written.len(), "{dry}");
    repo.cairn().args(["repair", "undelete", "--since", &since]).run().ok();
    assert_eq!(witness.verify_all(&repo), 4, "every snapshot restores identical after the attack");

    // An overwrite is reported by check; the overwriting version is not locked, so the
    // store's own tools remove it and cairn's locked version is current again.
    let snapshot = written.iter().find(|v| v["key"].as_str().unwrap().contains("/snapshots/")).unwrap();
    let key = snapshot["key"].as_str().unwrap();
    assert!(repo.raw(&["overwrite", "cairn-locked", key]).status.success());
    let check = repo.cairn().arg("check").run().expect_code(4);
    assert!(check.context().contains("was overwritten"), "{}", check.context());
    let foreign = repo.current().remove(key).unwrap();
    assert!(foreign["until"].is_null() && foreign["version"] != snapshot["version"], "{foreign}");
    let out = repo.raw(&["delete-version", "cairn-locked", key, foreign["version"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    repo.cairn().args(["check", "--read-data"]).run().ok();

    // Once less than a third of the period is left, a backup renews the lock to a full
    // period; objects with more left keep their date.
    sleep_until(t_init + PERIOD - RENEW_BEFORE + 4.0);
    // check renews nothing, and the log entry it writes now has most of its period left.
    repo.cairn().arg("check").run().ok();
    let before = repo.current();
    let t_renew = now_secs();
    let renewing = repo.cairn().arg("backup").arg(&src).run().ok();
    assert!(renewing.stdout.contains("renewed the lock of"), "{}", renewing.context());
    witness.record(&repo, &newest(&repo), &src);
    let after = repo.current();
    let (mut renewed, mut kept) = (0, 0);
    for (key, old) in &before {
        let new = until(&after[key]);
        if until(old) < t_renew + RENEW_BEFORE - 1.0 {
            assert!(new >= t_renew + PERIOD - 1.0, "not renewed to a full period: {key} {old} -> {new}");
            renewed += 1;
        } else if until(old) > t_renew + RENEW_BEFORE + 3.0 {
            assert_eq!(new, until(old), "renewed too early: {key}");
            kept += 1;
        }
    }
    assert!(renewed > 0 && kept > 0, "renewed {renewed}, kept {kept}: {before:?}");

    // forget and prune complete; the forgotten data is hidden, still locked, pending.
    repo.cairn().args(["forget", first.as_str(), with_dropped.as_str()]).run().ok();
    witness.drop_id(&first);
    witness.drop_id(&with_dropped);
    let t_first_prune = now_secs();
    let pruned = repo.cairn().arg("prune").run().ok();
    assert!(pruned.stdout.contains("stay until their locks end"), "{}", pruned.context());
    repo.cairn().args(["check", "--read-data"]).run().ok();
    let hidden: Vec<Value> = repo
        .versions()
        .into_iter()
        .filter(|v| v["marker"] == false && v["latest"] == false && !is_lock_file(v))
        .collect();
    assert!(
        hidden.iter().any(|v| v["key"].as_str().unwrap().contains("/data/")),
        "the dropped file's pack was not deleted: {hidden:?}"
    );

    // Someone else hides a kept snapshot: check reports it as deleted, not by cairn.
    let attack = SystemTime::now() - Duration::from_secs(1);
    let current = repo.current();
    let (hidden_snapshot, _) = current.iter().find(|(k, _)| k.contains("/snapshots/")).unwrap();
    assert!(repo.raw(&["delete", "cairn-locked", hidden_snapshot]).status.success());
    let check = repo.cairn().arg("check").run().expect_code(4);
    assert!(check.context().contains("not by cairn"), "{}", check.context());

    // Once their locks end, the next prune deletes for good what cairn deleted, renews what
    // stays, and leaves what someone else hid, though its lock has ended too.
    // (Cairn deletes for good only deletions a period old: the first prune's.)
    let lock_ends = hidden.iter().map(until).chain([until(&current[hidden_snapshot])]).fold(0.0, f64::max);
    sleep_until(lock_ends.max(t_first_prune + PERIOD + 2.0) + 1.0);
    repo.cairn().arg("prune").run().ok();
    let left = repo.versions();
    for h in &hidden {
        assert!(!left.iter().any(|v| v["key"] == h["key"]), "{h} was not deleted for good: {left:?}");
    }
    assert!(
        left.iter().any(|v| v["key"].as_str() == Some(hidden_snapshot.as_str()) && v["marker"] == false),
        "prune deleted for good what someone else hid: {left:?}"
    );
    // What stays current is locked (renewed to at least a third of the period); what this
    // prune deleted stays pending for a period, locked or not.
    for v in left.iter().filter(|v| !is_lock_file(v) && v["latest"] == true && v["marker"] == false) {
        assert!(until(v) > now_secs(), "a kept object is not locked: {v}");
    }
    // The hidden snapshot comes back, a backup renews its lock, and everything is whole.
    let since = jiff::Timestamp::try_from(attack).unwrap().to_string();
    let back = repo.cairn().args(["repair", "undelete", "--json", "--since", &since]).run().ok().json();
    // It also brings back what the last prune deleted since then: the index files it
    // replaced, and the data only the hidden snapshot used, which that prune, not seeing
    // the snapshot, deleted as unused (kept for a period, so nothing is lost).
    let relative = hidden_snapshot.strip_prefix(&repo.prefix).unwrap();
    let objects: Vec<&str> =
        back["objects"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert!(objects.contains(&relative), "{back}");
    assert!(
        objects.iter().all(|o| *o == relative || o.starts_with("index/") || o.starts_with("data/")),
        "{back}"
    );
    // As undelete says: the index is rebuilt from the packs when index files came back.
    repo.cairn().args(["repair", "index"]).run().ok();
    repo.cairn().arg("backup").arg(&src).run().ok();
    witness.record(&repo, &newest(&repo), &src);
    repo.cairn().args(["check", "--read-data"]).run().ok();
    assert_eq!(witness.verify_all(&repo), 4);
    // A key rotation could not delete what is locked: refused, nothing changed.
    let refused = repo.cairn().args(["key", "rotate"]).run().expect_code(2);
    assert!(refused.one_line_error().contains("Object Lock"), "{}", refused.context());
    repo.cairn().args(["check", "--read-data"]).run().ok();
}

/// The id of the newest snapshot.
fn newest(repo: &Locked) -> String {
    let snaps = listed(repo);
    snaps.last().and_then(|s| s["id"].as_str()).expect("a snapshot").to_string()
}

#[test]
fn object_lock_is_refused_where_nothing_can_be_locked() {
    let server = Server::s3_lock();
    let plain = format!("s3:http://127.0.0.1:{}/cairn-plain/r", server.port);
    let mut c = Cairn::new().args(["-r", &plain, "init"]).args(FAST_KDF).args(["--object-lock", "30d"]);
    for (k, v) in &server.env {
        c = c.env(k, v);
    }
    let out = c.run().expect_code(1);
    assert!(out.one_line_error().contains("the bucket has no Object Lock"), "{}", out.context());
    let work = tempdir("cairn-lock-local-");
    let out = Cairn::new()
        .arg("-r")
        .arg(work.path().join("r"))
        .arg("init")
        .args(FAST_KDF)
        .args(["--object-lock", "30d"])
        .run()
        .expect_code(1);
    assert!(out.one_line_error().contains("needs an S3 repository"), "{}", out.context());
    // undelete on a store that keeps no deleted versions says so, and changes nothing.
    let local = Repo::new();
    let out = local.cairn().args(["repair", "undelete", "--since", "2026-12-05 10:00"]).run().expect_code(1);
    assert!(out.one_line_error().contains("keeps no versions of deleted objects"), "{}", out.context());
    let bad =
        Cairn::new().args(["-r", "/nonexistent/x", "init", "--object-lock", "soon"]).run().expect_code(2);
    assert!(bad.context().contains("not a duration"), "{}", bad.context());
}

#[test]
fn a_jobs_offsite_copy_goes_to_a_locked_bucket_with_credentials_from_a_file() {
    let server = Server::s3_lock();
    let offsite = server.location("gw-offsite");
    let work = tempdir("cairn-lock-job-");
    let src = work.path().join("gw");
    small_tree(&src);
    let pass = work.path().join("pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    // The bucket's credentials are in a file, as an AWS credentials file has them; no
    // command below has them in its environment.
    let credentials = work.path().join("offsite.credentials");
    let mut text = String::from("[default]\n");
    for (k, v) in server.env.iter().filter(|(k, _)| k.starts_with("AWS_")) {
        text += &format!("{} = {v}\n", k.to_ascii_lowercase());
    }
    std::fs::write(&credentials, text).unwrap();
    std::fs::set_permissions(&credentials, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let without = Cairn::new().args(["-r", &offsite, "init"]).args(FAST_KDF).run().expect_code(2);
    assert!(without.one_line_error().contains("S3 needs credentials"), "{}", without.context());
    let local = Repo::new();
    Cairn::new()
        .args(["-r", &offsite, "init", "--object-lock", "1d", "--copy-chunker-params-from"])
        .arg(&local.path)
        .args(FAST_KDF)
        .arg("--s3-credentials-file")
        .arg(&credentials)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .run()
        .ok();
    let config = work.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{}\"\nsources = [\"{}\"]\n\n\
             [[jobs.gw.copy]]\nrepository = \"{offsite}\"\npassword-file = \"{}\"\ns3-credentials-file = \"{}\"\n",
            local.path.display(),
            pass.display(),
            src.display(),
            pass.display(),
            credentials.display(),
        ),
    )
    .unwrap();
    Cairn::new().args(["config", "check", "--deep", "--config"]).arg(&config).run().ok();
    let run = Cairn::new()
        .args(["run", "--json", "--config"])
        .arg(&config)
        .env("CAIRN_LOCK_DIR", work.path())
        .run()
        .ok();
    assert!(run.stdout.contains(&format!("copy to {offsite}")), "{}", run.context());

    // The copy is locked in the bucket and restores identical.
    let repo = Locked { loc: offsite.clone(), prefix: "gw-offsite/".into(), server };
    let current = repo.current();
    assert!(current.keys().any(|k| k.contains("/snapshots/")), "{current:?}");
    for v in current.values() {
        assert!(until(v) > now_secs() + 86_000.0, "not locked for the period: {v}");
    }
    let copied = listed(&repo);
    let id = copied[0]["id"].as_str().unwrap().to_string();
    let target = work.path().join("restored");
    repo.cairn().args(["restore", &id, "--target"]).arg(&target).run().ok();
    assert_same_tree(&src, &restored(&target, &src));
}
