//! `cairn ui`'s JSON API against the CLI's `--json` on the same repository, and what the
//! dashboard refuses: requests without the token, cross-site posts, `..` in paths.

mod common;
mod dashboard;

use common::*;
use dashboard::{Dashboard, TOKEN};
use std::fs;

/// A repository with three snapshots of a gateway-like tree: a policy file changed in
/// between, a binary file over several chunks, and a check and a drill in the log.
fn history() -> (Repo, TempDir, Vec<String>) {
    let repo = Repo::new();
    let src = tempdir("cairn-ui-src-");
    let conf = src.path().join("conf");
    fs::create_dir_all(&conf).unwrap();
    let mut rng = Rng::new(7);
    let blob: Vec<u8> = (0..3_000_000).map(|_| rng.next_u64() as u8).collect();
    fs::write(src.path().join("data.bin"), &blob).unwrap();
    let mut ids = Vec::new();
    for (i, policy) in [
        "<policy rate=\"10\"/>\n",
        "<policy rate=\"20\"/>\n",
        "<policy rate=\"20\"/>\n<ip allow=\"10.0.0.0/8\"/>\n",
    ]
    .iter()
    .enumerate()
    {
        fs::write(conf.join("policy.xml"), policy).unwrap();
        fs::write(src.path().join(format!("note-{i}.txt")), format!("run {i}\n")).unwrap();
        let s = repo.backup(&[src.path()], &["--tag", "prod", "--label", "job=gw"]);
        ids.push(s["snapshot"].as_str().unwrap().to_string());
    }
    repo.cairn().args(["check"]).run().ok();
    repo.cairn().args(["drill"]).run().ok();
    (repo, src, ids)
}

fn dashboard_of(repo: &Repo) -> Dashboard {
    Dashboard::start(&["-r", repo.path.to_str().unwrap()], &[("CAIRN_PASSWORD", PASSWORD)])
}

