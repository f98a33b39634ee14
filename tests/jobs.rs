//! Backup jobs end to end: a job file that dumps a real PostgreSQL database (started on a
//! private socket by scripts/servers/postgres.sh) and a gateway-like tree, applies
//! retention, checks a part of the data, drills, writes metrics and pings a monitor (a
//! real HTTP listener on 127.0.0.1); failing dumps and hooks; job file mistakes; schedules;
//! overlapping runs.

mod common;

use common::{gateway_tree, Cairn, Repo, TreeSize, Value};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A PostgreSQL server for one test, stopped when dropped.
struct Postgres {
    state: PathBuf,
    env: Vec<(String, String)>,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        // The server runs as nobody when the tests run as root: it must reach its folder.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let state = dir.join("pg");
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/servers/postgres.sh"))
            .arg("start")
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PostgreSQL did not start (.ci/run installs it: apt-get install postgresql):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Postgres { state, env }
    }

    /// The shell prefix that points pg_dump at this server.
    fn env_prefix(&self) -> String {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/servers/postgres.sh"))
            .arg("stop")
            .arg(&self.state)
            .output();
    }
}

/// An HTTP listener on 127.0.0.1 that answers 200 to everything and keeps each request's
/// first line and body: the monitor that pings go to.
fn monitor() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the headers, then as much body as Content-Length says.
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let first = text.lines().next().unwrap_or("").to_string();
                        log.lock().unwrap().push(format!("{first} {}", &text[end + 4..]));
                        break;
                    }
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
        }
    });
    (url, seen)
}

fn write_job_file(dir: &Path, text: &str) -> PathBuf {
    let f = dir.join("cairn.toml");
    fs::write(&f, text).unwrap();
    f
}

fn run_job(config: &Path, extra: &[&str]) -> common::Out {
    Cairn::new()
        .args(["run", "--json", "--config"])
        .arg(config)
        .args(extra)
        .env("CAIRN_LOCK_DIR", config.parent().unwrap())
        .run()
}

/// The job report lines `run --json` printed.
fn reports(out: &common::Out) -> Vec<Value> {
    out.json_lines().into_iter().filter(|v| v["type"] == "job").collect()
}

