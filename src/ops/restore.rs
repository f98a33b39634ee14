//! Restore: plan the work by walking the snapshot's trees, then carry it out.
//!
//! 1. Plan (one thread): load trees, create folders, list files, special nodes and hard
//!    links, honouring `--include`.
//! 2. Files in parallel: each chunk is fetched, decrypted, decompressed and its id
//!    recomputed before a byte is written; zero blocks become holes. A file already at the
//!    target with identical content (checked chunk by chunk against the ids) is not
//!    rewritten. A changed file is written beside the old one and renamed over it.
//! 3. Special nodes, then hard links, then folder metadata deepest first (writing into a
//!    folder changes its times).
//!
//! Every change below the target goes through folder handles opened without following
//! symlinks (restore_target.rs): a symlink or fifo someone planted in the target, where
//! the snapshot has a folder or at the temporary name of a changed file, is removed and
//! reported, never followed.
//!
//! A damaged or missing chunk fails only the files that use it: every other file is still
//! restored, and the outcome names each damaged file.

use super::flusher::{Flusher, FLUSH_EVERY};
use super::restore_target::{self, Found, TargetRoot};
use super::sparse_writer::SparseWriter;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::{BlobId, ChunkId, TreeId};
use crate::index::Index;
use crate::pack::PackReader;
use crate::repo::Repository;
use crate::tree::meta;
use crate::tree::walk::{walk, Visit};
use rayon::prelude::*;
use rustix::fs::AtFlags;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore only these snapshot paths (absolute, as backed up) and what is under them.
    pub includes: Vec<PathBuf>,
    /// Remove what the snapshot does not have below these snapshot paths (`--delete`;
    /// see restore_delete.rs), after the files are in place and before folder times are
    /// set (removing an entry changes its folder's times).
    pub delete_below: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub files_written: u64,
    pub files_unchanged: u64,
    pub bytes_written: u64,
    pub dirs: u64,
    pub others: u64,
    /// Hard links recreated.
    pub links: u64,
    /// Files not restored (or restored incompletely) because their data is damaged or
    /// missing, with the reason.
    pub damaged: Vec<String>,
    /// Metadata that could not be applied (xattrs the target refuses, ...).
    pub warnings: Vec<String>,
    /// Entries removed because the snapshot does not have them (`delete_below`).
    pub removed: Vec<PathBuf>,
    /// Frames fetched, decrypted and decompressed: each frame of the snapshot's files once,
    /// however their blobs spread over the tree (unless one is damaged).
    pub frames_read: u64,
}

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    specials: Vec<(PathBuf, Node)>,
    /// (path, first path of the same inode) pairs to hard-link once files are written.
    links: Vec<(PathBuf, PathBuf)>,
    /// (device, inode) of hard-linked files to the first path planned for them.
    first_link: HashMap<(u64, u64), PathBuf>,
}

