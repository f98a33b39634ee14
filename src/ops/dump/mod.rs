//! Dump: a snapshot's files (one file, a subtree or the whole snapshot) streamed as a tar or
//! zip archive, without restoring them first. Every byte comes through a [`Browser`], so
//! it is decrypted and re-hashed against its chunk id like a restored one.
//!
//! Paths in the archive are the snapshot paths without their leading '/', as GNU tar
//! stores the absolute paths it is given. A file with more than one link whose (device,
//! inode) was already written becomes a hard link entry (tar) or a second copy (zip).
//!
//! tar (POSIX pax) keeps everything restore keeps except atimes: modes with the setuid,
//! setgid and sticky bits, numeric owners and their names, mtimes to the nanosecond, symlinks,
//! hard links, fifos and devices, xattrs, names of any length and encoding, and holes
//! (see [`sparse`]). zip keeps contents, permission bits (rwx), mtimes and symlinks only.

mod sparse;
mod tar_writer;
mod zip_writer;

use crate::browse::{self, Browser};
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::ChunkId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The archive formats `dump` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// POSIX pax tar, as GNU tar and bsdtar read and extract it.
    Tar,
    /// zip with deflate, as unzip, Python's zipfile and desktop tools read it.
    Zip,
}

#[derive(Debug, Default)]
pub struct DumpOutcome {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, fifos and devices written.
    pub others: u64,
    /// Hard link entries (tar), or files written again as copies (zip).
    pub links: u64,
    /// Bytes of file content (logical sizes, holes included).
    pub bytes: u64,
    /// Files written in sparse form (tar).
    pub sparse: u64,
    /// Entries the format cannot hold, left out or changed, one line each.
    pub warnings: Vec<String>,
}

/// Write the snapshot paths `paths` (absolute, '/'-separated bytes; "/" for everything)
/// and everything below them to `out` as one archive. Every path is looked up before a
/// byte is written. On error the archive is left unfinished (no end-of-archive marker or
/// zip directory is written), so no reader takes it for a complete one.
pub fn dump(
    browser: &Browser<'_>,
    snap: &Snapshot,
    paths: &[Vec<u8>],
    format: ArchiveFormat,
    out: &mut dyn Write,
    interrupt: &AtomicBool,
) -> Result<DumpOutcome> {
    let tops = paths
        .iter()
        .map(|p| Ok((normalize(p), browser.lookup(snap, p)?)))
        .collect::<Result<Vec<(Vec<u8>, Node)>>>()?;
    let gate = Gate::new(out);
    let mut archive: Box<dyn ArchiveWriter + '_> = match format {
        ArchiveFormat::Tar => Box::new(tar_writer::TarArchive::new(gate.clone())),
        ArchiveFormat::Zip => Box::new(zip_writer::ZipArchive::new(gate.clone())),
    };
    let mut ctx = Ctx { browser, interrupt, outcome: DumpOutcome::default(), links: HashMap::new() };
    let result = (|| {
        for (path, top) in &tops {
            browser.walk(path, top, &mut |path, node| {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(Error::new(ErrorKind::Interrupted, "dump interrupted"));
                }
                // The root folder has no stored metadata: only its contents go in.
                if path != b"/" {
                    add(&mut *archive, &mut ctx, path, node)
                        .map_err(|e| e.wrap(format!("cannot dump {}", browse::display(path))))?;
                }
                Ok(true)
            })?;
        }
        archive.finish()
    })();
    if result.is_err() {
        // Whatever the writers' drop handlers still write goes nowhere.
        gate.close();
    }
    result?;
    Ok(ctx.outcome)
}

/// "/a//b/" as "/a/b"; "" and "/" as "/".
fn normalize(path: &[u8]) -> Vec<u8> {
    browse::components(path).fold(b"/".to_vec(), |p, c| browse::join(&p, c))
}

