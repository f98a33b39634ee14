//! `cairn restore`: restore a snapshot to a folder.

use super::{exit, format, Ctx};
use cairn::format::snapshot::Snapshot;
use cairn::index::Index;
use cairn::ops::restore::{restore, RestoreOptions};
use cairn::ops::restore_delete::{find_extras, restored_paths};
use cairn::ops::restore_target::TargetRoot;
use cairn::pack::PackReader;
use cairn::repo::select;
use cairn::{Error, ErrorKind, Repository, Result};
use std::path::{Path, PathBuf};

/// Restore a snapshot (or parts of it) into a target folder
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  cairn restore latest --target /\n  \
                  cairn restore 3f9a1c --target /tmp/r --include /opt/apigateway/conf\n  \
                  cairn restore latest --target / --delete --dry-run")]
pub struct Args {
    /// Snapshot id prefix, name, or 'latest' (the newest one the filter passes)
    snapshot: String,
    /// Folder to restore into (the snapshot's absolute paths go below it)
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only this path of the snapshot and what is under it (repeatable)
    #[arg(short, long)]
    include: Vec<PathBuf>,
    /// After restoring, re-read everything and compare it with the snapshot; entries the
    /// snapshot does not have below the restored paths are differences too
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
    /// Remove what the snapshot does not have below the restored paths (the snapshot's
    /// paths, or the --include paths), after restoring; symlinks are removed, not followed
    #[arg(long)]
    delete: bool,
    /// With --delete: list what would be removed, and change nothing (no restore either)
    #[arg(long, requires = "delete")]
    dry_run: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    for inc in &a.include {
        if !inc.is_absolute() {
            return Err(Error::invalid(format!(
                "--include {} must be an absolute path as backed up (e.g. /opt/apigateway/conf)",
                inc.display()
            )));
        }
    }
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "restore")?;
    let (id, snap) = select::find(&repo, &a.snapshot, &a.filter.filter())?;
    let restored = restored_paths(&snap, &a.include);
    if a.dry_run {
        return dry_run(ctx, &repo, &snap, &a.target, &restored);
    }
    let done = restore_and_report(ctx, &repo, &a, id, &snap, &restored);
    let paths: Vec<String> = a.include.iter().map(|p| p.display().to_string()).collect();
    super::record_read(&repo, "restore", id, &paths, Some(&a.target), done)
}

/// Restore (and verify), print what was done; the exit code.
fn restore_and_report(
    ctx: &Ctx,
    repo: &Repository,
    a: &Args,
    id: cairn::id::SnapshotId,
    snap: &cairn::format::snapshot::Snapshot,
    restored: &[PathBuf],
) -> Result<i32> {
    let out = restore(
        repo,
        &snap.tree,
        &a.target,
        &RestoreOptions { includes: a.include.clone(), delete_below: a.delete.then(|| restored.to_vec()) },
        &ctx.interrupt,
    )?;
    let removed = &out.removed;
    for r in removed.iter().filter(|_| !ctx.json && !ctx.quiet) {
        println!("removed {}", r.display());
    }
    let verified = match a.verify {
        true => Some(cairn::ops::verify::verify(
            repo,
            &snap.tree,
            &a.target,
            &a.include,
            restored,
            &ctx.interrupt,
        )?),
        false => None,
    };
    for d in verified.iter().flat_map(|v| &v.differences) {
        eprintln!("cairn: differs: {d}");
    }
    for w in &out.warnings {
        eprintln!("cairn: warning: {w}");
    }
    for d in &out.damaged {
        eprintln!("cairn: damaged: {d}");
    }
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "snapshot": id.to_hex(), "target": a.target.display().to_string(),
                "files_written": out.files_written, "files_unchanged": out.files_unchanged,
                "bytes_written": out.bytes_written, "dirs": out.dirs, "others": out.others, "links": out.links,
                "frames_read": out.frames_read,
                "damaged": out.damaged, "warnings": out.warnings,
                "removed": removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "verified": verified.as_ref().map(|v| v.ok()),
                "differences": verified.as_ref().map(|v| v.differences.clone()),
            })
        );
    } else if !ctx.quiet {
        println!(
            "restored snapshot {} to {}: {} files written ({}), {} already identical, {} folders{}",
            id.short(),
            a.target.display(),
            out.files_written,
            format::size(out.bytes_written),
            out.files_unchanged,
            out.dirs,
            if out.damaged.is_empty() {
                String::new()
            } else {
                format!("; {} DAMAGED files not restored", out.damaged.len())
            }
        );
    }
    if let Some(v) = verified.as_ref().filter(|_| !ctx.json && !ctx.quiet) {
        println!(
            "verified {} entries ({} files, {}): {}",
            v.entries,
            v.files,
            format::size(v.bytes),
            if v.ok() {
                "identical to the snapshot".to_string()
            } else {
                format!("{} DIFFERENCES", v.differences.len())
            }
        );
    }
    let differs = verified.as_ref().is_some_and(|v| !v.ok());
    Ok(if out.damaged.is_empty() && !differs { exit::SUCCESS } else { exit::DAMAGED })
}

/// The entries `--delete` would remove, listed; nothing is changed (not even created).
fn dry_run(
    ctx: &Ctx,
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    restored: &[PathBuf],
) -> Result<i32> {
    let extras = match TargetRoot::open_existing(target) {
        Ok(root) => find_extras(&PackReader::new(repo), &Index::load(repo)?, &snap.tree, &root, restored)?,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if ctx.json {
        let shown: Vec<String> = extras.iter().map(|p| p.display().to_string()).collect();
        println!("{}", serde_json::json!({ "dry_run": true, "would_remove": shown }));
    } else if !ctx.quiet {
        for e in &extras {
            println!("would remove {}", e.display());
        }
        println!(
            "dry run: {} entries would be removed below {}; nothing was changed",
            extras.len(),
            target.display()
        );
    }
    Ok(exit::SUCCESS)
}
