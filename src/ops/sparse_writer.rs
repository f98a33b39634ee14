//! Writes a restored file front to back: blocks of zeros become holes, and large files go
//! past the page cache (`crate::direct_io`: a disaster restore writes gigabytes nobody
//! reads at once, and copying them into the cache cost more CPU than decrypting them).
//!
//! Data is gathered in an aligned buffer whose start is always at a block boundary of the
//! file, so holes are whole file blocks and full buffers can be written directly; the last
//! partial block goes through the cache.

use crate::direct_io::{self, ALIGN};
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Files at least this large are written past the page cache.
pub const DIRECT_MIN: u64 = 1 << 20;
/// Bytes gathered before a write: a multiple of the block size.
const STAGE: usize = 4 << 20;
/// The unit of holes and of direct writes.
pub const BLOCK: usize = ALIGN;

thread_local! {
    // One staging buffer per restore thread, kept between files, so a restore of many
    // large files does not fault in fresh memory for each.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub struct SparseWriter {
    file: File,
    direct: bool,
    buf: Staging,
    /// Where the data starts in `buf` (the padding before it aligns it).
    start: usize,
    /// The file offset of `buf[start]`: always a multiple of STAGE.
    offset: u64,
    /// The file's length so far: the end of the last write.
    len: u64,
}

/// The staging buffer, handed back to its thread for the next file when dropped.
struct Staging(Vec<u8>);

impl Drop for Staging {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        SPARE.with(|s| *s.borrow_mut() = buf);
    }
}

impl std::ops::Deref for Staging {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Staging {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl SparseWriter {
    /// Create the new file `name` in the folder `dir` (see [`direct_io::create_at`]: it
    /// must not exist, and a symlink there is not followed) for a file of `size` bytes.
    pub fn create_at(dir: &std::os::fd::OwnedFd, name: &std::ffi::OsStr, size: u64) -> io::Result<Self> {
        let (file, direct) = direct_io::create_at(dir, name, size >= DIRECT_MIN)?;
        Ok(Self::with_file(file, direct, size))
    }

    fn with_file(file: std::fs::File, direct: bool, size: u64) -> Self {
        let mut buf = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let start = direct_io::align_empty(&mut buf, (size as usize).min(STAGE));
        SparseWriter { file, direct, buf: Staging(buf), start, offset: 0, len: 0 }
    }

    /// Append `data` to the file.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = STAGE - (self.buf.len() - self.start);
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() - self.start == STAGE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Write what is gathered and empty the buffer.
    fn flush(&mut self) -> io::Result<()> {
        let staged = self.buf.len() - self.start;
        for (s, e) in data_runs(&self.buf[self.start..]) {
            self.write_run(self.start + s, self.start + e, self.offset + s as u64)?;
        }
        self.offset += staged as u64;
        self.buf.truncate(self.start);
        Ok(())
    }

    /// Write `buf[from..to]` at `at`: its whole blocks directly while the file is open
    /// for that, anything else through the cache.
    fn write_run(&mut self, from: usize, to: usize, at: u64) -> io::Result<()> {
        let whole = (to - from) / BLOCK * BLOCK;
        if self.direct && whole > 0 {
            match self.file.write_all_at(&self.buf[from..from + whole], at) {
                Ok(()) => {
                    self.len = self.len.max(at + whole as u64);
                    return self.write_run_cached(from + whole, to, at + whole as u64);
                }
                // A partial direct write may have been done: the cached write redoes it.
                Err(e) if direct_io::refused(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.write_run_cached(from, to, at)
    }

    fn write_run_cached(&mut self, from: usize, to: usize, at: u64) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        if self.direct {
            direct_io::stop(&self.file)?;
            self.direct = false;
        }
        self.file.write_all_at(&self.buf[from..to], at)?;
        self.len = self.len.max(at + (to - from) as u64);
        Ok(())
    }

    /// Write the rest and give the file its full length (trailing holes included).
    /// Returns the file, still open.
    pub fn finish(mut self, size: u64) -> io::Result<File> {
        self.flush()?;
        if self.len != size {
            self.file.set_len(size)?;
        }
        Ok(self.file)
    }
}

/// The byte ranges of `data` to write: runs of blocks holding a non-zero byte, so blocks
/// of zeros stay holes and everything else takes one write per run (not per block).
pub fn data_runs(data: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, block) in data.chunks(BLOCK).enumerate() {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        let (start, end) = (i * BLOCK, i * BLOCK + block.len());
        match runs.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => runs.push((start, end)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn data_runs_merge_blocks_and_skip_zero_blocks() {
        let mut data = vec![1u8; BLOCK * 5 + 100];
        data[BLOCK * 2..BLOCK * 3].fill(0);
        assert_eq!(data_runs(&data), vec![(0, BLOCK * 2), (BLOCK * 3, BLOCK * 5 + 100)]);
        assert!(data_runs(&vec![0u8; BLOCK * 3]).is_empty());
        assert_eq!(data_runs(&[7u8; 10]), vec![(0, 10)]);
    }

    /// Files small and large (direct), written in pieces of awkward sizes, with holes at
    /// the start, inside, across a buffer boundary and at the end, come back byte for
    /// byte, and their zero blocks take no disk space.
    #[test]
    fn files_come_back_exactly_with_holes_where_zeros_were() {
        let dir = tempfile::tempdir().unwrap();
        let mut big: Vec<u8> = (0..STAGE * 2 + 12_345).map(|i| (i % 251) as u8 + 1).collect();
        big[..BLOCK * 3].fill(0);
        big[STAGE - BLOCK * 5..STAGE + BLOCK * 7].fill(0);
        let tail = big.len() - BLOCK * 2 - 100;
        big[tail..].fill(0);
        let small: Vec<u8> = (0..70_000).map(|i| (i % 13) as u8).collect();
        for (name, content) in [("big", &big), ("small", &small), ("empty", &Vec::new())] {
            let path = dir.path().join(name);
            let folder =
                rustix::fs::open(dir.path(), rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
                    .unwrap();
            let mut w = SparseWriter::create_at(&folder, name.as_ref(), content.len() as u64).unwrap();
            for piece in content.chunks(65_521) {
                w.write(piece).unwrap();
            }
            w.finish(content.len() as u64).unwrap();
            if name == "big" && direct_io::is_ext4(&path) {
                // Past the page cache: at most the last partial block went through it.
                let cached = direct_io::cached_bytes(&path);
                assert!(cached <= BLOCK as u64, "{cached} bytes of the large file were cached");
            }
            assert_eq!(&std::fs::read(&path).unwrap(), content, "{name}");
        }
        let md = std::fs::metadata(dir.path().join("big")).unwrap();
        let zero_blocks = (3 + 12 + 2) as u64;
        assert!(
            md.blocks() * 512 <= md.len() - zero_blocks * BLOCK as u64,
            "{} bytes allocated for {} with {zero_blocks} zero blocks",
            md.blocks() * 512,
            md.len()
        );
    }
}
