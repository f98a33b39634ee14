//! Repairs. `repair_index` rebuilds the index from the packs' own sealed tables of
//! contents, for when index files are lost or damaged: the new index files supersede
//! every old one, which are deleted only after the new ones are stored. A pack is
//! deleted only when it was merely misnamed, after its content was stored again under
//! its hash; a pack the store cannot read stops the repair before anything changes, and
//! a pack whose bytes come back damaged (twice) is kept for prune to judge.
//! `repair_snapshots` rewrites snapshots that need lost data so that the damage is
//! recorded in them and later checks and backups succeed.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::pack::Entry;
use crate::format::tree::{Node, NodeKind};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::Index;
use crate::ops::rewrite::{replace_all, LostFolder, Planned, SnapshotRewrite, TreeFilter};
use crate::pack::reader::{blob_of_frame, open_frame, read_toc, PackKey};
use crate::pack::{BlobWriter, PackReader};
use crate::repo::Repository;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct IndexRepair {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    /// Packs that cannot be read, or blobs in them that fail to open, with the reason;
    /// that data is left out of the index (`repair snapshots` then records what it takes).
    pub packs_unreadable: Vec<String>,
    pub index_files_replaced: usize,
}

/// What a pack holds that is intact: read whole, its table opened and every blob opened
/// and re-hashed. A pack stored under a wrong name is stored again under its hash.
struct ScannedPack {
    id: PackId,
    good: Vec<Entry>,
    damaged: usize,
    misnamed: Option<String>,
}

/// Read a pack whole. Bytes that do not hash to the pack's name are read once more: a
/// store or a link that damaged them on the way gives the stored bytes the second time,
/// while a pack damaged where it is stored gives the same bytes again.
fn read_pack(repo: &Repository, name: &str) -> Result<Vec<u8>> {
    let matches = |bytes: &[u8]| blake3::hash(bytes).to_hex().as_str() == name;
    let bytes = repo.read_object(FileType::Pack, name)?;
    if matches(&bytes) || PackId::from_hex(name).is_err() {
        return Ok(bytes);
    }
    let again = repo.read_object(FileType::Pack, name)?;
    Ok(if matches(&again) { again } else { bytes })
}

fn scan_pack(repo: &Repository, name: &str) -> Result<ScannedPack> {
    let bytes = read_pack(repo, name)?;
    let id = PackId(*blake3::hash(&bytes).as_bytes());
    let toc = read_toc(repo.keys(), &bytes)?;
    let key = PackKey::of_header(repo.keys(), &bytes)?;
    let (mut good, mut damaged) = (Vec::new(), 0);
    // The table's frames are consistent (decode_toc checks it): open each once.
    for frame in toc.chunk_by(|a, b| a.same_frame(b)) {
        let last = frame.last().expect("a frame has a blob");
        let mut sealed = bytes[last.offset as usize..(last.offset + last.length) as usize].to_vec();
        match open_frame(&key, last, &mut sealed) {
            Ok(plain) => {
                for e in frame {
                    match blob_of_frame(repo.keys(), e, &plain) {
                        Ok(_) => good.push(*e),
                        Err(_) => damaged += 1,
                    }
                }
            }
            Err(_) => damaged += frame.len(),
        }
    }
    // Bytes that hash to another name are stored again under their hash and indexed
    // there. The object read is deleted at the end only when every blob in it opened (it
    // was merely misnamed): bytes that neither match their name nor open are damage,
    // where stored or on the way, and the stored pack may be good. Prune deletes it once
    // every used blob it holds has a verified copy elsewhere.
    let misnamed = if id.to_hex() == name {
        None
    } else {
        repo.backend().write(FileType::Pack, &id.to_hex(), &bytes)?;
        (damaged == 0).then(|| name.to_string())
    };
    Ok(ScannedPack { id, good, damaged, misnamed })
}

