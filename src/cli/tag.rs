//! `cairn tag`: edit the tags and labels of snapshots.

use super::{exit, Ctx};
use cairn::ops::tag::{tag_snapshots, TagEdit};
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};

/// Add, remove or replace tags and labels of snapshots
#[derive(clap::Args)]
#[command(after_help = "\
A snapshot's id is the hash of its record, so an edited snapshot gets a new id; it names
the old one as its original (or keeps the original the old one named), and the activity
log records the change.

Examples:
  cairn tag latest --add before-sp7
  cairn tag 3f9a1c --set prod --label owner=platform --remove-label ticket")]
pub struct Args {
    /// Snapshots to edit (id prefixes or 'latest')
    snapshots: Vec<String>,
    /// Edit every snapshot
    #[arg(long, conflicts_with = "snapshots")]
    all: bool,
    /// Add this tag (repeatable)
    #[arg(long)]
    add: Vec<String>,
    /// Remove this tag (repeatable)
    #[arg(long)]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ''` removes every tag)
    #[arg(long)]
    set: Vec<String>,
    /// Set label KEY=VALUE (repeatable)
    #[arg(long, value_parser = super::backup::parse_label)]
    label: Vec<(String, String)>,
    /// Remove the label with this key (repeatable)
    #[arg(long)]
    remove_label: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let edit =
        TagEdit { set: a.set, add: a.add, remove: a.remove, labels: a.label, remove_labels: a.remove_label };
    if edit.is_empty() {
        return Err(Error::invalid(
            "nothing to change: give --add, --remove, --set, --label or --remove-label",
        ));
    }
    let repo = ctx.open()?;
    repo.require_full_key("edit snapshots")?;
    // The rotation stores each snapshot anew beside it, so a tag edit could come back twice.
    repo.refuse_during_content_rotation("edit snapshots")?;
    let _lock = ctx.lock(&repo, false, "tag")?;
    let selected = super::select_snapshots(&repo, &a.snapshots, a.all)?;
    let changed = tag_snapshots(&repo, &selected, &edit, |r| {
        let mut rec = LogRecord::new("tag snapshot", "success")
            .figure("original", r.old.short())
            .figure("tags", r.snapshot.tags.join(","))
            .figure(
                "labels",
                r.snapshot.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            );
        rec.snapshot = Some(r.new);
        super::record(&repo, rec);
    })?;
    let changed: Vec<_> = changed.into_iter().map(|r| (r.old, r.new, r.snapshot)).collect();
    if ctx.json {
        let list: Vec<_> = changed
            .iter()
            .map(|(old, id, s)| {
                serde_json::json!({"snapshot": old.to_hex(), "new": id.to_hex(), "tags": s.tags, "labels": s.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if !ctx.quiet {
        for (old, id, s) in &changed {
            println!("snapshot {} -> {}: tags {}", old.short(), id.short(), s.tags.join(","));
        }
        println!("{} snapshots changed", changed.len());
    }
    Ok(exit::SUCCESS)
}
