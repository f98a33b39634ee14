//! The backup walk: folders become trees, files become chunk lists, bottom up.
//!
//! Entries of one folder are processed in parallel (rayon); every worker shares one
//! [`BlobWriter`]. A file is streamed through the chunker, so memory per worker stays at a
//! few maximum-size chunks whatever the file's size.

use crate::chunker::{ChunkStream, Chunker};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::{BlobId, ChunkId, TreeId};
use crate::ops::exclude::Excludes;
use crate::ops::progress::Progress;
use crate::ops::read_ahead::ReadAhead;
use crate::ops::tar_stream::{Counted, TarSink};
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::{load_tree, meta};
use rayon::prelude::*;
use rustix::fs::OFlags;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

mod restic;

/// The deepest folder a foreign source (a restic tree, a tar stream) may hold: such
/// folders are stored by recursion, and a hostile source could nest until the stack runs
/// out; real trees are far shallower.
pub(crate) const MAX_DEPTH: usize = 1024;

/// Paths longer than this are reached through a handle on their folder (PATH_MAX is
/// 4096 bytes with the final NUL; a name adds up to 256 more).
const LONG_PATH: usize = 3072;

#[derive(Default)]
pub(super) struct Counters {
    pub files: AtomicU64,
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub dirs: AtomicU64,
    pub others: AtomicU64,
    pub bytes_read: AtomicU64,
    pub total_bytes: AtomicU64,
}

pub(super) struct Walker<'a> {
    pub repo: &'a Repository,
    pub writer: &'a BlobWriter<'a>,
    /// Reads the parent's trees; absent when there is no parent or the key cannot read.
    pub parent_reader: Option<PackReader<'a>>,
    pub chunker: Chunker,
    pub excludes: Excludes,
    pub counters: Counters,
    pub errors: Mutex<Vec<String>>,
    /// Files stored as read although they changed while being read, one line each.
    pub changed: Mutex<Vec<String>>,
    pub interrupt: &'a AtomicBool,
    pub progress: &'a Progress,
    pub read_ahead: ReadAhead,
}

/// What tells an unchanged file: its node in the parent snapshot and its metadata now
/// agree on all of these.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct FileStamp {
    size: u64,
    mtime: Timespec,
    ctime: Timespec,
    inode: u64,
    device: u64,
}

