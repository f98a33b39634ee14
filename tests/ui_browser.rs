//! The dashboard in a real headless Chromium (tests/browser/): a job file with a job
//! whose copies go to a second folder and to a cairn server, and two jobs whose newest
//! backups are a day and a half and five days old. Logs in, opens every page, asserts on
//! the DOM (snapshot ids, RPO colours, one plot point per backup), downloads a file and
//! compares it, runs a drill and a confirmed restore from the pages, and keeps a
//! screenshot of each page (target/ui-screenshots/).

mod browser;
mod common;
mod dashboard;
mod servers;

use browser::Browser;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&screenshots().join(format!("{name}.png")));
}

fn run_ok(c: Cairn) -> Out {
    c.run().ok()
}

/// Wait until the action page says the action ended; its final state.
fn action_result(b: &Browser) -> String {
    let started = std::time::Instant::now();
    loop {
        let state = b.find("#action-state").attr("data-state").unwrap_or_default();
        if state != "running" {
            return state;
        }
        assert!(started.elapsed() < WAIT, "the action did not end: {}", b.find("#action-output").text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_dashboard_in_a_real_browser() {
    // A gateway-like tree, its job's repository, a second folder and a served repository.
    let work = tempdir("cairn-ui-browser-");
    let src = work.path().join("apigateway");
    fs::create_dir_all(src.join("conf")).unwrap();
    fs::write(src.join("conf/policy.xml"), "<policy rate=\"10\"/>\n").unwrap();
    let mut rng = Rng::new(11);
    let blob: Vec<u8> = (0..2_500_000).map(|_| rng.next_u64() as u8).collect();
    fs::write(src.join("conf/keystore.bin"), &blob).unwrap();
    let pass = work.path().join("password");
    fs::write(&pass, PASSWORD).unwrap();
    fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (own, second, history) = (Repo::new(), Repo::new(), Repo::new());
    let server = servers::Server::cairn(&[]);
    let token = server.token("off", "admin");
    let token_file = work.path().join("token");
    fs::write(&token_file, &token).unwrap();
    fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let offsite = server.location("off");
    run_ok(Cairn::new().args(["init", "-r", &offsite]).args(FAST_KDF).env("CAIRN_TOKEN", &token));

    let job_file = work.path().join("cairn.toml");
    fs::write(
        &job_file,
        format!(
            r#"
[jobs.gw]
repository = "{own}"
password-file = "{pass}"
sources = ["{src}"]
snapshot-name = "gw-{{time:%Y%m%d-%H%M%S}}"

[jobs.gw.retention]
keep-last = 5

[jobs.gw.drill]
max-rto = "10m"
max-rpo = "1h"

[[jobs.gw.copy]]
repository = "{second}"
password-file = "{pass}"

[[jobs.gw.copy]]
repository = "{offsite}"
password-file = "{pass}"
token-file = "{token}"

[jobs.weekly]
repository = "{history}"
password-file = "{pass}"
sources = ["{src}"]

[jobs.stale]
repository = "{history}"
password-file = "{pass}"
sources = ["{src}"]
"#,
            own = own.path.display(),
            pass = pass.display(),
            src = src.display(),
            second = second.path.display(),
            token = token_file.display(),
            history = history.path.display(),
        ),
    )
    .unwrap();
    let config = job_file.to_str().unwrap();
    run_ok(Cairn::new().args(["run", "gw", "--config", config]));
    fs::write(src.join("conf/policy.xml"), "<policy rate=\"20\"/>\n<ip allow=\"10.0.0.0/8\"/>\n").unwrap();
    run_ok(Cairn::new().args(["run", "gw", "--config", config]));
    let day = 86400;
    let now = jiff::Timestamp::now().as_second();
    for (job, age) in [("weekly", 3 * day / 2), ("stale", 5 * day)] {
        let time = jiff::Timestamp::from_second(now - age).unwrap().to_string();
        history.backup(&[&src], &["--label", &format!("job={job}"), "--time", &time]);
    }
    let own_ids: Vec<String> =
        own.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(own_ids.len(), 2);

    let ui = dashboard::Dashboard::start(&["--config", config], &[]);
    let b = Browser::start();

    // Log in: the cookie is set, the token leaves the address, scripts cannot read it.
    b.goto(&ui.url(&format!("/?token={}", dashboard::TOKEN)));
    b.wait_for("#overview", WAIT);
    assert_eq!(b.url(), ui.url("/"));
    assert_eq!(b.execute("return document.cookie", &[]), "");
    assert!(b.cookies().iter().any(|c| c["name"] == "cairn_ui_session" && c["httpOnly"] == true));

    // Overview: one row per repository; RPO colours by age; 3-2-1 met for gw.
    let colour =
        |name: &str| b.find(&format!("tr[data-name=\"{name}\"] td[data-rpo]")).attr("data-rpo").unwrap();
    assert_eq!(b.find_all("#overview tbody tr").len(), 5);
    assert_eq!([colour("gw"), colour("gw (copy)")], ["green", "green"]);
    assert_eq!(b.find_all("tr[data-name=\"gw (copy)\"] td[data-rpo=green]").len(), 2);
    assert_eq!(colour("weekly"), "amber", "36 h old against the default RPO of a day");
    assert_eq!(colour("stale"), "red", "5 days old");
    let three = b.find("tr[data-name=\"gw\"] [data-321]");
    assert_eq!(three.attr("data-321").as_deref(), Some("true"), "{}", three.text());
    assert!(three.text().contains("3 copies, 2 kinds of storage, 1 offsite"), "{}", three.text());
    assert!(b.find("tr[data-name=\"gw\"]").text().contains("all have the newest snapshot"));
    shot(&b, "overview");

    // Snapshots: the ids the CLI lists, names from the job's template, and the filter.
    b.goto(&ui.url("/snapshots?repo=0"));
    let shown: Vec<String> =
        b.find_all("#snapshots tr[data-id]").iter().map(|r| r.attr("data-id").unwrap()).collect();
    let mut newest_first = own_ids.clone();
    newest_first.reverse();
    assert_eq!(shown, newest_first);
    assert!(b.find("#snapshots tbody").text().contains("gw-"), "names from the template");
    b.find("input[name=host]").send_keys("no-such-host");
    b.find(".filters button").click();
    // The table of the page before may still be there: wait for the new address.
    assert!(wait_until(WAIT, || b.url().contains("host=no-such-host")), "{}", b.url());
    b.wait_for("#snapshots", WAIT);
    assert_eq!(b.find_all("#snapshots tr[data-id]").len(), 0);
    b.goto(&ui.url("/snapshots?repo=0&label=job%3Dgw"));
    assert_eq!(b.find_all("#snapshots tr[data-id]").len(), 2);
    // The job's retention: which rule keeps each snapshot, as `snapshots --retention`.
    assert!(b.find("#snapshots thead").text().contains("Kept by"));
    let kept = b.find_all("#snapshots td.kept");
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|k| !k.text().is_empty()));
    let cli = Cairn::new()
        .args([
            "snapshots",
            "--json",
            "-r",
            own.path.to_str().unwrap(),
            "--retention",
            "gw",
            "--config",
            config,
        ])
        .run()
        .ok()
        .json();
    assert_eq!(ui.api("/api/snapshots?repo=0&label=job%3Dgw").json(), cli);
    shot(&b, "snapshots");

    // Browse and download: the bytes are the file's.
    let conf = format!("{}/conf", src.display());
    b.goto(&ui.url(&format!("/browse?repo=0&snap=latest&path={}", conf.replace('/', "%2F"))));
    b.find(&format!("tr[data-path=\"{conf}/keystore.bin\"] a[href^=\"/download\"]")).click();
    let got = b.wait_for_download("keystore.bin", WAIT);
    assert_eq!(fs::read(got).unwrap(), blob);
    shot(&b, "browse");

    // Diff: the policy change, line by line.
    b.goto(&ui.url("/diff?repo=0"));
    b.find(".filters button").click();
    let change = b.wait_for("li[data-change=modified] pre.diff", WAIT);
    assert!(change.text().contains("+<ip allow=\"10.0.0.0/8\"/>"), "{}", change.text());
    assert!(change.text().contains("-<policy rate=\"10\"/>"), "{}", change.text());
    shot(&b, "diff");

    // Plots: one point per backup of the job.
    b.goto(&ui.url("/plots?repo=0"));
    assert_eq!(b.find_all("#plot-added svg circle").len(), 2);
    assert_eq!(b.find_all("#plot-duration svg circle").len(), 2);
    assert_eq!(b.find_all("#plot-rto svg circle").len(), 2, "one drill per job run");
    shot(&b, "plots");

    // Run a drill from the overview and watch it finish; the log then has it.
    b.goto(&ui.url("/"));
    let drills_before = drills(&own);
    b.find("button[data-action=\"drill-0\"]").click();
    b.wait_for("#action-state", WAIT);
    assert!(b.url().contains("/actions/"), "{}", b.url());
    assert_eq!(action_result(&b), "succeeded", "{}", b.find("#action-output").text());
    let output = b.find("#action-output").text();
    assert!(output.contains("Disaster-recovery drill: GO"), "{output}");
    assert!(!output.contains("warning"), "{output}");
    assert_eq!(drills(&own), drills_before + 1);
    shot(&b, "action");

    // Run the job now: a third snapshot, copied to both targets.
    b.goto(&ui.url("/"));
    b.find("button[data-action=\"job-0\"]").click();
    b.wait_for("#action-state", WAIT);
    assert_eq!(action_result(&b), "succeeded", "{}", b.find("#action-output").text());
    assert_eq!(own.snapshots().len(), 3);
    assert_eq!(second.snapshots().len(), 3);
    b.goto(&ui.url("/"));
    assert!(b.find("tr[data-name=\"gw\"]").text().contains("3 snapshots"));
    let drills_before = drills_before + 1;

    // The activity log, searched, with each drill's report.
    b.goto(&ui.url("/log?repo=0&q=drill"));
    // Every entry found mentions a drill (the drills, and the job runs with a drill step).
    let rows = b.find_all("#log tbody tr");
    assert!(rows.iter().all(|r| r.text().to_lowercase().contains("drill")));
    let drill_rows = b.find_all("#log tbody tr[data-operation=drill]");
    assert_eq!(drill_rows.len(), drills_before + 1);
    assert!(rows.len() > drill_rows.len(), "the job runs' drill steps are found too");
    assert_eq!(b.find_all("#log details.report").len(), drill_rows.len());
    b.goto(&ui.url("/log?repo=0&q=no-such-thing-anywhere"));
    assert_eq!(b.find_all("#log tbody tr").len(), 0);
    b.goto(&ui.url("/log?repo=0&q=drill"));
    shot(&b, "log");

    // A restore to this host asks twice; only the second yes writes.
    let target = work.path().join("restored");
    b.goto(&ui.url(&format!("/browse?repo=0&snap=latest&path={}", conf.replace('/', "%2F"))));
    b.find("form.restore input[name=target]").send_keys(target.to_str().unwrap());
    b.find("form.restore button").click();
    b.wait_for("#confirm-restore", WAIT);
    assert!(!target.exists(), "the first step wrote something");
    shot(&b, "confirm-restore");
    b.find("#confirm-restore").click();
    b.wait_for("#action-state", WAIT);
    assert_eq!(action_result(&b), "succeeded", "{}", b.find("#action-output").text());
    let restored = target.join(conf.trim_start_matches('/')).join("policy.xml");
    assert_eq!(fs::read(restored).unwrap(), fs::read(src.join("conf/policy.xml")).unwrap());
}

fn drills(repo: &Repo) -> usize {
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    log["entries"].as_array().unwrap().iter().filter(|e| e["operation"] == "drill").count()
}
