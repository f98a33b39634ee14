//! Backup: walk the sources, store new chunks and trees, write the snapshot last.
//!
//! The snapshot's root tree mirrors the sources' absolute paths (backing up
//! /opt/gw/conf gives root -> opt -> gw -> conf), so a restore to `/` puts everything back
//! where it was. The walk itself lives in `walker.rs`.
//!
//! Change detection: a file whose size, mtime, ctime, inode and device equal those of the
//! same path in the parent snapshot keeps the parent's chunk list and is not read (unless
//! the parent's chunks are no longer indexed). Unchanged folders then encode to the same
//! tree bytes, hence the same tree id, and are not stored again.
//!
//! A file is compared with its metadata from before it was read once the read ends (size,
//! mtime, ctime, bytes read, and whether its path still names it): one that vanished is
//! left out, one that changed is stored as read; both make the snapshot partial.
//!
//! Errors come in two sorts: a file that cannot be read (or vanished) is recorded, left out
//! of the snapshot and the backup goes on (the snapshot is then partial); anything that
//! threatens the repository (a failed write, a full disk, an interrupt) stops the backup
//! before a snapshot is written. Either way what was stored is flushed and indexed first,
//! so the next run reuses it.

pub use super::read_ahead::ReadAheadFigures;
use super::read_ahead::{self, ReadAhead, StopOnDrop};
use super::tar_stream;
use super::walker::{Counters, Walker};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::Timespec;
use crate::id::{SnapshotId, TreeId};
use crate::index::Index;
use crate::ops::exclude::{ExcludeOptions, Excludes};
use crate::ops::progress::Progress;
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What to back up.
pub enum Source {
    Paths(Vec<PathBuf>),
    /// One file read from a stream (a database dump piped in), stored under `name`.
    Stdin {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// A tar stream (`--stdin-tar`), stored as the tree it holds; `name` is the snapshot's
    /// path (the archive's name).
    Tar {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// The tar stream a program writes (`borg export-tar`), stored as the tree it holds;
    /// a program that fails leaves no snapshot, as for `Command`. `inherited`: a
    /// descriptor the program reads (its passphrase pipe), closed here once it started.
    TarCommand {
        name: String,
        command: std::process::Command,
        inherited: Option<std::os::fd::OwnedFd>,
    },
    /// The output of a shell command (a database dump), stored under `name`. The command's
    /// exit status is known only after its last byte: a failed command leaves no snapshot.
    Command {
        name: String,
        command: String,
    },
    /// A restic snapshot (`import restic`): its tree, read from the restic repository and
    /// checked blob by blob, stored under the snapshot's own paths.
    Restic {
        source: std::sync::Arc<super::import_restic::ResticSource>,
        snapshot: crate::restic::format::Snapshot,
        /// The restic snapshot's parent and the tree it was imported as, if it was: its
        /// unchanged files are then not read again.
        parent: Option<(crate::restic::format::Id, TreeId)>,
    },
}

/// Which snapshot to compare files with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot with the same host and paths.
    #[default]
    Latest,
    Snapshot(SnapshotId),
    /// Read every file (`--force`).
    None,
}

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub parent: ParentChoice,
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub excludes: ExcludeOptions,
    pub time: Option<Timespec>,
    /// The user to record instead of this process's (an imported archive's).
    pub user: Option<String>,
    /// The parent to record when no parent is compared with (an imported snapshot's).
    pub recorded_parent: Option<SnapshotId>,
}

pub struct BackupOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Files and folders that could not be read, one line each.
    pub errors: Vec<String>,
    /// Files stored as read although they changed while being read, one line each.
    pub changed: Vec<String>,
    /// What the user should know that did not make the snapshot partial.
    pub warnings: Vec<String>,
    /// What the read-ahead of the files to read did.
    pub read_ahead: ReadAheadFigures,
}

