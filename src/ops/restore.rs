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
//! A damaged or missing chunk fails only the files that use it: every other file is still
//! restored, and the outcome names each damaged file.

use super::flusher::{Flusher, FLUSH_EVERY};
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
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore only these snapshot paths (absolute, as backed up) and what is under them.
    pub includes: Vec<PathBuf>,
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
    std::fs::create_dir_all(target).ctx(|| format!("cannot create restore target {}", target.display()))?;
    let mut plan = Plan::default();
    let mut out = RestoreOutcome::default();
    let matched = walk(&reader, &index, tree, target, &opts.includes, &mut |v| match v {
        Visit::Node(path, node) => plan_node(path, node, &mut plan, &mut out),
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

    let as_root = crate::sys::is_root();
    let written = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let unchanged = AtomicU64::new(0);
    let damaged = Mutex::new(std::mem::take(&mut out.damaged));
    // Files whose data could not be restored, so their hard links are not made either.
    let failed = Mutex::new(std::collections::HashSet::new());
    let warnings = Mutex::new(Vec::new());
    let flusher = Flusher::new(std::fs::File::open(target).ok(), FLUSH_EVERY);
    if repo.backend().read_parallelism() > 1 {
        order_by_first_pack(&mut plan.files, &index);
    }
    let restore_one = |(path, node): &(PathBuf, Node)| -> Result<()> {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Interrupted, "restore interrupted"));
        }
        let file = match restore_file(&reader, &index, repo, path, node, interrupt) {
            Ok(FileResult::Written(n, file)) => {
                written.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(n, Ordering::Relaxed);
                flusher.wrote(n);
                Some(file)
            }
            Ok(FileResult::Unchanged) => {
                unchanged.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::NotFound => {
                damaged.lock().expect("damaged lock").push(format!("{}: {e}", path.display()));
                failed.lock().expect("failed lock").insert(path.clone());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let target = match &file {
            Some(f) => meta::Target::File(f, path),
            None => meta::Target::Path(path),
        };
        // Applied before taking the lock: a receiver is evaluated before the arguments,
        // so `lock().extend(apply_to(..))` would set every file's metadata under it.
        let problems = meta::apply_to(target, node, as_root)?;
        if !problems.is_empty() {
            warnings.lock().expect("warnings lock").extend(problems);
        }
        Ok(())
    };
    // From a remote store, threads wait for fetched packs: more of them keep more
    // fetches in flight (a local store keeps one thread per core).
    let restored = super::read_pool::install(repo, || plan.files.par_iter().try_for_each(restore_one))?;
    flusher.finish();
    restored?;
    let mut warnings = warnings.into_inner().expect("warnings lock");
    for (path, node) in &plan.specials {
        replace_with(path, |p| meta::create_special(p, node))?;
        warnings.extend(meta::apply(path, node, as_root)?);
        out.others += 1;
    }
    let failed = failed.into_inner().expect("failed lock");
    for (path, first) in &plan.links {
        if failed.contains(first) {
            damaged.lock().expect("damaged lock").push(format!(
                "{}: hard link to {}, whose data is damaged",
                path.display(),
                first.display()
            ));
            continue;
        }
        if !same_inode(path, first) {
            replace_with(path, |p| {
                std::fs::hard_link(first, p).ctx(|| format!("cannot link {}", p.display()))
            })?;
        }
        out.links += 1;
    }
    for (path, node) in plan.dirs.iter().rev() {
        warnings.extend(meta::apply(path, node, as_root)?);
    }
    // One flush of the target filesystem at the end instead of one per file (which cost
    // a disk round trip per file): when restore reports success, the data is on disk.
    // The flusher above wrote most of it back already, while files were still restored.
    let target_dir = std::fs::File::open(target).ctx(|| format!("cannot open {}", target.display()))?;
    rustix::fs::syncfs(&target_dir)
        .map_err(|e| Error::io(format!("cannot sync {}", target.display()), e.into()))?;
    out.files_written = written.into_inner();
    out.files_unchanged = unchanged.into_inner();
    out.bytes_written = bytes.into_inner();
    out.damaged = damaged.into_inner().expect("damaged lock");
    out.damaged.sort();
    // An index file that did not open may be why a file above is damaged.
    warnings.extend(
        index.skipped_files.iter().map(|w| format!("{w}: left out; `cairn repair index` rebuilds it")),
    );
    out.warnings = warnings;
    Ok(out)
}

/// Add a node of the snapshot to the plan; folders are created now so that files can be
/// written in parallel. Returns whether to descend.
fn plan_node(path: &Path, node: Node, plan: &mut Plan, out: &mut RestoreOutcome) -> Result<bool> {
    match &node.kind {
        NodeKind::Dir { .. } => {
            prepare_dir(path)?;
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

/// Make sure a folder exists at `path`, replacing a non-folder there.
fn prepare_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).ctx(|| format!("cannot replace {}", path.display()))?,
        Err(_) => {}
    }
    use std::os::unix::fs::DirBuilderExt;
    // Folders start private; their real mode is applied once their contents are written.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .ctx(|| format!("cannot create folder {}", path.display()))
}

/// Create a node with `make` at a temporary name, then rename it over `path`.
fn replace_with(path: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.is_dir() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} is a folder at the target; remove it to restore this entry", path.display()),
            ));
        }
    }
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    make(&tmp)?;
    std::fs::rename(&tmp, path).ctx(|| format!("cannot rename into {}", path.display()))
}

