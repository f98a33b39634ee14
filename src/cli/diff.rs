//! `cairn diff`: what changed between two snapshots.

use super::{exit, format, Ctx};
use cairn::browse::diff::{diff, one_side, Change, ChangeKind};
use cairn::browse::{self, Browser};
use cairn::format::tree::{Node, NodeKind};
use cairn::{ErrorKind, Result};
use std::io::Write;

/// Files larger than this are not shown line by line with --content.
const CONTENT_LIMIT: u64 = 4 << 20;

/// Show what changed between two snapshots
#[derive(clap::Args)]
#[command(after_help = "\
Each line starts with + added, - removed, M modified content, T type changed, or
U metadata only (the changed fields follow: mode, owner, group, mtime, xattrs).

Examples:
  cairn diff 3f9a1c latest
  cairn diff 3f9a1c latest /opt/apigateway/groups --content")]
pub struct Args {
    /// The older snapshot (id prefix, name or 'latest')
    old: String,
    /// The newer snapshot (id prefix, name or 'latest')
    new: String,
    /// Compare only this absolute path and what is below it
    #[arg(default_value = "/")]
    path: String,
    /// Show a unified diff of every modified text file (UTF-8, up to 4 MiB)
    #[arg(long)]
    content: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

#[derive(Default)]
struct Totals {
    added: u64,
    removed: u64,
    modified: u64,
    metadata: u64,
    bytes_added: u64,
    bytes_removed: u64,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "diff")?;
    let filter = a.filter.filter();
    let (old_id, old_snap) = cairn::repo::select::find(&repo, &a.old, &filter)?;
    let (new_id, new_snap) = cairn::repo::select::find(&repo, &a.new, &filter)?;
    let browser = Browser::open(&repo)?;
    let path = browse::components(a.path.as_bytes()).fold(b"/".to_vec(), |p, c| browse::join(&p, c));
    let old = present(browser.lookup(&old_snap, &path))?;
    let new = present(browser.lookup(&new_snap, &path))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut totals = Totals::default();
    let mut json = Vec::new();
    let mut report = |c: Change| -> Result<()> {
        count(&mut totals, &c);
        if ctx.json {
            json.push(change_json(&browser, &c, a.content)?);
            return Ok(());
        }
        writeln!(out, "{}", line(&c)).map_err(super::stdout_error)?;
        if a.content {
            if let Some(text) = text_diff(&browser, &c)? {
                write!(out, "{text}").map_err(super::stdout_error)?;
            }
        }
        Ok(())
    };
    compare(&browser, &path, &old, &new, &mut report)?;
    let t = totals;
    if ctx.json {
        writeln!(out, "{}", document(old_id, new_id, json, &t)).map_err(super::stdout_error)?;
    } else if !ctx.quiet {
        writeln!(
            out,
            "{} added, {} removed, {} modified, {} metadata only; {} added, {} removed",
            t.added,
            t.removed,
            t.modified,
            t.metadata,
            format::size(t.bytes_added),
            format::size(t.bytes_removed)
        )
        .map_err(super::stdout_error)?;
    }
    out.flush().map_err(super::stdout_error)?;
    Ok(exit::SUCCESS)
}

/// Report every change at and below `path`, whichever side it is missing from.
fn compare(
    browser: &Browser<'_>,
    path: &[u8],
    old: &Option<Node>,
    new: &Option<Node>,
    report: &mut dyn FnMut(Change) -> Result<()>,
) -> Result<()> {
    match (old, new) {
        (Some(o), Some(n)) => diff(browser, path, o, n, report),
        (Some(o), None) => one_side(browser, path, o, ChangeKind::Removed, report),
        (None, Some(n)) => one_side(browser, path, n, ChangeKind::Added, report),
        (None, None) => Err(cairn::Error::new(
            ErrorKind::NotFound,
            format!("{} is in neither snapshot", browse::display(path)),
        )),
    }
}

/// One change as `diff --json` lists it; with `content`, a modified text file's diff.
fn change_json(browser: &Browser<'_>, c: &Change, content: bool) -> Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "path": String::from_utf8_lossy(&c.path),
        "change": c.kind.name(),
        "old_size": c.old.as_ref().map(format::node_size),
        "new_size": c.new.as_ref().map(format::node_size),
        "fields": c.fields,
        "values": field_values(c),
    });
    if content {
        v["content"] = text_diff(browser, c)?.into();
    }
    Ok(v)
}

fn document(
    old: cairn::id::SnapshotId,
    new: cairn::id::SnapshotId,
    changes: Vec<serde_json::Value>,
    t: &Totals,
) -> serde_json::Value {
    serde_json::json!({
        "old": old.to_hex(),
        "new": new.to_hex(),
        "changes": changes,
        "summary": {
            "added": t.added, "removed": t.removed, "modified": t.modified, "metadata": t.metadata,
            "bytes_added": t.bytes_added, "bytes_removed": t.bytes_removed,
        },
    })
}

