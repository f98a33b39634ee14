//! `cairn restore`: restore a snapshot to a folder.

use super::{exit, format, Ctx};
use cairn::ops::restore::{restore, RestoreOptions};
use cairn::repo::select;
use cairn::{Error, Result};
use std::path::PathBuf;

/// Restore a snapshot (or parts of it) into a target folder
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn restore latest --target /\n  cairn restore 3f9a1c --target /tmp/r --include /opt/apigateway/conf"
)]
pub struct Args {
    /// Snapshot id prefix, name, or 'latest' (the newest one the filter passes)
    snapshot: String,
    /// Folder to restore into (the snapshot's absolute paths go below it)
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only this path of the snapshot and what is under it (repeatable)
    #[arg(short, long)]
    include: Vec<PathBuf>,
    /// After restoring, re-read everything and compare it with the snapshot
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
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
    let _lock = ctx.lock(&repo, false, "restore")?;
    let (id, snap) = select::find(&repo, &a.snapshot, &a.filter.filter())?;
    let out = restore(
        &repo,
        &snap.tree,
        &a.target,
        &RestoreOptions { includes: a.include.clone() },
        &ctx.interrupt,
    )?;
    let verified = match a.verify {
        true => Some(cairn::ops::verify::verify(&repo, &snap.tree, &a.target, &a.include, &ctx.interrupt)?),
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
                "damaged": out.damaged, "warnings": out.warnings,
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