#[test]
fn a_job_dumps_a_real_database_and_runs_every_step() {
    let tmp = common::tempdir("cairn-job-");
    let pg = Postgres::start(tmp.path());
    let g = gateway_tree(&tmp.path().join("gw"), 3, TreeSize::SMALL);
    let repo = Repo::new();
    let offsite = Repo::new();
    let pass = tmp.path().join("pass");
    fs::write(&pass, format!("{}\n", common::PASSWORD)).unwrap();
    let (url, pings) = monitor();
    let metrics = tmp.path().join("cairn.prom");
    let marker = tmp.path().join("after-ran");
    let config = write_job_file(
        tmp.path(),
        &format!(
            r#"
[jobs.gateway]
repository = "{repo}"
password-file = "{pass}"
sources = ["{root}/groups", "{root}/system"]
optional-sources = ["{root}/no-such-*"]
excludes = ["*.jar"]
tags = ["prod"]
labels = {{ application = "apigw", environment = "test" }}
snapshot-name = "{{application}}-{{environment}}-{{time:%Y%m%d-%H%M%S}}-{{kind}}"

[[jobs.gateway.dumps]]
name = "gateway.sql"
command = "{pg} pg_dump --no-owner gateway"

[jobs.gateway.hooks]
after = ["echo $CAIRN_JOB $CAIRN_JOB_OUTCOME > {marker}"]

[jobs.gateway.retention]
keep-last = 2

[jobs.gateway.check]
read-data-parts = 3

[jobs.gateway.drill]
max-rto = "10m"

[[jobs.gateway.copy]]
repository = "{offsite}"
password-file = "{pass}"

[jobs.gateway.monitoring]
ping-start = "{url}/start"
ping-success = "{url}/ok"
ping-failure = "{url}/fail"
"#,
            repo = repo.path.display(),
            offsite = offsite.path.display(),
            pass = pass.display(),
            root = g.root.display(),
            pg = pg.env_prefix(),
            marker = marker.display(),
        ),
    );
    Cairn::new().args(["config", "check", "--config"]).arg(&config).run().ok();

    // A snapshot of another job (or made by hand) in the same repository: the job's
    // retention and copy leave it alone.
    let other =
        repo.backup(&[g.root.join("db")], &["--tag", "by-hand"])["snapshot"].as_str().unwrap().to_string();

    // Three runs: retention keeps the last two of each kind (files, the dump).
    let mut last = Value::Null;
    for _ in 0..3 {
        let out = run_job(&config, &["--metrics-file", metrics.to_str().unwrap()]).ok();
        last = reports(&out).remove(0);
        // Names have a one-second resolution; runs must not share one.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let steps: Vec<(&str, &str)> = last["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    let want_steps = [
        "ping start",
        "backup",
        "dump gateway.sql",
        "retention",
        "check",
        "drill",
        &format!("copy to {}", offsite.path.display()),
        &format!("retention at {}", offsite.path.display()),
        "hook after",
        "ping success",
    ];
    assert_eq!(steps.iter().map(|s| s.0).collect::<Vec<_>>(), want_steps, "{last}");
    assert!(steps.iter().all(|s| s.1 == "success"), "{last:#}");
    assert_eq!(last["outcome"], "success");
    assert_eq!(last["snapshot_count"], 4, "{last}");
    assert_eq!(last["check_ok"], true);
    assert!(last["rto_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(fs::read_to_string(&marker).unwrap(), "gateway success\n");

    // The dump was streamed from the real server: the named snapshot holds its rows.
    let mut snaps = repo.snapshots();
    assert!(snaps.iter().any(|s| s["id"] == other), "retention removed another job's snapshot");
    snaps.retain(|s| s["id"] != other);
    assert_eq!(snaps.len(), 4);
    let dump = snaps.iter().rev().find(|s| s["paths"][0] == "gateway.sql").unwrap();
    let name = dump["labels"]["name"].as_str().unwrap();
    assert!(name.starts_with("apigw-test-") && name.ends_with("-gateway.sql"), "{name}");
    let sql = repo.cairn().args(["cat", name, "/gateway.sql"]).run().ok().stdout;
    assert!(
        sql.contains("petstore\tbackend.url\thttps://petstore.internal:8443"),
        "{}",
        &sql[..sql.len().min(400)]
    );
    assert_eq!(sql.matches("rate.limit").count(), 500);
    // The file backup left out *.jar and kept its sources.
    let files = snaps.iter().rev().find(|s| s["paths"][0] != "gateway.sql").unwrap();
    let jars =
        repo.cairn().args(["find", "--json", "*.jar", "--snapshot", files["id"].as_str().unwrap()]).run();
    assert_eq!(jars.ok().json(), serde_json::json!([]));

    // The offsite copy holds the same snapshots: each run copied what it made, and the
    // job's retention ran there too. Nothing of the other snapshot went offsite.
    let copied = offsite.snapshots();
    let mut originals: Vec<&str> = copied.iter().map(|s| s["original"].as_str().unwrap()).collect();
    let mut kept: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    originals.sort();
    kept.sort();
    assert_eq!(originals, kept, "{copied:#?}");
    assert!(copied.iter().all(|s| s["labels"]["job"] == "gateway"));
    offsite.cairn().args(["check"]).run().ok();
    let prom = fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("cairn_job_outcome{job=\"gateway\"} 0"), "{prom}");
    assert!(prom.contains("cairn_job_snapshots{job=\"gateway\"} 4"), "{prom}");
    assert!(prom.contains("cairn_job_check_ok{job=\"gateway\"} 1"), "{prom}");
    let pings = pings.lock().unwrap().clone();
    assert_eq!(pings.iter().filter(|p| p.starts_with("POST /start")).count(), 3, "{pings:?}");
    assert_eq!(pings.iter().filter(|p| p.starts_with("POST /ok")).count(), 3, "{pings:?}");
    assert!(pings.iter().any(|p| p.contains("cairn job gateway: success")), "{pings:?}");
    // Every step and the job itself are in the activity log.
    let log = repo.cairn().args(["log"]).run().ok().stdout;
    assert_eq!(log.matches("job gateway").count(), 3, "{log}");
    assert!(log.contains("dump gateway.sql=success"), "{log}");
    repo.cairn().args(["check", "--read-data"]).run().ok();
}

#[test]
fn a_failing_dump_or_hook_fails_the_job_and_no_partial_snapshot_is_kept() {
    let tmp = common::tempdir("cairn-jobfail-");
    let repo = Repo::new();
    let src = tmp.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let marker = tmp.path().join("on-error");
    let (url, pings) = monitor();
    let job = |dump: &str, before: &str| {
        format!(
            r#"
[jobs.gw]
repository = "{repo}"
sources = ["{src}"]
[[jobs.gw.dumps]]
name = "db.sql"
command = "{dump}"
[jobs.gw.hooks]
before = ["{before}"]
on-error = ["echo $CAIRN_JOB_OUTCOME >> {marker}"]
[jobs.gw.retention]
keep-last = 1
[jobs.gw.monitoring]
ping-failure = "{url}/fail"
"#,
            repo = repo.path.display(),
            src = src.display(),
            marker = marker.display(),
        )
    };
    // The dump writes part of its output, then fails: the files are backed up, the dump
    // leaves no snapshot, retention does not run, the job fails with exit 6.
    let config = write_job_file(tmp.path(), &job("seq 1 50000; echo dump failed >&2; exit 3", "true"));
    let out = run_job(&config, &[]).expect_code(6);
    let report = &reports(&out)[0];
    assert_eq!(report["outcome"], "failed");
    let steps = report["steps"].to_string();
    assert!(steps.contains("exited with code 3") && !steps.contains("retention"), "{steps}");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1, "only the file backup made a snapshot");
    assert_ne!(snaps[0]["paths"][0], "db.sql");
    assert_eq!(fs::read_to_string(&marker).unwrap(), "failed\n");
    assert!(pings.lock().unwrap().iter().any(|p| p.starts_with("POST /fail")));

    // A failing before-hook stops the job before anything is backed up.
    let config = write_job_file(tmp.path(), &job("echo ok", "exit 9"));
    let out = run_job(&config, &[]).expect_code(6);
    assert!(reports(&out)[0]["steps"].to_string().contains("exited with code 9"));
    assert_eq!(repo.snapshots().len(), 1, "nothing ran after the failed hook");
    repo.cairn().args(["check"]).run().ok();
}

