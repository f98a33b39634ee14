//! `cairn mount`: browse every snapshot as a read-only filesystem until interrupted.

use super::{exit, Ctx};
use cairn::mount::{self, Ended, MountOptions, MountView, SnapshotFs};
use cairn::Result;
use std::path::PathBuf;

/// Mount the repository's snapshots as a read-only filesystem (FUSE)
#[derive(clap::Args)]
#[command(after_help = "\
Layout: ids/<short id>/, times/<YYYY-MM-DDTHH:MM:SS>/ (local time), hosts/<host>/<time>/,
tags/<tag>/<time>/ and latest (a link to the newest snapshot). Snapshots made after the
mount appear after mounting again. Files are read on demand, every chunk verified.

Stays in the foreground; Ctrl-C (SIGINT) or SIGTERM unmounts and exits with 0, as does
unmounting from outside (umount, fusermount -u).

Example:
  cairn mount /mnt/backups & ls /mnt/backups/latest/opt/apigateway/conf")]
pub struct Args {
    /// An empty folder to mount on
    mountpoint: PathBuf,
    /// Let other users see the mount (the kernel then checks the stored modes and owners)
    #[arg(long)]
    allow_other: bool,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    // The filesystem owns the repository: unmounting drops it, which releases the lock
    // and wipes the keys.
    let view = MountView::open(ctx.open()?, ctx.read_lock_policy())?;
    if let Some(w) = view.lock_warning() {
        eprintln!("cairn: warning: {w}");
    }
    let filter = a.filter.filter();
    let snapshots = cairn::repo::select::matching(view.repository(), &filter)?;
    // Who made every file of these snapshots readable, and where (the log's audit trail).
    let rec = cairn::repo::log::LogRecord::new("mount", "mounted")
        .figure("snapshots", snapshots.len())
        .figure("filter", if filter.is_empty() { "none".to_string() } else { filter.describe() })
        .figure("mountpoint", a.mountpoint.display());
    super::record(view.repository(), rec);
    let fs = SnapshotFs::new(view, &snapshots, &jiff::tz::TimeZone::system(), mount::fs::CACHE_BYTES);
    let opts = MountOptions { allow_other: a.allow_other };
    let shown = a.mountpoint.display().to_string();
    let ended = mount::serve(fs, &a.mountpoint, &opts, &ctx.interrupt, || {
        if !ctx.quiet {
            eprintln!(
                "cairn: {} snapshots mounted at {shown}; Ctrl-C or `umount {shown}` unmounts",
                snapshots.len()
            );
        }
    })?;
    // Detached: the filesystem (and with it the repository) lives on in its thread until
    // this process exits, so its lock stays behind, found stale (its process gone) by
    // the next command.
    if ended == Ended::Detached {
        eprintln!("cairn: {shown} was in use: detached; it is released when the last program leaves it");
    }
    Ok(exit::SUCCESS)
}
