//! `import restic`: a restic snapshot's trees stored as cairn trees. Each restic tree is
//! read (checked against its id), each file's data blobs are read in order, each checked
//! against its id, and streamed through cairn's chunker, so the data is re-chunked and
//! deduplicated as it arrives and no file is ever written to disk.
//!
//! Folders and file contents already stored by this import (an earlier snapshot of the
//! same history) are taken from [`ResticSource`]'s memory instead of being read again.

use super::Walker;
use super::MAX_DEPTH;
use crate::error::{Error, Result};
use crate::format::tree::{valid_name, Node, NodeKind, Tree};
use crate::id::{ChunkId, TreeId};
use crate::ops::import_restic::{ResticSource, Stored};
use crate::restic::format::{Id, Kind, Node as Node0};
use rayon::prelude::*;
use sha2::Digest;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Every this many levels the walk goes on in a new thread with a [`FRESH_STACK`] stack,
/// so that no stack (the main thread's, a worker's) holds more than this many levels.
const FRESH_STACK_EVERY: usize = 48;
const FRESH_STACK: usize = 64 << 20;

/// Reads a file's data blobs one after the other, each checked against its id.
struct BlobReader<'a> {
    source: &'a ResticSource,
    ids: &'a [Id],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.get(self.next) else { return Ok(0) };
            self.buf = self.source.repo.blob(id, false).map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Walker<'_> {
    /// Store the restic tree `root` (a snapshot's) as a cairn tree. `parent` is the tree of
    /// a restic snapshot imported before, with the cairn tree it became: the contents of
    /// the files the two share are taken from there instead of being read again.
    pub fn save_restic(
        &self,
        source: &ResticSource,
        root: &Id,
        parent: Option<(Id, TreeId)>,
    ) -> Result<TreeId> {
        if let Some((restic_tree, cairn_tree)) = parent {
            let reader = crate::pack::PackReader::new(self.repo);
            // Only an optimisation: what cannot be paired is read from restic instead.
            let _ = self.remember_imported(source, &reader, &restic_tree, &cairn_tree, 0);
        }
        let stored = self.restic_dir(source, root, Path::new("/"))?;
        let c = &self.counters;
        c.files.fetch_add(stored.files, Ordering::Relaxed);
        c.dirs.fetch_add(stored.dirs, Ordering::Relaxed);
        c.others.fetch_add(stored.others, Ordering::Relaxed);
        c.total_bytes.fetch_add(stored.bytes, Ordering::Relaxed);
        let new = c.files_new.load(Ordering::Relaxed);
        c.files_unchanged.store(stored.files.saturating_sub(new), Ordering::Relaxed);
        Ok(stored.tree)
    }

    fn restic_dir(&self, source: &ResticSource, id: &Id, path: &Path) -> Result<Stored> {
        if let Some(s) = source.trees.lock().expect("trees lock").get(id) {
            return Ok(*s);
        }
        self.check_interrupt()?;
        if path.components().count() > MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "folder {}: restic's trees nest deeper than {MAX_DEPTH} folders; not imported",
                path.display()
            )));
        }
        let entries = source.repo.tree(id).map_err(|e| e.wrap(format!("folder {}", path.display())))?;
        // The entries of a folder are stored in parallel, as a folder of a backup is.
        let stored: Vec<Option<(Node, Stored)>> =
            entries.into_par_iter().map(|e| self.restic_entry(source, e, path)).collect::<Result<_>>()?;
        let mut total = Stored { tree: TreeId([0; 32]), files: 0, dirs: 0, others: 0, bytes: 0 };
        let mut nodes: Vec<Node> = Vec::with_capacity(stored.len());
        for (node, counts) in stored.into_iter().flatten() {
            total.files += counts.files;
            total.dirs += counts.dirs;
            total.others += counts.others;
            total.bytes += counts.bytes;
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let before = nodes.len();
        nodes.dedup_by(|a, b| a.name == b.name);
        if nodes.len() != before {
            self.skip(path, "restic's tree names an entry twice; the second is left out");
        }
        total.tree = self.save_tree(Tree { nodes })?;
        source.remember_tree(*id, total);
        Ok(total)
    }

    /// One entry as a cairn node, with what it holds (itself included); `None` when its
    /// name cannot be stored (recorded).
    fn restic_entry(&self, source: &ResticSource, e: Node0, path: &Path) -> Result<Option<(Node, Stored)>> {
        let at: PathBuf = path.join(std::ffi::OsStr::from_bytes(&e.name));
        if !valid_name(&e.name) {
            self.skip(&at, "a name cairn cannot store; left out");
            return Ok(None);
        }
        let mut counts = Stored { tree: TreeId([0; 32]), files: 0, dirs: 0, others: 0, bytes: 0 };
        let kind = match e.kind {
            Kind::Dir { subtree } => {
                counts = if at.components().count() % FRESH_STACK_EVERY == 0 {
                    // Deep folders go on in a thread of their own with a stack to match.
                    std::thread::scope(|scope| {
                        std::thread::Builder::new()
                            .name("restic-deep".into())
                            .stack_size(FRESH_STACK)
                            .spawn_scoped(scope, || self.restic_dir(source, &subtree, &at))
                            .map_err(|e| Error::io("cannot start a thread", e))?
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p))
                    })?
                } else {
                    self.restic_dir(source, &subtree, &at)?
                };
                counts.dirs += 1;
                NodeKind::Dir { tree: counts.tree }
            }
            Kind::File { content } => {
                let (size, chunks) = self.restic_file(source, &content, e.size, &at)?;
                counts.files = 1;
                counts.bytes = size;
                NodeKind::File { size, chunks }
            }
            Kind::Symlink { target } => NodeKind::Symlink { target },
            Kind::BlockDevice { rdev } => NodeKind::BlockDevice { rdev },
            Kind::CharDevice { rdev } => NodeKind::CharDevice { rdev },
            Kind::Fifo => NodeKind::Fifo,
            Kind::Socket => NodeKind::Socket,
        };
        if !matches!(kind, NodeKind::Dir { .. } | NodeKind::File { .. }) {
            counts.others = 1;
        }
        let node = Node {
            name: e.name,
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            user: e.user,
            group: e.group,
            mtime: e.mtime,
            atime: e.atime,
            ctime: e.ctime,
            inode: e.inode,
            device: e.device_id,
            links: e.links.max(1),
            xattrs: e.xattrs,
        };
        Ok(Some((node, counts)))
    }

    /// Pair a restic folder with the cairn folder it was imported as, and remember each
    /// file's cairn content under its restic blob list.
    fn remember_imported(
        &self,
        source: &ResticSource,
        reader: &crate::pack::PackReader<'_>,
        restic_tree: &Id,
        cairn_tree: &TreeId,
        depth: usize,
    ) -> Result<()> {
        if depth > FRESH_STACK_EVERY {
            return Ok(());
        }
        self.check_interrupt()?;
        let theirs = source.repo.tree(restic_tree)?;
        let ours = crate::tree::load_tree(reader, self.writer.index(), cairn_tree)?;
        for e in theirs {
            let Some(node) = ours.find(&e.name) else { continue };
            match (&e.kind, &node.kind) {
                (Kind::File { content }, NodeKind::File { size, chunks }) => {
                    source.remember_file(content_key(content), (*size, chunks.clone()));
                }
                (Kind::Dir { subtree }, NodeKind::Dir { tree }) => {
                    self.remember_imported(source, reader, subtree, tree, depth + 1)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn restic_file(
        &self,
        source: &ResticSource,
        content: &[Id],
        size: u64,
        at: &Path,
    ) -> Result<(u64, Vec<ChunkId>)> {
        let key = content_key(content);
        if let Some(c) = source.files.lock().expect("files lock").contents.get(&key) {
            return Ok(c.clone());
        }
        let reader = BlobReader { source, ids: content, next: 0, buf: Vec::new(), pos: 0 };
        let (read, chunks) = self
            .save_stream(reader, size)?
            .map_err(|e| Error::corrupt(format!("file {}: {e}", at.display())))?;
        self.counters.files_new.fetch_add(1, Ordering::Relaxed);
        source.remember_file(key, (read, chunks.clone()));
        Ok((read, chunks))
    }
}

/// A file content's key among those remembered: the hash of its restic blob list.
fn content_key(content: &[Id]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for id in content {
        h.update(id);
    }
    h.finalize().into()
}
