//! `cairn serve` against hostile clients, on a real server on 127.0.0.1: what an append
//! token (a compromised backup host) tries must be refused, and afterwards every snapshot
//! saved before restores identical. Also the quarantine that deletes go to, quotas, many
//! clients at once, TLS, and the figures the server reports.

mod common;
mod servers;

use common::*;
use servers::Server;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A served repository as one token sees it.
struct Served {
    loc: String,
    token: String,
}

impl AtRepo for Served {
    fn cairn(&self) -> Cairn {
        Cairn::new().arg("-r").arg(&self.loc).env("CAIRN_TOKEN", &self.token)
    }
}

fn as_role(server: &Server, repo: &str, role: &str) -> Served {
    Served { loc: server.location(repo), token: server.token(repo, role) }
}

/// A request written byte for byte (no client library tidies the path): the status.
fn raw(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// Every file under a folder, with its bytes' hash, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string()));
            }
        }
    }
    out.sort();
    out
}

fn first_object(stored: &Path, dir: &str) -> String {
    let mut names = list_objects(stored, dir);
    names.retain(|n| !n.starts_with('.'));
    names.into_iter().next().unwrap_or_else(|| panic!("no object in {dir}/"))
}

#[test]
fn an_append_token_cannot_destroy_replace_or_forge_what_is_stored() {
    let server = Server::cairn(&[]);
    let port = server.port;
    let admin = as_role(&server, "gw", "admin");
    admin.cairn().arg("init").args(FAST_KDF).run().ok();
    let host = as_role(&server, "gw", "append");
    let work = tempdir("cairn-serve-hostile-");
    let src = gateway_tree(&work.path().join("src"), 11, TreeSize::SMALL).root;
    // One witness per snapshot: the owner's forget removes the first, undelete brings it back.
    let (mut first, mut second) = (Witness::new(), Witness::new());
    let first_id = first.backup(&host, &src, &[]);
    std::fs::write(src.join("changed.conf"), b"second backup").unwrap();
    let second_id = second.backup(&host, &src, &[]);
    let stored = server.storage("gw");
    let before = files(&stored);
    let token = host.token.as_str();

    // forget and prune need deletes the role lacks: refused with the server's reason.
    let out = host.cairn().args(["forget", "--keep-last", "1"]).run().expect_code(1);
    assert!(out.one_line_error().contains("append role) may not delete"), "{}", out.context());
    let out = host.cairn().args(["prune", "--max-unused", "0%"]).run().expect_code(1);
    assert!(out.one_line_error().contains("may not delete"), "{}", out.context());

    // Raw deletes of every kind of object.
    for (dir, name) in [
        ("data", first_object(&stored, "data")),
        ("index", first_object(&stored, "index")),
        ("snapshots", first_object(&stored, "snapshots")),
        ("keys", first_object(&stored, "keys")),
        ("log", first_object(&stored, "log")),
    ] {
        let (status, text) = raw(port, "DELETE", &format!("/gw/{dir}/{name}"), Some(token), b"");
        assert_eq!(status, 403, "DELETE {dir}/{name}: {text}");
    }
    assert_eq!(raw(port, "DELETE", "/gw/config", Some(token), b"").0, 403);

    // Overwriting a snapshot or an index file: other bytes do not hash to the name, the
    // same bytes are the same object; neither replaces anything.
    for dir in ["snapshots", "index"] {
        let name = first_object(&stored, dir);
        let (status, _) = raw(port, "POST", &format!("/gw/{dir}/{name}"), Some(token), b"forged contents");
        assert_eq!(status, 400, "{dir}: bytes that do not hash to the name");
        let same = std::fs::read(stored.join(dir).join(&name)).unwrap();
        assert_eq!(raw(port, "POST", &format!("/gw/{dir}/{name}"), Some(token), &same).0, 409, "{dir}");
    }
    // A pack whose bytes do not match its name, and keys and config, which only admin writes.
    let fake = blake3::hash(b"what the name promises").to_hex().to_string();
    assert_eq!(raw(port, "POST", &format!("/gw/data/{fake}"), Some(token), b"something else").0, 400);
    let key = b"a planted key";
    let key_name = blake3::hash(key).to_hex().to_string();
    assert_eq!(raw(port, "POST", &format!("/gw/keys/{key_name}"), Some(token), key).0, 403);
    assert_eq!(raw(port, "POST", "/gw/config", Some(token), b"config").0, 403);

    // Names that would leave the repository, or name nothing the format writes.
    for path in [
        "/gw/snapshots/..",
        "/gw/snapshots/../config",
        "/gw/data/..%2f..%2fescape",
        "/../escape/x",
        "/.cairn-serve/tokens.json",
        "/gw/data/a/b",
        &format!("/gw/data/{}", fake.to_uppercase()),
    ] {
        let (status, text) = raw(port, "POST", path, Some(token), b"x");
        assert_eq!(status, 400, "POST {path}: {text}");
    }

    // Missing, wrong and other repositories' tokens.
    assert_eq!(raw(port, "GET", "/gw/snapshots/", None, b"").0, 401);
    assert_eq!(raw(port, "GET", "/gw/snapshots/", Some("cairn_0000"), b"").0, 401);
    let other = server.token("other", "admin");
    assert_eq!(raw(port, "GET", "/gw/snapshots/", Some(&other), b"").0, 403);
    let out = Cairn::new()
        .arg("-r")
        .arg(server.location("gw"))
        .env("CAIRN_TOKEN", "cairn_wrong")
        .arg("snapshots")
        .run();
    assert!(out.one_line_error().contains("unknown token"), "{}", out.context());

    // Nothing stored was removed or changed (new index files from the refused prune and
    // the lock files come and go; every object there before is there, byte for byte).
    let after = files(&stored);
    for (path, hash) in &before {
        let now = after.iter().find(|(p, _)| p == path);
        let is_lock = path.parent().is_some_and(|p| p.ends_with("locks"));
        assert!(is_lock || now.is_some_and(|(_, h)| h == hash), "{} was removed or changed", path.display());
    }
    assert!(objects_complete(&stored).is_empty(), "{:?}", objects_complete(&stored));

    // A snapshot dated in the future, stored by the append token: forget by the owner's
    // maintain token sees it claims a time after it reached the server and counts it
    // toward no rule, so the newest real snapshot keeps its place.
    let future = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(3)).unwrap().to_string();
    let forged = host.cairn().args(["backup", "--json", "--time", &future]).arg(&src).run().ok().json();
    let forged_id = forged["snapshot"].as_str().unwrap().to_string();
    let owner = as_role(&server, "gw", "maintain");
    let plan = owner.cairn().args(["forget", "--json", "--keep-last", "1", "--prune"]).run().ok();
    let decisions = &plan.json_lines()[0]["groups"][0]["snapshots"];
    let of = |id: &str| decisions.as_array().unwrap().iter().find(|d| d["id"] == id).unwrap().clone();
    let f = of(&forged_id);
    assert_eq!((f["keep"].as_bool(), f["forged"].as_bool()), (Some(true), Some(true)), "{f}");
    assert_eq!(f["reasons"][0], "dated after it reached the store");
    assert!(plan.stderr.contains("after it reached the store"), "{}", plan.context());
    assert_eq!(of(&second_id)["reasons"][0], "last 1", "the newest real snapshot keeps the place");
    assert_eq!(of(&first_id)["keep"], false);
    assert_eq!(second.verify_all(&host), 1);

    // The owner can bring back what forget and prune removed: deletes went to the quarantine.
    // Prune's new index file supersedes the ones brought back: `repair index` (as the
    // undelete says) indexes the packs that came back.
    let out = Cairn::new().args(["serve", "undelete", "gw", "--root"]).arg(server.root()).run().ok();
    assert!(
        out.stdout.contains("objects brought back") && out.stdout.contains("repair index"),
        "{}",
        out.context()
    );
    owner.cairn().args(["repair", "index"]).run().ok();
    assert_eq!(
        first.verify_all(&host) + second.verify_all(&host),
        2,
        "both restore identical after undelete"
    );
    owner.cairn().args(["check", "--read-data"]).run().ok();

    // The access log names the token of every refusal; the metrics count what is stored.
    let log = std::fs::read_to_string(server.root().join(".cairn-serve/access.log")).unwrap();
    let refused: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["status"] == 403)
        .collect();
    assert!(refused
        .iter()
        .any(|v| v["op"] == "delete" && v["token"].as_str().unwrap().starts_with("gw-append")));
    let (status, metrics) = raw(port, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("cairn_serve_repository_bytes{repo=\"gw\"}"), "{metrics}");
    assert!(metrics.contains("cairn_serve_objects{repo=\"gw\",type=\"snapshots\"} 3"), "{metrics}");
    assert!(metrics.contains(&format!("token=\"{}\"", refused[0]["token"].as_str().unwrap())), "{metrics}");
}