impl FileStamp {
    fn of(md: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            size: md.len(),
            mtime: Timespec { secs: md.mtime(), nanos: md.mtime_nsec() as u32 },
            ctime: Timespec { secs: md.ctime(), nanos: md.ctime_nsec() as u32 },
            inode: md.ino(),
            device: md.dev(),
        }
    }

    /// The same from a `stat` call's answer.
    #[allow(clippy::unnecessary_cast)] // the field types differ between architectures
    pub fn of_stat(st: &rustix::fs::Stat) -> FileStamp {
        FileStamp {
            size: st.st_size as u64,
            mtime: Timespec { secs: st.st_mtime as i64, nanos: st.st_mtime_nsec as u32 },
            ctime: Timespec { secs: st.st_ctime as i64, nanos: st.st_ctime_nsec as u32 },
            inode: st.st_ino as u64,
            device: st.st_dev as u64,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// A file node's stamp; `None` for other kinds.
    fn of_node(node: &Node) -> Option<FileStamp> {
        let NodeKind::File { size, .. } = &node.kind else { return None };
        Some(FileStamp {
            size: *size,
            mtime: node.mtime,
            ctime: node.ctime,
            inode: node.inode,
            device: node.device,
        })
    }
}

/// A file's content as stored, or why it could not be read.
type FileContent = crate::ops::tar_stream::Content;

/// The folders between the root and the sources.
#[derive(Default)]
struct Skeleton {
    children: BTreeMap<Vec<u8>, SkeletonEntry>,
}

enum SkeletonEntry {
    Source(PathBuf),
    Folder(PathBuf, Skeleton),
}

impl Walker<'_> {
    /// Back up absolute, checked source paths; returns the root tree.
    pub fn save_sources(&self, sources: &[PathBuf], parent: Option<TreeId>) -> Result<TreeId> {
        if sources.iter().any(|s| s.parent().is_none()) {
            // Backing up "/" itself: the root tree is the root folder.
            let dev = std::fs::symlink_metadata("/").ctx(|| "cannot read /".into())?.dev();
            return self
                .save_dir(Path::new("/"), Path::new("/"), dev, parent)?
                .ok_or_else(|| Error::invalid("cannot read the root folder"));
        }
        let mut root = Skeleton::default();
        for s in sources {
            let names: Vec<&OsStr> = s.iter().skip(1).collect();
            let mut level = &mut root;
            let mut at = PathBuf::from("/");
            for (i, name) in names.iter().enumerate() {
                at.push(name);
                let key = name.as_bytes().to_vec();
                if i + 1 == names.len() {
                    level.children.insert(key, SkeletonEntry::Source(at.clone()));
                    break;
                }
                let entry = level
                    .children
                    .entry(key)
                    .or_insert_with(|| SkeletonEntry::Folder(at.clone(), Skeleton::default()));
                level = match entry {
                    SkeletonEntry::Folder(_, sk) => sk,
                    SkeletonEntry::Source(_) => unreachable!("nested sources were dropped"),
                };
            }
        }
        self.save_skeleton(&root, parent)
    }

    /// The parent's tree `id`, or an empty one if there is none or it cannot be read (then
    /// every file is simply read again).
    fn parent_tree(&self, id: Option<TreeId>) -> Tree {
        match (id, &self.parent_reader) {
            (Some(id), Some(reader)) => load_tree(reader, self.writer.index(), &id).unwrap_or_default(),
            _ => Tree::default(),
        }
    }

    fn save_skeleton(&self, sk: &Skeleton, parent: Option<TreeId>) -> Result<TreeId> {
        let parent = self.parent_tree(parent);
        let mut nodes = Vec::new();
        for (name, entry) in &sk.children {
            let before = parent.find(name);
            match entry {
                SkeletonEntry::Source(path) => nodes.extend(self.save_path(path, path, name, before, None)?),
                SkeletonEntry::Folder(path, inner) => {
                    let md =
                        std::fs::symlink_metadata(path).ctx(|| format!("cannot read {}", path.display()))?;
                    let mut node = meta::read_node_after(path, name, &md, before)?;
                    node.kind = NodeKind::Dir { tree: self.save_skeleton(inner, subtree_of(before))? };
                    nodes.push(node);
                }
            }
        }
        self.save_tree(Tree { nodes })
    }

    fn save_tree(&self, tree: Tree) -> Result<TreeId> {
        crate::tree::save_tree(&tree, self.repo.keys(), |id, bytes| self.writer.save_tree_blob(id, bytes))
    }

    fn check_interrupt(&self) -> Result<()> {
        match self.interrupt.load(Ordering::Relaxed) {
            true => Err(Error::new(ErrorKind::Interrupted, "backup interrupted; no snapshot was written")),
            false => Ok(()),
        }
    }

    fn skip(&self, path: &Path, err: impl std::fmt::Display) {
        self.errors.lock().expect("errors lock").push(format!("{}: {err}", path.display()));
    }

    /// One entry; `None` when it could not be read (recorded) or is excluded. `path` is
    /// where it is (for excludes and messages), `access` the path the system calls use
    /// (the same, or a short one through a folder handle when `path` is longer than the
    /// kernel takes). `before` is the same path's node in the parent snapshot;
    /// `parent_dev` the device of the folder it was found in (None for a source path).
    fn save_path(
        &self,
        path: &Path,
        access: &Path,
        name: &[u8],
        before: Option<&Node>,
        parent_dev: Option<u64>,
    ) -> Result<Option<Node>> {
        self.check_interrupt()?;
        let md = match std::fs::symlink_metadata(access) {
            Ok(md) => md,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        if self.excluded(path, &md, parent_dev) {
            return Ok(None);
        }
        let mut node = match meta::read_node_after(access, name, &md, before) {
            Ok(n) => n,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        let c = &self.counters;
        match &mut node.kind {
            NodeKind::File { size, chunks } => {
                if let Some(known) = self.unchanged_chunks(before, &md) {
                    *chunks = known;
                    c.files_unchanged.fetch_add(1, Ordering::Relaxed);
                    self.progress.bytes.fetch_add(*size, Ordering::Relaxed);
                } else {
                    match self.save_file(path, access, &md)? {
                        Ok((read, ids)) => {
                            *size = read;
                            *chunks = ids;
                        }
                        Err(e) => {
                            self.skip(path, e);
                            return Ok(None);
                        }
                    }
                    let was_file = matches!(before.map(|b| &b.kind), Some(NodeKind::File { .. }));
                    if was_file { &c.files_changed } else { &c.files_new }.fetch_add(1, Ordering::Relaxed);
                }
                c.files.fetch_add(1, Ordering::Relaxed);
                c.total_bytes.fetch_add(*size, Ordering::Relaxed);
                self.progress.files.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::Dir { tree } => match self.save_dir(path, access, md.dev(), subtree_of(before))? {
                Some(id) => *tree = id,
                None => return Ok(None),
            },
            _ => {
                c.others.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Some(node))
    }

    /// A folder's tree; `None` if the folder cannot be listed (recorded).
    fn save_dir(
        &self,
        path: &Path,
        access: &Path,
        dev: u64,
        parent: Option<TreeId>,
    ) -> Result<Option<TreeId>> {
        // A path the kernel would refuse (over PATH_MAX) is reached through a handle on
        // its folder, held while the folder's entries are saved; their paths then start
        // again from the short /proc/self/fd/N.
        let held;
        let base = if access.as_os_str().len() > LONG_PATH {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            held = match rustix::fs::open(access, flags, rustix::fs::Mode::empty()) {
                Ok(fd) => fd,
                Err(e) => {
                    self.skip(path, std::io::Error::from(e));
                    return Ok(None);
                }
            };
            crate::sys::fd_path(&held)
        } else {
            access.to_path_buf()
        };
        let listing = std::fs::read_dir(&base)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<Vec<_>>>());
        let mut names = match listing {
            Ok(n) => n,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let parent = self.parent_tree(parent);
        let entries = names
            .iter()
            .map(|n| (n.clone(), parent.find(n.as_bytes()).and_then(FileStamp::of_node)))
            .collect();
        self.read_ahead.folder(path, &base, entries);
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|n| {
                self.save_path(
                    &path.join(n),
                    &base.join(n),
                    n.as_bytes(),
                    parent.find(n.as_bytes()),
                    Some(dev),
                )
            })
            .collect::<Result<_>>()?;
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        Ok(Some(self.save_tree(Tree { nodes: nodes.into_iter().flatten().collect() })?))
    }

    /// Whether an entry is left out by the exclude options.
    fn excluded(&self, path: &Path, md: &std::fs::Metadata, parent_dev: Option<u64>) -> bool {
        let ex = &self.excludes;
        ex.excludes_path(path, md.is_dir())
            || (md.is_file() && ex.excludes_size(md.len()))
            || (md.is_dir() && ex.one_file_system() && parent_dev.is_some_and(|d| d != md.dev()))
            || (md.is_dir() && ex.excludes_folder_contents(path))
    }

    /// The parent's chunk list for a file whose metadata says it did not change, if all
    /// those chunks are still indexed.
    fn unchanged_chunks(&self, before: Option<&Node>, md: &std::fs::Metadata) -> Option<Vec<ChunkId>> {
        let before = before?;
        let NodeKind::File { chunks, .. } = &before.kind else { return None };
        let same = FileStamp::of_node(before) == Some(FileStamp::of(md));
        (same && chunks.iter().all(|c| self.writer.has(&BlobId::Chunk(*c)))).then(|| chunks.clone())
    }

    /// Chunk and store a file. Outer error: fatal; inner error: this file is unreadable
    /// or vanished while it was read. A file that changed while it was read is stored as
    /// read and recorded in `changed`, which makes the snapshot partial. `access` is how
    /// the file is reached (its path, or a handle-relative path for a path too deep for
    /// the system to take whole).
    fn save_file(&self, path: &Path, access: &Path, md: &std::fs::Metadata) -> Result<FileContent> {
        self.progress.set_current(path);
        let f = match open_noatime(access, md) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let content = self.save_stream(&f, md.len())?;
        let Ok((read, _)) = &content else { return Ok(content) };
        let after =
            ReadEnd { read: *read, open: f.metadata().ok(), at_path: std::fs::symlink_metadata(access).ok() };
        match change_while_read(md, &after) {
            None => Ok(content),
            Some(ChangeWhileRead::Vanished) => Ok(Err("vanished while it was read".into())),
            Some(ChangeWhileRead::Changed(what)) => {
                self.changed.lock().expect("changed lock").push(format!(
                    "{}: changed while it was read ({what}); stored as read, which may mix old and new content",
                    path.display()
                ));
                Ok(content)
            }
        }
    }

    /// Chunk a stream and store its chunks. The chunks of each window are hashed,
    /// compressed and sealed in parallel; ids come back in file order.
    fn save_stream(&self, reader: impl Read, size_hint: u64) -> Result<FileContent> {
        let mut stream = ChunkStream::with_size_hint(&self.chunker, reader, size_hint);
        let mut ids = Vec::new();
        let mut read = 0u64;
        loop {
            // Checked per window too, so a large file does not hold off an interrupt.
            self.check_interrupt()?;
            let (buf, ranges) = match stream.next_batch() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => return Ok(Err(format!("read failed after {read} bytes: {e}"))),
            };
            let save = |r: &std::ops::Range<usize>| -> Result<ChunkId> {
                let chunk = &buf[r.clone()];
                let id = self.repo.keys().chunk_id(chunk);
                self.writer.save(BlobId::Chunk(id), chunk)?;
                self.progress.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(id)
            };
            let batch: Vec<ChunkId> = if ranges.len() > 1 {
                ranges.par_iter().map(save).collect::<Result<_>>()?
            } else {
                ranges.iter().map(save).collect::<Result<_>>()?
            };
            let batch_len = ranges.iter().map(|r| r.len() as u64).sum::<u64>();
            read += batch_len;
            self.read_ahead.consumed(batch_len);
            ids.extend(batch);
        }
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        Ok(Ok((read, ids)))
    }

    /// Back up a stream as the single file `name` of the root tree.
    pub fn save_stdin(&self, name: &str, reader: Box<dyn Read + Send>, time: Timespec) -> Result<TreeId> {
        if !crate::format::tree::valid_name(name.as_bytes()) {
            return Err(Error::invalid(format!("--stdin-name '{name}' must be a plain file name (no '/')")));
        }
        let (size, chunks) = self
            .save_stream(reader, u64::MAX)?
            .map_err(|e| Error::new(ErrorKind::Io, format!("reading standard input: {e}")))?;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.files_new.fetch_add(1, Ordering::Relaxed);
        self.counters.total_bytes.fetch_add(size, Ordering::Relaxed);
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let node = Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File { size, chunks },
            mode: 0o600,
            uid,
            gid,
            user: Some(crate::sys::username()),
            group: uzers::get_group_by_gid(gid).map(|g| g.name().to_string_lossy().into_owned()),
            mtime: time,
            atime: time,
            ctime: time,
            inode: 0,
            device: 0,
            links: 1,
            xattrs: Vec::new(),
        };
        self.save_tree(Tree { nodes: vec![node] })
    }
}

/// A tar stream's entries go into the backup like a folder's.
impl TarSink for Walker<'_> {
    fn interrupted(&self) -> Result<()> {
        self.check_interrupt()
    }
    fn file(&self, content: &mut dyn Read) -> Result<FileContent> {
        self.save_stream(content, u64::MAX)
    }
    fn tree(&self, tree: Tree) -> Result<TreeId> {
        self.save_tree(tree)
    }
    fn left_out(&self, path: &str, why: &str) {
        self.skip(Path::new(path), why)
    }
    fn counted(&self, what: Counted) {
        let c = &self.counters;
        let add = |n: &AtomicU64, by| {
            n.fetch_add(by, Ordering::Relaxed);
        };
        match what {
            Counted::Folder => add(&c.dirs, 1),
            Counted::File(size) => {
                add(&c.files, 1);
                add(&c.files_new, 1);
                add(&c.total_bytes, size);
            }
            Counted::Link => add(&c.files, 1),
            Counted::Other => add(&c.others, 1),
        }
    }
}

