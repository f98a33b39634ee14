//! `cairn mount`: a repository's snapshots as a read-only FUSE filesystem.
//!
//! [`names`] lays out the folders above the snapshots (ids/, times/, hosts/, tags/,
//! latest), [`inodes`] numbers everything the kernel is shown, [`cache`] keeps decrypted
//! chunks and fetches ahead of sequential readers, and [`fs`] answers the kernel. Files
//! are read lazily: a chunk is fetched, decrypted and re-hashed only when read.
//! [`serve`] mounts, waits for a stop request or an outside unmount, and unmounts.

pub mod cache;
pub mod fs;
pub mod inodes;
pub mod names;

pub use fs::{MountView, SnapshotFs};

use crate::error::{Error, ErrorKind, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Threads answering the kernel: a reader's requests (the kernel sends several at once
/// while reading ahead) and a lister's are served side by side.
const THREADS: usize = 4;
/// How often the stop flag is looked at.
const POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let other users in (FUSE's allow_other; a user other than root needs
    /// `user_allow_other` in /etc/fuse.conf). The kernel then checks the stored modes.
    pub allow_other: bool,
}

/// How the mount ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Unmounted by someone else (umount, fusermount -u).
    FromOutside,
    /// Unmounted because `stop` was set.
    Stopped,
    /// `stop` was set but the mount point was in use: it was detached instead, and is
    /// released once the last program inside it leaves (which now gets errors).
    Detached,
}

/// Mount `fs` at `mountpoint`; `mounted` is called once it is in place. Returns when the
/// filesystem is unmounted from outside, or when `stop` is set (then it unmounts).
pub fn serve(
    fs: SnapshotFs,
    mountpoint: &Path,
    opts: &MountOptions,
    stop: &AtomicBool,
    mounted: impl FnOnce(),
) -> Result<Ended> {
    use fuser::MountOption as O;
    let mut config = fuser::Config::default();
    config.mount_options =
        vec![O::RO, O::NoDev, O::NoSuid, O::FSName("cairn".into()), O::Subtype("cairn".into())];
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
        config.mount_options.push(O::DefaultPermissions);
    }
    config.n_threads = Some(THREADS);
    let mut session = fuser::Session::new(fs, mountpoint, &config).map_err(|e| {
        Error::with_source(
            ErrorKind::Io,
            format!(
                "cannot mount at {} (it needs an empty folder, a usable /dev/fuse, and fusermount3 \
                 or fusermount when not root)",
                mountpoint.display()
            ),
            e,
        )
    })?;
    let mut unmounter = session.unmount_callable();
    let runner = std::thread::Builder::new()
        .name("cairn-mount".into())
        .spawn(move || session.run())
        .map_err(|e| Error::io("cannot start the filesystem thread", e))?;
    mounted();
    while !runner.is_finished() && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
    }
    let ended = if runner.is_finished() {
        Ended::FromOutside
    } else {
        match unmounter.unmount() {
            Ok(()) => Ended::Stopped,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                // Someone is inside (a shell's working folder, an open file). Detach it:
                // the name is free at once, and the kernel ends the filesystem when the
                // last user leaves or when this process exits.
                rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH).map_err(|d| {
                    Error::io(
                        format!("cannot unmount {} (busy), nor detach it", mountpoint.display()),
                        d.into(),
                    )
                })?;
                return Ok(Ended::Detached);
            }
            Err(e) => return Err(Error::io(format!("cannot unmount {}", mountpoint.display()), e)),
        }
    };
    match runner.join() {
        Ok(Ok(())) => Ok(ended),
        Ok(Err(e)) => Err(Error::io("the filesystem session failed", e)),
        Err(_) => Err(Error::new(ErrorKind::Io, "the filesystem thread panicked")),
    }
}
