//! Node metadata between the filesystem and tree nodes: read on backup, applied on
//! restore. Content (file bytes, subtrees) is not handled here.
//!
//! Restore applies metadata in the order that keeps it: extended attributes, then owner
//! (chown clears setuid/setgid), then mode, then times last (every other change touches
//! ctime/mtime). Ownership is restored only when running as root, by name where that name
//! exists on this system, else by number.

use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Node, NodeKind};
use crate::format::Timespec;
use rustix::fs::{AtFlags, Timestamps, CWD};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use xattr::FileExt;

/// Build a node from `lstat` metadata. File content and subtrees are filled in by the
/// caller; symlink targets and xattrs are read here.
pub fn read_node(path: &Path, name: &[u8], md: &Metadata) -> Result<Node> {
    read_node_after(path, name, md, None)
}

/// Like [`read_node`], taking the xattrs from `before` (the same path in the parent
/// snapshot) when its inode, device and change time are unchanged: every change to an
/// xattr sets the change time, so they cannot differ, and a backup that finds nothing
/// changed saves one llistxattr call per entry.
pub fn read_node_after(path: &Path, name: &[u8], md: &Metadata, before: Option<&Node>) -> Result<Node> {
    let ctime = Timespec { secs: md.ctime(), nanos: md.ctime_nsec() as u32 };
    let known_xattrs = before
        .filter(|b| b.ctime == ctime && b.inode == md.ino() && b.device == md.dev())
        .map(|b| b.xattrs.clone());
    let ft = md.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_file() {
        NodeKind::File { size: md.len(), chunks: Vec::new() }
    } else if ft.is_dir() {
        NodeKind::Dir { tree: crate::id::TreeId([0; 32]) }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).ctx(|| format!("cannot read symlink {}", path.display()))?;
        NodeKind::Symlink { target: target.into_os_string().as_bytes().to_vec() }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: md.rdev() }
    } else if ft.is_block_device() {
        NodeKind::BlockDevice { rdev: md.rdev() }
    } else {
        NodeKind::Socket
    };
    Ok(Node {
        name: name.to_vec(),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        user: user_name(md.uid()),
        group: group_name(md.gid()),
        mtime: Timespec { secs: md.mtime(), nanos: md.mtime_nsec() as u32 },
        // A folder's access time changes whenever it is listed, the backup's own listing
        // included: keeping it would make every backup store every folder's tree anew.
        // Folders keep their modification time as access time instead.
        atime: if ft.is_dir() {
            Timespec { secs: md.mtime(), nanos: md.mtime_nsec() as u32 }
        } else {
            Timespec { secs: md.atime(), nanos: md.atime_nsec() as u32 }
        },
        ctime,
        inode: md.ino(),
        device: md.dev(),
        links: md.nlink(),
        xattrs: known_xattrs.unwrap_or_else(|| read_xattrs(path)),
    })
}

/// Extended attributes of `path` (not following symlinks), sorted by name. Filesystems
/// without xattr support simply give none.
fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names
        .filter_map(|n| {
            let v = xattr::get(path, &n).ok()??;
            Some((n.as_bytes().to_vec(), v))
        })
        .collect();
    out.sort();
    out
}

type NameCache = Mutex<HashMap<u32, Option<String>>>;

fn cached(
    cache: &'static OnceLock<NameCache>,
    id: u32,
    lookup: impl FnOnce(u32) -> Option<String>,
) -> Option<String> {
    let cache = cache.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("name cache").get(&id) {
        return v.clone();
    }
    let v = lookup(id);
    cache.lock().expect("name cache").insert(id, v.clone());
    v
}

fn user_name(uid: u32) -> Option<String> {
    static C: OnceLock<NameCache> = OnceLock::new();
    cached(&C, uid, |u| uzers::get_user_by_uid(u).map(|u| u.name().to_string_lossy().into_owned()))
}

fn group_name(gid: u32) -> Option<String> {
    static C: OnceLock<NameCache> = OnceLock::new();
    cached(&C, gid, |g| uzers::get_group_by_gid(g).map(|g| g.name().to_string_lossy().into_owned()))
}

