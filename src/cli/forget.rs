//! `cairn forget`: remove snapshots by a retention policy (or by id).

use super::{exit, format, Ctx};
use cairn::ops::forget::{plan_with_arrivals, remove_snapshots, GroupBy, RetentionPolicy, Within};
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};

/// Remove snapshots a retention policy does not keep (data goes with `prune`)
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn forget --keep-daily 30 --keep-weekly 12 --keep-monthly 12 --dry-run\n  cairn forget --keep-within 30d --prune --max-unused 0\n  cairn forget 3f9a1c"
)]
pub struct Args {
    /// Snapshots to remove by id (instead of a policy)
    ids: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    /// ... of each of the N most recent days
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    /// ... of each of the N most recent ISO weeks
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    /// ... of each of the N most recent months
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    /// ... of each of the N most recent years
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
    /// Keep snapshots not older than this span before now (e.g. 30d, 2w, 6m, 1y6m)
    #[arg(long, value_parser = |s: &str| Within::parse(s).map_err(|e| e.to_string()))]
    keep_within: Option<Within>,
    /// Keep snapshots with this tag (repeatable)
    #[arg(long)]
    keep_tag: Vec<String>,
    /// Judge groups of snapshots separately: any of host,paths,tags
    #[arg(long, default_value = "host,paths")]
    group_by: String,
    /// Only consider snapshots with this tag (repeatable: any)
    #[arg(long)]
    tag: Vec<String>,
    /// Only consider snapshots of this host
    #[arg(long)]
    host: Option<String>,
    /// Only consider snapshots of this path (repeatable: any)
    #[arg(long)]
    path: Vec<String>,
    /// Only consider snapshots with this label KEY=VALUE (repeatable: all must match)
    #[arg(long, value_parser = super::backup::parse_label)]
    label: Vec<(String, String)>,
    /// Show what would be removed, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Also delete the data no snapshot uses any more
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_opts: super::prune::PruneArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    // A maintenance key judges snapshots by their summaries (format-spec/maintenance-key.md).
    let by_summary = repo.key_kind() == cairn::crypto::keys::KeyKind::Maintenance;
    if !by_summary {
        repo.require_full_key("forget snapshots")?;
    }
    if by_summary && !a.path.is_empty() {
        return Err(Error::invalid(
            "a maintenance key cannot tell snapshots by path (it sees keyed hashes only): leave out --path, or use a full key",
        ));
    }
    repo.will_list(&[cairn::backend::FileType::Snapshot]);
    let _lock = ctx.lock(&repo, true, "forget")?;
    let policy = RetentionPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
        tags: a.keep_tag.clone(),
    };
    let (snapshots, unreadable) = repo.snapshots_and_damage()?;
    let selected: Vec<_> = snapshots
        .into_iter()
        .filter(|(_, s)| a.tag.is_empty() || s.tags.iter().any(|t| a.tag.contains(t)))
        .filter(|(_, s)| a.host.as_ref().is_none_or(|h| &s.host == h))
        .filter(|(_, s)| {
            a.path.is_empty() || s.paths.iter().any(|p| a.path.iter().any(|q| q.as_bytes() == p))
        })
        .filter(|(_, s)| a.label.iter().all(|l| s.labels.contains(l)))
        .collect();
    let mut drop = Vec::new();
    let mut report = Vec::new();
    if !a.ids.is_empty() {
        if !policy.is_empty() {
            return Err(Error::invalid("give snapshot ids or a --keep-* policy, not both"));
        }
        for spec in &a.ids {
            drop.push(repo.resolve_snapshot_id(spec)?);
        }
        if !by_summary {
            cairn::repo::refuse_unreadable(&unreadable, &drop, "forget")?;
        }
    } else {
        if by_summary {
            // Leaving a snapshot out of its group can only keep more of the others.
            for (name, why) in &unreadable {
                if !ctx.quiet {
                    eprintln!(
                        "cairn: warning: snapshot {} is kept and counts toward no rule: {why}",
                        &name[..name.len().min(8)]
                    );
                }
            }
        } else {
            cairn::repo::refuse_unreadable(&unreadable, &[], "forget")?;
        }
        let tz = jiff::tz::TimeZone::system();
        let ids: Vec<_> = selected.iter().map(|(id, _)| *id).collect();
        let arrived = cairn::ops::forget::arrivals(&repo, &ids)?;
        let groups = plan_with_arrivals(
            selected,
            &arrived,
            &policy,
            GroupBy::parse(&a.group_by)?,
            &tz,
            jiff::Timestamp::now(),
        )?;
        for g in &groups {
            for d in &g.decisions {
                if d.forged && !ctx.quiet {
                    eprintln!(
                        "cairn: warning: snapshot {} says it was made at {}, after it reached the store; \
                         its time is forged (a compromised host?): it is kept and counts toward no rule",
                        d.id.short(),
                        format::local_time(d.snapshot.time)
                    );
                } else if d.future && !ctx.quiet {
                    eprintln!(
                        "cairn: warning: snapshot {} is dated in the future ({}); it is kept and counts toward no rule until then",
                        d.id.short(),
                        format::local_time(d.snapshot.time)
                    );
                }
                if !d.keep() {
                    drop.push(d.id);
                }
            }
        }
        report = groups;
    }
    if !a.dry_run {
        remove_snapshots(&repo, &drop)?;
        let removed: Vec<String> = drop.iter().map(|id| id.to_hex()).collect();
        let rec = LogRecord::new("forget", "success")
            .figure("snapshots_removed", drop.len())
            .figure("removed", removed.join(" "));
        super::record(&repo, rec);
    }
    print(ctx, &report, &drop, a.dry_run);
    if a.prune {
        super::prune::prune(ctx, &repo, &a.prune_opts, a.dry_run)?;
    }
    Ok(exit::SUCCESS)
}

fn print(ctx: &Ctx, groups: &[cairn::ops::forget::Group], drop: &[cairn::id::SnapshotId], dry_run: bool) {
    if ctx.json {
        let g: Vec<_> = groups
            .iter()
            .map(|g| {
                let d: Vec<_> = g
                    .decisions
                    .iter()
                    .map(|d| {
                        serde_json::json!({"id": d.id.to_hex(), "time": format::rfc3339(d.snapshot.time),
                                           "keep": d.keep(), "reasons": d.reasons, "future": d.future, "forged": d.forged,
                                           "written_by": d.snapshot.written_by.name()})
                    })
                    .collect();
                serde_json::json!({"group": g.key, "snapshots": d})
            })
            .collect();
        let removed: Vec<_> = drop.iter().map(|i| i.to_hex()).collect();
        println!("{}", serde_json::json!({"dry_run": dry_run, "groups": g, "removed": removed}));
        return;
    }
    if ctx.quiet {
        return;
    }
    for g in groups {
        println!("{}:", if g.key.is_empty() { "all snapshots" } else { &g.key });
        let rows: Vec<Vec<String>> = g
            .decisions
            .iter()
            .map(|d| {
                vec![
                    d.id.short(),
                    format::local_time(d.snapshot.time),
                    if d.keep() { "keep" } else { "remove" }.to_string(),
                    d.reasons.join(", "),
                ]
            })
            .collect();
        format::table(&["ID", "Time", "Decision", "Kept by"], &rows);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {} snapshots", drop.len());
}
