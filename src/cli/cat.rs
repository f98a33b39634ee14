//! `cairn cat`: one file of a snapshot to standard output.

use super::{exit, Ctx};
use cairn::browse::Browser;
use cairn::format::tree::NodeKind;
use cairn::{Error, ErrorKind, Result};
use std::io::Write;

/// Write one file of a snapshot to standard output, every chunk verified
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cairn cat latest /opt/apigateway/system/conf/nodemanager.xml > nodemanager.xml"
)]
pub struct Args {
    /// Snapshot id prefix, name, or 'latest' (the newest one the filter passes)
    snapshot: String,
    /// Absolute path of the file in the snapshot
    path: String,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "cat")?;
    let (id, snap) = cairn::repo::select::find(&repo, &a.snapshot, &a.filter.filter())?;
    let done = cat(ctx, &repo, &snap, &a.path);
    super::record_read(&repo, "cat", id, std::slice::from_ref(&a.path), None, done)
}

fn cat(
    ctx: &Ctx,
    repo: &cairn::Repository,
    snap: &cairn::format::snapshot::Snapshot,
    path: &str,
) -> Result<i32> {
    let a_path = path;
    let browser = Browser::open(repo)?;
    let node = browser.lookup(snap, a_path.as_bytes())?;
    let NodeKind::File { chunks, .. } = &node.kind else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{a_path} is not a regular file; `cairn ls` lists folders, `cairn dump` archives them"),
        ));
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut file = browser.reader(chunks);
    while let Some(chunk) = file.next_chunk()? {
        if ctx.interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "cat interrupted"));
        }
        out.write_all(&chunk).map_err(super::stdout_error)?;
    }
    out.flush().map_err(super::stdout_error)?;
    Ok(exit::SUCCESS)
}