/// Rebuild the index from what the packs really hold (reading every pack whole).
pub fn repair_index(repo: &Repository, dry_run: bool, interrupt: &AtomicBool) -> Result<IndexRepair> {
    let old: Vec<IndexId> =
        repo.backend().list(FileType::Index)?.iter().filter_map(|n| IndexId::from_hex(n).ok()).collect();
    let names = repo.backend().list(FileType::Pack)?;
    let mut out = IndexRepair { index_files_replaced: old.len(), ..Default::default() };
    if dry_run {
        out.packs_indexed = names.len();
        return Ok(out);
    }
    let scans: Vec<(String, Result<ScannedPack>)> = names
        .par_iter()
        .map(|n| {
            if interrupt.load(Ordering::Relaxed) {
                return (
                    n.clone(),
                    Err(Error::new(ErrorKind::Interrupted, "repair interrupted; index unchanged")),
                );
            }
            (n.clone(), scan_pack(repo, n))
        })
        .collect();
    let (mut good, mut misnamed) = (Vec::new(), Vec::new());
    for (name, scan) in scans {
        match scan {
            Ok(p) => {
                if p.damaged > 0 {
                    out.packs_unreadable.push(format!("pack {name}: {} damaged blobs left out", p.damaged));
                }
                out.blobs_indexed += p.good.len();
                misnamed.extend(p.misnamed);
                good.push((p.id, p.good));
            }
            // Damage is what repair is for: that pack's blobs are left out.
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported) => {
                out.packs_unreadable.push(format!("pack {name}: {e}"))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            // A pack the store failed to give (an I/O error, a timeout) is not damage:
            // an index without it would hide its blobs, so nothing is changed.
            Err(e) => {
                return Err(e.wrap(format!(
                    "repair index stopped before changing anything (run it again once the store answers): pack {name}"
                )))
            }
        }
    }
    out.packs_indexed = good.len();
    for batch in crate::index::batches(&good, crate::index::ENTRIES_PER_INDEX_FILE) {
        repo.save_index(&IndexFile { supersedes: old.clone(), packs: batch })?;
    }
    crate::failpoint::hit("repair-index:after-new-index");
    let old_names: Vec<String> = old.iter().map(|i| i.to_hex()).collect();
    crate::ops::object_lock::note_deleted(repo, FileType::Index, &old_names)?;
    crate::ops::object_lock::note_deleted(repo, FileType::Pack, &misnamed)?;
    for id in &old {
        repo.backend().remove(FileType::Index, &id.to_hex())?;
    }
    crate::failpoint::hit("repair-index:after-old-index-delete");
    // Misnamed copies go last: their content is now stored and indexed under its hash.
    for name in misnamed {
        repo.backend().remove(FileType::Pack, &name)?;
    }
    Ok(out)
}

/// Rewrite every snapshot that needs data the repository no longer has: files with a
/// chunk missing from the index are left out, folders whose tree is lost become empty
/// folders, and the new snapshot records the repair (tag `repaired`, label `repaired`
/// with the count, `original` naming the old one). The new snapshot is stored after its
/// trees are, and the old one deleted after that. Whole snapshots are not touched.
pub fn repair_snapshots(
    repo: &Repository,
    dry_run: bool,
    interrupt: &AtomicBool,
) -> Result<Vec<SnapshotRewrite>> {
    let (snapshots, damaged) = repo.snapshots_and_damage()?;
    // A snapshot object that cannot be read may be whole but newer, or damaged in a way
    // a good copy elsewhere can mend: removing it is the user's call (`cairn forget ID`).
    crate::repo::refuse_unreadable(&damaged, &[], "repair snapshots")?;
    let index = Index::load(repo)?;
    let reader = PackReader::new(repo);
    let data_lost = |_: &[u8], node: &Node| match &node.kind {
        NodeKind::File { chunks, .. } => chunks.iter().any(|c| !index.contains(&BlobId::Chunk(*c))),
        _ => false,
    };
    let (rewritten, _) = BlobWriter::run(repo, Index::load(repo)?, |writer| -> Result<Vec<Planned>> {
        let mut filter =
            TreeFilter::new(repo, &reader, &index, writer, &data_lost, LostFolder::MakeEmpty, !dry_run);
        let mut out = Vec::new();
        for (id, snap) in &snapshots {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Interrupted, "repair interrupted; no snapshot changed"));
            }
            let (tree, removed) = match filter.filter(snap.tree, b"") {
                // Even the root listing is lost: the snapshot keeps only its record.
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                    (filter.empty_tree()?, vec!["/ (the whole snapshot)".to_string()])
                }
                other => other?,
            };
            if removed.is_empty() {
                continue;
            }
            let mut planned = Planned::new(*id, snap, tree, removed, "repaired");
            if !planned.new.tags.iter().any(|t| t == "repaired") {
                planned.new.tags.push("repaired".into());
            }
            out.push(planned);
        }
        Ok(out)
    })?;
    replace_all(repo, rewritten?, dry_run)
}
