//! `cairn repair`: bring a damaged repository back to a consistent state.

use super::{exit, Ctx};
use cairn::ops::repair::{repair_index, repair_snapshots};
use cairn::repo::log::LogRecord;
use cairn::Result;

#[derive(clap::Subcommand)]
#[command(about = "Repair a damaged repository")]
pub enum Command {
    /// Rebuild the index from the packs' own tables of contents
    #[command(after_help = "Example:\n  cairn repair index --dry-run\n  cairn repair index")]
    Index {
        /// Show what would be indexed, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrite snapshots that need lost data: leave out what is lost and record it
    #[command(after_help = "Example:\n  cairn repair index && cairn repair snapshots --dry-run")]
    Snapshots {
        /// Show what would be removed from which snapshot, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring back objects deleted since a time, in an S3 bucket with Object Lock, whose
    /// locks kept them (after an attack with the store's credentials, say)
    #[command(after_help = "Example:\n  cairn repair undelete --since \"2026-12-05 03:00\" --dry-run")]
    Undelete {
        /// Undo deletions made at or after this time (needs the store's credentials, not
        /// the repository's password; run it while no other cairn uses the repository) ("YYYY-MM-DD HH:MM[:SS]" local, or RFC 3339)
        #[arg(long, value_parser = super::format::parse_time)]
        since: cairn::format::Timespec,
        /// Show what would come back, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Give every snapshot without a summary one, so a maintenance key can judge it
    /// (snapshot ids change, as in a key rotation)
    #[command(after_help = "Examples:\n  cairn repair maintenance\n  cairn repair maintenance --repack")]
    Maintenance {
        /// Also rewrite the packs written before maintenance was turned on, so a
        /// maintenance key's prune can judge and repack them too (their data is read and
        /// written once)
        #[arg(long)]
        repack: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    let dry_run = match cmd {
        Command::Index { dry_run } => dry_run,
        Command::Snapshots { dry_run } => return snapshots(ctx, dry_run),
        Command::Undelete { since, dry_run } => return undelete(ctx, since, dry_run),
        Command::Maintenance { repack } => return maintenance(ctx, repack),
    };
    let repo = ctx.open()?.reading_the_store_only();
    repo.require_full_key("repair the repository")?;
    let _lock = repo.lock(true, "repair index")?;
    let r = repair_index(&repo, dry_run, &ctx.interrupt)?;
    if !dry_run {
        let rec =
            LogRecord::new("repair index", if r.packs_unreadable.is_empty() { "success" } else { "partial" })
                .figure("packs_indexed", r.packs_indexed)
                .figure("blobs_indexed", r.blobs_indexed)
                .figure("packs_unreadable", r.packs_unreadable.len());
        super::record(&repo, rec);
    }
    for p in &r.packs_unreadable {
        eprintln!("damaged: {p}");
    }
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": dry_run, "packs_indexed": r.packs_indexed, "blobs_indexed": r.blobs_indexed,
                "packs_unreadable": r.packs_unreadable, "index_files_replaced": r.index_files_replaced,
            })
        );
    } else if !ctx.quiet {
        println!(
            "{} {} blobs of {} packs; {} index files {}; {} packs unreadable",
            if dry_run { "would index" } else { "indexed" },
            r.blobs_indexed,
            r.packs_indexed,
            r.index_files_replaced,
            if dry_run { "would be replaced" } else { "replaced" },
            r.packs_unreadable.len()
        );
    }
    Ok(if r.packs_unreadable.is_empty() { exit::SUCCESS } else { exit::DAMAGED })
}

fn maintenance(ctx: &Ctx, repack: bool) -> Result<i32> {
    let repo = ctx.open()?.reading_the_store_only();
    repo.require_full_key("repair the repository")?;
    let _lock = ctx.lock(&repo, true, "repair maintenance")?;
    let n = cairn::ops::maintenance::give_summaries(&repo)?;
    let say = |step: &str| {
        if !ctx.quiet && !ctx.json {
            eprintln!("cairn: repair maintenance: {step}");
        }
    };
    let repacked = match repack {
        true => cairn::ops::maintenance::repack_older_packs(&repo, &say, &ctx.interrupt)?,
        false => 0,
    };
    let rec = LogRecord::new("repair maintenance", "success")
        .figure("summaries_written", n)
        .figure("older_packs_repacked", repacked);
    super::record(&repo, rec);
    if ctx.json {
        println!("{}", serde_json::json!({"summaries_written": n, "older_packs_repacked": repacked}));
    } else if !ctx.quiet {
        println!("{n} snapshots given a summary");
        if repack {
            println!("{repacked} packs written before maintenance rewritten with maintenance tables");
        }
    }
    Ok(exit::SUCCESS)
}

fn snapshots(ctx: &Ctx, dry_run: bool) -> Result<i32> {
    let repo = ctx.open()?.reading_the_store_only();
    repo.require_full_key("repair the repository")?;
    repo.refuse_during_content_rotation("repair snapshots")?;
    let _lock = repo.lock(true, "repair snapshots")?;
    let repairs = repair_snapshots(&repo, dry_run, &ctx.interrupt)?;
    if !dry_run {
        for r in &repairs {
            let mut rec =
                LogRecord::new("repair snapshot", "success").figure("entries_removed", r.removed.len());
            rec.snapshot = r.new;
            rec.figures.push(("original".into(), r.old.short()));
            rec.figures
                .push(("removed".into(), r.removed.iter().take(50).cloned().collect::<Vec<_>>().join(", ")));
            super::record(&repo, rec);
        }
    }
    if ctx.json {
        let list: Vec<_> = repairs
            .iter()
            .map(|r| serde_json::json!({"snapshot": r.old.to_hex(), "new": r.new.map(|n| n.to_hex()), "removed": r.removed}))
            .collect();
        println!("{}", serde_json::json!({"dry_run": dry_run, "repaired": list}));
    } else if !ctx.quiet {
        for r in &repairs {
            let verb = if dry_run { "would lose" } else { "lost" };
            let new = r.new.map(|n| format!(" -> {}", n.short())).unwrap_or_default();
            println!("snapshot {}{new} {verb} {} entries:", r.old.short(), r.removed.len());
            for p in &r.removed {
                println!("  {p}");
            }
        }
        if repairs.is_empty() {
            println!("every snapshot is whole; nothing to repair");
        }
    }
    Ok(exit::SUCCESS)
}

fn undelete(ctx: &Ctx, since: cairn::format::Timespec, dry_run: bool) -> Result<i32> {
    // The store alone: the config and the keys may be among what was deleted.
    let store = cairn::backend::open(ctx.location()?)?;
    let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.secs.max(0) as u64);
    let r = cairn::ops::object_lock::undelete(store.as_ref(), since, dry_run)?;
    if ctx.json {
        println!("{}", serde_json::json!({"dry_run": dry_run, "objects": r.restored}));
    } else if !ctx.quiet {
        for path in &r.restored {
            println!("{} {path}", if dry_run { "would bring back" } else { "brought back" });
        }
        println!(
            "{} {} objects; run `cairn repair index` if index files came back, then `cairn check`",
            if dry_run { "would bring back" } else { "brought back" },
            r.restored.len()
        );
    }
    Ok(exit::SUCCESS)
}
