//! `cairn rewrite`: erase files from existing snapshots.

use super::{exit, Ctx};
use cairn::ops::exclude::{ExcludeOptions, Excludes};
use cairn::ops::rewrite::rewrite_snapshots;
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};
use std::path::PathBuf;

/// Paths recorded per snapshot in the activity log; the count is always recorded.
const LOGGED_PATHS: usize = 200;

/// Remove files from snapshots: new snapshots without them replace the old ones
#[derive(clap::Args)]
#[command(after_help = "\
Patterns follow the backup --exclude rules. Each rewritten snapshot is replaced by one
that names it as its original and carries a 'rewritten' label; the activity log records
which paths left which snapshot, when and by whom. The erased data leaves the repository
at the next `cairn prune --max-unused 0`.

Examples:
  cairn rewrite --all --exclude '/home/jdoe' --dry-run
  cairn rewrite 3f9a1c 77b0e2 --exclude '*.pem' && cairn prune --max-unused 0")]
pub struct Args {
    /// Snapshots to rewrite (id prefixes or 'latest')
    snapshots: Vec<String>,
    /// Rewrite every snapshot
    #[arg(long, conflicts_with = "snapshots")]
    all: bool,
    /// Leave out what this pattern matches (repeatable)
    #[arg(short, long)]
    exclude: Vec<String>,
    /// Read more patterns from this file, one a line
    #[arg(long)]
    exclude_file: Vec<PathBuf>,
    /// Show what would be removed, change nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if a.exclude.is_empty() && a.exclude_file.is_empty() {
        return Err(Error::invalid("nothing to remove: give --exclude PATTERN or --exclude-file F"));
    }
    let excludes = Excludes::new(&ExcludeOptions {
        patterns: a.exclude.clone(),
        pattern_files: a.exclude_file.clone(),
        ..Default::default()
    })?;
    let repo = ctx.open()?;
    repo.require_full_key("rewrite snapshots")?;
    repo.refuse_during_content_rotation("rewrite snapshots")?;
    let _lock = ctx.lock(&repo, true, "rewrite")?;
    // rewrite is how data is erased for good: it must not run blind to a snapshot.
    cairn::repo::refuse_unreadable(&repo.snapshots_and_damage()?.1, &[], "rewrite")?;
    let snapshots = super::select_snapshots(&repo, &a.snapshots, a.all)?;
    let rewrites = rewrite_snapshots(&repo, &snapshots, &excludes, a.dry_run, &ctx.interrupt)?;
    if !a.dry_run {
        for r in &rewrites {
            let mut rec = LogRecord::new("rewrite snapshot", "success")
                .figure("original", r.old.short())
                .figure("entries_removed", r.removed.len())
                .figure("patterns", a.exclude.join(" "));
            rec.snapshot = r.new;
            let mut removed = r.removed.iter().take(LOGGED_PATHS).cloned().collect::<Vec<_>>().join(", ");
            if r.removed.len() > LOGGED_PATHS {
                removed.push_str(&format!(" and {} more", r.removed.len() - LOGGED_PATHS));
            }
            super::record(&repo, rec.figure("removed", removed));
        }
    }
    if ctx.json {
        let list: Vec<_> = rewrites
            .iter()
            .map(|r| serde_json::json!({"snapshot": r.old.to_hex(), "new": r.new.map(|n| n.to_hex()), "removed": r.removed}))
            .collect();
        println!("{}", serde_json::json!({"dry_run": a.dry_run, "rewritten": list}));
    } else if !ctx.quiet {
        for r in &rewrites {
            let new = r.new.map(|n| format!(" -> {}", n.short())).unwrap_or_default();
            let verb = if a.dry_run { "would lose" } else { "lost" };
            println!("snapshot {}{new} {verb} {} entries:", r.old.short(), r.removed.len());
            for p in &r.removed {
                println!("  {p}");
            }
        }
        println!(
            "{} of {} snapshots {}",
            rewrites.len(),
            snapshots.len(),
            if a.dry_run { "would be rewritten" } else { "rewritten" }
        );
    }
    Ok(exit::SUCCESS)
}
