//! The restore target as folder handles: every change restore makes below the target is
//! made relative to an open folder, reached from the target one name at a time without
//! following symlinks.
//!
//! Why: other users may be able to write into the target (a shared /opt, a DR host). A
//! symlink planted where the snapshot has a folder, or at the temporary name a changed
//! file is written under, would otherwise send restore's writes, renames and chmods
//! outside the target. Opening each folder with `O_NOFOLLOW | O_DIRECTORY` relative to
//! its parent's handle cannot race: once a handle is open, swapping a path component for
//! a symlink no longer changes which folder the handle names. The target itself is named
//! by the user and is followed.
//!
//! This module owns the handles and the primitives on them; it does not decide what to
//! restore (restore.rs) or what to delete (restore_delete.rs).

use crate::error::{Error, ErrorKind, IoContext, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Folder handles kept open at most (a cache; any folder can be opened again).
const CACHED_DIRS: usize = 256;

/// The prefix of the temporary name a changed entry is written under before the rename.
pub const TEMP_PREFIX: &str = ".cairn-restore-";

/// The open target folder and a small cache of folder handles below it.
pub struct TargetRoot {
    path: PathBuf,
    root: Arc<OwnedFd>,
    cache: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
}

/// What a lookup found at a name, without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Dir,
    File,
    /// A symlink, fifo, socket or device.
    Other(&'static str),
}

fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Directory => "folder",
        _ => "file",
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl TargetRoot {
    /// Create the target if needed and open it.
    pub fn open(target: &Path) -> Result<TargetRoot> {
        std::fs::create_dir_all(target)
            .ctx(|| format!("cannot create restore target {}", target.display()))?;
        Self::open_existing(target)
    }

    /// Open the target, which must exist (nothing is created).
    pub fn open_existing(target: &Path) -> Result<TargetRoot> {
        let root =
            rustix::fs::open(target, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| {
                    Error::io(format!("cannot open restore target {}", target.display()), e.into())
                })?;
        Ok(TargetRoot { path: target.to_path_buf(), root: Arc::new(root), cache: Mutex::new(HashMap::new()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The target folder's handle.
    pub fn root_fd(&self) -> &OwnedFd {
        &self.root
    }

    /// `path` (below the target) as names relative to the target.
    fn relative<'p>(&self, path: &'p Path) -> Result<&'p Path> {
        let rel = path.strip_prefix(&self.path).map_err(|_| {
            Error::invalid(format!(
                "{} is not below the restore target {}",
                path.display(),
                self.path.display()
            ))
        })?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::invalid(format!("{} is not a plain path below the target", path.display())));
        }
        Ok(rel)
    }

    /// A handle on the folder `dir` (the target or a path below it), each component
    /// opened without following symlinks. A component that is not a folder is an error.
    pub fn dir(&self, dir: &Path) -> Result<Arc<OwnedFd>> {
        let rel = self.relative(dir)?;
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(fd) = self.cache.lock().expect("dir cache").get(rel) {
            return Ok(fd.clone());
        }
        let mut at = self.root.clone();
        let mut sofar = PathBuf::new();
        for name in rel.iter() {
            sofar.push(name);
            if let Some(fd) = self.cache.lock().expect("dir cache").get(&sofar) {
                at = fd.clone();
                continue;
            }
            let fd = rustix::fs::openat(&*at, name, dir_flags(), Mode::empty()).map_err(|e| {
                let why = if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                    "it is not a folder (a symlink or file is there; not followed)".to_string()
                } else {
                    e.to_string()
                };
                Error::io(format!("cannot open folder {}: {why}", self.path.join(&sofar).display()), e.into())
            })?;
            at = Arc::new(fd);
            self.remember(&sofar, &at);
        }
        Ok(at)
    }

    fn remember(&self, rel: &Path, fd: &Arc<OwnedFd>) {
        let mut cache = self.cache.lock().expect("dir cache");
        if cache.len() >= CACHED_DIRS {
            cache.clear();
        }
        cache.insert(rel.to_path_buf(), fd.clone());
    }

    /// Forget cached handles of `path` and below (after it was removed or replaced).
    pub fn forget(&self, path: &Path) {
        if let Ok(rel) = self.relative(path) {
            self.cache.lock().expect("dir cache").retain(|k, _| !k.starts_with(rel));
        }
    }

    /// The handle of `path`'s folder and `path`'s last name.
    pub fn parent<'p>(&self, path: &'p Path) -> Result<(Arc<OwnedFd>, &'p OsStr)> {
        let name =
            path.file_name().ok_or_else(|| Error::invalid(format!("{} has no file name", path.display())))?;
        let parent = path.parent().unwrap_or(Path::new(""));
        Ok((self.dir(parent)?, name))
    }
}