/// The uid and gid to give a restored node: by name where the name exists here.
fn owner_ids(node: &Node) -> (u32, u32) {
    type IdCache = Mutex<HashMap<String, Option<u32>>>;
    static USERS: OnceLock<IdCache> = OnceLock::new();
    static GROUPS: OnceLock<IdCache> = OnceLock::new();
    // Each lookup reads /etc/passwd or /etc/group: once per name, not once per file.
    let lookup = |cache: &'static OnceLock<IdCache>, name: &str, find: fn(&str) -> Option<u32>| {
        let cache = cache.get_or_init(Default::default);
        if let Some(v) = cache.lock().expect("id cache").get(name) {
            return *v;
        }
        let v = find(name);
        cache.lock().expect("id cache").insert(name.to_string(), v);
        v
    };
    let uid = node
        .user
        .as_deref()
        .and_then(|n| lookup(&USERS, n, |n| uzers::get_user_by_name(n).map(|u| u.uid())))
        .unwrap_or(node.uid);
    let gid = node
        .group
        .as_deref()
        .and_then(|n| lookup(&GROUPS, n, |n| uzers::get_group_by_name(n).map(|g| g.gid())))
        .unwrap_or(node.gid);
    (uid, gid)
}

/// Create a symlink, fifo or device node named `name` in the folder `dir` (it must not
/// exist; nothing there is followed). `shown` is its path for messages.
pub fn create_special_at(dir: &OwnedFd, name: &OsStr, node: &Node, shown: &Path) -> Result<()> {
    use rustix::fs::{FileType, Mode};
    let mode = Mode::from_raw_mode(node.mode & 0o777);
    let made = match &node.kind {
        NodeKind::Symlink { target } => rustix::fs::symlinkat(OsStr::from_bytes(target), dir, name),
        NodeKind::Fifo => rustix::fs::mknodat(dir, name, FileType::Fifo, mode, 0),
        NodeKind::CharDevice { rdev } => {
            rustix::fs::mknodat(dir, name, FileType::CharacterDevice, mode, *rdev)
        }
        NodeKind::BlockDevice { rdev } => rustix::fs::mknodat(dir, name, FileType::BlockDevice, mode, *rdev),
        NodeKind::Socket => return Ok(()), // a socket belongs to a running process; nothing to restore
        NodeKind::File { .. } | NodeKind::Dir { .. } => {
            return Err(Error::invalid("create_special_at called for a file or directory"))
        }
    };
    made.map_err(std::io::Error::from).ctx(|| format!("cannot create {}", shown.display()))
}

/// Where restore applies metadata: a path (a symlink itself, not what it points to); a
/// file or folder restore holds open, which spares a path lookup for each change and
/// cannot be redirected; or a name in a folder restore holds open (symlinks, fifos and
/// devices, which cannot be opened without side effects), never followed.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Path(&'a Path),
    File(&'a File, &'a Path),
    At(&'a OwnedFd, &'a OsStr, &'a Path),
}

impl Target<'_> {
    fn path(&self) -> &Path {
        match self {
            Target::Path(p) | Target::File(_, p) | Target::At(_, _, p) => p,
        }
    }
}

/// Set the mode of `name` in `dir` without following a symlink there: chmod has no
/// no-follow form, so the entry is opened as a bare handle (O_PATH, which neither reads
/// nor blocks on a fifo) and changed through it.
fn chmod_at(dir: &OwnedFd, name: &OsStr, mode: u32) -> std::io::Result<()> {
    use rustix::fs::{FileType, Mode, OFlags};
    let fd = rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(std::io::Error::other("a symlink is there now (replaced during restore?); not followed"));
    }
    std::fs::set_permissions(crate::ops::restore_target::fd_path(&fd), std::fs::Permissions::from_mode(mode))
}

/// Apply xattrs, owner, mode and times of `node` to `path`. Returns the problems that did
/// not stop the restore (for example an xattr namespace the target filesystem refuses).
pub fn apply(path: &Path, node: &Node, as_root: bool) -> Result<Vec<String>> {
    apply_to(Target::Path(path), node, as_root)
}

