//! Store a snapshot anew under the content root writers use: every file is read back
//! through its chunks (each verified under the root it was named with), cut by the
//! chunker and named anew, and every folder is encoded anew. This is the second phase of
//! a content key rotation (format-spec/keys.md, *renewing the content keys*): afterwards
//! the snapshot uses no blob named under the older root.
//!
//! Unchanged folders and files recur from one snapshot to the next, so what was stored
//! anew in this run is remembered by old id: a folder or a file is read once per run.
//! Cutting is deterministic, so a file read again (in a later run, after a kill) gives
//! the same chunks, which the writer finds stored and does not store twice.

use crate::chunker::{ChunkStream, Chunker};
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::NodeKind;
use crate::id::{BlobId, ChunkId, TreeId};
use crate::index::Index;
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use crate::tree::load_tree;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Whether the tree `tree` was named under the content root writers use now: a snapshot
/// whose root tree was is stored under it whole (backups, rotations and copies name no
/// new tree over blobs of an older root), any other is stored anew by a content key
/// rotation.
pub fn named_under_newest(reader: &PackReader<'_>, index: &Index, tree: &TreeId) -> Result<bool> {
    let id = BlobId::Tree(*tree);
    let plain = reader.read_indexed(index, &id)?;
    Ok(reader.repo().keys().names_under_newest(&id, &plain))
}

/// A file's identity by its chunk list: files with the same list have the same content,
/// so a rotation reads (and its plan counts) each once.
pub fn chunk_list_key(chunks: &[ChunkId]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    chunks.iter().for_each(|c| {
        h.update(&c.0);
    });
    *h.finalize().as_bytes()
}

/// What was stored anew in one run, by old id, and how much was read.
#[derive(Default)]
pub struct Rechunker {
    trees: Mutex<HashMap<TreeId, TreeId>>,
    /// A file's new chunk list by the hash of its old one.
    files: Mutex<HashMap<[u8; 32], Vec<ChunkId>>>,
    /// File bytes read back and cut anew.
    pub bytes_read: AtomicU64,
}

impl Rechunker {
    /// Store `snap`'s tree anew in `repo` and return the new root tree. `index` is the
    /// index as the run began, for reading; the writer stores the new blobs.
    pub fn store_anew(
        &self,
        repo: &Repository,
        index: &Index,
        snap: &Snapshot,
        interrupt: &AtomicBool,
    ) -> Result<(TreeId, crate::pack::writer::WriterStats)> {
        let reader = PackReader::new(repo);
        let chunker = repo.chunker()?;
        let (tree, stats) = BlobWriter::run(repo, Index::load(repo)?, |writer| {
            Job { repo, index, reader: &reader, chunker: &chunker, writer, memo: self, interrupt }
                .tree(&snap.tree)
        })?;
        Ok((tree?, stats))
    }
}

struct Job<'a, 'w> {
    repo: &'a Repository,
    index: &'a Index,
    reader: &'a PackReader<'a>,
    chunker: &'a Chunker,
    writer: &'a BlobWriter<'w>,
    memo: &'a Rechunker,
    interrupt: &'a AtomicBool,
}

impl Job<'_, '_> {
    fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "content key rotation interrupted; every key still opens the repository; run `cairn key rotate --content-keys` again to go on",
            ));
        }
        Ok(())
    }

    /// A folder and everything below it, stored anew; returns its new id.
    fn tree(&self, id: &TreeId) -> Result<TreeId> {
        self.check_interrupt()?;
        if let Some(new) = self.memo.trees.lock().expect("tree memo lock").get(id) {
            return Ok(*new);
        }
        let mut tree = load_tree(self.reader, self.index, id)?;
        // The files of this folder in parallel, each read in order.
        tree.nodes.par_iter_mut().try_for_each(|node| match &mut node.kind {
            NodeKind::File { chunks, size } => {
                *chunks = self.file(chunks, *size)?;
                Ok(())
            }
            _ => Ok(()),
        })?;
        for node in &mut tree.nodes {
            if let NodeKind::Dir { tree: sub } = &mut node.kind {
                *sub = self.tree(sub)?;
            }
        }
        let new =
            crate::tree::save_tree(&tree, self.repo.keys(), |t, bytes| self.writer.save_tree_blob(t, bytes))?;
        self.memo.trees.lock().expect("tree memo lock").insert(*id, new);
        Ok(new)
    }

    /// A file's content, read through its chunks and cut anew; returns the new chunk list.
    fn file(&self, old: &[ChunkId], size: u64) -> Result<Vec<ChunkId>> {
        let key = chunk_list_key(old);
        if let Some(new) = self.memo.files.lock().expect("file memo lock").get(&key) {
            return Ok(new.clone());
        }
        let mut content = ChunkReader {
            job: self,
            chunks: old,
            next: 0,
            ahead: Default::default(),
            current: Vec::new(),
            at: 0,
            error: None,
        };
        let mut new = Vec::new();
        let mut stream = ChunkStream::with_size_hint(self.chunker, &mut content, size);
        loop {
            self.check_interrupt()?;
            let batch = stream.next_batch();
            let (buf, ranges) = match batch {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(_) => break, // the reader's own error, taken below
            };
            // The chunks of a window are named, compressed and sealed in parallel, as a
            // backup's are; ids come back in file order.
            let save = |r: &std::ops::Range<usize>| -> Result<ChunkId> {
                let chunk = &buf[r.clone()];
                let id = self.repo.keys().chunk_id(chunk);
                self.writer.save(BlobId::Chunk(id), chunk)?;
                self.memo.bytes_read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(id)
            };
            let batch: Vec<ChunkId> = ranges.par_iter().map(save).collect::<Result<_>>()?;
            new.extend(batch);
        }
        drop(stream);
        if let Some(e) = content.error.take() {
            return Err(e);
        }
        self.memo.files.lock().expect("file memo lock").insert(key, new.clone());
        Ok(new)
    }
}

/// Chunks read ahead at once, in parallel: reading (decompressing, verifying) is most of
/// the work, and a large file would otherwise be read on one thread.
const READ_AHEAD: usize = 16;

/// A file's content as a reader: its chunks one after another, each verified.
struct ChunkReader<'j, 'a, 'w> {
    job: &'j Job<'a, 'w>,
    chunks: &'j [ChunkId],
    next: usize,
    /// Chunks read ahead, in file order.
    ahead: std::collections::VecDeque<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// Why reading stopped, when it failed: the stream sees only an I/O error.
    error: Option<Error>,
}

impl ChunkReader<'_, '_, '_> {
    /// The next chunks, up to [`READ_AHEAD`] of them, read in parallel.
    fn read_ahead(&mut self) -> Result<()> {
        let ids = &self.chunks[self.next..(self.next + READ_AHEAD).min(self.chunks.len())];
        let read: Vec<Vec<u8>> = ids
            .par_iter()
            .map(|id| self.job.reader.read_indexed(self.job.index, &BlobId::Chunk(*id)))
            .collect::<Result<_>>()?;
        self.next += ids.len();
        self.ahead.extend(read);
        Ok(())
    }
}

impl Read for ChunkReader<'_, '_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.ahead.is_empty() {
                if self.next == self.chunks.len() {
                    return Ok(0);
                }
                if let Err(e) = self.read_ahead() {
                    self.error = Some(e);
                    return Err(std::io::Error::other("a chunk could not be read"));
                }
            }
            self.current = self.ahead.pop_front().expect("chunks read ahead");
            self.at = 0;
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
