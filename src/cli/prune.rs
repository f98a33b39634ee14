//! `cairn prune`: delete data that no snapshot uses.

use super::{exit, format, Ctx};
use cairn::ops::prune::{execute, plan, PruneOptions};
use cairn::repo::log::LogRecord;
use cairn::{Error, Repository, Result};

/// Delete packs no snapshot uses and repack partly used ones
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn prune --dry-run\n  cairn prune --max-unused 0   # leave no byte of forgotten data behind"
)]
pub struct Args {
    #[command(flatten)]
    pub opts: PruneArgs,
    /// Show what would be deleted and repacked, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args, Clone)]
pub struct PruneArgs {
    /// Repack a pack when more than this share of it is unused (e.g. 10%, 0 for none left)
    #[arg(long, default_value = "10%", value_parser = parse_share)]
    pub max_unused: f64,
}

fn parse_share(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, t != "0" && t.parse::<f64>().is_ok_and(|v| v > 1.0)),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("'{s}' is not a share: use e.g. 10% or 0"))?;
    let v = if pct { v / 100.0 } else { v };
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' must lie between 0% and 100%"))
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    repo.will_list(cairn::repo::SNAPSHOTS_AND_INDEX);
    let _lock = ctx.lock(&repo, true, "prune")?;
    prune(ctx, &repo, &a.opts, a.dry_run)?;
    Ok(exit::SUCCESS)
}

/// Prune under a lock the caller holds (also used by `forget --prune`).
pub fn prune(ctx: &Ctx, repo: &Repository, a: &PruneArgs, dry_run: bool) -> Result<()> {
    if repo.key_kind() == cairn::crypto::keys::KeyKind::BackupOnly {
        return Err(Error::new(
            cairn::ErrorKind::PermissionDenied,
            "a backup-only key cannot prune (it deletes nothing); use a full or maintenance key",
        ));
    }
    let opts = PruneOptions { max_unused: a.max_unused, ..Default::default() };
    let p = plan(repo, &opts, &ctx.interrupt)?;
    let s = &p.packs;
    let leftover_bytes: u64 = p.leftovers.iter().map(|l| l.size).sum();
    warn_about(&p);
    if !dry_run {
        execute(repo, &p, &ctx.interrupt)?;
        // Only what kept snapshots use keeps its lock (new packs were written locked).
        let kept: std::collections::HashSet<String> = s.keep.iter().map(|(pack, _)| pack.to_hex()).collect();
        super::object_lock::upkeep(ctx, repo, Some(&kept), true);
        let rec = LogRecord::new("prune", "success")
            .figure("packs_deleted", p.packs_deleted().count())
            .figure("bytes_freed", s.bytes_delete + s.bytes_repack_unused + leftover_bytes)
            .figure("leftovers_deleted", p.leftovers.len());
        super::record(repo, rec);
    }
    let orphans_deleted = p.packs_orphaned.iter().filter(|o| s.delete.contains(o)).count();
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": dry_run,
                "packs_delete": s.delete.len(), "packs_repack": s.repack.len(),
                "packs_keep": s.keep.len(), "packs_orphaned": p.packs_orphaned.len(),
                "packs_missing": p.packs_missing.len(), "packs_unreadable": s.unreadable.len(),
                "packs_too_new": p.packs_too_new.len(),
                "bytes_delete": s.bytes_delete, "bytes_repack_used": s.bytes_repack_used,
                "bytes_repack_unused": s.bytes_repack_unused, "bytes_keep": s.bytes_keep,
                "blobs_used": s.blobs_used, "blobs_unused": s.blobs_unused,
                "copies_failing_verification": s.bad.len(),
                "leftovers": p.leftovers.iter().map(|l| &l.path).collect::<Vec<_>>(),
                "bytes_leftovers": leftover_bytes,
            })
        );
    } else if !ctx.quiet {
        let verb = if dry_run { "would" } else { "did" };
        println!(
            "prune {verb} delete {} packs ({}, {} of them unindexed), repack {} packs (keeping {}, dropping {}); {} packs ({}) stay",
            s.delete.len(),
            format::size(s.bytes_delete),
            orphans_deleted,
            s.repack.len(),
            format::size(s.bytes_repack_used),
            format::size(s.bytes_repack_unused),
            s.keep.len(),
            format::size(s.bytes_keep),
        );
        if p.by_records && !s.unreadable.is_empty() {
            println!(
                "prune (maintenance key) left {} packs whose tables it cannot read (written before maintenance was turned on, or damaged): run `cairn repair maintenance --repack` with a full key once, or a full key's prune judges them",
                s.unreadable.len()
            );
        }
        if !p.packs_too_new.is_empty() {
            println!(
                "prune left {} unindexed packs alone: written within the last hour (or since the oldest lock), a backup may still be indexing them; a later prune judges them",
                p.packs_too_new.len()
            );
        }
        if !p.leftovers.is_empty() {
            println!(
                "prune {verb} delete {} temporary files ({}) that interrupted writes left",
                p.leftovers.len(),
                format::size(leftover_bytes)
            );
        }
    }
    Ok(())
}

/// What prune found that a user should know: it changes nothing about what is deleted.
fn warn_about(p: &cairn::ops::prune::PrunePlan) {
    let s = &p.packs;
    for why in &p.index_files_skipped {
        eprintln!("cairn: warning: {why}; left out, and replaced by the new index");
    }
    if !p.packs_missing.is_empty() {
        eprintln!(
            "cairn: warning: index files name {} packs that are not stored; their entries were ignored (`cairn check` tells which snapshots need them)",
            p.packs_missing.len()
        );
    }
    if !s.unreadable.is_empty() {
        eprintln!(
            "cairn: warning: {} packs could not be read and were left in place; run `cairn check --read-data`",
            s.unreadable.len()
        );
    }
    if !s.bad.is_empty() {
        eprintln!(
            "cairn: warning: {} indexed copies of used blobs do not hold what their index entries say; a verified copy was kept instead, and the false entries were dropped",
            s.bad.len()
        );
    }
    if !s.unverifiable.is_empty() {
        eprintln!(
            "cairn: warning: {} used blobs have no intact copy; every copy was kept; run `cairn check --read-data`",
            s.unverifiable.len()
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shares_parse() {
        assert_eq!(super::parse_share("10%").unwrap(), 0.10);
        assert_eq!(super::parse_share("0").unwrap(), 0.0);
        assert_eq!(super::parse_share("0.25").unwrap(), 0.25);
        assert!(super::parse_share("150%").is_err() && super::parse_share("x").is_err());
    }
}