/// What is at `name` in `dir`, not following a symlink.
pub fn lookup(dir: &OwnedFd, name: &OsStr) -> Result<Found> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Found::Dir,
            FileType::RegularFile => Found::File,
            other => Found::Other(kind_name(other)),
        }),
        Err(rustix::io::Errno::NOENT) => Ok(Found::Nothing),
        Err(e) => Err(Error::io(format!("cannot look at {}", name.to_string_lossy()), e.into())),
    }
}

/// (device, inode) of `name` in `dir`, not following a symlink.
pub fn inode_at(dir: &OwnedFd, name: &OsStr) -> Option<(u64, u64)> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok().map(|st| (st.st_dev, st.st_ino))
}

/// Remove the non-folder at `name` in `dir` (a symlink itself, never what it names).
pub fn unlink(dir: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into)
}

/// Rename `from` to `to` within one folder (replacing a non-folder at `to`).
pub fn rename(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to).map_err(Into::into)
}

/// The temporary name restore writes `name` under before renaming it into place.
pub fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(TEMP_PREFIX);
    t.push(name);
    t
}

/// Clear the temporary name for `name` in `dir` (`shown` is the folder as the user sees
/// it). A regular file there is a leftover of an interrupted restore and goes quietly;
/// anything else was put there by someone else: it is removed, never followed, and the
/// returned warning says so. A folder there is an error.
pub fn clear_temp(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<(OsString, Option<String>)> {
    let tmp = temp_name(name);
    let at = || shown.join(&tmp).display().to_string();
    let found = lookup(dir, &tmp)?;
    let warning = match found {
        Found::Nothing => return Ok((tmp, None)),
        Found::Dir => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} is a folder in the way of restore's temporary name; remove it", at()),
            ))
        }
        Found::File => None,
        Found::Other(kind) => {
            Some(format!("{}: removed a {kind} in the way of restore's temporary name (not followed)", at()))
        }
    };
    match unlink(dir, &tmp) {
        Ok(()) => Ok((tmp, warning)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((tmp, warning)),
        Err(e) => Err(Error::io(format!("cannot remove {}", at()), e)),
    }
}

/// Make the folder `name` in `dir` exist, replacing a non-folder there. Returns a warning
/// when what was replaced was not a plain file (a symlink there is removed, not followed).
pub fn ensure_dir(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Option<String>> {
    let mut warning = None;
    match lookup(dir, name)? {
        Found::Dir => return Ok(None),
        Found::Nothing => {}
        found => {
            if let Found::Other(kind) = found {
                warning = Some(format!(
                    "{}: replaced a {kind} where the snapshot has a folder (not followed)",
                    shown.display()
                ));
            }
            unlink(dir, name).ctx(|| format!("cannot replace {}", shown.display()))?;
        }
    }
    // Folders start private; their real mode is applied once their contents are written.
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(warning),
        Err(rustix::io::Errno::EXIST) if lookup(dir, name)? == Found::Dir => Ok(warning),
        Err(e) => Err(Error::io(format!("cannot create folder {}", shown.display()), e.into())),
    }
}

/// Open the existing regular file `name` in `dir` for reading, refusing anything else (a
/// symlink or a fifo there is not opened: no follow, no blocking).
pub fn open_existing_file(dir: &OwnedFd, name: &OsStr) -> Option<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then(|| File::from(fd))
}

/// Open the folder `name` in `dir` without following a symlink.
pub fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(dir, name, dir_flags(), Mode::empty())
}

pub use crate::sys::fd_path;

/// `name` in `dir` as a path through the folder's handle (see [`fd_path`]).
pub fn path_at(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    let mut p = fd_path(dir).into_os_string();
    p.push("/");
    p.push(name);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_component_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(target.join("a")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("a/b")).unwrap();
        let root = TargetRoot::open(&target).unwrap();
        assert!(root.dir(&target.join("a")).is_ok());
        let err = root.dir(&target.join("a/b")).expect_err("a symlink is no folder");
        assert!(err.to_string().contains("not followed"), "{err}");
        assert!(root.dir(&dir.path().join("elsewhere")).is_err(), "paths outside the target are refused");

        // A handle keeps naming its folder when the path is swapped for a symlink.
        let a = root.dir(&target.join("a")).unwrap();
        std::fs::rename(target.join("a"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();
        let warning = ensure_dir(&a, OsStr::new("new"), Path::new("a/new")).unwrap();
        assert!(warning.is_none());
        assert!(dir.path().join("moved/new").is_dir());
        assert!(!outside.join("new").exists());
    }

    #[test]
    fn a_planted_temporary_name_is_removed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = TargetRoot::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join(".cairn-restore-x")).unwrap();
        let (tmp, warning) = clear_temp(root.root_fd(), OsStr::new("x"), dir.path()).unwrap();
        assert_eq!(tmp, ".cairn-restore-x");
        assert!(warning.unwrap().contains("symlink"));
        assert!(lookup(root.root_fd(), &tmp).unwrap() == Found::Nothing);
        assert_eq!(std::fs::read(dir.path().join("victim")).unwrap(), b"keep");
    }
}
