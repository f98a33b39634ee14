//! Snapshot names and types: a job's name template that gives several runs the same name
//! still gives each snapshot its own name, each snapshot has a type shown by `snapshots`
//! and usable in templates, a job can name snapshots in UTC, and times print with their
//! zone.

mod common;

use common::*;
use std::fs;

#[test]
fn names_stay_unique_types_show_and_a_job_can_name_in_utc() {
    let work = tempdir("cairn-names-");
    let src = work.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let repo = Repo::new();
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            r#"[jobs.gw]
repository = "{}"
sources = ["{}"]
type = "config"
name-time-zone = "UTC"
snapshot-name = "{{job}}-{{time:%Y%z}}-{{type}}"
[[jobs.gw.dumps]]
name = "db.sql"
command = "echo dump"
"#,
            repo.path.display(),
            src.display()
        ),
    )
    .unwrap();
    // Far from UTC, so a name in local time would say +0900.
    let run = || {
        Cairn::new()
            .args(["run", "--config"])
            .arg(&config)
            .env("CAIRN_LOCK_DIR", work.path())
            .env("TZ", "Asia/Tokyo")
            .run()
            .ok()
    };
    run();
    run();
    let snaps = repo.snapshots();
    let mut names: Vec<String> =
        snaps.iter().map(|s| s["labels"]["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    let year = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).year();
    let base = format!("gw-{year}+0000");
    assert_eq!(
        names,
        [
            format!("{base}-config"),
            format!("{base}-config-2"),
            format!("{base}-dump"),
            format!("{base}-dump-2")
        ],
        "each snapshot its own name, in UTC"
    );
    // Every name names exactly one snapshot.
    for n in &names {
        repo.cairn().args(["ls", n]).run().ok();
    }
    let types: Vec<&str> = snaps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "config").count(), 2, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "dump").count(), 2, "{types:?}");

    let table = repo.cairn().arg("snapshots").env("TZ", "Asia/Tokyo").run().ok().stdout;
    assert!(table.contains("Type") && table.contains("config") && table.contains("dump"), "{table}");
    assert!(table.contains(" JST "), "times print with their zone:\n{table}");

    // By hand: --type, and a type that is not a plain word is refused.
    let b = repo.backup(&[&src], &["--type", "full"]);
    let latest = repo.snapshots().into_iter().find(|s| s["id"] == b["snapshot"]).unwrap();
    assert_eq!(latest["type"], "full");
    let out = repo.cairn().args(["backup", "--type", "a b"]).arg(&src).run().expect_code(2);
    assert!(out.stderr.contains("type 'a b'"), "{}", out.context());
}