/// Whether two paths are already the same file (a hard link restored before).
pub(crate) fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".cairn-restore-");
    name.push(path.file_name().unwrap_or_default());
    path.with_file_name(name)
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

enum FileResult {
    /// Written, and still open so its metadata can be set without path lookups.
    Written(u64, File),
    Unchanged,
}

/// Restore one file. Where nothing is at `path`, the file is written there directly;
/// an existing file is left alone if it already holds the content, and otherwise
/// replaced by writing beside it and renaming over it, so an interrupted restore never
/// leaves the old file half overwritten.
fn restore_file(
    reader: &PackReader<'_>,
    index: &Index,
    repo: &Repository,
    path: &Path,
    node: &Node,
    interrupt: &AtomicBool,
) -> Result<FileResult> {
    let NodeKind::File { size, chunks } = &node.kind else { unreachable!("planned as a file") };
    // Creating the file is also the check that nothing is there (no stat first).
    if let Some(file) = write_file(reader, index, path, true, *size, chunks, interrupt)? {
        return Ok(FileResult::Written(*size, file));
    }
    let folder_in_the_way = || {
        Error::new(
            ErrorKind::AlreadyExists,
            format!("{} is a folder at the target; remove it to restore this file", path.display()),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => return Err(folder_in_the_way()),
        Ok(md) if already_identical(repo, index, path, &md, *size, chunks) => {
            return Ok(FileResult::Unchanged)
        }
        _ => {}
    }
    let tmp = temp_name(path);
    let file =
        write_file(reader, index, &tmp, false, *size, chunks, interrupt)?.expect("created without O_EXCL");
    if std::fs::symlink_metadata(path).is_ok_and(|md| md.is_dir()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(folder_in_the_way());
    }
    std::fs::rename(&tmp, path).ctx(|| format!("cannot rename into {}", path.display()))?;
    Ok(FileResult::Written(*size, file))
}

/// Write the file's chunks through a `SparseWriter` (zero blocks become holes, large
/// files skip the page cache) into a new file at `path`. With `create_new`, something
/// already at `path` gives `None` and is left as it is. A file this made is removed
/// again if writing it fails.
fn write_file(
    reader: &PackReader<'_>,
    index: &Index,
    path: &Path,
    create_new: bool,
    size: u64,
    chunks: &[ChunkId],
    interrupt: &AtomicBool,
) -> Result<Option<File>> {
    let w = match SparseWriter::create(path, create_new, size) {
        Ok(w) => w,
        Err(e) if create_new && e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot create {}", path.display()), e)),
    };
    let written = fill(reader, index, w, path, size, chunks, interrupt);
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written.map(Some)
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

/// Whether `path` already holds exactly the content of these chunks (compared by
/// recomputing each chunk's keyed id over the existing bytes).
fn already_identical(
    repo: &Repository,
    index: &Index,
    path: &Path,
    md: &std::fs::Metadata,
    size: u64,
    chunks: &[ChunkId],
) -> bool {
    if !md.is_file() || md.len() != size {
        return false;
    }
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut buf = Vec::new();
    for id in chunks {
        let Some(loc) = index.get(&BlobId::Chunk(*id)) else {
            return false;
        };
        buf.resize(loc.entry.raw_length as usize, 0);
        if f.read_exact(&mut buf).is_err() || repo.keys().chunk_id(&buf) != *id {
            return false;
        }
    }
    true
}
