//! The FUSE filesystem: answers the kernel's requests from the inode table, the snapshots'
//! trees and the chunk cache. Read-only: the mount is made read-only, so the kernel
//! refuses every change with EROFS before asking us, and `open` refuses writing too.

use super::cache::{ChunkCache, ReadAhead};
use super::inodes::{Inode, Inodes, Kind};
use super::names;
use crate::browse::{Browser, FileLayout};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::{SnapshotId, TreeId};
use crate::repo::read_lock::{ReadLock, ReadLockPolicy};
use crate::repo::Repository;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Decrypted chunks kept in memory.
pub const CACHE_BYTES: usize = 64 << 20;
/// How far ahead of a sequential reader chunks are fetched.
pub const READ_AHEAD_BYTES: u64 = 8 << 20;
/// How long the kernel may keep names and attributes: nothing changes while mounted.
const TTL: Duration = Duration::from_secs(3600);

/// What a mount reads through: a browser over the repository, and the shared lock held
/// while mounted.
pub struct MountedRepo<'r> {
    browser: Browser<'r>,
    lock: ReadLock<'r>,
}

self_cell::self_cell!(
    /// A repository together with the browser and lock that borrow it, owned by the
    /// filesystem: when the filesystem is dropped at unmount, the lock is released and the
    /// repository's keys are wiped (before, the repository was leaked to live long enough).
    pub struct MountView {
        owner: Repository,
        #[covariant]
        dependent: MountedRepo,
    }
);

impl MountView {
    /// Lock `repo` (shared, as `policy` says) and load what browsing needs.
    pub fn open(repo: Repository, policy: ReadLockPolicy) -> crate::Result<MountView> {
        MountView::try_new(repo, |r| {
            let never = std::sync::atomic::AtomicBool::new(false);
            let lock = r.lock_for_reading("mount", policy, std::time::Duration::ZERO, &never)?;
            Ok(MountedRepo { lock, browser: Browser::open(r)? })
        })
    }

    /// Why the mount reads without the lock it tried to take, if it does.
    pub fn lock_warning(&self) -> Option<&str> {
        self.borrow_dependent().lock.warning()
    }

    pub fn repository(&self) -> &Repository {
        self.borrow_owner()
    }

    fn browser(&self) -> &Browser<'_> {
        &self.borrow_dependent().browser
    }
}

/// What the read-ahead threads need: shared, as they outlive the request that started them.
struct Shared {
    view: MountView,
    cache: ChunkCache,
}

impl Shared {
    fn chunk(&self, id: &crate::id::ChunkId) -> crate::Result<Arc<Vec<u8>>> {
        self.cache.get(id, |c| self.view.browser().chunk(c))
    }
}

/// Extended attributes as stored: (name, value), sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

struct OpenFile {
    layout: FileLayout,
    ahead: Mutex<ReadAhead>,
}

/// A repository's snapshots as a read-only filesystem (see [`super::names`] for the
/// folders above the snapshots).
pub struct SnapshotFs {
    shared: Arc<Shared>,
    inodes: Inodes,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    /// Owner of the folders above the snapshots: whoever mounted.
    owner: (u32, u32),
    /// Time of the folders above the snapshots: the newest snapshot's.
    time: SystemTime,
}

impl SnapshotFs {
    /// The view of `snapshots` (oldest first), with times named in `tz`.
    pub fn new(
        view: MountView,
        snapshots: &[(SnapshotId, Snapshot)],
        tz: &jiff::tz::TimeZone,
        cache_bytes: usize,
    ) -> SnapshotFs {
        let layout = names::layout(snapshots, tz);
        SnapshotFs {
            shared: Arc::new(Shared { view, cache: ChunkCache::new(cache_bytes) }),
            inodes: Inodes::new(&layout, snapshots),
            files: Mutex::default(),
            next_fh: AtomicU64::new(1),
            owner: (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()),
            time: snapshots.last().map_or(UNIX_EPOCH, |(_, s)| system_time(s.time)),
        }
    }

    fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.inodes.get(ino.0).ok_or(Errno::ENOENT)
    }

    fn tree(&self, id: &TreeId) -> Result<Arc<Tree>, Errno> {
        self.shared.view.browser().tree(id).map_err(|e| eio(&e))
    }

    /// The number of `name` in the folder `parent`.
    fn find(&self, parent: INodeNo, name: &[u8]) -> Result<u64, Errno> {
        match &self.inode(parent)?.kind {
            Kind::Virtual(entries) => {
                entries.iter().find(|(n, _)| n == name).map(|(_, ino)| *ino).ok_or(Errno::ENOENT)
            }
            Kind::Node { top, node: Node { kind: NodeKind::Dir { tree }, .. } } => {
                let tree = self.tree(tree)?;
                let child = tree.find(name).ok_or(Errno::ENOENT)?;
                Ok(self.inodes.child(parent.0, *top, child))
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn attr(&self, ino: u64, inode: &Inode) -> FileAttr {
        let (uid, gid) = self.owner;
        let mut a = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        match &inode.kind {
            Kind::Virtual(_) => {}
            Kind::Link(target) => {
                (a.kind, a.perm, a.nlink, a.size) = (FileType::Symlink, 0o777, 1, target.len() as u64);
            }
            Kind::Node { node, .. } => {
                a.kind = file_type(&node.kind);
                a.perm = (node.mode & 0o7777) as u16;
                a.nlink = node.links.clamp(1, u32::MAX as u64) as u32;
                (a.uid, a.gid) = (node.uid, node.gid);
                (a.atime, a.mtime, a.ctime) =
                    (system_time(node.atime), system_time(node.mtime), system_time(node.ctime));
                a.crtime = a.mtime;
                match &node.kind {
                    NodeKind::File { size, .. } => a.size = *size,
                    NodeKind::Symlink { target } => a.size = target.len() as u64,
                    // The kernel's dev_t encoding is the low 32 bits of the C library's.
                    NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } => a.rdev = *rdev as u32,
                    _ => {}
                }
                a.blocks = a.size.div_ceil(512);
            }
        }
        a
    }

    fn entry_attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        Ok(self.attr(ino, &*self.inode(INodeNo(ino))?))
    }

    fn xattrs(&self, ino: INodeNo) -> Result<Xattrs, Errno> {
        Ok(match &self.inode(ino)?.kind {
            Kind::Node { node, .. } => node.xattrs.clone(),
            _ => Vec::new(),
        })
    }

    /// Fetch the chunks of `from..from + len` on the thread pool, into the cache.
    fn read_ahead(&self, file: &OpenFile, from: u64, len: u64) {
        for (id, _) in file.layout.span(from, len) {
            if self.shared.cache.contains(id) {
                continue;
            }
            let (shared, id) = (self.shared.clone(), *id);
            // A failure is left for the reader to meet and report.
            rayon::spawn(move || drop(shared.chunk(&id)));
        }
    }
}