#[test]
fn the_api_answers_what_the_cli_prints() {
    let (repo, src, ids) = history();
    let ui = dashboard_of(&repo);

    // The log first: the downloads below add entries to it.
    let log = ui.api("/api/log");
    assert_eq!(log.status, 200, "{}", log.text());
    assert_eq!(log.json(), repo.cairn().args(["log", "--json"]).run().ok().json());

    let snaps = ui.api("/api/snapshots");
    assert_eq!(snaps.status, 200, "{}", snaps.text());
    assert_eq!(snaps.header("content-type"), Some("application/json"));
    let cli = repo.cairn().args(["snapshots", "--json"]).run().ok().json();
    assert_eq!(snaps.json(), cli);
    let listed: Vec<&str> = cli.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids);
    for s in cli.as_array().unwrap() {
        for key in ["id", "time", "host", "paths", "tags", "labels"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    // Filters narrow it as the CLI's do.
    let by_label = ui.api("/api/snapshots?label=job%3Dgw&host=nohost").json();
    assert_eq!(by_label, serde_json::json!([]));

    // A file's bytes, verified, from an id prefix and from "latest".
    let root = src.path().to_str().unwrap();
    for (snap, file) in
        [(&ids[0][..8], "conf/policy.xml"), ("latest", "data.bin"), (&ids[1][..], "note-1.txt")]
    {
        let path = format!("{root}/{file}");
        let got = ui.api(&format!("/api/snapshots/{snap}/file?path={}", url_escape(&path)));
        assert_eq!(got.status, 200, "{}", got.text());
        let want = repo.cairn().args(["cat", snap, &path]).run().ok().stdout_bytes;
        assert_eq!(got.body, want, "{snap} {file}");
        assert_eq!(got.header("content-length"), Some(want.len().to_string().as_str()));
    }

    // A folder listing, as ls --json lists it.
    let ls = ui.api(&format!("/api/snapshots/{}/ls?path={}", &ids[2][..10], url_escape(root))).json();
    let cli_ls = repo.cairn().args(["ls", "--json", &ids[2], root]).run().ok().json_lines();
    let mut want: Vec<_> = cli_ls.into_iter().filter(|e| e["path"] != root).collect();
    let mut got = ls["entries"].as_array().unwrap().clone();
    let key = |v: &serde_json::Value| v["path"].as_str().unwrap().to_string();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);

    // The diff with text content, as diff --json --content prints it.
    let d = ui.api(&format!("/api/diff?a={}&b={}", ids[0], ids[2])).json();
    let cli_d = repo.cairn().args(["diff", "--json", "--content", &ids[0], &ids[2]]).run().ok().json();
    assert_eq!(d, cli_d);
    let policy =
        d["changes"].as_array().unwrap().iter().find(|c| c["path"].as_str().unwrap().ends_with("policy.xml"));
    assert!(policy.unwrap()["content"].as_str().unwrap().contains("+<ip allow=\"10.0.0.0/8\"/>"));

    // A folder as tar, every member's bytes as stored.
    let tar = ui.api(&format!("/api/snapshots/latest/archive?path={}&format=tar", url_escape(root)));
    assert_eq!(tar.status, 200);
    let out = tempdir("cairn-ui-tar-");
    let unpack = std::process::Command::new("tar")
        .arg("xf")
        .arg("-")
        .current_dir(out.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&tar.body)?;
            c.wait()
        })
        .unwrap();
    assert!(unpack.success());
    let unpacked = out.path().join(root.trim_start_matches('/'));
    assert_eq!(fs::read(unpacked.join("data.bin")).unwrap(), fs::read(src.path().join("data.bin")).unwrap());

    // The overview's figures are the repository's.
    let o = ui.api("/api/overview").json();
    let row = &o[0];
    assert_eq!(row["snapshots"], 3);
    assert_eq!(row["last_backup"]["id"], ids[2].as_str());
    assert_eq!(row["rpo_status"], "green");
    assert_eq!(row["last_check"]["outcome"], "success");
    assert_eq!(row["last_drill"]["outcome"], "success");

    // The downloads were recorded as reads, like cat's.
    let after = repo.cairn().args(["log", "--json"]).run().ok().json();
    let reads =
        after["entries"].as_array().unwrap().iter().filter(|e| e["operation"] == "ui download").count();
    assert_eq!(reads, 3);
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn nothing_is_served_without_the_token_and_no_other_site_can_act() {
    let (repo, src, ids) = history();
    let ui = dashboard_of(&repo);
    let file = format!("{}/conf/policy.xml", src.path().display());
    let paths = [
        "/".to_string(),
        "/snapshots".into(),
        "/browse".into(),
        "/diff".into(),
        "/plots".into(),
        "/log".into(),
        "/actions".into(),
        "/static/ui.js".into(),
        "/api/overview".into(),
        "/api/snapshots".into(),
        format!("/api/snapshots/{}/file?path={}", ids[0], url_escape(&file)),
        format!("/download?snap={}&path={}", ids[0], url_escape(&file)),
        "/api/log".into(),
        "/api/series".into(),
        "/api/actions".into(),
    ];
    for p in &paths {
        let none = ui.get_with(p, &[]);
        assert_eq!(none.status, 401, "{p} without a token: {}", none.text());
        assert!(!none.text().contains("policy"), "{p}");
        let wrong = ui.get_with(p, &[("authorization", "Bearer not-the-token-at-all")]);
        assert_eq!(wrong.status, 401, "{p} with a wrong token");
        let forged = ui.get_with(
            p,
            &[(
                "cookie",
                "cairn_ui_session=0000000000000000000000000000000000000000000000000000000000000000",
            )],
        );
        assert_eq!(forged.status, 401, "{p} with a made-up session");
    }
    assert_eq!(ui.get_with("/?token=wrong-token-wrong-token", &[]).status, 401);
    let post = ui.post_with("/actions", &[], &[("kind", "check"), ("repo", "0")]);
    assert_eq!(post.status, 401);

    // The login sets a session cookie the page's scripts cannot read, and takes the
    // token out of the address.
    let login = ui.get_with(&format!("/snapshots?repo=0&token={TOKEN}"), &[]);
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/snapshots?repo=0"));
    let set = login.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = ui.get_with("/", &[("cookie", &cookie)]);
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let csrf =
        page.text().split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(csrf.len(), 64);

    // A cross-site form: the browser sends the cookie and its own Origin; without the
    // CSRF token, or from another origin, nothing runs.
    let before = ui.api("/api/actions").json();
    let no_token = ui.post_with("/actions", &[("cookie", &cookie)], &[("kind", "check"), ("repo", "0")]);
    assert_eq!(no_token.status, 403, "{}", no_token.text());
    let foreign = ui.post_with(
        "/actions",
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        &[("kind", "check"), ("repo", "0"), ("csrf", &csrf)],
    );
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    let wrong = ui.post_with(
        "/actions",
        &[("cookie", &cookie)],
        &[("kind", "check"), ("repo", "0"), ("csrf", &"0".repeat(64))],
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(ui.api("/api/actions").json(), before, "a refused post started something");
    // The dashboard's own form works.
    let origin = ui.url("");
    let ok = ui.post_with(
        "/actions",
        &[("cookie", &cookie), ("origin", &origin)],
        &[("kind", "check"), ("repo", "0"), ("csrf", &csrf)],
    );
    assert_eq!(ok.status, 303, "{}", ok.text());

    // Paths with .. parts are refused, not resolved.
    for bad in [
        format!("{}/../../etc/passwd", src.path().display()),
        "../etc/passwd".to_string(),
        format!("{}/./conf/policy.xml", src.path().display()),
    ] {
        let a = ui.api(&format!("/api/snapshots/latest/file?path={}", url_escape(&bad)));
        assert_eq!(a.status, 400, "{bad}: {}", a.text());
        let l = ui.api(&format!("/api/snapshots/latest/ls?path={}", url_escape(&bad)));
        assert_eq!(l.status, 400, "{bad}");
    }
    assert_eq!(ui.api("/api/snapshots/latest/file?path=%2Fnot%2Fthere").status, 404);

    // Other bad input: a clear one-line error and a 4xx, never a 500.
    for (query, status, says) in [
        ("/api/snapshots?from=yesterday-ish", 400, "is not a time"),
        ("/api/snapshots?label=nolabel", 400, "KEY=VALUE"),
        ("/api/snapshots?repo=7", 404, "no such repository"),
        ("/api/snapshots?repo=-1", 404, "no such repository"),
        ("/api/snapshots/ffffffffffff/ls?path=%2F", 404, "ffffffffffff"),
        ("/api/snapshots/latest/archive?path=%2F&format=rar", 400, "give tar or zip"),
        ("/api/diff?a=latest", 400, "give a=SNAPSHOT and b=SNAPSHOT"),
        ("/api/snapshots/latest/archive?path=%2Fnot%2Fthere&format=tar", 404, "is not in this snapshot"),
        ("/api/snapshots/latest/file?path=%2F", 400, "not a regular file"),
        ("/api/actions/99", 404, "no such action"),
        ("/api/nothing-here", 404, "no such page"),
    ] {
        let a = ui.api(query);
        assert_eq!(a.status, status, "{query}: {}", a.text());
        let error = a.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(says) && !error.contains('\n'), "{query}: {error}");
    }
    let bad_kind = ui.post_with(
        "/api/actions",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &[("kind", "format-disk")],
    );
    assert_eq!(bad_kind.status, 400, "{}", bad_kind.text());
    let no_job =
        ui.post_with("/api/actions", &[("authorization", &format!("Bearer {TOKEN}"))], &[("kind", "job")]);
    assert_eq!(no_job.status, 400, "a repository without a job has no job to run: {}", no_job.text());
}

