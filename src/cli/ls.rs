//! `cairn ls`: list a folder (or a whole subtree) of a snapshot.

use super::{exit, format, Ctx};
use cairn::browse::{self, Browser};
use cairn::format::tree::NodeKind;
use cairn::Result;
use std::io::Write;

/// List the files of a snapshot
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn ls latest /opt/apigateway/conf\n  cairn ls -l --recursive 3f9a1c /opt/apigateway/groups"
)]
pub struct Args {
    /// Snapshot id prefix, name, or 'latest' (the newest one the filter passes)
    snapshot: String,
    /// Absolute path in the snapshot (default: the root)
    #[arg(default_value = "/")]
    path: String,
    /// Long form: mode, owner, group, size, modification time
    #[arg(short, long)]
    long: bool,
    /// Everything below the path, not only its entries
    #[arg(short = 'R', long)]
    recursive: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "ls")?;
    let (_, snap) = cairn::repo::select::find(&repo, &a.snapshot, &a.filter.filter())?;
    let browser = Browser::open(&repo)?;
    let start = browse::components(a.path.as_bytes()).fold(b"/".to_vec(), |p, c| browse::join(&p, c));
    let top = browser.lookup(&snap, &start)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut print = |path: &[u8], node: &cairn::format::tree::Node| -> Result<()> {
        let line = if ctx.json {
            format::node_json(path, node).to_string()
        } else if a.long {
            format::long_line(path, node)
        } else {
            String::from_utf8_lossy(path).into_owned()
        };
        writeln!(out, "{line}").map_err(super::stdout_error)
    };
    // `ls DIR` lists DIR's entries, like ls(1); `ls FILE` lists the file.
    let top_is_dir = matches!(top.kind, NodeKind::Dir { .. });
    browser.walk(&start, &top, &mut |path, node| {
        let is_top = path == start.as_slice();
        if !(is_top && top_is_dir) {
            print(path, node)?;
        }
        Ok(is_top || a.recursive)
    })?;
    out.flush().map_err(super::stdout_error)?;
    Ok(exit::SUCCESS)
}