/// [`apply`] to a path or an open file.
pub fn apply_to(target: Target<'_>, node: &Node, as_root: bool) -> Result<Vec<String>> {
    let path = target.path();
    let mut warnings = Vec::new();
    let is_link = matches!(node.kind, NodeKind::Symlink { .. });
    if matches!(node.kind, NodeKind::Socket) {
        return Ok(warnings);
    }
    for (name, value) in &node.xattrs {
        let name_os = OsStr::from_bytes(name);
        let set = match target {
            Target::Path(p) => xattr::set(p, name_os, value),
            Target::File(f, _) => f.set_xattr(name_os, value),
            // lsetxattr through the folder's handle: the entry itself, never followed.
            Target::At(dir, name, _) => {
                xattr::set(crate::ops::restore_target::path_at(dir, name), name_os, value)
            }
        };
        if let Err(e) = set {
            warnings.push(format!(
                "{}: cannot set xattr {}: {e}",
                path.display(),
                String::from_utf8_lossy(name)
            ));
        }
    }
    if as_root {
        let (uid, gid) = owner_ids(node);
        let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
        match target {
            Target::Path(p) => rustix::fs::chownat(CWD, p, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW),
            Target::File(f, _) => rustix::fs::fchown(f, Some(uid), Some(gid)),
            Target::At(dir, name, _) => {
                rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            }
        }
        .map_err(std::io::Error::from)
        .ctx(|| format!("cannot set owner of {}", path.display()))?;
    }
    if !is_link {
        let mode = std::fs::Permissions::from_mode(node.mode & 0o7777);
        match target {
            Target::Path(p) => std::fs::set_permissions(p, mode),
            Target::File(f, _) => f.set_permissions(mode),
            Target::At(dir, name, _) => chmod_at(dir, name, node.mode & 0o7777),
        }
        .ctx(|| format!("cannot set mode of {}", path.display()))?;
    }
    let ts = |t: Timespec| rustix::fs::Timespec { tv_sec: t.secs, tv_nsec: t.nanos as _ };
    let times = Timestamps { last_access: ts(node.atime), last_modification: ts(node.mtime) };
    match target {
        Target::Path(p) => rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW),
        Target::File(f, _) => rustix::fs::futimens(f, &times),
        Target::At(dir, name, _) => rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
    }
    .map_err(std::io::Error::from)
    .ctx(|| format!("cannot set times of {}", path.display()))?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_then_apply_keeps_mode_times_and_xattrs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.xml");
        std::fs::write(&src, b"<a/>").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o4751)).unwrap();
        let have_xattrs = xattr::set(&src, "user.cairn", b"v1").is_ok();
        let t = rustix::fs::Timespec { tv_sec: 1_700_000_000, tv_nsec: 123_456_789 };
        rustix::fs::utimensat(
            CWD,
            &src,
            &Timestamps { last_access: t, last_modification: t },
            AtFlags::empty(),
        )
        .unwrap();
        let md = std::fs::symlink_metadata(&src).unwrap();
        let node = read_node(&src, b"src.xml", &md).unwrap();
        assert_eq!(node.mode, 0o4751);
        assert_eq!(node.mtime, Timespec { secs: 1_700_000_000, nanos: 123_456_789 });

        let dst = dir.path().join("dst.xml");
        std::fs::write(&dst, b"<a/>").unwrap();
        apply(&dst, &node, false).unwrap();
        let back = read_node(&dst, b"src.xml", &std::fs::symlink_metadata(&dst).unwrap()).unwrap();
        assert_eq!((back.mode, back.mtime, back.atime), (node.mode, node.mtime, node.atime));
        if have_xattrs {
            assert_eq!(back.xattrs, vec![(b"user.cairn".to_vec(), b"v1".to_vec())]);
        }
    }

    #[test]
    fn specials_are_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        rustix::fs::mknodat(
            CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink("target\u{e9}", dir.path().join("l")).unwrap();
        for name in ["f", "l"] {
            let p = dir.path().join(name);
            let node = read_node(&p, name.as_bytes(), &std::fs::symlink_metadata(&p).unwrap()).unwrap();
            let q = dir.path().join(format!("{name}2"));
            let folder =
                rustix::fs::open(dir.path(), rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
                    .unwrap();
            create_special_at(&folder, OsStr::new(&format!("{name}2")), &node, &q).unwrap();
            apply(&q, &node, false).unwrap();
            let again = read_node(&q, name.as_bytes(), &std::fs::symlink_metadata(&q).unwrap()).unwrap();
            assert_eq!(again.kind, node.kind);
            assert_eq!(again.mtime, node.mtime);
        }
    }
}