pub fn restore(
    repo: &Repository,
    tree: &TreeId,
    target: &Path,
    opts: &RestoreOptions,
    interrupt: &AtomicBool,
) -> Result<RestoreOutcome> {
    let index = Index::load(repo)?;
    let reader = PackReader::new(repo);
    let root = TargetRoot::open(target)?;
    let mut out = RestoreOutcome::default();
    let mut plan = make_plan(&reader, &index, tree, &root, opts, &mut out)?;
    let remote = repo.backend().read_parallelism() > 1;
    if remote {
        order_by_first_pack(&mut plan.files, &index);
    }
    // Files are written in tree order (ext4 then allocates their inodes and blocks near
    // their folders: writing in pack order instead made a local restore a third slower),
    // while each frame is opened once and kept until every file that needs it took its
    // blobs.
    let planned = plan.files.iter().flat_map(|(_, node)| file_chunks(node));
    reader.plan_reads(planned.filter_map(|c| index.get(&BlobId::Chunk(*c))));
    let files = Files {
        repo,
        reader: &reader,
        index: &index,
        root: &root,
        as_root: crate::sys::is_root(),
        written: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        unchanged: AtomicU64::new(0),
        damaged: Mutex::new(std::mem::take(&mut out.damaged)),
        failed: Mutex::new(HashSet::new()),
        warnings: Mutex::new(std::mem::take(&mut out.warnings)),
        interrupt,
    };
    let flusher = Flusher::new(root.root_fd().try_clone().ok().map(File::from), FLUSH_EVERY);
    // From a remote store, threads wait for fetched packs: more of them keep more
    // fetches in flight (a local store keeps one thread per core). There the threads take
    // files in the plan's order, as the packs are fetched ahead (`pack::prefetch`).
    let restored = super::read_pool::install(repo, || {
        reader.fetching_ahead(|| {
            let restore = |(path, node): &(PathBuf, Node)| files.restore_one(path, node, interrupt, &flusher);
            match remote {
                true => plan.files.iter().par_bridge().try_for_each(restore),
                false => plan.files.par_iter().try_for_each(restore),
            }
        })
    })?;
    flusher.finish();
    restored?;
    let mut warnings = files.warnings.into_inner().expect("warnings lock");
    let mut damaged = files.damaged.into_inner().expect("damaged lock");
    let failed = files.failed.into_inner().expect("failed lock");
    for (path, node) in &plan.specials {
        if matches!(node.kind, NodeKind::Socket) {
            continue; // a socket belongs to a running process; nothing to restore
        }
        let (dir, name) = root.parent(path)?;
        replace_at(&dir, name, path, &mut warnings, |d, tmp| meta::create_special_at(d, tmp, node, path))?;
        warnings.extend(meta::apply_to(meta::Target::At(&dir, name, path), node, files.as_root)?);
        out.others += 1;
    }
    for (path, first) in &plan.links {
        if failed.contains(first) {
            damaged.push(format!(
                "{}: hard link to {}, whose data is damaged",
                path.display(),
                first.display()
            ));
            continue;
        }
        link(&root, path, first, &mut warnings)?;
        out.links += 1;
    }
    if let Some(below) = &opts.delete_below {
        out.removed = super::restore_delete::find_extras(&reader, &index, tree, &root, below)?;
        for extra in &out.removed {
            super::restore_delete::remove(&root, extra)?;
        }
    }
    for (path, node) in plan.dirs.iter().rev() {
        let (dir, name) = root.parent(path)?;
        let fd = restore_target::open_dir_at(&dir, name).map_err(|e| {
            Error::io(
                format!(
                    "cannot open folder {} to set its metadata (replaced during restore?)",
                    path.display()
                ),
                e.into(),
            )
        })?;
        warnings.extend(meta::apply_to(meta::Target::File(&File::from(fd), path), node, files.as_root)?);
    }
    // One flush of the target filesystem at the end instead of one per file (which cost
    // a disk round trip per file): when restore reports success, the data is on disk.
    // The flusher above wrote most of it back already, while files were still restored.
    rustix::fs::syncfs(root.root_fd())
        .map_err(|e| Error::io(format!("cannot sync {}", target.display()), e.into()))?;
    out.files_written = files.written.into_inner();
    out.files_unchanged = files.unchanged.into_inner();
    out.bytes_written = files.bytes.into_inner();
    out.frames_read = reader.frames_opened();
    damaged.sort();
    out.damaged = damaged;
    // An index file that did not open may be why a file above is damaged.
    warnings.extend(
        index.skipped_files.iter().map(|w| format!("{w}: left out; `cairn repair index` rebuilds it")),
    );
    out.warnings = warnings;
    Ok(out)
}

/// Walk the snapshot's trees into a plan, creating folders on the way.
fn make_plan(
    reader: &PackReader<'_>,
    index: &Index,
    tree: &TreeId,
    root: &TargetRoot,
    opts: &RestoreOptions,
    out: &mut RestoreOutcome,
) -> Result<Plan> {
    let mut plan = Plan::default();
    let matched = walk(reader, index, tree, root.path(), &opts.includes, &mut |v| match v {
        Visit::Node(path, node) => plan_node(path, node, &mut plan, out, root),
        Visit::Unreadable(dir, e) => {
            out.damaged.push(format!("{}: folder contents lost: {e}", dir.display()));
            Ok(false)
        }
    })?;
    if let Some(i) = matched.iter().position(|m| !m) {
        return Err(Error::invalid(format!(
            "--include {}: the snapshot has no such path (paths are absolute, as backed up)",
            opts.includes[i].display()
        )));
    }
    Ok(plan)
}

/// Add a node of the snapshot to the plan; folders are created now so that files can be
/// written in parallel. Returns whether to descend.
fn plan_node(
    path: &Path,
    node: Node,
    plan: &mut Plan,
    out: &mut RestoreOutcome,
    root: &TargetRoot,
) -> Result<bool> {
    match &node.kind {
        NodeKind::Dir { .. } => {
            let (dir, name) = root.parent(path)?;
            out.warnings.extend(restore_target::ensure_dir(&dir, name, path)?);
            out.dirs += 1;
            plan.dirs.push((path.to_path_buf(), node));
            return Ok(true);
        }
        NodeKind::File { .. } if node.links > 1 => {
            let key = (node.device, node.inode);
            if let Some(first) = plan.first_link.get(&key) {
                plan.links.push((path.to_path_buf(), first.clone()));
            } else {
                plan.first_link.insert(key, path.to_path_buf());
                plan.files.push((path.to_path_buf(), node));
            }
        }
        NodeKind::File { .. } => plan.files.push((path.to_path_buf(), node)),
        _ => plan.specials.push((path.to_path_buf(), node)),
    }
    Ok(false)
}

