//! `config check` catches what used to pass it and fail at run time, `--deep` opens what a
//! run would open, and `run --dry-run` says what would run rather than "success".

mod common;

use common::*;
use std::fs;

#[test]
fn a_deep_check_opens_every_repository_reads_every_password_and_expands_every_glob() {
    let work = tempdir("cairn-deep-");
    let dir = work.path();
    let repo = Repo::new();
    let offsite = Repo::new();
    let pass = dir.join("pass");
    fs::write(&pass, PASSWORD).unwrap();
    let wrong = dir.join("wrong.pass");
    fs::write(&wrong, "not the password").unwrap();
    fs::create_dir_all(dir.join("src/vshell-a")).unwrap();
    let job = |password: &str, offsite_password: &str, source: &str| {
        let config = dir.join("cairn.toml");
        fs::write(
            &config,
            format!(
                "[jobs.gw]\nrepository = \"{}\"\npassword-file = \"{password}\"\nsources = [\"{source}\"]\n\
                 [[jobs.gw.copy]]\nrepository = \"{}\"\npassword-file = \"{offsite_password}\"\n",
                repo.path.display(),
                offsite.path.display()
            ),
        )
        .unwrap();
        config
    };
    let check = |config: &std::path::Path, deep: bool| {
        let mut c = Cairn::new().args(["config", "check", "--config"]).arg(config);
        if deep {
            c = c.arg("--deep");
        }
        c.run()
    };
    let p = pass.display().to_string();
    let good = job(&p, &p, &format!("{}/src/vshell-*", dir.display()));
    check(&good, true).ok();

    // A misspelled password file, the wrong password at the copy target, a glob that
    // matches nothing: each passes the plain check and fails the deep one, named.
    let missing = format!("{}/pas", dir.display());
    let bad = job(&missing, &wrong.display().to_string(), &format!("{}/src/nginx-*", dir.display()));
    check(&bad, false).ok();
    let out = check(&bad, true).expect_code(2);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.context());
    assert!(
        lines[0].contains("job gw: repository") && lines[0].contains("cannot read password file"),
        "{lines:?}"
    );
    assert!(lines[1].contains(&format!("copy target {}", offsite.path.display())), "{lines:?}");
    assert!(lines[1].contains("password"), "{lines:?}");
    assert!(lines[2].contains("matches nothing"), "{lines:?}");
    assert!(lines[3].contains("the deep check found 3 problems"), "{lines:?}");

    // A repository not made yet.
    let fresh = dir.join("cairn-fresh.toml");
    fs::write(
        &fresh,
        format!(
            "[jobs.new]\nrepository = \"{}/none\"\npassword-file = \"{p}\"\nsources = [\"/etc\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = check(&fresh, true).expect_code(2);
    assert!(out.stderr.contains("job new: repository"), "{}", out.context());

    // --dry-run runs nothing and says so, even before `cairn init`.
    let out = Cairn::new().args(["run", "--dry-run", "--config"]).arg(&fresh).run().ok();
    assert!(out.stdout.contains("would run") && !out.stdout.contains("success"), "{}", out.context());
}