/// What `diff --json [--content]` prints, as one value (the dashboard's diff).
pub(super) fn json(
    browser: &Browser<'_>,
    (old_id, old_snap): (cairn::id::SnapshotId, &cairn::format::snapshot::Snapshot),
    (new_id, new_snap): (cairn::id::SnapshotId, &cairn::format::snapshot::Snapshot),
    path: &str,
    content: bool,
) -> Result<serde_json::Value> {
    let path = browse::components(path.as_bytes()).fold(b"/".to_vec(), |p, c| browse::join(&p, c));
    let old = present(browser.lookup(old_snap, &path))?;
    let new = present(browser.lookup(new_snap, &path))?;
    let mut totals = Totals::default();
    let mut changes = Vec::new();
    compare(browser, &path, &old, &new, &mut |c| {
        count(&mut totals, &c);
        changes.push(change_json(browser, &c, content)?);
        Ok(())
    })?;
    Ok(document(old_id, new_id, changes, &totals))
}

/// A path missing from one snapshot is not an error: the other side was added or removed.
fn present(found: Result<Node>) -> Result<Option<Node>> {
    match found {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn count(t: &mut Totals, c: &Change) {
    let old = c.old.as_ref().map_or(0, format::node_size);
    let new = c.new.as_ref().map_or(0, format::node_size);
    match c.kind {
        ChangeKind::Added => t.added += 1,
        ChangeKind::Removed => t.removed += 1,
        ChangeKind::Modified | ChangeKind::TypeChanged => t.modified += 1,
        ChangeKind::Metadata => t.metadata += 1,
    }
    t.bytes_added += new.saturating_sub(old);
    t.bytes_removed += old.saturating_sub(new);
}

fn line(c: &Change) -> String {
    let path = String::from_utf8_lossy(&c.path);
    let size = |n: &Option<Node>| n.as_ref().map_or(0, format::node_size);
    let is_file = |n: &Option<Node>| matches!(n.as_ref().map(|n| &n.kind), Some(NodeKind::File { .. }));
    let fields = match (&c.old, &c.new) {
        (Some(o), Some(n)) if !c.fields.is_empty() => {
            let shown: Vec<String> = c
                .fields
                .iter()
                .map(|f| format!("{f} {} -> {}", field_value(f, o), field_value(f, n)))
                .collect();
            format!(" [{}]", shown.join(", "))
        }
        _ => String::new(),
    };
    match c.kind {
        ChangeKind::Added if is_file(&c.new) => format!("+ {path}  ({})", format::size(size(&c.new))),
        ChangeKind::Added => format!("+ {path}"),
        ChangeKind::Removed => format!("- {path}"),
        ChangeKind::Modified if is_file(&c.old) => {
            format!("M {path}  ({} -> {}){fields}", format::size(size(&c.old)), format::size(size(&c.new)))
        }
        ChangeKind::Modified => format!("M {path}{fields}"),
        ChangeKind::TypeChanged => format!("T {path}"),
        ChangeKind::Metadata => format!("U {path}{fields}"),
    }
}

/// A metadata field's value as `diff` shows it (the field names of `Change::fields`).
fn field_value(field: &str, n: &Node) -> String {
    match field {
        "mode" => format!("{:04o}", n.mode & 0o7777),
        "owner" => format!("{}({})", format::owner(&n.user, n.uid), n.uid),
        "group" => format!("{}({})", format::owner(&n.group, n.gid), n.gid),
        "mtime" => format::local_time(n.mtime),
        "xattrs" => {
            let names: Vec<String> = n
                .xattrs
                .iter()
                .map(|(k, v)| format!("{}:{}B", String::from_utf8_lossy(k), v.len()))
                .collect();
            format!("{{{}}}", names.join(" "))
        }
        _ => String::new(),
    }
}

/// Old and new value of each changed metadata field, for --json.
fn field_values(c: &Change) -> serde_json::Value {
    let (Some(o), Some(n)) = (&c.old, &c.new) else { return serde_json::json!({}) };
    c.fields
        .iter()
        .map(|f| (f.to_string(), serde_json::json!({"old": field_value(f, o), "new": field_value(f, n)})))
        .collect()
}

/// A unified diff of a modified text file; None for anything else (an added or removed
/// file's whole content would bury the changed settings).
fn text_diff(browser: &Browser<'_>, c: &Change) -> Result<Option<String>> {
    if c.kind != ChangeKind::Modified {
        return Ok(None);
    }
    let (Some(old), Some(new)) = (text(browser, &c.old)?, text(browser, &c.new)?) else {
        return Ok(None);
    };
    if old == new {
        return Ok(None);
    }
    let path = String::from_utf8_lossy(&c.path);
    let diff = similar::TextDiff::from_lines(&old, &new);
    Ok(Some(
        diff.unified_diff().context_radius(3).header(&format!("a{path}"), &format!("b{path}")).to_string(),
    ))
}

/// A small text file's content; None when it is not one.
fn text(browser: &Browser<'_>, node: &Option<Node>) -> Result<Option<String>> {
    let Some(node) = node else { return Ok(None) };
    let NodeKind::File { size, chunks } = &node.kind else { return Ok(None) };
    if *size > CONTENT_LIMIT {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(*size as usize);
    let mut reader = browser.reader(chunks);
    while let Some(chunk) = reader.next_chunk()? {
        bytes.extend_from_slice(&chunk);
    }
    if bytes.contains(&0) {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}