/// Make `name` in `dir` with `make` at its temporary name, then rename it into place.
fn replace_at(
    dir: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    warnings: &mut Vec<String>,
    make: impl FnOnce(&OwnedFd, &OsStr) -> Result<()>,
) -> Result<()> {
    if restore_target::lookup(dir, name)? == Found::Dir {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("{} is a folder at the target; remove it to restore this entry", shown.display()),
        ));
    }
    let (tmp, warning) = restore_target::clear_temp(dir, name, shown.parent().unwrap_or(shown))?;
    warnings.extend(warning);
    make(dir, &tmp)?;
    restore_target::rename(dir, &tmp, name).ctx(|| format!("cannot rename into {}", shown.display()))
}

/// Make `path` a hard link to `first` (both below the target), unless it is one already.
fn link(root: &TargetRoot, path: &Path, first: &Path, warnings: &mut Vec<String>) -> Result<()> {
    let (dir, name) = root.parent(path)?;
    let (first_dir, first_name) = root.parent(first)?;
    let have = restore_target::inode_at(&dir, name);
    if have.is_some() && have == restore_target::inode_at(&first_dir, first_name) {
        return Ok(());
    }
    replace_at(&dir, name, path, warnings, |d, tmp| {
        // linkat without AT_SYMLINK_FOLLOW links the entry itself, never what it names.
        rustix::fs::linkat(&*first_dir, first_name, d, tmp, AtFlags::empty())
            .map_err(|e| Error::io(format!("cannot link {}", path.display()), e.into()))
    })
}

/// Whether two paths are already the same file (a hard link restored before).
pub(crate) fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Order files by where their data starts (pack, then offset). From a remote store, whose
/// packs are fetched whole into a small cache, each restore thread then works through a
/// few packs at a time instead of evicting the packs the other threads still read.
fn order_by_first_pack(files: &mut [(PathBuf, Node)], index: &Index) {
    files.sort_by_cached_key(|(_, node)| match &node.kind {
        NodeKind::File { chunks, .. } => {
            chunks.first().and_then(|c| index.get(&BlobId::Chunk(*c))).map(|l| (l.pack.0, l.entry.offset))
        }
        _ => None,
    });
}

/// The chunks of a planned file.
fn file_chunks(node: &Node) -> &[ChunkId] {
    match &node.kind {
        NodeKind::File { chunks, .. } => chunks,
        _ => &[],
    }
}

enum FileResult {
    /// Written, and still open so its metadata can be set without path lookups.
    Written(u64, File),
    /// Already there with the right content; open for its metadata.
    Unchanged(File),
}

/// What the parallel file writers share.
struct Files<'a> {
    repo: &'a Repository,
    reader: &'a PackReader<'a>,
    index: &'a Index,
    root: &'a TargetRoot,
    as_root: bool,
    written: AtomicU64,
    bytes: AtomicU64,
    unchanged: AtomicU64,
    damaged: Mutex<Vec<String>>,
    /// Files whose data could not be restored, so their hard links are not made either.
    failed: Mutex<HashSet<PathBuf>>,
    warnings: Mutex<Vec<String>>,
    /// Checked per chunk, so a large file does not hold off an interrupt.
    interrupt: &'a AtomicBool,
}

