//! Schedules: the generated systemd units and cron lines are parsed the way systemd and
//! cron parse them and then run, so a path with spaces and a '%' must survive both; the
//! units keep exit 3 a warning, have a timeout and a failure hook; timers can be listed
//! and removed; the per-job run lock lives in a folder only its user can write to.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A job whose file lives in a folder with spaces and a '%' in its name.
fn awkward_job(work: &Path) -> (PathBuf, Repo) {
    let dir = work.join("my jobs 100%");
    let src = dir.join("conf");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.xml"), "<a/>").unwrap();
    let repo = Repo::new();
    let config = dir.join("cairn.toml");
    fs::write(
        &config,
        format!("[jobs.gw]\nrepository = \"{}\"\nsources = [\"{}\"]\n", repo.path.display(), src.display()),
    )
    .unwrap();
    (config, repo)
}

/// ExecStart= split as systemd does: whitespace outside quotes, double or single quotes,
/// C escapes inside double quotes, `%%` and `$$` for a plain `%` and `$`.
fn systemd_split(line: &str) -> Vec<String> {
    let (mut args, mut cur, mut quote, mut in_arg) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ') => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                }
                in_arg = false;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_arg = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some('n') => cur.push('\n'),
                Some(e) => cur.push(e),
                None => panic!("a trailing backslash in {line}"),
            },
            (_, '%') => {
                assert_eq!(chars.next(), Some('%'), "an unescaped % specifier in {line}");
                cur.push('%');
                in_arg = true;
            }
            (_, '$') => {
                assert_eq!(chars.next(), Some('$'), "an unescaped $ in {line}");
                cur.push('$');
                in_arg = true;
            }
            (_, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    assert!(quote.is_none(), "an open quote in {line}");
    if in_arg {
        args.push(cur);
    }
    args
}

/// A cron.d line's command as cron gives it to the shell: after the five time fields and
/// the user, an unescaped '%' ends the command and `\%` is a plain '%'.
fn cron_command(line: &str) -> String {
    let mut fields = line.splitn(7, ' ');
    let command = fields.nth(6).expect("five time fields, a user and a command");
    let (mut out, mut escaped) = (String::new(), false);
    for c in command.chars() {
        match (escaped, c) {
            (true, '%') => out.push('%'),
            (true, c) => {
                out.push('\\');
                out.push(c)
            }
            (false, '\\') => {
                escaped = true;
                continue;
            }
            (false, '%') => panic!("an unescaped % would end the cron command: {line}"),
            (false, c) => out.push(c),
        }
        escaped = false;
    }
    out
}

#[test]
fn units_and_cron_lines_survive_spaces_and_percent_signs_and_run_the_job() {
    let work = tempdir("cairn-sched-");
    let (config, repo) = awkward_job(work.path());
    let units = work.path().join("units");
    fs::create_dir(&units).unwrap();
    Cairn::new()
        .args([
            "schedule",
            "install",
            "gw",
            "--at",
            "02:30",
            "--timeout",
            "2h",
            "--on-failure",
            "notify@%n.service",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--unit-dir")
        .arg(&units)
        .run()
        .ok();
    let service = fs::read_to_string(units.join("cairn-gw.service")).unwrap();
    for line in ["SuccessExitStatus=3", "TimeoutStartSec=7200", "OnFailure=notify@%n.service"] {
        assert!(service.lines().any(|l| l == line), "{line} missing:\n{service}");
    }
    let timer = fs::read_to_string(units.join("cairn-gw.timer")).unwrap();
    assert!(timer.lines().any(|l| l == "OnCalendar=*-*-* 02:30:00"), "{timer}");
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let argv = systemd_split(exec);
    assert_eq!(argv[argv.len() - 2], config.to_str().unwrap(), "{exec}");
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("CAIRN_LOCK_DIR", work.path())
        .env("CAIRN_PASSWORD", PASSWORD)
        .status()
        .unwrap();
    assert!(status.success(), "the unit's command failed: {exec}");
    assert_eq!(repo.snapshots().len(), 1);

    let cron = Cairn::new()
        .args(["schedule", "install", "gw", "--every", "6h", "--cron", "--config"])
        .arg(&config)
        .run()
        .ok();
    let line = cron.stdout.trim();
    assert!(line.starts_with("0 0-23/6 * * * root "), "{line}");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cron_command(line))
        .env("CAIRN_LOCK_DIR", work.path())
        .env("CAIRN_PASSWORD", PASSWORD)
        .status()
        .unwrap();
    assert!(status.success(), "the cron command failed: {line}");
    assert_eq!(repo.snapshots().len(), 2);

    // A raw calendar expression; list shows it; remove takes both units away.
    Cairn::new()
        .args(["schedule", "install", "gw", "--on-calendar", "Mon..Fri *-*-* 22:00", "--config"])
        .arg(&config)
        .arg("--unit-dir")
        .arg(&units)
        .run()
        .ok();
    let listed =
        Cairn::new().args(["schedule", "list", "--json", "--unit-dir"]).arg(&units).run().ok().json();
    assert_eq!(listed[0]["job"], "gw");
    assert_eq!(listed[0]["on_calendar"], "Mon..Fri *-*-* 22:00");
    Cairn::new().args(["schedule", "remove", "gw", "--unit-dir"]).arg(&units).run().ok();
    assert!(fs::read_dir(&units).unwrap().next().is_none(), "units left behind");
    let out = Cairn::new().args(["schedule", "remove", "gw", "--unit-dir"]).arg(&units).run().expect_code(2);
    out.one_line_error();
}

#[test]
fn the_job_lock_lives_in_a_folder_only_its_user_can_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let work = tempdir("cairn-joblock-");
    let (config, _repo) = awkward_job(work.path());
    let runtime = work.path().join("runtime");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    Cairn::new().args(["run", "--config"]).arg(&config).env("XDG_RUNTIME_DIR", &runtime).run().ok();
    let dir = if is_root() { PathBuf::from("/run/cairn") } else { runtime.clone() };
    assert!(dir.join("cairn-job-gw.lock").exists(), "no lock in {}", dir.display());
    let md = fs::metadata(&dir).unwrap();
    assert_eq!(md.mode() & 0o022, 0, "{} is writable by others", dir.display());
    if !is_root() {
        // A runtime folder others can write to is refused, not used.
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o777)).unwrap();
        let out = Cairn::new()
            .args(["run", "--config"])
            .arg(&config)
            .env("XDG_RUNTIME_DIR", &runtime)
            .run()
            .expect_code(2);
        assert!(out.stderr.contains("only it can write to"), "{}", out.context());
    }
}
