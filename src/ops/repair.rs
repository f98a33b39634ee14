//! Repair the index: rebuild it from the packs' own sealed tables of contents, for when
//! index files are lost or damaged. The new index files supersede every old one, which
//! are deleted only after the new ones are stored; packs are never touched.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexFile;
use crate::format::pack::{self, Entry};
use crate::id::{IndexId, PackId};
use crate::pack::reader::read_toc;
use crate::repo::Repository;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct IndexRepair {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    /// Packs whose table of contents cannot be read, with the reason; their data is lost
    /// to the index (and `check` reports what that affects).
    pub packs_unreadable: Vec<String>,
    pub index_files_replaced: usize,
}

/// Read a pack's table of contents without reading its blobs.
fn pack_toc(repo: &Repository, id: &PackId) -> Result<Vec<Entry>> {
    let name = id.to_hex();
    let size = repo.backend().size(FileType::Pack, &name)?;
    let min = (pack::HEADER_LEN + pack::TRAILER_LEN) as u64;
    if size < min {
        return Err(Error::corrupt("too short to be a pack"));
    }
    let trailer = repo.backend().read_range(FileType::Pack, &name, size - pack::TRAILER_LEN as u64, 8)?;
    let toc_len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as u64;
    if toc_len > size - min {
        return Err(Error::corrupt("table of contents length does not fit the pack"));
    }
    // Header and tail are all read_toc needs; the blobs between them are left unread.
    let head = repo.backend().read_range(FileType::Pack, &name, 0, pack::HEADER_LEN as u64)?;
    let tail_start = size - pack::TRAILER_LEN as u64 - toc_len;
    let tail =
        repo.backend().read_range(FileType::Pack, &name, tail_start, toc_len + pack::TRAILER_LEN as u64)?;
    // Rebuild a pack image with the blob area zero-filled virtually: offsets stay valid.
    let mut image = head;
    image.resize(tail_start as usize, 0);
    image.extend_from_slice(&tail);
    read_toc(repo.keys(), &image)
}

pub fn repair_index(repo: &Repository, dry_run: bool, interrupt: &AtomicBool) -> Result<IndexRepair> {
    let old: Vec<IndexId> =
        repo.backend().list(FileType::Index)?.iter().filter_map(|n| IndexId::from_hex(n).ok()).collect();
    let packs: Vec<PackId> =
        repo.backend().list(FileType::Pack)?.iter().filter_map(|n| PackId::from_hex(n).ok()).collect();
    let tocs: Vec<(PackId, Result<Vec<Entry>>)> = packs
        .par_iter()
        .map(|p| {
            if interrupt.load(Ordering::Relaxed) {
                return (*p, Err(Error::new(ErrorKind::Interrupted, "repair interrupted; nothing changed")));
            }
            (*p, pack_toc(repo, p))
        })
        .collect();
    let mut out = IndexRepair { index_files_replaced: old.len(), ..Default::default() };
    let mut good = Vec::new();
    for (pack, toc) in tocs {
        match toc {
            Ok(entries) => {
                out.blobs_indexed += entries.len();
                good.push((pack, entries));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => out.packs_unreadable.push(format!("pack {pack}: {e}")),
        }
    }
    out.packs_indexed = good.len();
    if dry_run {
        return Ok(out);
    }
    for chunk in good.chunks(1000) {
        repo.save_index(&IndexFile { supersedes: old.clone(), packs: chunk.to_vec() })?;
    }
    for id in &old {
        repo.backend().remove(FileType::Index, &id.to_hex())?;
    }
    Ok(out)
}
