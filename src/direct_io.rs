//! Writing past the page cache (O_DIRECT), for data nobody reads back soon: packs a
//! backup stores, files a restore writes.
//!
//! Why: copying such data into the page cache cost more CPU than sealing it, more still on
//! virtual machines where fresh cache pages fault in from the host, and it evicts what the
//! host's own services keep cached. Direct I/O moves whole blocks from aligned memory
//! only, so callers write the aligned part directly and the last partial block through
//! the cache, and every filesystem that refuses direct I/O (tmpfs on older kernels, some
//! FUSE filesystems) gets everything through the cache instead.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::path::Path;

/// Alignment of memory, file offsets and lengths that direct writes use (the largest
/// logical block size in common use).
pub const ALIGN: usize = 4096;

/// Open `path` for writing with mode 0600: a new file (`create_new`) or a created or
/// truncated one; with `direct`, past the page cache if the filesystem allows it.
/// Returns the file and whether it is open for direct I/O.
pub fn create(path: &Path, create_new: bool, direct: bool) -> io::Result<(File, bool)> {
    let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    flags |= if create_new { OFlags::EXCL } else { OFlags::TRUNC };
    if direct {
        match rustix::fs::open(path, flags | OFlags::DIRECT, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((File::from(fd), true)),
            // Linux refuses O_DIRECT only after it has created the file, so the second
            // open must not insist on creating it: the file is ours, made just now.
            Err(Errno::INVAL) => flags = (flags - OFlags::EXCL) | OFlags::TRUNC,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((File::from(rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))?), false))
}

/// Create the new file `name` in the folder `dir` with mode 0600, never following a
/// symlink and never opening what is already there (`O_EXCL | O_NOFOLLOW`): restore
/// writes into folders other users may write to. With `direct`, past the page cache if
/// the filesystem allows it. Returns the file and whether it is open for direct I/O.
pub fn create_at(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    direct: bool,
) -> io::Result<(File, bool)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    if direct {
        match rustix::fs::openat(dir, name, flags | OFlags::DIRECT, mode) {
            Ok(fd) => return Ok((File::from(fd), true)),
            // Linux refuses O_DIRECT only after it has created the file: the file there
            // is ours, made just now, so it is opened again without creating it (and
            // still without following a symlink).
            Err(Errno::INVAL) => {
                let again = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                return Ok((File::from(rustix::fs::openat(dir, name, again, mode)?), false));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((File::from(rustix::fs::openat(dir, name, flags, mode)?), false))
}

/// Switch a file from direct I/O to writes through the cache.
pub fn stop(f: &File) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(f)?;
    rustix::fs::fcntl_setfl(f, flags - OFlags::DIRECT)?;
    Ok(())
}

/// Whether a direct write failed because the filesystem refuses this direct write (it
/// then succeeds through the cache).
pub fn refused(e: &io::Error) -> bool {
    Errno::from_io_error(e) == Some(Errno::INVAL)
}

/// Clear `buf` and pad it so that what is pushed next starts at an aligned address,
/// reserving room for `capacity` bytes after the padding. Returns the padding's length.
/// The alignment holds while the buffer does not grow past its capacity.
pub fn align_empty(buf: &mut Vec<u8>, capacity: usize) -> usize {
    buf.clear();
    buf.reserve(capacity + ALIGN);
    let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    buf.resize(start, 0);
    start
}

/// Whether `bytes` starts at an aligned address.
pub fn is_aligned(bytes: &[u8]) -> bool {
    bytes.as_ptr().align_offset(ALIGN) == 0
}

/// Bytes of `path` in the page cache, as util-linux's `fincore` reports them: what tests
/// of direct writes check.
#[cfg(test)]
pub(crate) fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (Debian: util-linux-extra) runs");
    assert!(out.status.success(), "fincore failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("fincore prints a number")
}

/// Whether `path` is on ext4, where direct writes are known to bypass the cache (tests
/// elsewhere may run on tmpfs or overlay filesystems, which accept the flag and cache).
#[cfg(test)]
#[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64 but narrower on other targets
pub(crate) fn is_ext4(path: &Path) -> bool {
    const EXT4_MAGIC: i64 = 0xEF53;
    rustix::fs::statfs(path).map(|s| s.f_type as i64 == EXT4_MAGIC).unwrap_or(false)
}