#[test]
fn job_file_mistakes_are_reported_with_their_lines_and_nothing_runs() {
    let tmp = common::tempdir("cairn-jobconf-");
    let repo = Repo::new();
    let config = write_job_file(
        tmp.path(),
        &format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"/etc/hostname\"]\nexclude = [\"*.log\"]\n\n[jobs.gw.retention]\nkeep-daily = \"7\"\n",
            repo.path.display()
        ),
    );
    let check = Cairn::new().args(["config", "check", "--config"]).arg(&config).run().expect_code(2);
    let lines: Vec<&str> = check.stderr.lines().collect();
    let name = config.display().to_string();
    assert!(lines[0].starts_with(&format!("cairn: {name}:4: unknown key `exclude`")), "{lines:?}");
    assert!(lines[0].contains("excludes"), "the expected keys are named: {lines:?}");
    assert!(
        lines[1].starts_with(&format!("cairn: {name}:7: keep-daily must be a whole number")),
        "{lines:?}"
    );
    assert!(lines[2].contains("2 mistakes"), "{lines:?}");
    run_job(&config, &[]).expect_code(2);
    assert!(repo.snapshots().is_empty(), "an invalid job file runs nothing");
    // An unknown job, a missing file, the examples.
    let good = write_job_file(
        tmp.path(),
        &format!("[jobs.gw]\nrepository = \"{}\"\nsources = [\"/etc/hostname\"]\n", repo.path.display()),
    );
    let out = run_job(&good, &["nope"]).expect_code(2);
    assert!(out.one_line_error().contains("it has: gw"));
    Cairn::new()
        .args(["run", "--config"])
        .arg(tmp.path().join("missing.toml"))
        .run()
        .expect_code(2)
        .one_line_error();
    let example = Cairn::new().args(["config", "example", "--preset", "axway-apigateway"]).run().ok().stdout;
    assert!(example.contains("/opt/Axway/apigateway/conf/opsdb.d") && example.contains("vshell-*"));
    Cairn::new().args(["config", "example", "--preset", "nginx"]).run().expect_code(2).one_line_error();
}

