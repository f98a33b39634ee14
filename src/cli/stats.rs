//! `cairn stats`: sizes, deduplication and compression of snapshots.

use super::{exit, format, Ctx};
use cairn::browse::stats::Stats;
use cairn::browse::Browser;
use cairn::Result;

/// Show what snapshots hold and what they cost in the repository
#[derive(clap::Args)]
#[command(after_help = "\
Logical size is what a restore writes. Unique data is the chunks and folder listings the
snapshots need, each counted once; stored is what those take in packs after compression
and encryption. 'Added' is what each backup stored that the repository lacked then.

Examples:
  cairn stats
  cairn stats latest --json")]
pub struct Args {
    /// Snapshots to count (id prefixes or 'latest'; default: all)
    snapshots: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "stats")?;
    let snapshots = super::select_snapshots(&repo, &a.snapshots, a.snapshots.is_empty())?;
    let browser = Browser::open(&repo)?;
    let mut stats = Stats::new(&browser);
    let mut per_snapshot = Vec::new();
    for (id, snap) in &snapshots {
        per_snapshot.push((id, snap, stats.add_tree(&snap.tree)?));
    }
    let data = stats.data();
    let logical: u64 = per_snapshot.iter().map(|(_, _, f)| f.bytes).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let index = browser.index();
    if ctx.json {
        let snaps: Vec<_> = per_snapshot
            .iter()
            .map(|(id, s, f)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": format::rfc3339(s.time), "files": f.files, "dirs": f.dirs,
                    "logical_bytes": f.bytes, "bytes_added": s.summary.bytes_added,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "snapshots": snaps,
            "logical_bytes": logical,
            "unique_bytes": data.chunk_bytes,
            "listing_bytes": data.tree_bytes,
            "stored_bytes": data.stored_bytes,
            "chunks": data.chunks,
            "trees": data.trees,
            "packs": data.packs,
            "missing_blobs": data.missing,
            "dedup_ratio": ratio(logical, data.chunk_bytes),
            "compression_ratio": ratio(data.chunk_bytes + data.tree_bytes, data.stored_bytes),
            "repository": { "blobs": index.len(), "packs": index.pack_count() },
        });
        println!("{doc}");
        return Ok(exit::SUCCESS);
    }
    let rows: Vec<Vec<String>> = per_snapshot
        .iter()
        .map(|(id, s, f)| {
            vec![
                id.short(),
                format::local_time(s.time),
                f.files.to_string(),
                format::size(f.bytes),
                format::size(s.summary.bytes_added),
            ]
        })
        .collect();
    format::table(&["ID", "Time", "Files", "Logical size", "Added"], &rows);
    println!();
    println!("{} snapshots", per_snapshot.len());
    println!("  logical size   {}", format::size(logical));
    println!(
        "  unique data    {} in {} chunks, and {} in {} folder listings",
        format::size(data.chunk_bytes),
        data.chunks,
        format::size(data.tree_bytes),
        data.trees
    );
    println!("  stored         {} in {} packs", format::size(data.stored_bytes), data.packs);
    println!("  deduplication  {:.2}x (logical / unique data)", ratio(logical, data.chunk_bytes));
    println!(
        "  compression    {:.2}x (unique data and listings / stored)",
        ratio(data.chunk_bytes + data.tree_bytes, data.stored_bytes)
    );
    println!("repository: {} blobs in {} packs", index.len(), index.pack_count());
    if data.missing > 0 {
        eprintln!(
            "cairn: warning: {} blobs these snapshots need are missing; run `cairn check`",
            data.missing
        );
        return Ok(exit::DAMAGED);
    }
    Ok(exit::SUCCESS)
}