#[test]
fn uploads_past_the_quota_are_refused_and_what_was_saved_stays() {
    let server = Server::cairn(&["--quota", "3M"]);
    let admin = as_role(&server, "gw", "admin");
    admin.cairn().arg("init").args(FAST_KDF).run().ok();
    let host = as_role(&server, "gw", "append");
    let work = tempdir("cairn-serve-quota-");
    let small = work.path().join("small");
    write_random(&small.join("a.bin"), 1, 200 << 10);
    let mut witness = Witness::new();
    witness.backup(&host, &small, &[]);
    let big = work.path().join("big");
    write_random(&big.join("b.bin"), 2, 6 << 20);
    let out = host.cairn().arg("backup").arg(&big).run().expect_code(13);
    assert!(out.one_line_error().contains("over quota"), "{}", out.context());
    assert_eq!(witness.verify_all(&host), 1);
    let (_, metrics) = raw(server.port, "GET", "/metrics", None, b"");
    assert!(metrics.contains("cairn_serve_quota_bytes{repo=\"gw\"} 3145728"), "{metrics}");
}

#[test]
fn sixteen_hosts_back_up_into_one_served_repository_at_once() {
    let server = Server::cairn(&[]);
    let admin = as_role(&server, "fleet", "admin");
    admin.cairn().arg("init").args(FAST_KDF).run().ok();
    let work = tempdir("cairn-serve-fleet-");
    let hosts: Vec<(Served, PathBuf)> = (0..16u64)
        .map(|n| {
            let src = work.path().join(format!("host{n:02}"));
            // Each host has its own files and one file every host shares (dedup across hosts).
            write_random(&src.join("own.bin"), 100 + n, 300 << 10);
            write_random(&src.join("shared.bin"), 7, 400 << 10);
            std::fs::write(src.join("conf.xml"), format!("<host n=\"{n}\"/>")).unwrap();
            (as_role(&server, "fleet", "append"), src)
        })
        .collect();
    let children: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(n, (at, src))| {
            at.cairn().args(["backup", "--json", "--host", &format!("host{n:02}")]).arg(src).spawn()
        })
        .collect();
    let mut witness = Witness::new();
    for ((at, src), child) in hosts.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let out = Out::new("backup".into(), out.status, out.stdout, out.stderr).ok();
        witness.record(at, out.json()["snapshot"].as_str().unwrap(), src);
    }
    assert_eq!(witness.verify_all(&hosts[0].0), 16);
    admin.cairn().args(["check", "--read-data"]).run().ok();
}

