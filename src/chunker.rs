//! Content-defined chunking: FastCDC (v2020, normalization level 1) over a gear table
//! derived from the repository key, so chunk boundaries reveal nothing about content to
//! anyone without the key. Sizes come from the repository config.
//!
//! Memory is bounded: [`ChunkStream`] holds at most a few maximum-size chunks of a file.

use crate::error::{Error, Result};
use fastcdc::v2020;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// Chunk size bounds in bytes, stored in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// Defaults chosen for config trees and database dumps (format-spec/chunking.md).
    pub const DEFAULT: ChunkerParams =
        ChunkerParams { min_size: 16 * 1024, avg_size: 64 * 1024, max_size: 256 * 1024 };

    pub fn check(&self) -> Result<()> {
        let (min, avg, max) = (self.min_size as usize, self.avg_size as usize, self.max_size as usize);
        let in_range = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max);
        let ordered = min < avg && avg < max;
        let even = min % 2 == 0 && avg % 2 == 0 && max % 2 == 0;
        if in_range && ordered && even {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "chunk sizes min={min} avg={avg} max={max} are invalid: need even sizes with \
                 {}<=min<avg<max<={}, avg in {}..={}",
                v2020::MINIMUM_MIN,
                v2020::MAXIMUM_MAX,
                v2020::AVERAGE_MIN,
                v2020::AVERAGE_MAX
            )))
        }
    }
}

/// A keyed FastCDC chunker. Its gear tables come from the key and are wiped on drop.
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    pub fn new(params: ChunkerParams, gear: Box<[u64; 256]>) -> Result<Self> {
        params.check()?;
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        let (mask_s, mask_l) = v2020::select_masks(params.avg_size as usize, v2020::Normalization::Level1);
        Ok(Chunker { params, gear, gear_ls, mask_s, mask_l })
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`. `data` must hold at least `max_size` bytes
    /// unless it is the end of the input.
    pub fn cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        let (_, len) = v2020::cut_gear(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        len.max(1).min(data.len())
    }

    /// Chunk lengths of a whole in-memory buffer.
    pub fn split<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let n = self.cut(rest);
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Some(head)
        })
    }
}

/// A window of input and the ranges of the chunks cut from it.
pub type Batch<'a> = (&'a [u8], Vec<std::ops::Range<usize>>);

/// The read window for large inputs: 4 MiB, so one batch holds enough chunks (about 60 at
/// the default sizes) to keep every core busy on a single large file (a database dump).
const WINDOW: usize = 4 << 20;

/// Chunks of a reader, holding a bounded window of it in memory.
pub struct ChunkStream<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    /// The window; bytes `start..end` are read and not yet returned.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// The size the window grows to when the input is larger than its first size.
    window: usize,
}

impl<'c, R: Read> ChunkStream<'c, R> {
    pub fn new(chunker: &'c Chunker, reader: R) -> Self {
        Self::with_size_hint(chunker, reader, u64::MAX)
    }

    /// For an input expected to be `size` bytes: a small file gets a small window (most
    /// config files are a few KiB; a full window per file would cost more than the file).
    pub fn with_size_hint(chunker: &'c Chunker, reader: R, size: u64) -> Self {
        // Several chunks per window, so a batch can be processed in parallel.
        let window = (chunker.params.max_size as usize * 4).max(WINDOW);
        let first = (size.saturating_add(1)).min(window as u64) as usize;
        ChunkStream { chunker, reader, buf: vec![0; first], start: 0, end: 0, eof: false, window }
    }

    /// All chunks that can be cut from the current window: the window and the ranges of
    /// the chunks in it. `None` at the end of the input.
    pub fn next_batch(&mut self) -> std::io::Result<Option<Batch<'_>>> {
        let max = self.chunker.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.refill()?;
        }
        let mut ranges = Vec::new();
        while self.start < self.end && (self.end - self.start >= max || self.eof) {
            let n = self.chunker.cut(&self.buf[self.start..self.end]);
            ranges.push(self.start..self.start + n);
            self.start += n;
        }
        Ok((!ranges.is_empty()).then_some((&self.buf[..], ranges)))
    }

    fn refill(&mut self) -> std::io::Result<()> {
        // Move the unconsumed tail to the front, then read until the window is full.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        loop {
            if self.end == self.buf.len() {
                if self.buf.len() >= self.window {
                    break;
                }
                // The input is longer than its size hint said (a growing file).
                self.buf.resize(self.window, 0);
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker(seed: u8) -> Chunker {
        let mut gear = Box::new([0u64; 256]);
        let mut x = blake3::Hasher::new_keyed(&[seed; 32]).finalize_xof();
        let mut b = [0u8; 2048];
        x.fill(&mut b);
        for (g, c) in gear.iter_mut().zip(b.chunks_exact(8)) {
            *g = u64::from_le_bytes(c.try_into().unwrap());
        }
        let p = ChunkerParams { min_size: 2048, avg_size: 8192, max_size: 32768 };
        Chunker::new(p, gear).unwrap()
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        blake3::Hasher::new().update(b"data").finalize_xof().fill(&mut v);
        v
    }

    #[test]
    fn stream_and_split_agree_and_respect_bounds() {
        let c = chunker(1);
        let data = pseudo_random(1_000_000);
        let whole: Vec<&[u8]> = c.split(&data).collect();
        // A reader that returns few bytes at a time must give the same chunks.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(777).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let stream = |hint: u64| {
            let mut s = ChunkStream::with_size_hint(&c, Dribble(&data), hint);
            let mut out = Vec::new();
            while let Some((buf, ranges)) = s.next_batch().unwrap() {
                out.extend(ranges.into_iter().map(|r| buf[r].to_vec()));
            }
            out
        };
        let streamed = stream(u64::MAX);
        // A wrong size hint (a file that grew) must not change the chunks.
        assert_eq!(stream(1000), streamed);
        assert_eq!(whole.len(), streamed.len());
        for (a, b) in whole.iter().zip(&streamed) {
            assert_eq!(*a, &b[..]);
        }
        for ch in &whole[..whole.len() - 1] {
            assert!(ch.len() >= 2048 && ch.len() <= 32768, "chunk of {}", ch.len());
        }
        assert!(whole.len() > 60 && whole.len() < 250, "{} chunks", whole.len());
    }

    #[test]
    fn boundaries_depend_on_the_key_and_resync_after_an_insert() {
        let data = pseudo_random(500_000);
        let a: Vec<usize> = chunker(1).split(&data).map(|c| c.len()).collect();
        let b: Vec<usize> = chunker(2).split(&data).map(|c| c.len()).collect();
        assert_ne!(a, b);
        let mut edited = data.clone();
        edited.splice(100..100, b"inserted".iter().copied());
        let c1 = chunker(1);
        let before: std::collections::HashSet<&[u8]> = c1.split(&data).collect();
        let same = c1.split(&edited).filter(|c| before.contains(c)).count();
        assert!(same + 2 >= before.len(), "only {same} of {} chunks reused", before.len());
    }

    #[test]
    fn bad_params_are_refused() {
        for (min, avg, max) in
            [(0, 8192, 32768), (8192, 8192, 32768), (2049, 8192, 32768), (2048, 8192, 1 << 30)]
        {
            assert!(ChunkerParams { min_size: min, avg_size: avg, max_size: max }.check().is_err());
        }
    }
}
