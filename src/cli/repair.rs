//! `cairn repair`: bring a damaged repository back to a consistent state.

use super::{exit, Ctx};
use cairn::ops::repair::repair_index;
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
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    let Command::Index { dry_run } = cmd;
    let repo = ctx.open()?;
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
