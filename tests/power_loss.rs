//! The flushes behind the power-loss argument (format-spec/layout.md, "Power loss"). No
//! test can cut the power of the machine it runs on, but it can watch the system calls:
//! under strace, every object's bytes must be flushed before its rename and its folder
//! after it, each step of the write order must be flushed before the next one starts, and
//! the deletions that must not come undone (snapshots, key files) must be flushed.
//!
//! Needs strace, and ptrace allowed (`.ci/run` installs strace; CAIRN_TEST_STRICT=1 makes
//! a missing one a failure).

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A system call that matters for durability, in the order the calls completed.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    /// fsync or fdatasync of this path.
    Flush(PathBuf),
    Rename(PathBuf, PathBuf),
    Unlink(PathBuf),
}

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run cairn with `args` on `repo` under strace; returns its calls in completion order.
fn traced(repo: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Vec<Call> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-y", "-s", "4096", "-o"]).arg(log);
    cmd.args(["-e", "trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat", bin(), "-r"]);
    cmd.arg(repo).args(args).env("CAIRN_PASSWORD", PASSWORD).env_remove("CAIRN_REPOSITORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strace");
    assert!(out.status.success(), "cairn {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    parse(&std::fs::read_to_string(log).expect("the trace"))
}

/// strace's lines, with calls split across threads (`<unfinished ...>`, `<... resumed>`)
/// put back together where they completed.
fn parse(trace: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        // strace pads the pid to 5 columns: "812   rename(...".
        let Some((pid, rest)) = line.split_once(' ').map(|(p, r)| (p, r.trim_start())) else { continue };
        let text = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, start.to_string());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{}{tail}", pending.remove(pid).unwrap_or_default())
        } else {
            rest.to_string()
        };
        if !text.trim_end().ends_with("= 0") {
            continue;
        }
        let name = text.split('(').next().unwrap_or_default();
        let quoted: Vec<PathBuf> = text.split('"').skip(1).step_by(2).map(PathBuf::from).collect();
        let fd_path =
            || text.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(p, _)| PathBuf::from(p));
        match name {
            "fsync" | "fdatasync" => calls.extend(fd_path().map(Call::Flush)),
            "rename" | "renameat" | "renameat2" if quoted.len() == 2 => {
                calls.push(Call::Rename(quoted[0].clone(), quoted[1].clone()))
            }
            "unlink" | "unlinkat" if quoted.len() == 1 => calls.push(Call::Unlink(quoted[0].clone())),
            _ => {}
        }
    }
    calls
}

fn flushed(calls: &[Call], path: &Path, range: std::ops::Range<usize>) -> Option<usize> {
    range.into_iter().find(|&i| calls[i] == Call::Flush(path.to_path_buf()))
}

/// Every object renamed into place (locks aside) had its bytes flushed before and its
/// folder after the rename. Returns, for each object, where it became durable.
fn objects_durable(calls: &[Call], repo: &Path) -> Vec<(PathBuf, usize, usize)> {
    let mut out = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let Call::Rename(from, to) = call else { continue };
        if !to.starts_with(repo) || to.starts_with(repo.join("locks")) {
            continue;
        }
        assert!(flushed(calls, from, 0..i).is_some(), "{} was renamed into place unflushed", to.display());
        let folder = to.parent().unwrap();
        let at = flushed(calls, folder, i + 1..calls.len());
        let at = at.unwrap_or_else(|| panic!("{} was renamed, its folder never flushed", to.display()));
        out.push((to.clone(), i, at));
    }
    out
}

fn kind(repo: &Path, object: &Path) -> String {
    let rel = object.strip_prefix(repo).unwrap();
    rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned()
}

/// The deletion of an object of `folder` at some point is followed by a flush of it.
fn deletion_flushed(calls: &[Call], folder: &Path) -> usize {
    let deleted: Vec<usize> = (0..calls.len())
        .filter(|&i| matches!(&calls[i], Call::Unlink(p) if p.parent() == Some(folder)))
        .collect();
    assert!(!deleted.is_empty(), "nothing deleted in {}", folder.display());
    for &i in &deleted {
        assert!(
            flushed(calls, folder, i + 1..calls.len()).is_some(),
            "a deletion in {} was not flushed",
            folder.display()
        );
    }
    deleted.len()
}

