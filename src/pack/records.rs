//! References records (format-spec/maintenance-key.md) are written with the trees they
//! describe: in a repository with maintenance, every tree blob a writer saves gets its
//! record, which names the records of the tree blobs it names, so the records of a
//! snapshot form a hash tree rooted in its summary. Records deduplicate like any blob: the
//! same tree blob gives the same record.
//!
//! A record can only be made once the records of its subfolders are known: from this
//! process (`Repository::record_of`, filled as trees are saved, children first), else by
//! reading the subfolder's tree back, which a backup-only key cannot. A tree whose record
//! cannot be made gets none, and neither do the folders above it: the snapshot's summary
//! then names no root record, and `cairn repair maintenance` (a full key) makes them.

use super::writer::BlobWriter;
use crate::crypto::keys::RepoKeys;
use crate::error::Result;
use crate::format::references::References;
use crate::format::tree::TreeBlob;
use crate::id::{BlobId, RefsId, TreeId};
use crate::pack::PackReader;
use std::sync::OnceLock;

/// How [`make_records`] learns and tells about records.
pub trait RecordSource {
    /// The record id of a tree blob whose record needs no making (stored, or made already).
    fn known(&self, tree: &TreeId) -> Option<RefsId>;
    /// The encoding of a tree blob, `None` when it cannot be read.
    fn read(&self, tree: &TreeId) -> Option<Vec<u8>>;
    /// Take a record made: of `tree`, with id `id` and encoding `encoded`.
    fn made(&self, tree: TreeId, id: RefsId, encoded: &[u8]) -> Result<()>;
}

/// The record id of tree blob `id`, whose encoding is `bytes` (or is read), making the
/// record of every tree blob below it that is not known, children first. `None` when a
/// tree blob it reaches cannot be read; an error when one does not decode.
pub fn make_records(
    keys: &RepoKeys,
    source: &dyn RecordSource,
    id: TreeId,
    bytes: Option<&[u8]>,
) -> Result<Option<RefsId>> {
    if let Some(known) = source.known(&id) {
        return Ok(Some(known));
    }
    let read;
    let bytes = match bytes {
        Some(b) => b,
        None => match source.read(&id) {
            Some(b) => {
                read = b;
                &read[..]
            }
            None => return Ok(None),
        },
    };
    let blob = TreeBlob::decode(bytes)?;
    let mut complete = true;
    let record = References::of_tree_blob(id, &blob, |named| {
        Ok(make_records(keys, source, *named, None)?.unwrap_or_else(|| {
            complete = false;
            RefsId([0; 32])
        }))
    })?;
    if !complete {
        return Ok(None);
    }
    let encoded = record.encode();
    let record_id = keys.references_id(&encoded);
    source.made(id, record_id, &encoded)?;
    Ok(Some(record_id))
}

/// A writer's view: known are the records this process made that the repository or
/// this run holds; trees are read from the repository (full keys); made ones are saved.
/// When `verified`, a record is known only once its stored copy read back intact, and
/// one the index names that does not is saved anew (repair).
struct Saving<'w, 'r> {
    writer: &'w BlobWriter<'r>,
    reader: OnceLock<PackReader<'r>>,
    verified: Option<std::sync::Mutex<std::collections::HashSet<RefsId>>>,
}

impl<'r> Saving<'_, 'r> {
    fn reader(&self) -> &PackReader<'r> {
        self.reader.get_or_init(|| PackReader::new(self.writer.repo()))
    }

    /// Whether record `id` is stored and, when verifying, reads back intact.
    fn stored(&self, id: &RefsId) -> bool {
        let blob = BlobId::References(*id);
        let Some(verified) = &self.verified else { return self.writer.has(&blob) };
        if verified.lock().expect("verified lock").contains(id) {
            return true;
        }
        let intact = self.reader().read_indexed(self.writer.index(), &blob).is_ok();
        if intact {
            verified.lock().expect("verified lock").insert(*id);
        }
        intact
    }
}

impl RecordSource for Saving<'_, '_> {
    fn known(&self, tree: &TreeId) -> Option<RefsId> {
        self.writer.repo().record_of(tree).filter(|r| self.stored(r))
    }

    fn read(&self, tree: &TreeId) -> Option<Vec<u8>> {
        if !self.writer.repo().keys().can_read() {
            return None;
        }
        self.reader().read_indexed(self.writer.index(), &BlobId::Tree(*tree)).ok()
    }

    fn made(&self, tree: TreeId, id: RefsId, encoded: &[u8]) -> Result<()> {
        let blob = BlobId::References(id);
        match &self.verified {
            Some(verified) if !self.stored(&id) => {
                self.writer.save_anew(blob, encoded)?;
                verified.lock().expect("verified lock").insert(id);
            }
            _ => {
                self.writer.save(blob, encoded)?;
            }
        }
        self.writer.repo().remember_record(tree, id);
        Ok(())
    }
}

impl BlobWriter<'_> {
    /// Save a tree blob and, in a repository with maintenance, its references record.
    /// Returns whether the tree blob was new.
    pub fn save_tree_blob(&self, id: TreeId, bytes: &[u8]) -> Result<bool> {
        let new = self.save(BlobId::Tree(id), bytes)?;
        if self.repo().writes_summaries() {
            self.save_records(id, Some(bytes))?;
        }
        Ok(new)
    }

    /// The record id of tree blob `id` (encoded as `bytes`, or read from the repository),
    /// with the records of every tree blob it reaches saved unless stored: see
    /// [`make_records`].
    pub fn save_records(&self, id: TreeId, bytes: Option<&[u8]>) -> Result<Option<RefsId>> {
        let source = Saving { writer: self, reader: OnceLock::new(), verified: None };
        make_records(self.repo().keys(), &source, id, bytes)
    }

    /// [`BlobWriter::save_records`] for repair: every tree below `id` is read and its
    /// record made, and a record whose indexed copies do not read back intact (damaged,
    /// or garbage a forger indexed under its id first) is saved anew.
    pub fn repair_records(&self, roots: &[TreeId]) -> Result<Vec<Option<RefsId>>> {
        let verified = Some(Default::default());
        let source = Saving { writer: self, reader: OnceLock::new(), verified };
        roots.iter().map(|t| make_records(self.repo().keys(), &source, *t, None)).collect()
    }
}