pub fn backup(
    repo: &Repository,
    source: Source,
    opts: &BackupOptions,
    interrupt: &AtomicBool,
    progress: &Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time = opts.time.unwrap_or_else(Timespec::now);
    let host = opts.host.clone().unwrap_or_else(crate::sys::hostname);
    let sources = match &source {
        Source::Paths(paths) => check_sources(paths)?,
        Source::Stdin { .. }
        | Source::Command { .. }
        | Source::Tar { .. }
        | Source::TarCommand { .. }
        | Source::Restic { .. } => Vec::new(),
    };
    let mut paths: Vec<Vec<u8>> = sources.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect();
    // A backup-only key cannot read the parent's trees; it reads every file instead.
    let parent = match (&source, repo.keys().can_read()) {
        (Source::Paths(_), true) => find_parent(repo, &opts.parent, &host, &paths)?,
        _ => None,
    }
    .filter(|(_, tree)| named_under_newest_content(repo, tree));
    if let Source::Stdin { name, .. }
    | Source::Command { name, .. }
    | Source::Tar { name, .. }
    | Source::TarCommand { name, .. } = &source
    {
        paths = vec![name.as_bytes().to_vec()];
    }
    if let Source::Restic { snapshot, .. } = &source {
        paths = snapshot.paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    }
    let excludes = Excludes::new(&opts.excludes)?;
    let chunker = repo.chunker()?;
    let parent_reader = parent.as_ref().map(|_| PackReader::new(repo));
    // The writer stores and indexes whatever was saved even when the walk fails, so the
    // next run reuses it; a failed walk still ends here without a snapshot.
    let index = Index::load(repo)?;
    // Blobs only a skipped index file names are stored again: nothing is lost by it.
    let warnings: Vec<String> = index
        .skipped_files
        .iter()
        .map(|w| format!("{w}: left out; `cairn repair index` rebuilds it"))
        .collect();
    let ((walked, counters, errors, changed, read_ahead), stats) = BlobWriter::run(repo, index, |writer| {
        let walker = Walker {
            repo,
            writer,
            parent_reader,
            chunker,
            excludes,
            counters: Counters::default(),
            errors: Mutex::new(Vec::new()),
            changed: Mutex::new(Vec::new()),
            interrupt,
            progress,
            read_ahead: ReadAhead::new(matches!(source, Source::Paths(_))),
        };
        let scan_stop = AtomicBool::new(false);
        let walked = std::thread::scope(|scope| {
            let _stop_read_ahead = StopOnDrop(&walker.read_ahead);
            if matches!(source, Source::Paths(_)) {
                for _ in 0..read_ahead::THREADS {
                    let ex = &walker.excludes;
                    let run = || {
                        walker
                            .read_ahead
                            .run(|path, size| !ex.excludes_path(path, false) && !ex.excludes_size(size))
                    };
                    std::thread::Builder::new().name("read-ahead".into()).spawn_scoped(scope, run).map_err(
                        |e| Error::new(ErrorKind::Io, format!("cannot start a read-ahead thread: {e}")),
                    )?;
                }
            }
            if matches!(source, Source::Paths(_)) && progress.want_totals.load(Ordering::Relaxed) {
                // Totals for the progress display, counted beside the backup.
                scope.spawn(|| progress.scan(&sources, &walker.excludes, &scan_stop));
            }
            let walked = match source {
                Source::Paths(_) => walker.save_sources(&sources, parent.map(|p| p.1)),
                Source::Stdin { name, reader } => walker.save_stdin(&name, reader, time),
                Source::Tar { reader, .. } => tar_stream::read_tar(reader, time, &walker),
                Source::Command { name, command } => {
                    let mut shell = std::process::Command::new("sh");
                    shell.arg("-c").arg(&command);
                    save_command_output(&name, &command, shell, |out| walker.save_stdin(&name, out, time))
                }
                Source::TarCommand { name, command, inherited } => {
                    // Program and arguments only: the environment may hold a passphrase.
                    let shown = std::iter::once(command.get_program())
                        .chain(command.get_args())
                        .map(|a| a.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" ");
                    save_command_output(&name, &shown, command, |out| {
                        drop(inherited);
                        tar_stream::read_tar(out, time, &walker)
                    })
                }
                Source::Restic { source, snapshot, parent } => {
                    walker.save_restic(&source, &snapshot.tree, parent)
                }
            };
            scan_stop.store(true, Ordering::Relaxed);
            walked
        });
        let changed = walker.changed.into_inner().expect("changed lock");
        let errors = walker.errors.into_inner().expect("errors lock");
        (walked, walker.counters, errors, changed, walker.read_ahead.figures())
    })?;
    progress.stored.store(stats.bytes_stored, Ordering::Relaxed);
    let tree = walked?;
    let c = &counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let snapshot = Snapshot {
        time,
        host,
        user: opts.user.clone().unwrap_or_else(crate::sys::username),
        paths,
        tags: opts.tags.clone(),
        labels: with_unique_name(repo, opts.labels.clone())?,
        excludes: opts.excludes.patterns.clone(),
        tree,
        parent: parent.map(|p| p.0).or(opts.recorded_parent),
        original: None,
        summary: Summary {
            files: load(&c.files),
            files_new: load(&c.files_new),
            files_changed: load(&c.files_changed),
            files_unchanged: load(&c.files_unchanged),
            dirs: load(&c.dirs),
            others: load(&c.others),
            bytes_read: load(&c.bytes_read),
            total_bytes: load(&c.total_bytes),
            chunks_new: stats.blobs_new,
            bytes_added: stats.bytes_stored,
            // A file stored while it changed makes the snapshot partial too.
            errors: (errors.len() + changed.len()) as u64,
            duration_ms: started.elapsed().as_millis() as u64,
        },
        program: concat!("cairn ", env!("CARGO_PKG_VERSION")).to_string(),
        written_by: Default::default(),
    };
    crate::failpoint::hit("backup:before-snapshot");
    let id = repo.save_snapshot(&snapshot)?;
    crate::failpoint::hit("backup:after-snapshot");
    Ok(BackupOutcome { id, snapshot, errors, changed, warnings, read_ahead })
}