#[test]
fn every_step_of_the_write_order_is_flushed_before_the_next() {
    if !require(strace_works(), "strace (with ptrace allowed) to watch the flushes") {
        return;
    }
    let work = tempdir("cairn-power-");
    let work_path = std::fs::canonicalize(work.path()).unwrap();
    let repo = work_path.join("repo");
    let log = work_path.join("trace.log");

    // Init: the folders' names, then the key file, before the config.
    let calls = traced(
        &repo,
        &["init", "--pack-size", "1M", "--kdf-memory", "64M", "--kdf-iterations", "3"],
        &[],
        &log,
    );
    let objects = objects_durable(&calls, &repo);
    let config = objects.iter().find(|(p, _, _)| p == &repo.join("config")).expect("the config").1;
    for folder in [repo.join("data"), repo.clone(), work_path.clone()] {
        assert!(
            flushed(&calls, &folder, 0..config).is_some(),
            "{} not flushed before the config",
            folder.display()
        );
    }
    assert!(objects.iter().any(|(p, _, durable)| kind(&repo, p) == "keys" && *durable < config));

    // Backup: every pack durable before any index file that follows it, every index file
    // before the snapshot.
    let src = gateway_tree(&work_path.join("src"), 3, TreeSize::SMALL).root;
    let calls = traced(&repo, &["backup", src.to_str().unwrap()], &[], &log);
    let objects = objects_durable(&calls, &repo);
    let of = |k: &str| objects.iter().filter(|(p, _, _)| kind(&repo, p) == k).cloned().collect::<Vec<_>>();
    let (packs, indexes, snapshots) = (of("data"), of("index"), of("snapshots"));
    assert!(packs.len() >= 2 && !indexes.is_empty() && snapshots.len() == 1, "{objects:?}");
    for (index, renamed, _) in &indexes {
        for (pack, pack_renamed, durable) in &packs {
            if pack_renamed < renamed {
                assert!(
                    durable < renamed,
                    "{} named by {} before it was durable",
                    pack.display(),
                    index.display()
                );
            }
        }
    }
    let snapshot = snapshots[0].1;
    for (p, _, durable) in packs.iter().chain(&indexes) {
        assert!(*durable < snapshot, "{} not durable before the snapshot", p.display());
    }

    // Forget: the deletion of a snapshot is flushed (a later prune must not outlive it).
    let out = Cairn::new().repo(&repo).args(["backup", "--json"]).arg(&src).run().ok().json();
    let id = out["snapshot"].as_str().unwrap().to_string();
    let calls = traced(&repo, &["forget", &id], &[], &log);
    deletion_flushed(&calls, &repo.join("snapshots"));

    // Prune: the new index files are durable before the old ones are deleted.
    let calls = traced(&repo, &["prune", "--max-unused", "0"], &[], &log);
    let objects = objects_durable(&calls, &repo);
    let first_unlink = calls
        .iter()
        .position(|c| matches!(c, Call::Unlink(p) if p.parent() == Some(&repo.join("index"))))
        .expect("old index files deleted");
    let new_index: Vec<_> = objects.iter().filter(|(p, _, _)| kind(&repo, p) == "index").collect();
    assert!(!new_index.is_empty() && new_index.iter().all(|(_, _, durable)| *durable < first_unlink));

    // Key passwd: the new key durable before the old one goes, and its going flushed.
    let calls = traced(&repo, &["key", "passwd"], &[("CAIRN_NEW_PASSWORD", "changed")], &log);
    let objects = objects_durable(&calls, &repo);
    let removed =
        calls.iter().position(|c| matches!(c, Call::Unlink(p) if p.parent() == Some(&repo.join("keys"))));
    let new_key = objects.iter().find(|(p, _, _)| kind(&repo, p) == "keys").expect("a new key file");
    assert!(new_key.2 < removed.expect("the old key deleted"));
    deletion_flushed(&calls, &repo.join("keys"));
}

#[test]
fn strace_lines_are_read_whatever_the_pid_width_and_split_calls() {
    let trace = "812   fsync(3</r/data>) = 0\n\
                 15139 rename(\"/r/.tmp-c\", \"/r/config\" <unfinished ...>\n\
                 15140 fdatasync(4</r/keys/.tmp-k>) = 0\n\
                 15139 <... rename resumed>) = 0\n\
                 15141 unlink(\"/r/snapshots/ab\") = -1 ENOENT (No such file or directory)\n\
                 99    unlinkat(AT_FDCWD, \"/r/keys/k\", 0) = 0\n";
    assert_eq!(
        parse(trace),
        vec![
            Call::Flush("/r/data".into()),
            Call::Flush("/r/keys/.tmp-k".into()),
            Call::Rename("/r/.tmp-c".into(), "/r/config".into()),
            Call::Unlink("/r/keys/k".into()),
        ]
    );
}
