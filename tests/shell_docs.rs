//! What a package installs besides the binary: tab completion for every shell, and a
//! manual page for cairn and each subcommand, all made from the command line itself.

mod common;

use common::*;

#[test]
fn completions_load_in_bash_and_exist_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Cairn::new().args(["completion", shell]).run().ok();
        assert!(out.stdout.contains("cairn") && out.stdout.contains("backup"), "{shell}: {}", out.context());
    }
    let script = tempdir("cairn-completion-").path().join("cairn.bash");
    let dir = script.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&script, Cairn::new().args(["completion", "bash"]).run().ok().stdout).unwrap();
    // Loaded into bash, completing `cairn ba` offers backup, and `cairn serve token `
    // offers the token commands.
    let probe = format!(
        "source {}; COMP_WORDS=(cairn ba); COMP_CWORD=1; _cairn cairn ba cairn; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(cairn serve token ''); COMP_CWORD=3; _cairn cairn '' token; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines.first().copied(), Some("backup"), "{text}");
    assert!(lines.get(1).is_some_and(|l| l.contains("add") && l.contains("remove")), "{text}");
    let bad = Cairn::new().args(["completion", "tcsh"]).run().expect_code(2);
    assert!(bad.stderr.contains("tcsh"), "{}", bad.context());
}

#[test]
fn every_command_has_a_manual_page_that_renders() {
    let dir = tempdir("cairn-man-");
    let out = Cairn::new().arg("man").arg(dir.path()).run().ok();
    assert!(out.stdout.contains("manual pages written"), "{}", out.context());
    for page in
        ["cairn", "cairn-backup", "cairn-restore", "cairn-key-add", "cairn-serve", "cairn-serve-token-add"]
    {
        let path = dir.path().join(format!("{page}.1"));
        assert!(path.is_file(), "no {}", path.display());
        // Rendered as `man` would show it: the name, the options, the exit codes, an example.
        let rendered = std::process::Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("run man (the man-db package)");
        let text = String::from_utf8_lossy(&rendered.stdout).into_owned();
        assert!(rendered.status.success() && text.contains("Exit codes"), "{page}:\n{text}");
    }
    let backup = String::from_utf8(
        std::process::Command::new("man")
            .arg("-l")
            .arg(dir.path().join("cairn-backup.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(backup.contains("--exclude") && backup.contains("--repo"), "own and global options:\n{backup}");
}