/// Make the label `name` unique in the repository: a name another snapshot has gets
/// "-2", "-3", ... (a template to the minute gives several runs the same name, and a
/// name must name one snapshot). A backup-only key cannot list names and keeps it.
fn with_unique_name(repo: &Repository, mut labels: Vec<(String, String)>) -> Result<Vec<(String, String)>> {
    let Some(at) = labels.iter().position(|(k, _)| k == "name") else { return Ok(labels) };
    if !repo.keys().can_read() {
        return Ok(labels);
    }
    let taken: std::collections::HashSet<String> = repo
        .snapshots()?
        .into_iter()
        .filter_map(|(_, s)| s.labels.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v))
        .collect();
    labels[at].1 = unique_name(&labels[at].1, |n| taken.contains(n));
    Ok(labels)
}

/// `name`, or the first of "name-2", "name-3", ... that is not `taken`.
fn unique_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_string();
    }
    (2u64..).map(|n| format!("{name}-{n}")).find(|n| !taken(n)).expect("a free counter")
}

/// Run `command` with `sh -c` and store what it writes to standard output as one file,
/// streamed (never written to a temporary file). Its standard error passes through.
/// Run `command` and store its standard output with `store`; a command that fails
/// (`shown` in messages) leaves no snapshot.
fn save_command_output(
    name: &str,
    shown: &str,
    mut command: std::process::Command,
    store: impl FnOnce(Box<dyn Read + Send>) -> Result<TreeId>,
) -> Result<TreeId> {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ctx(|| format!("cannot start the command for {name}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let saved = store(Box::new(stdout));
    if saved.is_err() {
        // Stop a command whose output can no longer be stored.
        let _ = child.kill();
    }
    let status = child.wait().ctx(|| format!("cannot wait for the command for {name}"))?;
    let tree = saved?;
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(Error::new(
            ErrorKind::CommandFailed,
            format!("the command for {name} ({shown}) {how}; no snapshot was written"),
        ));
    }
    Ok(tree)
}

/// The parent snapshot and its root tree, if any.
fn find_parent(
    repo: &Repository,
    choice: &ParentChoice,
    host: &str,
    paths: &[Vec<u8>],
) -> Result<Option<(SnapshotId, TreeId)>> {
    Ok(match choice {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.load_snapshot(id)?.tree)),
        ParentChoice::Latest => repo
            .snapshots()?
            .into_iter()
            .rev()
            .find(|(_, s)| s.host == host && s.paths == paths)
            .map(|(id, s)| (id, s.tree)),
    })
}

