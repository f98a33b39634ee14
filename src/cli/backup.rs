//! `cairn backup`: back up paths or standard input.

use super::{exit, format, Ctx};
use cairn::format::Timespec;
use cairn::ops::backup::{backup, BackupOptions, ParentChoice, Source};
use cairn::ops::exclude::ExcludeOptions;
use cairn::ops::progress::Progress;
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};
use std::path::PathBuf;

/// Back up files and folders (or standard input) into a new snapshot
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn backup /opt/apigateway/conf /opt/apigateway/groups \\\n      --exclude /opt/apigateway/conf/opsdb.d --tag prod\n  mysqldump gwdb | cairn backup --stdin --stdin-name gwdb.sql --tag prod\n  cairn backup --stdin-from-command 'pg_dump gwdb' --stdin-name gwdb.sql"
)]
pub struct Args {
    /// Files and folders to back up
    paths: Vec<PathBuf>,
    /// Back up standard input as one file
    #[arg(long, conflicts_with = "paths")]
    stdin: bool,
    /// Back up what this shell command writes to standard output (a database dump) as one
    /// file, streamed; if the command fails, no snapshot is written (exit 6)
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["paths", "stdin"])]
    stdin_from_command: Option<String>,
    /// Back up a tar stream on standard input (GNU or pax: from tar, docker export,
    /// kubectl exec ... tar c, borg export-tar) as the tree it holds, with its metadata
    #[arg(long, conflicts_with_all = ["paths", "stdin", "stdin_from_command"])]
    stdin_tar: bool,
    /// File name for --stdin and --stdin-from-command; the snapshot's path for --stdin-tar
    #[arg(long, default_value = "stdin")]
    stdin_name: String,
    /// Exclude paths matching this gitignore-style glob (with '/': whole path; without: any
    /// name; trailing '/': folders only; leading '!': include again)
    #[arg(short = 'e', long)]
    exclude: Vec<String>,
    /// Read exclude patterns from a file, one a line ('#' starts a comment)
    #[arg(long)]
    exclude_file: Vec<PathBuf>,
    /// Leave out folders that hold a file of this name (e.g. .nobackup)
    #[arg(long)]
    exclude_if_present: Vec<String>,
    /// Leave out folders marked as caches by a CACHEDIR.TAG file
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out files larger than this (e.g. 500M)
    #[arg(long, value_parser = format::parse_size)]
    exclude_larger_than: Option<u64>,
    /// Stay on the filesystem of each source path
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long)]
    tag: Vec<String>,
    /// Label the snapshot with KEY=VALUE (repeatable)
    #[arg(long, value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Host name to record instead of this machine's
    #[arg(long)]
    host: Option<String>,
    /// The snapshot's type, such as config or full (stored as the label type=TYPE; without
    /// it a snapshot counts as files (--stdin-tar too), or dump for --stdin and
    /// --stdin-from-command)
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    snapshot_type: Option<String>,
    /// Compare files with this snapshot instead of the latest one of the same host and paths
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot
    #[arg(long)]
    force: bool,
    /// Snapshot time instead of now ("2026-01-31 23:00" local, or RFC 3339)
    #[arg(long, value_parser = format::parse_time)]
    time: Option<Timespec>,
}

fn parse_type(s: &str) -> std::result::Result<String, String> {
    match !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        true => Ok(s.to_string()),
        false => Err(format!("type '{s}' may hold only letters, digits, '-', '_' and '.'")),
    }
}

