//! Holes for tar's sparse form (GNU tar's pax sparse format 1.0: the map of data extents
//! as decimal lines at the start of the entry's data, then the extents' bytes).
//!
//! A tar header announces the map before the data, but a stored file has no hole map, and
//! decrypting every file twice (once to find zero runs, once to write) would halve the dump
//! speed; buffering a whole file is out for large ones. The chunk level answers it without
//! reading data: FastCDC cuts a long run of zeros into chunks of nothing but zeros, which
//! compress to almost nothing and, in a long run, repeat. A chunk whose sealed size is a
//! tiny fraction of its length, or that occurs twice in the file (for repositories without
//! compression), is a candidate, and it is all zeros exactly when its id is the keyed id of
//! that many zero bytes (computed once per length). A run of zero chunks, widened by the
//! zeros that end the data chunk before it and start the one after (the only chunks read
//! twice) and trimmed inward to 4 KiB file offsets, is a hole; zero chunks are never
//! fetched. Memory: a few numbers per chunk. What this misses: zero runs that never fill
//! a whole chunk (shorter than about two chunks), which are written as data.

use super::{check_length, Ctx};
use crate::browse::{Browser, FileReader};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{BlobId, ChunkId};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

/// Holes are whole blocks of this size at aligned file offsets, like restore's.
pub const BLOCK: u64 = 4096;

/// A chunk at least this many times larger than its sealed form is worth checking for
/// zeros (zstd makes 16 KiB of zeros a few dozen bytes; real data never gets near).
const ZERO_RATIO: u64 = 64;

/// The ids of all-zero chunks, by length.
#[derive(Default)]
pub struct ZeroChunks {
    ids: HashMap<u32, ChunkId>,
}

impl ZeroChunks {
    /// Whether the chunk is all zeros; `repeated`: it occurs more than once in the file.
    fn is_zero(&mut self, browser: &Browser<'_>, id: &ChunkId, repeated: bool) -> Result<bool> {
        let loc = browser.index().get(&BlobId::Chunk(*id)).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("chunk {id} is not in the index; run `cairn check`"))
        })?;
        let (raw, sealed) = (loc.entry.raw_length, loc.entry.length);
        let tiny = u64::from(sealed) * ZERO_RATIO <= u64::from(raw);
        if u64::from(raw) < BLOCK || !(tiny || repeated) {
            return Ok(false);
        }
        let zero =
            *self.ids.entry(raw).or_insert_with(|| browser.repo().keys().chunk_id(&vec![0u8; raw as usize]));
        Ok(zero == *id)
    }
}

/// Where a file's chunks lie and which parts of it hold data.
#[derive(Debug)]
pub struct Layout {
    /// (offset, length, all zeros) of each chunk, in order.
    chunks: Vec<(u64, u64, bool)>,
    /// Data extents (offset, length), in order; the complement is holes.
    pub data: Vec<(u64, u64)>,
    pub size: u64,
}

/// The file's layout if it has a hole of at least one block, else None (write it plainly).
pub fn plan(
    ctx: &Ctx<'_, '_>,
    zeros: &mut ZeroChunks,
    chunks: &[ChunkId],
    size: u64,
) -> Result<Option<Layout>> {
    check_length(ctx.browser, chunks, size)?;
    let mut seen: HashMap<&ChunkId, u32> = HashMap::new();
    for id in chunks {
        *seen.entry(id).or_default() += 1;
    }
    let mut layout = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for id in chunks {
        let len = ctx.browser.chunk_len(id)?;
        layout.push((at, len, zeros.is_zero(ctx.browser, id, seen[id] > 1)?));
        at += len;
    }
    // Zero byte ranges, in order: zero chunks, and the zero ends of their neighbours.
    let mut ranges = Vec::new();
    for (i, &(off, len, zero)) in layout.iter().enumerate() {
        let after_zero = i > 0 && layout[i - 1].2;
        let before_zero = layout.get(i + 1).is_some_and(|c| c.2);
        if zero {
            ranges.push((off, off + len));
        } else if after_zero || before_zero {
            let bytes = ctx.browser.chunk(&chunks[i])?;
            let lead = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len()) as u64;
            let trail = bytes.iter().rev().position(|&b| b != 0).unwrap_or(bytes.len()) as u64;
            if after_zero && lead > 0 {
                ranges.push((off, off + lead));
            }
            if before_zero && trail > 0 {
                ranges.push((off + len - trail, off + len));
            }
        }
    }
    let data = data_extents(&ranges, size);
    let held: u64 = data.iter().map(|e| e.1).sum();
    Ok((size - held >= BLOCK).then_some(Layout { chunks: layout, data, size }))
}

/// The complement of the holes: zero ranges (in order, touching or overlapping ones
/// merged), trimmed inward to whole blocks.
fn data_extents(zero_ranges: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut holes: Vec<(u64, u64)> = Vec::new();
    for &(start, end) in zero_ranges {
        match holes.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => holes.push((start, end)),
        }
    }
    let mut data = Vec::new();
    let mut at = 0;
    for (start, end) in holes {
        let start = start.div_ceil(BLOCK) * BLOCK;
        let end = if end == size { end } else { end / BLOCK * BLOCK };
        if end < start + BLOCK {
            continue;
        }
        if start > at {
            data.push((at, start - at));
        }
        at = end;
    }
    if at < size {
        data.push((at, size - at));
    }
    data
}