/// Whether a parent's root tree was named under the content root this key writes with.
/// During a content key rotation a parent from before it is not compared with: its chunk
/// lists name blobs under the old root, which the rotation's end drops, so every file is
/// read and cut anew instead.
fn named_under_newest_content(repo: &Repository, tree: &TreeId) -> bool {
    if !repo.keys().holds_older_content() {
        return true;
    }
    Index::load(repo)
        .and_then(|index| super::rechunk::named_under_newest(&PackReader::new(repo), &index, tree))
        .unwrap_or(false)
}

/// Make every source absolute, check it exists, and drop sources inside other sources.
fn check_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::invalid("nothing to back up: give at least one path (or --stdin)"));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).ctx(|| format!("cannot resolve source path {}", p.display()))?;
        // Lexically normalize: drop "." and resolve ".." without following symlinks.
        let mut norm = PathBuf::new();
        for c in abs.components() {
            match c {
                Component::ParentDir => {
                    norm.pop();
                }
                Component::CurDir => {}
                other => norm.push(other),
            }
        }
        std::fs::symlink_metadata(&norm).map_err(|e| {
            let kind =
                if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
            Error::with_source(kind, format!("source path {} cannot be read; check the path", p.display()), e)
        })?;
        out.push(norm);
    }
    out.sort();
    out.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in out {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Ok(kept)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::repo::InitOptions;

    /// Back up the folder `src` with the default options (for the unit tests of modules
    /// that need a snapshot).
    /// A source folder in `dir` holding a file and a folder `wide` of 1,100 entries, over
    /// 4 MiB of them, whose tree is stored in parts.
    pub(crate) fn source_with_split_folder(dir: &std::path::Path) -> std::path::PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("wide")).unwrap();
        std::fs::write(src.join("file"), b"some content").unwrap();
        let target = "t".repeat(4000);
        for i in 0..1100 {
            std::os::unix::fs::symlink(&target, src.join(format!("wide/w{i:04}"))).unwrap();
        }
        src
    }

    pub(crate) fn back_up(repo: &Repository, src: &std::path::Path) -> BackupOutcome {
        let source = Source::Paths(vec![src.to_path_buf()]);
        backup(repo, source, &BackupOptions::default(), &AtomicBool::new(false), &Default::default()).unwrap()
    }

    /// The walk lists every folder to the read-ahead and counts what it reads; the
    /// read-ahead never asks for a file the walk will not read (an unchanged one). How far
    /// it gets beside the walk depends on timing, so only that bound is asserted on the
    /// bytes it asked for; what it asks for is tested in read_ahead.rs.
    #[test]
    fn the_walk_feeds_the_read_ahead_and_unchanged_files_are_not_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        // Large unchanged files first in each folder, where a read-ahead that did not
        // know them for unchanged would go at once.
        std::fs::write(src.join("a/0-large"), vec![1u8; 8 << 20]).unwrap();
        std::fs::write(src.join("a/b/0-large"), vec![2u8; 8 << 20]).unwrap();
        std::fs::write(src.join("a/b/small"), b"small").unwrap();
        std::fs::write(src.join("top"), b"top").unwrap();
        let loc = dir.path().join("r");
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &InitOptions::default(), None).unwrap();

        let first = back_up(&repo, &src);
        let all = (16 << 20) + 5 + 3;
        assert_eq!(first.read_ahead.folders, 3, "src, a and a/b");
        assert_eq!(first.read_ahead.consumed, all);
        assert!(first.read_ahead.advised <= all);

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(src.join("a/b/small"), b"changed").unwrap();
        let second = back_up(&repo, &src);
        assert_eq!(second.snapshot.summary.files_unchanged, 3);
        assert_eq!((second.read_ahead.folders, second.read_ahead.consumed), (3, 7));
        assert!(second.read_ahead.advised <= 7, "unchanged files were read ahead: {:?}", second.read_ahead);
    }

    #[test]
    fn a_name_already_taken_gets_the_first_free_counter() {
        let taken = ["gw-0805", "gw-0805-2", "gw-0805-4"];
        let is_taken = |n: &str| taken.contains(&n);
        assert_eq!(super::unique_name("gw-0806", is_taken), "gw-0806");
        assert_eq!(super::unique_name("gw-0805", is_taken), "gw-0805-3");
    }
}
