//! Facts about the running system that go into snapshots, keys and locks.

/// This machine's host name.
pub fn hostname() -> String {
    let uname = rustix::system::uname();
    uname.nodename().to_string_lossy().into_owned()
}

/// The name of the user running cairn (or the numeric uid if it has no name).
pub fn username() -> String {
    let uid = rustix::process::getuid().as_raw();
    uzers::get_user_by_uid(uid)
        .map(|u| u.name().to_string_lossy().into_owned())
        .unwrap_or_else(|| uid.to_string())
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A path of this process's handle on `fd` (/proc/self/fd/N), for calls that have no
/// `*at` form and for paths longer than PATH_MAX: it names the open object itself,
/// whatever happens to its path meanwhile, and it is short.
pub fn fd_path(fd: &std::os::fd::OwnedFd) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Create a folder (and its parents) only its owner may enter (0700).
pub fn create_private_dir(path: &std::path::Path) -> crate::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| crate::Error::io(format!("cannot create folder {}", path.display()), e))
}

/// Replace a small file atomically with `bytes`, readable only by its owner (0600): a
/// temporary file beside it, flushed, renamed over it.
pub fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let ctx = |e| crate::Error::io(format!("cannot write {}", path.display()), e);
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ctx)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(ctx)?;
    std::fs::rename(&tmp, path).map_err(ctx)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ctx)?;
    }
    Ok(())
}
