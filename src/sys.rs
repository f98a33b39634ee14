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