#[test]
fn plain_http_is_refused_off_loopback_and_tls_serves_it() {
    let repo = Repo::new();
    let out = repo.cairn().args(["ui", "--listen", "0.0.0.0:0"]).run().expect_code(2);
    assert!(out.one_line_error().contains("not a loopback address"), "{}", out.one_line_error());

    let dir = tempdir("cairn-ui-tls-");
    let (cert, key) = make_certificate(dir.path());
    let ui = Dashboard::start(
        &[
            "-r",
            repo.path.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("CAIRN_PASSWORD", PASSWORD)],
    );
    assert!(ui.log().starts_with(&format!("cairn ui: open https://127.0.0.1:{}/", ui.port)), "{}", ui.log());
    let pem = fs::read(&cert).unwrap();
    let roots: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                .build(),
        )
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let login = agent.get(format!("https://127.0.0.1:{}/?token={TOKEN}", ui.port)).call().unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let mut api = agent
        .get(format!("https://127.0.0.1:{}/api/snapshots", ui.port))
        .header("authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(api.status(), 200);
    assert_eq!(api.body_mut().read_to_string().unwrap(), "[]");
}

#[test]
fn a_wrong_password_in_the_job_file_stops_the_dashboard_before_it_serves() {
    let repo = Repo::new();
    let dir = tempdir("cairn-ui-job-");
    let pass = dir.path().join("password");
    fs::write(&pass, "not the password").unwrap();
    let job_file = dir.path().join("cairn.toml");
    fs::write(
        &job_file,
        format!(
            "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{}\"\nsources = [\"/etc\"]\n",
            repo.path.display(),
            pass.display()
        ),
    )
    .unwrap();
    let out = Cairn::new()
        .env_remove("CAIRN_PASSWORD")
        .args(["ui", "--listen", "127.0.0.1:0", "--config", job_file.to_str().unwrap()])
        .run()
        .expect_code(12);
    let line = out.one_line_error();
    assert!(line.contains("job gw") && line.contains(repo.path.to_str().unwrap()), "{line}");
    assert!(!out.stdout.contains("token="), "it printed a login URL: {}", out.stdout);
}

#[test]
fn the_systemd_unit_starts_the_dashboard() {
    let repo = Repo::new();
    let dir = tempdir("cairn-ui-unit-");
    let pass = dir.path().join("password");
    fs::write(&pass, PASSWORD).unwrap();
    fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let job_file = dir.path().join("cairn.toml");
    let job = format!(
        "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{}\"\nsources = [\"/etc\"]\n",
        repo.path.display(),
        pass.display()
    );
    fs::write(&job_file, job).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The unit's command line, with this test's job file and a free port.
    let replace = [
        ("/etc/cairn/cairn.toml", job_file.display().to_string()),
        ("127.0.0.1:8080", format!("127.0.0.1:{port}")),
    ];
    let mut unit = unit_command("cairn-ui.service", &replace);
    let mut child = unit.env_remove("CAIRN_PASSWORD").env("CAIRN_UI_TOKEN", TOKEN).spawn().unwrap();
    // Asked while it runs: the login line is printed once it listens.
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
        .unwrap();
    let answer = ureq::Agent::new_with_config(ureq::Agent::config_builder().proxy(None).build())
        .get(format!("http://127.0.0.1:{port}/api/repos"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .call();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        first.trim(),
        format!("cairn ui: open http://127.0.0.1:{port}/?token=$CAIRN_UI_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repos: serde_json::Value =
        serde_json::from_slice(&answer.unwrap().body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(repos[0]["job"], "gw");
}
