//! `cairn snapshots`: list snapshots.

use super::{exit, format, Ctx};
use cairn::Result;

/// List snapshots, oldest first
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cairn snapshots --tag prod\n  cairn snapshots --json")]
pub struct Args {
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let (all, damaged) = repo.snapshots_and_damage()?;
    for (name, e) in &damaged {
        eprintln!("cairn: warning: snapshot {name} is damaged ({e}); `cairn repair snapshots` removes it");
    }
    let snaps = a.filter.filter().apply(all);
    if ctx.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "time": format::rfc3339(s.time),
                    "host": s.host,
                    "user": s.user,
                    "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
                    "tags": s.tags,
                    "type": cairn::repo::select::snapshot_type(s),
                    "labels": s.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "parent": s.parent.map(|p| p.to_hex()),
                    "original": s.original.map(|p| p.to_hex()),
                    "tree": s.tree.to_hex(),
                    "partial": s.is_partial(),
                    "summary": {
                        "files_new": s.summary.files_new,
                        "files_changed": s.summary.files_changed,
                        "files_unchanged": s.summary.files_unchanged,
                        "files": s.summary.files, "dirs": s.summary.dirs, "others": s.summary.others,
                        "bytes_read": s.summary.bytes_read, "total_bytes": s.summary.total_bytes,
                        "chunks_new": s.summary.chunks_new, "bytes_added": s.summary.bytes_added,
                        "errors": s.summary.errors, "duration_ms": s.summary.duration_ms,
                    },
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(if damaged.is_empty() { exit::SUCCESS } else { exit::DAMAGED });
    }
    // Snapshots made by jobs with a snapshot-name template carry a name beside the id.
    let name = |s: &cairn::format::snapshot::Snapshot| {
        s.labels.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let named = snaps.iter().any(|(_, s)| !name(s).is_empty());
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            let mut row = vec![
                id.short(),
                format::local_time(s.time),
                s.host.clone(),
                cairn::repo::select::snapshot_type(s).to_string(),
                s.tags.join(","),
                s.summary.files.to_string(),
                format::size(s.summary.total_bytes),
                format!(
                    "{}{}",
                    s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>().join(" "),
                    if s.is_partial() { " (partial)" } else { "" }
                ),
            ];
            if named {
                row.insert(1, name(s));
            }
            row
        })
        .collect();
    let mut header = vec!["ID", "Time", "Host", "Type", "Tags", "Files", "Size", "Paths"];
    if named {
        header.insert(1, "Name");
    }
    format::table(&header, &rows);
    if !ctx.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(if damaged.is_empty() { exit::SUCCESS } else { exit::DAMAGED })
}
