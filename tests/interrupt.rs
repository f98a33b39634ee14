//! A backup killed (SIGKILL) or interrupted (SIGINT) part way leaves no new snapshot and
//! no partial object under a real name; every snapshot saved before it still restores
//! identical; and the next backup reuses what was stored and restores correctly.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// 60 random files of 1 MiB in 6 folders (many files, so SIGINT, which is checked
/// between entries, lands mid-walk). Returns the root and the total size.
fn random_tree(root: &Path, seed: u64) -> (PathBuf, u64) {
    let mut total = 0;
    for i in 0..60u64 {
        let n = 1 << 20;
        write_random(&root.join(format!("dir-{}/blob-{i:02}.bin", i % 6)), seed + i, n);
        total += n as u64;
    }
    (fs::canonicalize(root).unwrap(), total)
}

fn final_names(repo: &Path, kind: &str) -> Vec<String> {
    list_objects(repo, kind).into_iter().filter(|n| !n.starts_with(".tmp-")).collect()
}

/// A repository holding one witnessed snapshot of a small tree, saved before the backup
/// a test interrupts: it must survive every interruption whole.
fn repo_with_a_snapshot(work: &Path, options: &[&str]) -> (Repo, Witness) {
    let repo = Repo::with_options(options);
    let mut witness = Witness::new();
    let earlier = gateway_tree(&work.join("earlier"), 5, TreeSize::SMALL).root;
    witness.backup(&repo, &earlier, &[]);
    (repo, witness)
}

/// What must hold after any interruption: no new snapshot, nothing partial under a
/// final name, and every snapshot saved before still listed and restoring identical.
fn check_consistent(repo: &Repo, witness: &Witness) {
    let mut saved = witness.ids();
    saved.sort();
    assert_eq!(final_names(&repo.path, "snapshots"), saved, "an interrupted backup wrote a snapshot");
    let problems = objects_complete(&repo.path);
    assert!(problems.is_empty(), "partial objects: {problems:#?}");
    witness.verify_all(repo);
}

/// Back up again, check the restore (and that the earlier snapshots still restore), and
/// return the new backup's summary.
fn back_up_and_restore(repo: &Repo, witness: &mut Witness, src: &Path) -> Value {
    let before = witness.ids().len();
    let b = repo.backup(&[src], &[]);
    assert_eq!(b["partial"], false, "{b}");
    witness.record(repo, b["snapshot"].as_str().unwrap(), src);
    assert_eq!(witness.verify_all(repo), before + 1);
    assert_eq!(repo.snapshots().len(), before + 1);
    b
}

#[test]
fn sigkill_during_backup_leaves_a_usable_repository() {
    let work = tempdir("cairn-kill-");
    let (src, total) = random_tree(&work.path().join("src"), 1000);
    let (repo, mut witness) = repo_with_a_snapshot(work.path(), &["--pack-size", "1M"]);
    let index_before = final_names(&repo.path, "index");
    let packs_before = pack_paths(&repo.path).len();

    let mut child = repo.cairn().args(["backup", "--json"]).arg(&src).spawn();
    let start = Instant::now();
    let mut finished = false;
    wait_until(Duration::from_secs(20), || {
        if child.try_wait().unwrap().is_some() {
            finished = true;
            return true;
        }
        final_names(&repo.path, "index").len() > index_before.len()
            || (pack_paths(&repo.path).len() > packs_before && start.elapsed() >= Duration::from_millis(300))
    });
    assert!(!finished, "the backup finished before it could be killed; make the test tree larger");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let packs_after_kill = pack_paths(&repo.path).len() - packs_before;
    let index_after_kill = final_names(&repo.path, "index").len() - index_before.len();
    eprintln!("killed after {:?}: {packs_after_kill} packs, {index_after_kill} index files", start.elapsed(),);
    assert!(packs_after_kill >= 1);

    check_consistent(&repo, &witness);

    let b = back_up_and_restore(&repo, &mut witness, &src);
    let added = b["bytes_added"].as_u64().unwrap();
    if index_after_kill > 0 {
        // Random data does not compress: a full backup adds at least `total` bytes.
        assert!(
            added < total,
            "the packs indexed before the kill were stored again: added {added} of {total}"
        );
    }
}