/// What was seen once a file was read to its end.
struct ReadEnd {
    /// Bytes read.
    read: u64,
    /// The open file's metadata (fstat) after reading.
    open: Option<std::fs::Metadata>,
    /// What is at the file's path after reading (nothing: it was removed).
    at_path: Option<std::fs::Metadata>,
}

#[derive(Debug, PartialEq, Eq)]
enum ChangeWhileRead {
    /// The path no longer names the file that was read.
    Vanished,
    /// The file was written to while it was read; says what differs.
    Changed(String),
}

/// Whether a file changed between the metadata taken before reading (`before`) and the
/// end of the read: compared by size, modification and change time, and the bytes
/// actually read (a file that shrank gives fewer than its size said).
fn change_while_read(before: &std::fs::Metadata, end: &ReadEnd) -> Option<ChangeWhileRead> {
    match &end.at_path {
        Some(now) if now.ino() == before.ino() && now.dev() == before.dev() => {}
        _ => return Some(ChangeWhileRead::Vanished),
    }
    let after = end.open.as_ref().or(end.at_path.as_ref())?;
    let mut what = Vec::new();
    if end.read != before.len() {
        what.push(format!("{} bytes read of {}", end.read, before.len()));
    }
    if after.len() != before.len() {
        what.push(format!("size {} became {}", before.len(), after.len()));
    }
    if (after.mtime(), after.mtime_nsec()) != (before.mtime(), before.mtime_nsec()) {
        what.push("modification time changed".into());
    }
    if (after.ctime(), after.ctime_nsec()) != (before.ctime(), before.ctime_nsec()) {
        what.push("change time changed".into());
    }
    (!what.is_empty()).then(|| ChangeWhileRead::Changed(what.join(", ")))
}