/// The sparse map as GNU tar reads it: the number of entries, then offset and length of
/// each, one decimal number a line, padded with NULs to a 512-byte block. A file ending in
/// a hole gets a last empty extent at its size, so the extracted file has its full length.
pub fn map_text(layout: &Layout) -> Vec<u8> {
    let mut entries = layout.data.clone();
    if entries.last().is_none_or(|&(off, len)| off + len < layout.size) {
        entries.push((layout.size, 0));
    }
    let mut text = format!("{}\n", entries.len());
    for (off, len) in entries {
        text.push_str(&format!("{off}\n{len}\n"));
    }
    let mut bytes = text.into_bytes();
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

/// The ids of the chunks holding data (the ones to fetch), in order.
pub fn data_chunks(layout: &Layout, chunks: &[ChunkId]) -> Vec<ChunkId> {
    chunks.iter().zip(&layout.chunks).filter(|(_, c)| !c.2).map(|(id, _)| *id).collect()
}

/// A sparse entry's data: the map, then the bytes of every data extent: cut out of the data
/// chunks, and zeros where an extent reaches into a zero chunk.
pub struct SparseBody<'b, 'r> {
    layout: &'b Layout,
    piece: Vec<u8>,
    used: usize,
    next_chunk: usize,
    next_extent: usize,
    file: FileReader<'b, 'r>,
    interrupt: &'b AtomicBool,
}

impl<'b, 'r> SparseBody<'b, 'r> {
    /// `data_ids` is [`data_chunks`] of the same layout.
    pub fn new(ctx: &Ctx<'b, 'r>, layout: &'b Layout, data_ids: &'b [ChunkId]) -> Self {
        SparseBody {
            layout,
            piece: map_text(layout),
            used: 0,
            next_chunk: 0,
            next_extent: 0,
            file: ctx.browser.reader(data_ids),
            interrupt: ctx.interrupt,
        }
    }

    /// Bytes the entry holds: the padded map and the data extents.
    pub fn stored_size(layout: &Layout) -> u64 {
        map_text(layout).len() as u64 + layout.data.iter().map(|e| e.1).sum::<u64>()
    }

    /// The next stretch of extent bytes, or None at the end.
    fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        while let Some(&(off, len, zero)) = self.layout.chunks.get(self.next_chunk) {
            self.next_chunk += 1;
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Interrupted, "dump interrupted"));
            }
            let bytes = match zero {
                true => None,
                false => {
                    let b = self.file.next_chunk()?.ok_or_else(|| Error::corrupt("file data ends early"))?;
                    if b.len() as u64 != len {
                        return Err(Error::corrupt(format!(
                            "a chunk holds {} bytes where the index says {len}",
                            b.len()
                        )));
                    }
                    Some(b)
                }
            };
            let end = off + len;
            let data = &self.layout.data;
            while self.next_extent < data.len() && data[self.next_extent].0 + data[self.next_extent].1 <= off
            {
                self.next_extent += 1;
            }
            // The parts of this chunk inside data extents, relative to the chunk.
            let parts: Vec<(usize, usize)> = data[self.next_extent..]
                .iter()
                .take_while(|e| e.0 < end)
                .map(|&(start, n)| (start.max(off) - off, (start + n).min(end) - off))
                .filter(|(s, e)| s < e)
                .map(|(s, e)| (s as usize, e as usize))
                .collect();
            let piece = match bytes {
                Some(b) if parts == [(0, b.len())] => b,
                Some(b) => parts.iter().flat_map(|&(s, e)| &b[s..e]).copied().collect(),
                None => vec![0; parts.iter().map(|(s, e)| e - s).sum()],
            };
            if !piece.is_empty() {
                return Ok(Some(piece));
            }
        }
        Ok(None)
    }
}

impl Read for SparseBody<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.used == self.piece.len() {
            match self.next_piece().map_err(std::io::Error::other)? {
                Some(p) => (self.piece, self.used) = (p, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len() - self.used);
        buf[..n].copy_from_slice(&self.piece[self.used..self.used + n]);
        self.used += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn zero_ranges_become_holes_trimmed_to_blocks() {
        // 10 KiB data, 70 KiB of zeros in two chunks, 6 KiB data.
        let z = [(10 * K, 40 * K), (40 * K, 80 * K)];
        // The hole starts at the first block boundary after 10 KiB and ends at the last
        // before 80 KiB.
        assert_eq!(data_extents(&z, 86 * K), vec![(0, 12 * K), (80 * K, 6 * K)]);
        // The zero tail of the data chunk before widens the hole; overlaps merge.
        let z = [(5000, 10 * K), (9 * K, 40 * K), (10 * K, 80 * K)];
        assert_eq!(data_extents(&z, 86 * K), vec![(0, 8 * K), (80 * K, 6 * K)]);
    }

    #[test]
    fn a_hole_can_start_the_file_or_run_to_its_end() {
        let size = 128 * K + 5003;
        let z = [(0, 64 * K), (64 * K + 5000, size)];
        assert_eq!(data_extents(&z, size), vec![(64 * K, 8 * K)]);
        assert!(data_extents(&[(0, 64 * K)], 64 * K).is_empty());
    }

    #[test]
    fn short_zero_runs_and_no_zeros_leave_one_extent() {
        assert_eq!(data_extents(&[], 128 * K), vec![(0, 128 * K)]);
        assert_eq!(data_extents(&[(100, 4196)], 128 * K), vec![(0, 128 * K)]);
    }

    #[test]
    fn the_map_lists_extents_and_ends_at_the_size() {
        let layout = Layout { chunks: vec![], data: vec![(0, 4096), (65536, 10)], size: 131072 };
        let text = map_text(&layout);
        assert_eq!(text.len(), 512);
        let end = text.iter().position(|&b| b == 0).unwrap();
        assert_eq!(&text[..end], b"3\n0\n4096\n65536\n10\n131072\n0\n");
        assert!(text[end..].iter().all(|&b| b == 0));
        let full = Layout { chunks: vec![], data: vec![(8192, 100)], size: 8292 };
        assert_eq!(&map_text(&full)[..11], b"1\n8192\n100\n");
    }
}