#[test]
fn tls_serves_and_plain_http_stays_on_loopback() {
    let work = tempdir("cairn-serve-tls-");
    let (cert, key) = make_certificate(work.path());

    // No certificate: only loopback addresses.
    let out =
        Cairn::new().args(["serve", "--listen", "0.0.0.0:0", "--root"]).arg(work.path().join("root")).run();
    assert_eq!(out.code, Some(2), "{}", out.context());
    assert!(out.one_line_error().contains("--tls-cert"), "{}", out.context());

    let server = Server::cairn(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let loc = format!("rest:https://127.0.0.1:{}/gw", server.port);
    let admin = server.token("gw", "admin");
    let at = |ca: Option<&Path>| {
        let c = Cairn::new().arg("-r").arg(&loc).env("CAIRN_TOKEN", &admin);
        match ca {
            Some(p) => c.env("CAIRN_CA_CERT", p),
            None => c.env_remove("CAIRN_CA_CERT"),
        }
    };
    // A certificate nobody vouches for is refused; with its authority given, it works.
    let out = at(None).arg("init").args(FAST_KDF).run().expect_code(1);
    assert!(out.one_line_error().contains("CAIRN_CA_CERT"), "{}", out.context());
    at(Some(&cert)).arg("init").args(FAST_KDF).run().ok();
    let src = work.path().join("src");
    write_random(&src.join("a.bin"), 3, 100 << 10);
    struct Tls<'a>(&'a dyn Fn(Option<&Path>) -> Cairn, &'a Path);
    impl AtRepo for Tls<'_> {
        fn cairn(&self) -> Cairn {
            (self.0)(Some(self.1))
        }
    }
    let mut witness = Witness::new();
    witness.backup(&Tls(&at, &cert), &src, &[]);
    assert_eq!(witness.verify_all(&Tls(&at, &cert)), 1);
}

