//! Backup: walk the sources, store new chunks and trees, write the snapshot last.
//!
//! The snapshot's root tree mirrors the sources' absolute paths (backing up
//! /opt/gw/conf gives root -> opt -> gw -> conf), so a restore to `/` puts everything back
//! where it was. Folders of the same parent are processed in parallel (rayon); every
//! worker shares one [`BlobWriter`].
//!
//! Errors come in two sorts: a file that cannot be read (or vanished) is recorded, left out
//! of the snapshot and the backup goes on (the snapshot is then partial); anything that
//! threatens the repository (a failed write, a full disk, an interrupt) stops the backup
//! before a snapshot is written. Either way what was stored is flushed and indexed first,
//! so the next run reuses it.

use crate::chunker::{ChunkStream, Chunker};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::index::Index;
use crate::ops::exclude::Excludes;
use crate::pack::BlobWriter;
use crate::repo::Repository;
use crate::tree::meta;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What to back up.
pub enum Source {
    Paths(Vec<PathBuf>),
    /// One file read from a stream (a database dump piped in), stored under `name`.
    Stdin {
        name: String,
        reader: Box<dyn Read + Send>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub excludes: Vec<String>,
    pub time: Option<Timespec>,
}

pub struct BackupOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Files and folders that could not be read, one line each.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    bytes_read: AtomicU64,
    total_bytes: AtomicU64,
}

struct Walker<'a> {
    repo: &'a Repository,
    writer: BlobWriter<'a>,
    chunker: Chunker,
    excludes: Excludes,
    counters: Counters,
    errors: Mutex<Vec<String>>,
    interrupt: &'a AtomicBool,
}

