//! A stored file's bytes: read in order ([`FileReader`], for `cat` and `dump`) or at any
//! offset ([`FileLayout`], for `mount`). Chunks are fetched, opened and re-hashed a batch
//! at a time on all cores, so a sequential read runs at restore speed.

use super::Browser;
use crate::error::{Error, ErrorKind, Result};
use crate::id::ChunkId;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::io::Read;

/// Chunks fetched in parallel ahead of a sequential reader: enough to keep two cores busy
/// with typical 64 KiB chunks while holding only a few MiB.
const READ_AHEAD: usize = 16;

/// Streams a file's chunks in order.
pub struct FileReader<'b, 'r> {
    browser: &'b Browser<'r>,
    chunks: &'b [ChunkId],
    next: usize,
    ready: VecDeque<Vec<u8>>,
    /// Bytes of `ready[0]` already handed out.
    consumed: usize,
}

impl<'b, 'r> FileReader<'b, 'r> {
    pub(super) fn new(browser: &'b Browser<'r>, chunks: &'b [ChunkId]) -> Self {
        FileReader { browser, chunks, next: 0, ready: VecDeque::new(), consumed: 0 }
    }

    /// The rest of the next chunk, or None at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.ready.is_empty() && self.next < self.chunks.len() {
            self.fill()?;
        }
        let Some(mut chunk) = self.ready.pop_front() else { return Ok(None) };
        chunk.drain(..std::mem::take(&mut self.consumed));
        Ok(Some(chunk))
    }

    fn fill(&mut self) -> Result<()> {
        let end = (self.next + READ_AHEAD).min(self.chunks.len());
        let batch: Vec<Vec<u8>> =
            self.chunks[self.next..end].par_iter().map(|c| self.browser.chunk(c)).collect::<Result<_>>()?;
        self.next = end;
        self.ready.extend(batch);
        Ok(())
    }
}

impl Read for FileReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(front) = self.ready.front() {
                if self.consumed < front.len() {
                    let n = buf.len().min(front.len() - self.consumed);
                    buf[..n].copy_from_slice(&front[self.consumed..self.consumed + n]);
                    self.consumed += n;
                    return Ok(n);
                }
                self.ready.pop_front();
                self.consumed = 0;
                continue;
            }
            if self.next == self.chunks.len() {
                return Ok(0);
            }
            self.fill().map_err(std::io::Error::other)?;
        }
    }
}

/// Where each chunk of a file starts, from the index's plaintext lengths.
pub struct FileLayout {
    chunks: Vec<ChunkId>,
    /// `ends[i]` is the offset just past chunk `i`.
    ends: Vec<u64>,
}

impl FileLayout {
    pub(super) fn new(browser: &Browser<'_>, chunks: &[ChunkId]) -> Result<Self> {
        let mut ends = Vec::with_capacity(chunks.len());
        let mut at = 0u64;
        for c in chunks {
            at += browser.chunk_len(c)?;
            ends.push(at);
        }
        Ok(FileLayout { chunks: chunks.to_vec(), ends })
    }

    pub fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks covering `offset..offset + len`: (chunk, offset of its first byte).
    pub fn span(&self, offset: u64, len: u64) -> impl Iterator<Item = (&ChunkId, u64)> {
        let first = self.ends.partition_point(|&e| e <= offset);
        let stop = offset.saturating_add(len);
        (first..self.chunks.len())
            .map(move |i| (&self.chunks[i], if i == 0 { 0 } else { self.ends[i - 1] }))
            .take_while(move |&(_, start)| start < stop)
    }

    /// Read up to `len` bytes at `offset` (fewer at the end of the file), fetching the
    /// chunks through `fetch` (a cache, or [`Browser::chunk`]).
    pub fn read_at(
        &self,
        offset: u64,
        len: u64,
        fetch: &(dyn Fn(&ChunkId) -> Result<std::sync::Arc<Vec<u8>>> + Sync),
    ) -> Result<Vec<u8>> {
        let stop = offset.saturating_add(len).min(self.len());
        let mut out = Vec::with_capacity(stop.saturating_sub(offset) as usize);
        for (id, start) in self.span(offset, len) {
            let data = fetch(id)?;
            let from = offset.saturating_sub(start) as usize;
            let to = ((stop - start) as usize).min(data.len());
            if from > to {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("chunk {id} is shorter than the index says"),
                ));
            }
            out.extend_from_slice(&data[from..to]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lens: &[u64]) -> FileLayout {
        let chunks = (0..lens.len()).map(|i| ChunkId([i as u8; 32])).collect();
        let ends = lens.iter().scan(0, |at, l| {
            *at += l;
            Some(*at)
        });
        FileLayout { chunks, ends: ends.collect() }
    }

    #[test]
    fn span_finds_the_chunks_of_a_range() {
        let l = layout(&[10, 20, 30]);
        let starts = |o, n| l.span(o, n).map(|(c, s)| (c.0[0], s)).collect::<Vec<_>>();
        assert_eq!(starts(0, 5), [(0, 0)]);
        assert_eq!(starts(9, 2), [(0, 0), (1, 10)]);
        assert_eq!(starts(10, 20), [(1, 10)]);
        assert_eq!(starts(25, 100), [(1, 10), (2, 30)]);
        assert!(starts(60, 10).is_empty());
        assert_eq!(l.len(), 60);
    }

    #[test]
    fn read_at_cuts_the_range_out_of_the_chunks() {
        let l = layout(&[4, 4, 4]);
        let fetch = |c: &ChunkId| Ok(std::sync::Arc::new(vec![b'a' + c.0[0]; 4]));
        assert_eq!(l.read_at(2, 4, &fetch).unwrap(), b"aabb");
        assert_eq!(l.read_at(7, 100, &fetch).unwrap(), b"bcccc");
        assert_eq!(l.read_at(12, 5, &fetch).unwrap(), b"");
    }
}