#[test]
fn a_jobs_offsite_copy_goes_to_a_served_repository_with_an_append_token() {
    let server = Server::cairn(&[]);
    let offsite = as_role(&server, "gw-offsite", "admin");
    offsite.cairn().arg("init").args(FAST_KDF).run().ok();
    let work = tempdir("cairn-serve-job-");
    let local = Repo::new();
    let src = gateway_tree(&work.path().join("gw"), 5, TreeSize::SMALL).root;
    let pass = work.path().join("pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    // The gateway host holds only an append token for its offsite copy.
    let token = work.path().join("offsite.token");
    std::fs::write(&token, format!("{}\n", server.token("gw-offsite", "append"))).unwrap();
    let job = |copy_token: &str| {
        format!(
            "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{}\"\nsources = [\"{}\"]\n\n\
             [jobs.gw.retention]\nkeep-last = 5\n\n\
             [[jobs.gw.copy]]\nrepository = \"{}\"\npassword-file = \"{}\"\n{copy_token}retention = false\n",
            local.path.display(),
            pass.display(),
            src.display(),
            offsite.loc,
            pass.display(),
        )
    };
    let config = work.path().join("cairn.toml");
    // Without a token file the job is refused before anything runs.
    std::fs::write(&config, job("")).unwrap();
    let out = Cairn::new().args(["config", "check", "--config"]).arg(&config).run().expect_code(2);
    assert!(out.stderr.contains("needs a token-file"), "{}", out.context());
    std::fs::write(&config, job(&format!("token-file = \"{}\"\n", token.display()))).unwrap();
    Cairn::new().args(["config", "check", "--deep", "--config"]).arg(&config).run().ok();
    let run = Cairn::new()
        .args(["run", "--json", "--config"])
        .arg(&config)
        .env("CAIRN_LOCK_DIR", work.path())
        .run()
        .ok();
    assert!(run.stdout.contains(&format!("copy to {}", offsite.loc)), "{}", run.context());

    // The copy restores identical from the server, read with the offsite admin token.
    let copied = offsite.cairn().args(["snapshots", "--json"]).run().ok().json();
    let id = copied[0]["id"].as_str().unwrap().to_string();
    let target = work.path().join("restored");
    offsite.cairn().args(["restore", &id, "--target"]).arg(&target).run().ok();
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn the_systemd_unit_starts_a_server() {
    let work = tempdir("cairn-serve-unit-");
    let (cert, key) = make_certificate(work.path());
    let root = work.path().join("srv");
    let port = servers::free_port();
    // The unit's command line, with this machine's paths, on loopback only.
    let replace = [
        ("/srv/cairn", root.display().to_string()),
        ("/etc/cairn/tls/cert.pem", cert.display().to_string()),
        ("/etc/cairn/tls/key.pem", key.display().to_string()),
        ("0.0.0.0:8443", format!("127.0.0.1:{port}")),
    ];
    let (first, stderr) =
        first_line_then_kill(unit_command("cairn-serve.service", &replace).spawn().unwrap());
    assert_eq!(first, format!("cairn serve: listening on https://127.0.0.1:{port}"), "{stderr}");
}

#[test]
fn a_server_keeps_its_repositories_in_a_bucket() {
    let s3 = Server::s3();
    for (k, v) in &s3.env {
        // The server started next inherits the bucket's credentials (each test is its own
        // process under nextest, so no other thread reads the environment meanwhile).
        std::env::set_var(k, v);
    }
    let root = format!("s3:http://127.0.0.1:{}/cairn-test/served", s3.port);
    let server = Server::cairn_at(Some(&root), &[]);
    let admin = as_role(&server, "gw", "admin");
    admin.cairn().arg("init").args(FAST_KDF).run().ok();
    let host = as_role(&server, "gw", "append");
    let work = tempdir("cairn-serve-bucket-");
    let src = gateway_tree(&work.path().join("src"), 13, TreeSize::SMALL).root;
    let (mut first, mut second) = (Witness::new(), Witness::new());
    let first_id = first.backup(&host, &src, &[]);
    std::fs::write(src.join("changed.conf"), b"second").unwrap();
    second.backup(&host, &src, &[]);
    // The objects are in the bucket, whole, in the layout of a repository.
    let stored = s3.storage("served/gw");
    assert!(stored.join("config").is_file(), "no config at {}", stored.display());
    assert!(objects_complete(&stored).is_empty(), "{:?}", objects_complete(&stored));
    assert_eq!(
        raw(server.port, "DELETE", &format!("/gw/snapshots/{first_id}"), Some(&host.token), b"").0,
        403
    );

    // The owner's prune deletes into the bucket's quarantine; undelete brings it back.
    let owner = as_role(&server, "gw", "maintain");
    owner.cairn().args(["forget", "--keep-last", "1", "--prune", "--max-unused", "0%"]).run().ok();
    assert!(!stored.join("snapshots").join(&first_id).exists());
    assert!(s3.storage("served/.cairn-serve/quarantine/gw/snapshots").join(&first_id).is_file());
    let out = Cairn::new().args(["serve", "undelete", "gw", "--root", &root]).run().ok();
    assert!(out.stdout.contains("objects brought back"), "{}", out.context());
    owner.cairn().args(["repair", "index"]).run().ok();
    assert_eq!(first.verify_all(&host) + second.verify_all(&host), 2);
    let (_, metrics) = raw(server.port, "GET", "/metrics", None, b"");
    assert!(metrics.contains("cairn_serve_objects{repo=\"gw\",type=\"snapshots\"} 2"), "{metrics}");
}

#[test]
fn a_token_may_delete_its_own_locks_across_a_server_restart_and_no_others() {
    let mut server = Server::cairn(&[]);
    as_role(&server, "gw", "admin").cairn().arg("init").args(FAST_KDF).run().ok();
    let (host, other) = (server.token("gw", "append"), server.token("gw", "append"));
    let lock = b"a lock's sealed bytes";
    let path = format!("/gw/locks/{}", blake3::hash(lock).to_hex());
    assert_eq!(raw(server.port, "POST", &path, Some(&host), lock).0, 201);
    server.stop();
    server.restart();
    assert_eq!(raw(server.port, "DELETE", &path, Some(&other), b"").0, 403, "another host's lock");
    assert_eq!(raw(server.port, "DELETE", &path, Some(&host), b"").0, 200, "its own, after a restart");
    assert_eq!(raw(server.port, "DELETE", &path, Some(&host), b"").0, 404);
}