pub fn backup(
    repo: &Repository,
    source: Source,
    opts: &BackupOptions,
    interrupt: &AtomicBool,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time = opts.time.unwrap_or_else(Timespec::now);
    let walker = Walker {
        repo,
        writer: BlobWriter::new(repo, Index::load(repo)?),
        chunker: repo.chunker()?,
        excludes: Excludes::new(&opts.excludes)?,
        counters: Counters::default(),
        errors: Mutex::new(Vec::new()),
        interrupt,
    };
    let (paths, walked) = match source {
        Source::Paths(paths) => {
            let sources = check_sources(&paths)?;
            let raw: Vec<Vec<u8>> = sources
                .iter()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect();
            (raw, walker.save_sources(&sources))
        }
        Source::Stdin { name, reader } => (
            vec![name.as_bytes().to_vec()],
            walker.save_stdin(&name, reader, time),
        ),
    };
    // Flush even when the walk failed: what was stored is then indexed and reused next time.
    let flushed = walker.writer.flush();
    let tree = walked?;
    flushed?;
    let c = &walker.counters;
    let errors = walker.errors.into_inner().expect("errors lock");
    let snapshot = Snapshot {
        time,
        host: opts.host.clone().unwrap_or_else(crate::sys::hostname),
        user: crate::sys::username(),
        paths,
        tags: opts.tags.clone(),
        labels: opts.labels.clone(),
        excludes: opts.excludes.clone(),
        tree,
        parent: None,
        summary: Summary {
            files: c.files.load(Ordering::Relaxed),
            dirs: c.dirs.load(Ordering::Relaxed),
            others: c.others.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            total_bytes: c.total_bytes.load(Ordering::Relaxed),
            chunks_new: walker.writer.blobs_new.load(Ordering::Relaxed),
            bytes_added: walker.writer.bytes_stored.load(Ordering::Relaxed),
            errors: errors.len() as u64,
            duration_ms: started.elapsed().as_millis() as u64,
        },
        program: concat!("cairn ", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let id = repo.save_snapshot(&snapshot)?;
    Ok(BackupOutcome {
        id,
        snapshot,
        errors,
    })
}

/// Make every source absolute, check it exists, and drop sources inside other sources.
fn check_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::invalid(
            "nothing to back up: give at least one path (or --stdin)",
        ));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs =
            std::path::absolute(p).ctx(|| format!("cannot resolve source path {}", p.display()))?;
        // Lexically normalize: drop "." and resolve ".." without following symlinks.
        let mut norm = PathBuf::new();
        for c in abs.components() {
            match c {
                Component::ParentDir => {
                    norm.pop();
                }
                Component::CurDir => {}
                other => norm.push(other),
            }
        }
        std::fs::symlink_metadata(&norm).map_err(|e| {
            Error::with_source(
                if e.kind() == std::io::ErrorKind::NotFound {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::Io
                },
                format!("source path {} cannot be read; check the path", p.display()),
                e,
            )
        })?;
        out.push(norm);
    }
    out.sort();
    out.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in out {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Ok(kept)
}

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
    fn save_sources(&self, sources: &[PathBuf]) -> Result<TreeId> {
        if sources.iter().any(|s| s.parent().is_none()) {
            // Backing up "/" itself: the root tree is the root folder.
            return self
                .save_dir(Path::new("/"))?
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
                    level
                        .children
                        .insert(key, SkeletonEntry::Source(at.clone()));
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
        self.save_skeleton(&root)
    }

    fn save_skeleton(&self, sk: &Skeleton) -> Result<TreeId> {
        let mut nodes = Vec::new();
        for (name, entry) in &sk.children {
            match entry {
                SkeletonEntry::Source(path) => nodes.extend(self.save_path(path, name)?),
                SkeletonEntry::Folder(path, inner) => {
                    let md = std::fs::symlink_metadata(path)
                        .ctx(|| format!("cannot read {}", path.display()))?;
                    let mut node = meta::read_node(path, name, &md)?;
                    node.kind = NodeKind::Dir {
                        tree: self.save_skeleton(inner)?,
                    };
                    nodes.push(node);
                }
            }
        }
        self.save_tree(Tree { nodes })
    }

    fn save_tree(&self, tree: Tree) -> Result<TreeId> {
        let encoded = tree.encode();
        let id = self.repo.keys().tree_id(&encoded);
        self.writer.save(BlobId::Tree(id), &encoded)?;
        Ok(id)
    }

    fn skip(&self, path: &Path, err: impl std::fmt::Display) {
        self.errors
            .lock()
            .expect("errors lock")
            .push(format!("{}: {err}", path.display()));
    }

    /// One entry; `None` when it could not be read (recorded) or is excluded.
    fn save_path(&self, path: &Path, name: &[u8]) -> Result<Option<Node>> {
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "backup interrupted; no snapshot was written",
            ));
        }
        if self.excludes.is_excluded(path) {
            return Ok(None);
        }
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        let mut node = match meta::read_node(path, name, &md) {
            Ok(n) => n,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        match &mut node.kind {
            NodeKind::File { size, chunks } => {
                match self.save_file(path, &md)? {
                    Ok((read, ids)) => {
                        *size = read;
                        *chunks = ids;
                    }
                    Err(e) => {
                        self.skip(path, e);
                        return Ok(None);
                    }
                }
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .total_bytes
                    .fetch_add(*size, Ordering::Relaxed);
            }
            NodeKind::Dir { tree } => match self.save_dir(path)? {
                Some(id) => *tree = id,
                None => return Ok(None),
            },
            _ => {
                self.counters.others.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Some(node))
    }

    /// A folder's tree; `None` if the folder cannot be listed (recorded).
    fn save_dir(&self, path: &Path) -> Result<Option<TreeId>> {
        let listing = std::fs::read_dir(path).and_then(|rd| {
            rd.map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<Vec<_>>>()
        });
        let mut names = match listing {
            Ok(n) => n,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|n| self.save_path(&path.join(n), n.as_bytes()))
            .collect::<Result<_>>()?;
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        Ok(Some(self.save_tree(Tree {
            nodes: nodes.into_iter().flatten().collect(),
        })?))
    }

    /// Chunk and store a file. Outer error: fatal; inner error: this file is unreadable.
    fn save_file(
        &self,
        path: &Path,
        md: &std::fs::Metadata,
    ) -> Result<std::result::Result<(u64, Vec<crate::id::ChunkId>), String>> {
        let file = match open_noatime(path, md) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        self.save_stream(file)
    }

    fn save_stream(
        &self,
        reader: impl Read,
    ) -> Result<std::result::Result<(u64, Vec<crate::id::ChunkId>), String>> {
        let mut stream = ChunkStream::new(&self.chunker, reader);
        let mut ids = Vec::new();
        let mut read = 0u64;
        loop {
            let chunk = match stream.next_chunk() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Ok(Err(format!("read failed after {read} bytes: {e}"))),
            };
            let id = self.repo.keys().chunk_id(chunk);
            self.writer.save(BlobId::Chunk(id), chunk)?;
            read += chunk.len() as u64;
            ids.push(id);
        }
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        Ok(Ok((read, ids)))
    }

    fn save_stdin(
        &self,
        name: &str,
        reader: Box<dyn Read + Send>,
        time: Timespec,
    ) -> Result<TreeId> {
        if !crate::format::tree::valid_name(name.as_bytes()) {
            return Err(Error::invalid(format!(
                "--stdin-name '{name}' must be a plain file name (no '/')"
            )));
        }
        let (size, chunks) = self
            .save_stream(reader)?
            .map_err(|e| Error::new(ErrorKind::Io, format!("reading standard input: {e}")))?;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
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

/// Open for reading without updating the access time where the kernel allows it (owner
/// or root), so a backup does not change what it records.
fn open_noatime(path: &Path, md: &std::fs::Metadata) -> std::io::Result<File> {
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    if md.uid() == rustix::process::geteuid().as_raw() || crate::sys::is_root() {
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(noatime)
            .open(path)
        {
            return Ok(f);
        }
    }
    File::open(path)
}
