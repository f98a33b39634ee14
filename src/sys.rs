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
