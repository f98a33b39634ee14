//! `cairn unlock`: remove stale locks.

use super::{exit, Ctx};
use cairn::Result;

/// Remove locks left by processes that are gone (or not refreshed for 30 minutes)
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cairn unlock\n  cairn unlock --remove-all   # only when no other cairn uses the repository"
)]
pub struct Args {
    /// Remove every lock, live ones too
    #[arg(long)]
    remove_all: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let removed = repo.unlock(a.remove_all)?;
    let left = repo.locks()?;
    if ctx.json {
        let d = |v: &[cairn::repo::lock::FoundLock]| v.iter().map(|f| f.describe()).collect::<Vec<_>>();
        println!("{}", serde_json::json!({"removed": d(&removed), "remaining": d(&left)}));
    } else if !ctx.quiet {
        for f in &removed {
            println!("removed {}", f.describe());
        }
        for f in &left {
            println!("still held: {}", f.describe());
        }
        if removed.is_empty() && left.is_empty() {
            println!("no locks");
        }
    }
    Ok(exit::SUCCESS)
}