impl Filesystem for SnapshotFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // As much kernel read-ahead as it allows: more requests in flight for a reader.
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.find(parent, name.as_bytes()).and_then(|ino| self.entry_attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.entry_attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino) {
            Ok(i) => match &i.kind {
                Kind::Link(target)
                | Kind::Node { node: Node { kind: NodeKind::Symlink { target }, .. }, .. } => {
                    reply.data(target)
                }
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let inode = match self.inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        let Kind::Node { node: Node { kind: NodeKind::File { chunks, .. }, .. }, .. } = &inode.kind else {
            return reply.error(Errno::EINVAL);
        };
        let layout = match self.shared.view.browser().layout(chunks) {
            Ok(l) => l,
            Err(e) => return reply.error(eio(&e)),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(OpenFile { layout, ahead: Mutex::default() });
        self.files.lock().expect("open files lock").insert(fh, file);
        // The content never changes: the kernel may keep pages cached between opens.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.files.lock().expect("open files lock").get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let ahead = file.ahead.lock().expect("read-ahead lock").next(offset, size.into(), READ_AHEAD_BYTES);
        if let Some((from, len)) = ahead {
            self.read_ahead(&file, from, len);
        }
        let shared = &self.shared;
        match file.layout.read_at(offset, size.into(), &|id| shared.chunk(id)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(eio(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().expect("open files lock").remove(&fh.0);
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let inode = match self.inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        // Entry i (0 "." and 1 "..", then the folder's own) is sent with offset i + 1: the
        // offset the kernel gives back to continue after it.
        let mut add = |i: usize, child: u64, kind: FileType, name: &[u8]| {
            reply.add(INodeNo(child), i as u64 + 1, kind, OsStr::from_bytes(name))
        };
        let dots = [(ino.0, &b"."[..]), (inode.parent, &b".."[..])];
        for (i, (child, name)) in dots.into_iter().enumerate().skip(offset as usize) {
            if add(i, child, FileType::Directory, name) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        match &inode.kind {
            Kind::Virtual(entries) => {
                for (i, (name, child)) in entries.iter().enumerate().skip(skip) {
                    let kind = match self.inodes.get(*child).map(|c| matches!(c.kind, Kind::Link(_))) {
                        Some(true) => FileType::Symlink,
                        _ => FileType::Directory,
                    };
                    if add(i + 2, *child, kind, name) {
                        break;
                    }
                }
            }
            Kind::Node { top, node: Node { kind: NodeKind::Dir { tree }, .. } } => {
                let tree = match self.tree(tree) {
                    Ok(t) => t,
                    Err(e) => return reply.error(e),
                };
                for (i, node) in tree.nodes.iter().enumerate().skip(skip) {
                    let child = self.inodes.child(ino.0, *top, node);
                    if add(i + 2, child, file_type(&node.kind), &node.name) {
                        break;
                    }
                }
            }
            _ => return reply.error(Errno::ENOTDIR),
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, self.inodes.len() as u64, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattrs(ino) {
            Ok(x) => match x.into_iter().find(|(n, _)| n == name.as_bytes()) {
                Some((_, value)) => sized(reply, size, &value),
                None => reply.error(Errno::NO_XATTR),
            },
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.xattrs(ino) {
            Ok(x) => {
                let mut list = Vec::new();
                for (name, _) in x {
                    list.extend_from_slice(&name);
                    list.push(0);
                }
                sized(reply, size, &list)
            }
            Err(e) => reply.error(e),
        }
    }
}

/// The reply to an xattr request: the size when asked for it (size 0), else the bytes
/// if they fit.
fn sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32)
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE)
    } else {
        reply.data(data)
    }
}

/// Report an error reading the repository (the mount has no other place to say it) and
/// give the reader EIO.
fn eio(e: &crate::Error) -> Errno {
    eprintln!("cairn: mount: {e}");
    Errno::EIO
}

fn file_type(kind: &NodeKind) -> FileType {
    match kind {
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice { .. } => FileType::CharDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

fn system_time(t: Timespec) -> SystemTime {
    let whole = Duration::from_secs(t.secs.unsigned_abs());
    let at = if t.secs >= 0 { UNIX_EPOCH.checked_add(whole) } else { UNIX_EPOCH.checked_sub(whole) };
    at.and_then(|s| s.checked_add(Duration::from_nanos(t.nanos.min(999_999_999).into())))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_become_system_times_before_and_after_1970() {
        let t = |secs, nanos| system_time(Timespec { secs, nanos });
        assert_eq!(t(5, 7), UNIX_EPOCH + Duration::new(5, 7));
        assert_eq!(t(-5, 500), UNIX_EPOCH - Duration::from_secs(5) + Duration::from_nanos(500));
        assert!(t(i64::MAX, 999_999_999) > t(0, 0) && t(i64::MIN, 1) < t(0, 0), "extremes do not panic");
    }
}