#[test]
fn sigint_during_backup_exits_130_and_keeps_what_was_stored() {
    let work = tempdir("cairn-int-");
    let (src, total) = random_tree(&work.path().join("src"), 2000);
    let (repo, mut witness) = repo_with_a_snapshot(work.path(), &["--pack-size", "1M"]);
    let index_before = final_names(&repo.path, "index").len();
    let packs_before = pack_paths(&repo.path).len();

    let child = repo.cairn().args(["backup", "--json"]).arg(&src).spawn();
    let mut child = child;
    let finished = !wait_until(Duration::from_secs(20), || {
        pack_paths(&repo.path).len() > packs_before || child.try_wait().unwrap().is_some()
    }) || child.try_wait().unwrap().is_some();
    assert!(!finished, "the backup finished before it could be interrupted; make the test tree larger");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = Out::new("cairn backup (SIGINT)".into(), output.status, output.stdout, output.stderr)
        .expect_code(130);
    let line = out.one_line_error();
    assert!(line.contains("interrupted"), "{line}");
    // No summary: only a line saying what the interrupted run stored for the next one.
    let lines: Vec<Value> = out.json_lines().into_iter().filter(|v| v["type"] != "progress").collect();
    assert_eq!(lines.len(), 1, "{}", out.context());
    assert_eq!(lines[0]["type"], "interrupted", "{}", out.context());
    assert!(lines[0]["bytes_added"].as_u64().unwrap() > 0, "{}", out.context());

    check_consistent(&repo, &witness);
    let temps: Vec<String> = ["data", "index", "snapshots"]
        .iter()
        .flat_map(|k| list_objects(&repo.path, k))
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "a clean interrupt leaves no temporary files: {temps:?}");
    assert!(
        final_names(&repo.path, "index").len() > index_before,
        "what was stored before the interrupt must be indexed"
    );

    let b = back_up_and_restore(&repo, &mut witness, &src);
    let added = b["bytes_added"].as_u64().unwrap();
    // Random data does not compress: a full backup adds at least `total` bytes.
    assert!(added < total, "the data stored before the interrupt was stored again: added {added} of {total}");
}

/// A single large file: a 1 MiB pseudo-random block repeated (quick to write, and it
/// still has to be read, chunked and hashed in full). Returns its folder.
fn large_file(root: &Path, mib: usize) -> PathBuf {
    use std::io::Write;
    fs::create_dir_all(root).unwrap();
    let block = Rng::new(77).bytes(1 << 20);
    let mut f = std::io::BufWriter::new(fs::File::create(root.join("large.bin")).unwrap());
    for i in 0..mib {
        // A counter in each block keeps the chunks from all being the same.
        f.write_all(&(i as u64).to_le_bytes()).unwrap();
        f.write_all(&block[8..]).unwrap();
    }
    f.flush().unwrap();
    fs::canonicalize(root).unwrap()
}

/// Whether the process, or a process it started, has a file open whose path contains
/// `name` (with `moved`, and has read from it: see [`has_file_open`]).
fn has_open(child: &std::process::Child, name: &str, moved: bool) -> bool {
    fn opened_by(pid: u32, name: &str, moved: bool) -> bool {
        let open = has_file_open(pid, moved, |t| t.to_string_lossy().contains(name));
        let children = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>()
            });
        open || children.into_iter().any(|c| opened_by(c, name, moved))
    }
    opened_by(child.id(), name, moved)
}

/// Send `signal` to `child` once it has a file named like `name` open (with `reading`,
/// once it has read from it: a backup's read-ahead opens the file first), so it is then
/// inside the large file, not before or after it, and return how long it took to exit and what
/// it printed.
fn interrupt_after_start(
    mut child: std::process::Child,
    name: &str,
    reading: bool,
    signal: rustix::process::Signal,
    what: &str,
) -> (Duration, Out) {
    let started = wait_until(Duration::from_secs(30), || {
        has_open(&child, name, reading) || !matches!(child.try_wait(), Ok(None))
    });
    assert!(started && child.try_wait().unwrap().is_none(), "{what} finished before it could be interrupted");
    let sent = Instant::now();
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
    // No second signal: a second one ends the process at once, hiding a flag that is not checked.
    let output = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    (took, Out::new(what.into(), output.status, output.stdout, output.stderr))
}

