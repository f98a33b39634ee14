//! Auditing: what `snapshots` can show (stored size, type, job, the retention rule that
//! keeps each snapshot and until when), `diff` with old and new metadata values, and a
//! warning for a password file every user can read, and the log entry of every read of
//! stored data.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn snapshots_show_stored_size_job_and_the_rule_that_keeps_each() {
    let work = tempdir("cairn-audit-snapshots-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "x".repeat(5000)).unwrap();
    let repo = Repo::new();
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.gw.retention]\nkeep-last = 1\nkeep-daily = 7\nprune = false\n",
            repo.path.display(),
            src.display()
        ),
    )
    .unwrap();
    Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", work.path()).run().ok();
    // Another job's snapshot in the same repository is not the job's to judge.
    repo.backup(&[&src], &["--label", "job=other"]);

    let v = repo
        .cairn()
        .args(["snapshots", "--json", "--retention", "gw", "--config"])
        .arg(&config)
        .run()
        .ok()
        .json();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1, "only the job's snapshots: {v}");
    let s = &list[0];
    assert_eq!(s["job"], "gw");
    assert_eq!(s["kept_by"], serde_json::json!(["last 1", "daily 7"]), "{s}");
    // Kept longest by daily 7: seven days after the start of its day (local time).
    let time: jiff::Timestamp = s["time"].as_str().unwrap().parse().unwrap();
    let day = time.to_zoned_datetime(jiff::tz::TimeZone::system()).start_of_day().unwrap();
    let expected = day.checked_add(jiff::Span::new().days(7)).unwrap().timestamp();
    assert_eq!(s["expires"], expected.to_string(), "{s}");

    let table = repo.cairn().args(["snapshots", "--long"]).run().ok().stdout;
    for column in ["Stored", "Job", "Type", "other", "gw"] {
        assert!(table.contains(column), "{column} missing:\n{table}");
    }
    let table =
        repo.cairn().args(["snapshots", "--retention", "gw", "--config"]).arg(&config).run().ok().stdout;
    assert!(
        table.contains("Kept by") && table.contains("last 1, daily 7") && table.contains("Expires"),
        "{table}"
    );
    // An unknown job is a clear error.
    let out =
        repo.cairn().args(["snapshots", "--retention", "nope", "--config"]).arg(&config).run().expect_code(2);
    assert!(out.one_line_error().contains("no job named 'nope'"), "{}", out.context());
}

#[test]
fn diff_shows_old_and_new_metadata_values() {
    let work = tempdir("cairn-audit-diff-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    let f = src.join("gateway.xml");
    fs::write(&f, "<a/>").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let repo = Repo::new();
    let old = repo.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    repo.backup(&[&src], &[]);
    let text = repo.cairn().args(["diff", &old, "latest"]).run().ok().stdout;
    let line = text.lines().find(|l| l.contains("gateway.xml")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("U ") && line.contains("mode 0644 -> 0600"), "{line}");
    let v = repo.cairn().args(["diff", "--json", &old, "latest"]).run().ok().json();
    let change = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("gateway.xml"));
    assert_eq!(change.unwrap()["values"]["mode"], serde_json::json!({"old": "0644", "new": "0600"}));
}

#[test]
fn a_password_file_every_user_can_read_gets_a_warning() {
    let work = tempdir("cairn-audit-pass-");
    let repo = Repo::new();
    let pass = work.path().join("pass");
    fs::write(&pass, PASSWORD).unwrap();
    let snapshots = |mode: u32| {
        fs::set_permissions(&pass, fs::Permissions::from_mode(mode)).unwrap();
        repo.cairn()
            .env_remove("CAIRN_PASSWORD")
            .env("CAIRN_PASSWORD_FILE", &pass)
            .arg("snapshots")
            .run()
            .ok()
    };
    let out = snapshots(0o644);
    assert!(
        out.stderr.contains("password file") && out.stderr.contains("readable by every user"),
        "{}",
        out.context()
    );
    let out = snapshots(0o600);
    assert!(!out.stderr.contains("warning"), "{}", out.context());
}

/// Who read which snapshot, which paths and where: restore, dump and cat each leave an
/// entry in the activity log, whatever their outcome.
#[test]
fn every_read_of_stored_data_is_recorded_with_its_paths_and_target() {
    let work = tempdir("cairn-audit-read-");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("conf")).unwrap();
    fs::write(src.join("conf/gateway.xml"), "<gateway/>\n".repeat(100)).unwrap();
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::new();
    let id = repo.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let file = src.join("conf/gateway.xml");
    let target = work.path().join("restored");
    repo.restore(&id, &target, &["--include", src.join("conf").to_str().unwrap()]).ok();
    let archive = work.path().join("out.tar");
    repo.cairn().args(["dump", &id, "--archive", "tar", "--output"]).arg(&archive).run().ok();
    repo.cairn().args(["cat", &id]).arg(&file).run().ok();
    // A read that fails is recorded too.
    repo.cairn().args(["cat", &id]).arg(src.join("missing.xml")).run();

    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let entries = log["entries"].as_array().unwrap();
    let find = |op: &str| -> Vec<&Value> { entries.iter().filter(|e| e["operation"] == op).collect() };
    let restore = find("restore");
    assert_eq!(restore.len(), 1, "{log}");
    assert_eq!(restore[0]["snapshot"], id.as_str());
    assert_eq!(restore[0]["figures"]["target"], target.to_str().unwrap());
    assert_eq!(restore[0]["figures"]["paths"], src.join("conf").to_str().unwrap());
    assert_eq!(restore[0]["outcome"], "success");
    assert_eq!(find("dump")[0]["figures"]["target"], archive.to_str().unwrap());
    let cats = find("cat");
    assert_eq!(cats.len(), 2, "{log}");
    assert_eq!(cats[0]["figures"]["paths"], file.to_str().unwrap());
    assert_eq!((cats[0]["outcome"].as_str(), cats[1]["outcome"].as_str()), (Some("success"), Some("failed")));
    for e in restore.iter().chain(&cats) {
        assert!(e["user"].is_string() && e["host"].is_string() && e["written_by"] == "full key", "{e}");
    }
}
