//! `cairn check`: verify the repository.

use super::{exit, format, Ctx};
use cairn::ops::check::{check, CheckOptions, Subset};
use cairn::repo::log::LogRecord;
use cairn::Result;

/// Check that every snapshot's data is present and intact
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cairn check --read-data")]
pub struct Args {
    /// Also read, decrypt and re-hash every blob of every pack
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read only a deterministic part of the packs: N/M (runs 1/5 .. 5/5 cover all) or P%
    #[arg(long, value_parser = |s: &str| Subset::parse(s).map_err(|e| e.to_string()))]
    read_data_subset: Option<Subset>,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?.reading_the_store_only();
    let _lock = ctx.read_lock(&repo, "check")?;
    let subset = if a.read_data { Some(Subset::All) } else { a.read_data_subset };
    let structure_only = repo.key_kind() == cairn::crypto::keys::KeyKind::Maintenance;
    // A snapshot filter limits which trees a full check walks; a structure check walks
    // none and checks every snapshot file's summary, so a filter (a job's label) is moot.
    if structure_only && subset.is_some() {
        return Err(cairn::Error::invalid(
            "a maintenance key checks structure only: it cannot read data; leave out --read-data, or use a full key",
        ));
    }
    let r = if structure_only {
        cairn::ops::check::check_structure(&repo, &ctx.interrupt)?
    } else {
        check(&repo, &CheckOptions { read_data: subset, snapshots: a.filter.filter() }, &ctx.interrupt)?
    };
    let rec = LogRecord::new("check", if r.healthy() { "success" } else { "failed" })
        .figure("packs_read", r.packs_read)
        .figure("problems", r.problems.len())
        .figure("bytes_read", r.bytes_read)
        .figure("read_data", subset.map_or("none".to_string(), |s| s.to_string()));
    super::record(&repo, rec);
    if ctx.json {
        let problems: Vec<_> = r
            .problems
            .iter()
            .map(|p| serde_json::json!({"object": p.object, "damage": p.damage, "affected": p.affected}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                // partial: healthy as far as it looked, but only part of the data was read.
                "status": match (r.healthy(), subset) {
                    (false, _) => "failed",
                    (true, Some(Subset::Part { .. } | Subset::Share(_))) => "partial",
                    (true, _) => "success",
                },
                "snapshots": r.snapshots, "trees": r.trees, "packs": r.packs,
                "packs_read": r.packs_read, "blobs_read": r.blobs_read, "bytes_read": r.bytes_read,
                "problems": problems, "notes": r.notes,
            })
        );
    } else {
        for p in &r.problems {
            eprintln!("damaged: {}: {}", p.object, p.damage);
            for f in &p.affected {
                eprintln!("  affects {f}");
            }
        }
        if !ctx.quiet {
            for n in &r.notes {
                println!("note: {n}");
            }
            let read = if subset.is_some() {
                format!(", {} blobs ({}) read and verified", r.blobs_read, format::size(r.bytes_read))
            } else {
                String::new()
            };
            println!(
                "{}: {} snapshots, {} trees, {} packs{read}",
                if r.healthy() { "no problems found" } else { "DAMAGE FOUND" },
                r.snapshots,
                r.trees,
                r.packs
            );
        }
    }
    Ok(if r.healthy() { exit::SUCCESS } else { exit::DAMAGED })
}