fn subtree_of(node: Option<&Node>) -> Option<TreeId> {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Dir { tree }) => Some(*tree),
        _ => None,
    }
}

/// Open for reading without updating the access time where the kernel allows it (owner
/// or root), so a backup does not change what it records.
fn open_noatime(path: &Path, md: &std::fs::Metadata) -> std::io::Result<File> {
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    if md.uid() == rustix::process::geteuid().as_raw() || crate::sys::is_root() {
        if let Ok(f) = std::fs::OpenOptions::new().read(true).custom_flags(noatime).open(path) {
            return Ok(f);
        }
    }
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn md(p: &Path) -> std::fs::Metadata {
        std::fs::symlink_metadata(p).unwrap()
    }

    #[test]
    fn a_file_that_changed_shrank_or_vanished_while_read_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let before = md(&p);
        let end = |read| ReadEnd { read, open: Some(md(&p)), at_path: Some(md(&p)) };
        assert_eq!(change_while_read(&before, &end(4096)), None, "an untouched file");

        // Shrank after it was read in part: fewer bytes than its size said.
        match change_while_read(&before, &end(1024)) {
            Some(ChangeWhileRead::Changed(what)) => {
                assert!(what.contains("1024 bytes read of 4096"), "{what}")
            }
            other => panic!("{other:?}"),
        }
        // Written to (the clock must move on for the times to differ).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"more").unwrap();
        match change_while_read(&before, &end(4096)) {
            Some(ChangeWhileRead::Changed(what)) => {
                assert!(
                    what.contains("size 4096 became 4100") && what.contains("modification time"),
                    "{what}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Removed, or replaced by another file under the same name.
        let gone = ReadEnd { read: 4096, open: Some(md(&p)), at_path: None };
        assert_eq!(change_while_read(&before, &gone), Some(ChangeWhileRead::Vanished));
        let other = dir.path().join("g");
        std::fs::write(&other, vec![7u8; 4096]).unwrap();
        let replaced = ReadEnd { read: 4096, open: Some(md(&p)), at_path: Some(md(&other)) };
        assert_eq!(change_while_read(&before, &replaced), Some(ChangeWhileRead::Vanished));
    }
}