pub(super) fn parse_label(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label '{s}' must look like KEY=VALUE")),
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let source = if let Some(command) = a.stdin_from_command {
        Source::Command { name: a.stdin_name, command }
    } else if a.stdin {
        Source::Stdin { name: a.stdin_name, reader: Box::new(std::io::stdin()) }
    } else if a.stdin_tar {
        Source::Tar { name: a.stdin_name, reader: Box::new(std::io::stdin()) }
    } else {
        if a.paths.is_empty() {
            return Err(Error::invalid("nothing to back up: give paths, or --stdin, or --stdin-tar"));
        }
        Source::Paths(a.paths)
    };
    let repo = ctx.open()?;
    repo.will_list(cairn::repo::SNAPSHOTS_AND_INDEX);
    let _lock = ctx.lock(&repo, false, "backup")?;
    // Sorted by key; a key given twice keeps its last value.
    let mut labels = a.label;
    // A tar stream holds a tree of files, not one dump file.
    let is_tar = matches!(source, cairn::ops::backup::Source::Tar { .. });
    if let Some(t) = a.snapshot_type.or_else(|| is_tar.then(|| "files".to_string())) {
        labels.push(("type".into(), t));
    }
    let labels: Vec<(String, String)> =
        labels.into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().collect();
    let parent = match (a.force, &a.parent) {
        (true, _) => ParentChoice::None,
        (false, Some(spec)) => ParentChoice::Snapshot(repo.find_snapshot(spec)?.0),
        (false, None) => ParentChoice::Latest,
    };
    let opts = BackupOptions {
        parent,
        host: a.host,
        tags: a.tag,
        labels,
        excludes: ExcludeOptions {
            patterns: a.exclude,
            pattern_files: a.exclude_file,
            if_present: a.exclude_if_present,
            caches: a.exclude_caches,
            one_file_system: a.one_file_system,
            larger_than: a.exclude_larger_than,
        },
        time: a.time,
        user: None,
        recorded_parent: None,
    };
    let progress = Progress::default();
    let out = super::progress::show_while(ctx, &progress, || {
        backup(&repo, source, &opts, &ctx.interrupt, &progress)
    });
    let out = match out {
        Err(e) if e.kind() == cairn::ErrorKind::Interrupted && ctx.json => {
            // What was stored stays for the next run; a job counts it.
            let stored = progress.stored.load(std::sync::atomic::Ordering::Relaxed);
            println!("{}", serde_json::json!({"type": "interrupted", "bytes_added": stored}));
            return Err(e);
        }
        other => other?,
    };
    for e in &out.errors {
        eprintln!("cairn: warning: not backed up: {e}");
    }
    for w in &out.warnings {
        eprintln!("cairn: warning: {w}");
    }
    for c in &out.changed {
        eprintln!("cairn: warning: {c}");
    }
    let partial = out.snapshot.is_partial();
    let s = &out.snapshot.summary;
    let mut rec = LogRecord::new("backup", if partial { "partial" } else { "success" })
        .figure("files", s.files)
        .figure("files_changed", s.files_changed + s.files_new)
        .figure("bytes_read", s.bytes_read)
        .figure("bytes_added", s.bytes_added)
        .figure("duration_ms", s.duration_ms);
    rec.snapshot = Some(out.id);
    super::record(&repo, rec);
    super::object_lock::upkeep(ctx, &repo, None, false);
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "type": "summary", "snapshot": out.id.to_hex(), "partial": partial,
                "parent": out.snapshot.parent.map(|p| p.to_hex()),
                "files": s.files, "files_new": s.files_new, "files_changed": s.files_changed,
                "files_unchanged": s.files_unchanged, "dirs": s.dirs, "others": s.others,
                "bytes_read": s.bytes_read, "total_bytes": s.total_bytes,
                "chunks_new": s.chunks_new, "bytes_added": s.bytes_added,
                "errors": out.errors, "changed": out.changed, "duration_ms": s.duration_ms,
            })
        );
    } else if !ctx.quiet {
        println!(
            "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} dirs, {} read, {} added in {:.2} s{}",
            out.id.short(),
            s.files,
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.dirs,
            format::size(s.bytes_read),
            format::size(s.bytes_added),
            s.duration_ms as f64 / 1000.0,
            match (out.errors.len(), out.changed.len()) {
                (0, 0) => String::new(),
                (n, 0) => format!(" ({n} unreadable, snapshot partial)"),
                (0, c) => format!(" ({c} changed while read, snapshot partial)"),
                (n, c) => format!(" ({n} unreadable, {c} changed while read, snapshot partial)"),
            }
        );
    }
    Ok(if partial { exit::PARTIAL } else { exit::SUCCESS })
}
