//! `cairn find`: which snapshots hold a file, and its versions.

use super::{exit, format, Ctx};
use cairn::browse::find::Finder;
use cairn::browse::Browser;
use cairn::format::tree::{Node, NodeKind};
use cairn::format::Timespec;
use cairn::id::SnapshotId;
use cairn::ops::exclude::{ExcludeOptions, Excludes};
use cairn::Result;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Find files and folders across snapshots
#[derive(clap::Args)]
#[command(after_help = "\
PATTERN follows the --exclude rules: with a '/' it matches the whole absolute path
(`*` stays within one name, `**` crosses folders), without one it matches names.
Each path is listed once with its versions: the distinct contents and metadata it had,
and the snapshots holding each.

Examples:
  cairn find nodemanager.xml
  cairn find '/opt/apigateway/groups/**/*.xml' --newer '2026-11-01 00:00'
  cairn find '*.sql' --larger 100M --snapshot latest")]
pub struct Args {
    /// Name or path pattern
    pattern: String,
    /// Search only this snapshot (id prefix, name or 'latest'; repeatable; default: all the filter passes)
    #[arg(long)]
    snapshot: Vec<String>,
    /// Only entries modified after this time ("YYYY-MM-DD HH:MM" local, or RFC 3339)
    #[arg(long, value_parser = format::parse_time)]
    newer: Option<Timespec>,
    /// Only entries modified before this time
    #[arg(long, value_parser = format::parse_time)]
    older: Option<Timespec>,
    /// Only files larger than this size (e.g. 10M)
    #[arg(long, value_parser = format::parse_size)]
    larger: Option<u64>,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

/// One version of a path: the node as first seen and the snapshots holding it.
struct Version {
    node: Node,
    snapshots: Vec<(SnapshotId, Timespec)>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let pattern = Excludes::new(&ExcludeOptions { patterns: vec![a.pattern.clone()], ..Default::default() })?;
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "find")?;
    let filter = a.filter.filter();
    let snapshots = match a.snapshot.is_empty() {
        true => cairn::repo::select::matching(&repo, &filter)?,
        false => {
            a.snapshot.iter().map(|s| cairn::repo::select::find(&repo, s, &filter)).collect::<Result<_>>()?
        }
    };
    let browser = Browser::open(&repo)?;
    let mut finder = Finder::new(&browser, |path, node| {
        let is_dir = matches!(node.kind, NodeKind::Dir { .. });
        pattern.excludes_path(Path::new(OsStr::from_bytes(path)), is_dir)
            && a.newer.is_none_or(|t| node.mtime > t)
            && a.older.is_none_or(|t| node.mtime < t)
            && a.larger.is_none_or(|min| format::node_size(node) > min)
    });
    let mut paths: BTreeMap<Vec<u8>, Vec<Version>> = BTreeMap::new();
    for (id, snap) in &snapshots {
        for (path, node) in finder.search(b"/", &snap.tree)?.iter() {
            let versions = paths.entry(path.clone()).or_default();
            match versions.iter_mut().find(|v| same_version(&v.node, node)) {
                Some(v) => v.snapshots.push((*id, snap.time)),
                None => versions.push(Version { node: node.clone(), snapshots: vec![(*id, snap.time)] }),
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if ctx.json {
        let list: Vec<_> = paths
            .iter()
            .map(|(path, versions)| {
                let versions: Vec<_> = versions
                    .iter()
                    .map(|v| {
                        let mut j = format::node_json(path, &v.node);
                        j["snapshots"] = v.snapshots.iter().map(|(id, _)| id.to_hex()).collect();
                        j
                    })
                    .collect();
                serde_json::json!({ "path": String::from_utf8_lossy(path), "versions": versions })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(list)).map_err(super::stdout_error)?;
    } else {
        for (path, versions) in &paths {
            writeln!(out, "{}", String::from_utf8_lossy(path)).map_err(super::stdout_error)?;
            for v in versions {
                let n = &v.node;
                let held: Vec<String> = v.snapshots.iter().map(|(id, _)| id.short()).collect();
                let (first, last) = (v.snapshots[0].1, v.snapshots[v.snapshots.len() - 1].1);
                let when = match held.len() {
                    1 => format!("in snapshot {} of {}", held[0], format::local_time(first)),
                    n => format!(
                        "in {n} snapshots from {} to {}: {}",
                        format::local_time(first),
                        format::local_time(last),
                        held.join(" ")
                    ),
                };
                writeln!(
                    out,
                    "  {} {:>10}  modified {}  {when}",
                    format::mode_string(n),
                    format::size(format::node_size(n)),
                    format::local_time(n.mtime),
                )
                .map_err(super::stdout_error)?;
            }
        }
        if !ctx.quiet {
            writeln!(out, "{} paths in {} snapshots searched", paths.len(), snapshots.len())
                .map_err(super::stdout_error)?;
        }
    }
    out.flush().map_err(super::stdout_error)?;
    Ok(exit::SUCCESS)
}

/// Two sightings of a path are one version if content and the metadata a user sets agree.
/// A folder's content is what is below it, listed separately, so its tree id is not compared.
fn same_version(a: &Node, b: &Node) -> bool {
    let same_content = match (&a.kind, &b.kind) {
        (NodeKind::Dir { .. }, NodeKind::Dir { .. }) => true,
        (x, y) => x == y,
    };
    same_content && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime == b.mtime
}