#[test]
fn sigint_and_sigterm_stop_a_backup_inside_a_large_file() {
    let work = tempdir("cairn-int-large-");
    let src = large_file(&work.path().join("src"), 1024);
    let (repo, mut witness) = repo_with_a_snapshot(work.path(), &[]);
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let child = repo.cairn().args(["backup", "--json"]).arg(&src).spawn();
        let (took, out) =
            interrupt_after_start(child, "large.bin", true, signal, &format!("cairn backup ({signal:?})"));
        let out = out.expect_code(130);
        assert!(out.one_line_error().contains("interrupted"), "{}", out.context());
        assert!(took < Duration::from_secs(3), "the backup took {took:?} to stop after {signal:?}");
        check_consistent(&repo, &witness);
    }
    back_up_and_restore(&repo, &mut witness, &src);

    // Restore and dump stop inside the large file too, and leave no half-written file.
    let target = work.path().join("restore-interrupted");
    let child = repo.cairn().args(["restore", "latest", "--target"]).arg(&target).spawn();
    let (took, out) = interrupt_after_start(
        child,
        "large.bin",
        false,
        rustix::process::Signal::INT,
        "cairn restore (SIGINT)",
    );
    out.expect_code(130);
    assert!(took < Duration::from_secs(3), "restore took {took:?} to stop");
    let left: Vec<PathBuf> = files_below(&target).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "an interrupted restore left files: {left:?}");
    let archive = work.path().join("dump.tar");
    let child = repo.cairn().args(["dump", "latest", "--archive", "tar", "--output"]).arg(&archive).spawn();
    // Its archive is open from the start; wait until it is being written.
    let written = || {
        fs::read_dir(work.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().contains("dump") && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    };
    assert!(wait_until(Duration::from_secs(30), written), "dump wrote nothing");
    let (took, out) = interrupt_after_start(
        child,
        ".cairn-dump-",
        false,
        rustix::process::Signal::TERM,
        "cairn dump (SIGTERM)",
    );
    out.expect_code(130);
    assert!(took < Duration::from_secs(3), "dump took {took:?} to stop");
    assert!(!archive.exists(), "an interrupted dump left its archive");
}

#[test]
fn an_interrupted_job_run_exits_130_and_stops_its_backup() {
    let work = tempdir("cairn-int-run-");
    let src = large_file(&work.path().join("src"), 1024);
    let (repo, witness) = repo_with_a_snapshot(work.path(), &[]);
    let config = work.path().join("cairn.toml");
    fs::write(
        &config,
        format!(
            "[jobs.big]\nrepository = \"{}\"\nsources = [\"{}\"]\n[jobs.big.retention]\nkeep-last = 3\n",
            repo.path.display(),
            src.display()
        ),
    )
    .unwrap();
    let child =
        Cairn::new().args(["run", "--config"]).arg(&config).env("CAIRN_LOCK_DIR", work.path()).spawn();
    // Only the runner gets the signal (as from `kill`), not its process group.
    let (took, out) =
        interrupt_after_start(child, "large.bin", true, rustix::process::Signal::TERM, "cairn run (SIGTERM)");
    let out = out.expect_code(130);
    assert!(took < Duration::from_secs(3), "cairn run took {took:?} to stop");
    assert!(out.stderr.contains("interrupted"), "{}", out.context());
    assert!(!out.stdout.contains("retention"), "no step starts after an interrupt\n{}", out.context());
    check_consistent(&repo, &witness);
    let log = repo.cairn().args(["log", "--json"]).run().ok().json();
    let job = log["entries"].as_array().unwrap().iter().rev().find(|e| e["operation"] == "job big").cloned();
    let job = job.unwrap_or_else(|| panic!("no job entry in the log: {log}"));
    assert_eq!(job["outcome"], "interrupted", "{job}");
    // What the interrupted backup stored is counted: it stays for the next run.
    let stored: u64 = job["figures"]["bytes_added"].as_str().unwrap().parse().unwrap();
    assert!(stored > 0, "{job}");
}
