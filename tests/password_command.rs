//! Passwords from a secret store: `--password-command` / CAIRN_PASSWORD_COMMAND (and per
//! repository in a job file). The command succeeds, fails, hangs or prints nothing, and
//! each case is one clear line; a password given in the environment is gone from it
//! before cairn runs any command of the user's.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn without_password(repo: &Repo) -> Cairn {
    repo.cairn().env_remove("CAIRN_PASSWORD")
}

#[test]
fn a_password_command_opens_the_repository_and_its_failures_are_clear() {
    let repo = Repo::new();
    let work = tempdir("cairn-pwcmd-");
    let secret = work.path().join("store");
    std::fs::write(&secret, format!("{PASSWORD}\nsecond line is not the password\n")).unwrap();
    let cmd = format!("cat {}", secret.display());
    without_password(&repo).args(["--password-command", &cmd, "snapshots"]).run().ok();
    without_password(&repo).env("CAIRN_PASSWORD_COMMAND", &cmd).arg("snapshots").run().ok();

    // The command fails: its own complaint, exit 6, nothing else tried.
    let out = without_password(&repo)
        .args(["--password-command", "echo 'vault: permission denied' >&2; exit 3", "snapshots"])
        .run()
        .expect_code(6);
    let line = out.one_line_error();
    assert!(
        line.contains("password command") && line.contains("permission denied") && line.contains("status 3"),
        "{line}"
    );

    // It prints nothing.
    let out = without_password(&repo).args(["--password-command", "true", "snapshots"]).run().expect_code(6);
    assert!(out.one_line_error().contains("printed no password"), "{}", out.context());

    // It hangs (with a child of its own): stopped at the limit, with everything it started.
    let started = Instant::now();
    let out = without_password(&repo)
        .env("CAIRN_PASSWORD_COMMAND_TIMEOUT", "1s")
        .args(["--password-command", "sleep 30 & sleep 30; echo late", "snapshots"])
        .run()
        .expect_code(6);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(out.one_line_error().contains("within 1 s"), "{}", out.context());

    // A wrong password from the command is a wrong password (exit 12).
    without_password(&repo).args(["--password-command", "echo wrong", "snapshots"]).run().expect_code(12);
    // A file and a command at once is a usage error.
    without_password(&repo)
        .args(["--password-command", &cmd, "--password-file"])
        .arg(&secret)
        .arg("snapshots")
        .run()
        .expect_code(2);
}

#[test]
fn a_password_in_the_environment_is_not_handed_to_commands_cairn_runs() {
    let repo = Repo::new();
    // A dump command prints what it sees of the secret variables: nothing.
    let out = repo
        .cairn()
        .env("CAIRN_TOKEN", "a-token")
        .args(["backup", "--json", "--stdin-name", "env.txt", "--stdin-from-command"])
        .arg("printf 'pw=%s token=%s' \"$CAIRN_PASSWORD\" \"$CAIRN_TOKEN\"")
        .run()
        .ok();
    let id = out.json_lines().into_iter().find(|v| v["type"] == "summary").unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = repo.cairn().args(["cat", &id, "/env.txt"]).run().ok().stdout;
    assert_eq!(seen, "pw= token=");
}

#[test]
fn a_job_takes_its_passwords_from_commands() {
    let work = tempdir("cairn-pwcmd-job-");
    let repo = Repo::new();
    let offsite = Repo::new();
    let src = work.path().join("src");
    write_random(&src.join("a.bin"), 9, 50 << 10);
    let store = work.path().join("store");
    std::fs::write(&store, format!("{PASSWORD}\n")).unwrap();
    let config = work.path().join("cairn.toml");
    let job = |offsite_secret: &str| {
        format!(
            "[jobs.gw]\nrepository = \"{}\"\npassword-command = \"cat {}\"\nsources = [\"{}\"]\n\n\
             [[jobs.gw.copy]]\nrepository = \"{}\"\n{offsite_secret}\n",
            repo.path.display(),
            store.display(),
            src.display(),
            offsite.path.display(),
        )
    };
    std::fs::write(&config, job("")).unwrap();
    let out = Cairn::new().args(["config", "check", "--config"]).arg(&config).run().expect_code(2);
    assert!(out.stderr.contains("password-command or key-file"), "{}", out.context());
    std::fs::write(&config, job(&format!("password-command = \"cat {}\"", store.display()))).unwrap();
    Cairn::new()
        .env_remove("CAIRN_PASSWORD")
        .args(["config", "check", "--deep", "--config"])
        .arg(&config)
        .run()
        .ok();
    Cairn::new()
        .env_remove("CAIRN_PASSWORD")
        .args(["run", "--config"])
        .arg(&config)
        .env("CAIRN_LOCK_DIR", work.path())
        .run()
        .ok();
    let copied = offsite.snapshots();
    assert_eq!(copied.len(), 1, "the copy step got both passwords from their commands");
    let target = work.path().join("restored");
    offsite.restore(copied[0]["id"].as_str().unwrap(), &target, &[]).ok();
    assert_same_tree(&src, &restored(&target, &src));
}