impl Files<'_> {
    fn restore_one(&self, path: &Path, node: &Node, interrupt: &AtomicBool, flusher: &Flusher) -> Result<()> {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "restore interrupted"));
        }
        let file = match self.restore_file(path, node) {
            Ok(FileResult::Written(n, file)) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(n, Ordering::Relaxed);
                flusher.wrote(n);
                file
            }
            Ok(FileResult::Unchanged(file)) => {
                self.unchanged.fetch_add(1, Ordering::Relaxed);
                let planned = file_chunks(node).iter().filter_map(|c| self.index.get(&BlobId::Chunk(*c)));
                self.reader.unplan(planned);
                file
            }
            Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::NotFound => {
                self.damaged.lock().expect("damaged lock").push(format!("{}: {e}", path.display()));
                self.failed.lock().expect("failed lock").insert(path.to_path_buf());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // Applied before taking the lock: a receiver is evaluated before the arguments,
        // so `lock().extend(apply_to(..))` would set every file's metadata under it.
        let problems = meta::apply_to(meta::Target::File(&file, path), node, self.as_root)?;
        if !problems.is_empty() {
            self.warnings.lock().expect("warnings lock").extend(problems);
        }
        Ok(())
    }

    /// Restore one file. Where nothing is at `path`, the file is written there directly;
    /// an existing file is left alone if it already holds the content, and otherwise
    /// replaced by writing beside it and renaming over it, so an interrupted restore never
    /// leaves the old file half overwritten. Every step is relative to the folder's
    /// handle and follows no symlink.
    fn restore_file(&self, path: &Path, node: &Node) -> Result<FileResult> {
        let NodeKind::File { size, chunks } = &node.kind else { unreachable!("planned as a file") };
        let (dir, name) = self.root.parent(path)?;
        // Creating the file is also the check that nothing is there (no stat first).
        if let Some(file) = self.write_file(&dir, name, path, *size, chunks)? {
            return Ok(FileResult::Written(*size, file));
        }
        let folder_in_the_way = || {
            Error::new(
                ErrorKind::AlreadyExists,
                format!("{} is a folder at the target; remove it to restore this file", path.display()),
            )
        };
        match restore_target::lookup(&dir, name)? {
            Found::Dir => return Err(folder_in_the_way()),
            Found::File => {
                if let Some(f) = restore_target::open_existing_file(&dir, name) {
                    if already_identical(self.repo, self.index, &f, *size, chunks) {
                        return Ok(FileResult::Unchanged(f));
                    }
                }
            }
            _ => {}
        }
        let (tmp, warning) = restore_target::clear_temp(&dir, name, path.parent().unwrap_or(path))?;
        if let Some(w) = warning {
            self.warnings.lock().expect("warnings lock").push(w);
        }
        let shown = path.with_file_name(&tmp);
        let file = self.write_file(&dir, &tmp, &shown, *size, chunks)?.ok_or_else(|| {
            Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} appeared while restore was writing it; someone else writes here",
                    shown.display()
                ),
            )
        })?;
        if restore_target::lookup(&dir, name)? == Found::Dir {
            let _ = restore_target::unlink(&dir, &tmp);
            return Err(folder_in_the_way());
        }
        restore_target::rename(&dir, &tmp, name).ctx(|| format!("cannot rename into {}", path.display()))?;
        Ok(FileResult::Written(*size, file))
    }

    /// Write the file's chunks through a `SparseWriter` (zero blocks become holes, large
    /// files skip the page cache) into the new file `name` in `dir`. Something already
    /// there gives `None` and is left as it is (a symlink is not followed). A file this
    /// made is removed again if writing it fails.
    fn write_file(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        shown: &Path,
        size: u64,
        chunks: &[ChunkId],
    ) -> Result<Option<File>> {
        let w = match SparseWriter::create_at(dir, name, size) {
            Ok(w) => w,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot create {}", shown.display()), e)),
        };
        let written = fill(self.reader, self.index, w, shown, size, chunks, self.interrupt);
        if written.is_err() {
            let _ = restore_target::unlink(dir, name);
        }
        written.map(Some)
    }
}

fn fill(
    reader: &PackReader<'_>,
    index: &Index,
    mut w: SparseWriter,
    path: &Path,
    size: u64,
    chunks: &[ChunkId],
    interrupt: &AtomicBool,
) -> Result<File> {
    let mut offset = 0u64;
    for id in chunks {
        // Per chunk, so a large file does not hold off an interrupt; the half-written
        // file is removed by the caller.
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "restore interrupted"));
        }
        let data = reader.read_indexed(index, &BlobId::Chunk(*id))?;
        w.write(&data).ctx(|| format!("cannot write {}", path.display()))?;
        offset += data.len() as u64;
    }
    if offset != size {
        return Err(Error::corrupt(format!("chunks hold {offset} bytes but the file had {size}")));
    }
    w.finish(size).ctx(|| format!("cannot write {}", path.display()))
}

/// Whether the open file `f` already holds exactly the content of these chunks (compared
/// by recomputing each chunk's keyed id over the existing bytes).
fn already_identical(repo: &Repository, index: &Index, f: &File, size: u64, chunks: &[ChunkId]) -> bool {
    if f.metadata().map(|md| md.len()).ok() != Some(size) {
        return false;
    }
    let mut reader = f;
    let mut buf = Vec::new();
    for id in chunks {
        let Some(loc) = index.get(&BlobId::Chunk(*id)) else {
            return false;
        };
        buf.resize(loc.entry.raw_length as usize, 0);
        if reader.read_exact(&mut buf).is_err() || !repo.keys().names(&BlobId::Chunk(*id), &buf) {
            return false;
        }
    }
    true
}