#[test]
fn runs_of_one_job_never_overlap_and_schedules_are_written() {
    let tmp = common::tempdir("cairn-jobsched-");
    let repo = Repo::new();
    let started = tmp.path().join("started");
    let config = write_job_file(
        tmp.path(),
        &format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.gw.hooks]\nbefore = [\"touch {}; sleep 3\"]\n",
            repo.path.display(),
            tmp.path().join("started").display(),
            started.display()
        ),
    );
    let first = Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", tmp.path()).spawn();
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || started.exists()),
        "first run never started"
    );
    let second = run_job(&config, &[]).expect_code(11);
    assert!(second.stderr.contains("already running"), "{}", second.context());
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(repo.snapshots().len(), 1);

    let units = tmp.path().join("units");
    fs::create_dir(&units).unwrap();
    Cairn::new()
        .args(["schedule", "install", "gw", "--every", "1h", "--randomized-delay", "10m", "--config"])
        .arg(&config)
        .arg("--unit-dir")
        .arg(&units)
        .run()
        .ok();
    let timer = fs::read_to_string(units.join("cairn-gw.timer")).unwrap();
    assert!(
        timer.contains("OnCalendar=*-*-* 00/1:00:00") && timer.contains("RandomizedDelaySec=600"),
        "{timer}"
    );
    let service = fs::read_to_string(units.join("cairn-gw.service")).unwrap();
    assert!(service.contains(&format!("--config {} gw", config.display())), "{service}");
    let cron = Cairn::new()
        .args(["schedule", "install", "gw", "--every", "15m", "--cron", "--config"])
        .arg(&config)
        .run()
        .ok();
    assert!(
        cron.stdout.starts_with("*/15 * * * * root ") && cron.stdout.contains(" run --quiet --config "),
        "{}",
        cron.stdout
    );
    Cairn::new()
        .args(["schedule", "install", "gw", "--every", "7m", "--config"])
        .arg(&config)
        .run()
        .expect_code(2);
}

#[test]
fn a_full_data_read_runs_when_due_and_a_rotating_part_otherwise() {
    let tmp = common::tempdir("cairn-jobcheck-");
    let repo = Repo::new();
    let src = tmp.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let config = write_job_file(
        tmp.path(),
        &format!(
            "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.gw.check]\nread-data-parts = 3\nfull-read-every-days = 30\n",
            repo.path.display(),
            src.display()
        ),
    );
    // No full read is on record: the first run reads everything, the next ones a part.
    run_job(&config, &[]).ok();
    run_job(&config, &[]).ok();
    let log = repo.cairn().args(["log"]).run().ok().stdout;
    let reads: Vec<&str> =
        log.lines().filter(|l| l.contains(" check ")).filter_map(|l| l.split("read_data=").nth(1)).collect();
    assert_eq!(reads.len(), 2, "{log}");
    assert_eq!(reads[0].split_whitespace().next(), Some("all"), "{log}");
    let part = reads[1].split_whitespace().next().unwrap();
    assert!(part.ends_with("/3") && part != "all", "{log}");
}

/// `rotate-keys-every`: a job rotates the repository's keys once the last rotation (or
/// the repository's making) is that long ago, and not before; what it saved still
/// restores afterwards.
#[test]
fn a_job_rotates_the_keys_when_due_and_not_before() {
    let tmp = common::tempdir("cairn-jobrotate-");
    let repo = Repo::new();
    let src = tmp.path().join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("nodemanager.xml"), "<node/>").unwrap();
    let job = |every: &str| {
        write_job_file(
            tmp.path(),
            &format!(
                "[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\nrotate-keys-every = \"{every}\"\n",
                repo.path.display(),
                src.display()
            ),
        )
    };
    let rotations = || {
        let log = repo.cairn().args(["log", "--json"]).run().ok().json();
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == "key rotate")
            .cloned()
            .collect::<Vec<_>>()
    };
    run_job(&job("365d"), &[]).ok();
    assert!(rotations().is_empty(), "rotated although not due");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    run_job(&job("2s"), &[]).ok();
    let done = rotations();
    let outcomes: Vec<&str> = done.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["started", "success"], "{done:?}");
    run_job(&job("1h"), &[]).ok();
    assert_eq!(rotations().len(), 2, "rotated again within the hour");
    let target = tmp.path().join("restore");
    repo.cairn().args(["restore", "latest", "--target"]).arg(&target).run().ok();
    common::assert_same_tree(&src, &common::restored(&target, &src));
}