/// What every entry needs besides its node.
pub(crate) struct Ctx<'b, 'r> {
    pub browser: &'b Browser<'r>,
    pub interrupt: &'b AtomicBool,
    pub outcome: DumpOutcome,
    /// (device, inode) of multiply-linked files already written, to their archive path.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// One archive format's writer.
pub(crate) trait ArchiveWriter {
    /// Add one entry; `name` is its path in the archive (relative). `link_to` is the
    /// archive path of an earlier entry of the same inode, for a hard-linked file.
    fn add(&mut self, ctx: &mut Ctx<'_, '_>, name: &[u8], node: &Node, link_to: Option<&[u8]>) -> Result<()>;
    /// Write the end of the archive.
    fn finish(&mut self) -> Result<()>;
}

fn add(archive: &mut dyn ArchiveWriter, ctx: &mut Ctx<'_, '_>, path: &[u8], node: &Node) -> Result<()> {
    let name = &path[1..];
    let mut link_to = None;
    if let NodeKind::File { .. } = node.kind {
        if node.links > 1 {
            match ctx.links.get(&(node.device, node.inode)) {
                Some(first) => link_to = Some(first.clone()),
                None => {
                    ctx.links.insert((node.device, node.inode), name.to_vec());
                }
            }
        }
    }
    archive.add(ctx, name, node, link_to.as_deref())
}

/// A file's bytes as a `Read`, for the archive crates: exactly `size` bytes, each chunk
/// verified, stopping at an interrupt. Errors travel as `io::Error`s wrapping the library
/// error (see [`from_io`]).
pub(crate) struct FileBody<'b, 'r> {
    file: browse::FileReader<'b, 'r>,
    left: u64,
    interrupt: &'b AtomicBool,
}

impl<'b, 'r> FileBody<'b, 'r> {
    pub fn new(ctx: &Ctx<'b, 'r>, chunks: &'b [ChunkId], size: u64) -> Result<Self> {
        check_length(ctx.browser, chunks, size)?;
        Ok(FileBody { file: ctx.browser.reader(chunks), left: size, interrupt: ctx.interrupt })
    }
}

impl Read for FileBody<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(Error::new(ErrorKind::Interrupted, "dump interrupted")));
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(Error::corrupt(format!(
                "the file's chunks end {} bytes before its recorded size",
                self.left
            ))));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The chunks' lengths (from the index) must add up to the file's recorded size: an
/// archive entry announces its size before its data.
pub(crate) fn check_length(browser: &Browser<'_>, chunks: &[ChunkId], size: u64) -> Result<()> {
    let mut total = 0u64;
    for c in chunks {
        total += browser.chunk_len(c)?;
    }
    if total != size {
        return Err(Error::corrupt(format!("its chunks hold {total} bytes but the file had {size}")));
    }
    Ok(())
}

/// An `io::Error` from copying file data into an archive: the library error it carries
/// (damaged chunk, interrupt), or a failure to write the archive.
pub(crate) fn from_io(e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Ok(inner) = e.into_inner().expect("checked above").downcast::<Error>() {
            return *inner;
        }
        unreachable!("checked above");
    }
    Error::io("cannot write the archive", e)
}

/// The archive's output, which can be closed after an error so that writers finishing the
/// archive on drop write nothing more.
#[derive(Clone)]
pub(crate) struct Gate<'o> {
    inner: Rc<RefCell<Option<&'o mut dyn Write>>>,
}

impl<'o> Gate<'o> {
    fn new(out: &'o mut dyn Write) -> Self {
        Gate { inner: Rc::new(RefCell::new(Some(out))) }
    }

    /// A gate that writes nowhere.
    fn closed() -> Self {
        Gate { inner: Rc::new(RefCell::new(None)) }
    }

    fn close(&self) {
        *self.inner.borrow_mut() = None;
    }
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.borrow_mut().as_mut() {
            Some(out) => out.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.inner.borrow_mut().as_mut() {
            Some(out) => out.write_all(buf),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.borrow_mut().as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_swallows_writes() {
        let mut sink = Vec::new();
        {
            let mut gate = Gate::new(&mut sink);
            gate.write_all(b"kept").unwrap();
            gate.clone().close();
            gate.write_all(b" dropped").unwrap();
            assert_eq!(gate.write(b"x").unwrap(), 1);
        }
        assert_eq!(sink, b"kept");
    }

    #[test]
    fn library_errors_come_back_out_of_io_errors() {
        let e = from_io(std::io::Error::other(Error::corrupt("chunk 1 is damaged")));
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        let e = from_io(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().starts_with("cannot write the archive"));
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize(b"/"), b"/");
        assert_eq!(normalize(b""), b"/");
        assert_eq!(normalize(b"/opt//gw/./conf/"), b"/opt/gw/conf");
    }
}
