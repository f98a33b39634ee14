//! The zip side of dump, through the `zip` crate's streaming writer (sizes and CRCs follow
//! each entry's data, so the output needs no seeking and can be a pipe).
//!
//! Files are deflated, the one method every zip reader knows, or stored when the repository
//! could not compress them either. An entry keeps its content,
//! its permission bits (rwx: the crate keeps no setuid, setgid or sticky bit), its mtime
//! (the 2-second local DOS time, and the exact second in UTC in an extended timestamp
//! field, which unzip applies) and symlinks as unix symlink entries. zip has no owners,
//! xattrs, hard links (a second link is a second copy), fifos or devices (left out, with
//! a warning), and only UTF-8 names (others are written with U+FFFD, with a warning).

use super::{from_io, ArchiveWriter, Ctx, FileBody, Gate};
use crate::browse::Browser;
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::format::Timespec;
use crate::id::{BlobId, ChunkId};
use zip::write::{FullFileOptions, StreamWriter, ZipWriter};
use zip::CompressionMethod;

/// Header id of the extended timestamp extra field ("UT").
const EXTENDED_TIMESTAMP: u16 = 0x5455;
/// Files this large get zip64 sizes up front: a streamed entry must choose before its data
/// (deflate can add a little to incompressible data, hence the margin under 4 GiB).
const LARGE_FILE: u64 = 0xF000_0000;

pub struct ZipArchive<'o> {
    zip: ZipWriter<StreamWriter<Gate<'o>>>,
}

impl<'o> ZipArchive<'o> {
    pub fn new(out: Gate<'o>) -> Self {
        ZipArchive { zip: ZipWriter::new_stream(out) }
    }
}

impl ArchiveWriter for ZipArchive<'_> {
    fn add(&mut self, ctx: &mut Ctx<'_, '_>, name: &[u8], node: &Node, link_to: Option<&[u8]>) -> Result<()> {
        let shown = String::from_utf8_lossy(name).into_owned();
        let out = &mut ctx.outcome;
        let kind = match &node.kind {
            NodeKind::Fifo => "a fifo",
            NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } => "a device",
            NodeKind::Socket => "a socket",
            _ => "",
        };
        if !kind.is_empty() {
            out.warnings.push(format!("{shown}: {kind}; zip cannot hold it, left out"));
            return Ok(());
        }
        if std::str::from_utf8(name).is_err() {
            out.warnings.push(format!("{shown}: the name is not UTF-8; zip holds it with U+FFFD"));
        }
        let mut opts = FullFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(dos_time(node.mtime))
            .unix_permissions(node.mode);
        if let Ok(secs) = i32::try_from(node.mtime.secs) {
            let mut field = vec![1u8]; // flags: modification time present
            field.extend_from_slice(&secs.to_le_bytes());
            opts.add_extra_data(EXTENDED_TIMESTAMP, field, false).map_err(zip_error)?;
        }
        match &node.kind {
            NodeKind::Dir { .. } => {
                out.dirs += 1;
                // Not `add_directory`: in a streamed archive it flags the entry as followed
                // by a data descriptor that it never writes, and unzip then refuses the whole
                // archive ("overlapped components"). An empty stored entry named "dir/" gets
                // its descriptor; readers take the trailing '/' for a folder (its mode's type
                // bits say regular file, its permission bits are the folder's).
                let opts = opts.compression_method(CompressionMethod::Stored);
                self.zip.start_file(format!("{shown}/"), opts).map_err(zip_error)
            }
            NodeKind::Symlink { target } => {
                out.others += 1;
                if std::str::from_utf8(target).is_err() {
                    out.warnings
                        .push(format!("{shown}: the link target is not UTF-8; zip holds it with U+FFFD"));
                }
                self.zip.add_symlink(shown, String::from_utf8_lossy(target), opts).map_err(zip_error)
            }
            NodeKind::File { size, chunks } => {
                out.files += 1;
                out.bytes += size;
                if link_to.is_some() {
                    out.links += 1;
                }
                let mut opts = opts.large_file(*size >= LARGE_FILE);
                if incompressible(ctx.browser, chunks) {
                    opts = opts.compression_method(CompressionMethod::Stored);
                }
                self.zip.start_file(shown, opts).map_err(zip_error)?;
                let mut body = FileBody::new(ctx, chunks, *size)?;
                std::io::copy(&mut body, &mut self.zip).map_err(from_io)?;
                Ok(())
            }
            _ => unreachable!("left out above"),
        }
    }

    fn finish(&mut self) -> Result<()> {
        let zip = std::mem::replace(&mut self.zip, ZipWriter::new_stream(Gate::closed()));
        let mut out = zip.finish().map_err(zip_error)?.into_inner();
        use std::io::Write;
        out.flush().map_err(from_io)
    }
}

/// Whether the repository stores nine tenths of the file's bytes as they are, because
/// they did not compress (a jar, an image, a compressed log): deflate would do no
/// better, at about 50 MB/s, so the entry is stored. Known from the index without reading
/// data (`Entry::stored_raw`); never said of a repository without compression. Chunks
/// too small for the writer's probe share frames, so a file's short tail does not count.
fn incompressible(browser: &Browser<'_>, chunks: &[ChunkId]) -> bool {
    if browser.repo().config().compression_level == 0 {
        return false;
    }
    let (mut raw, mut stored_raw) = (0u64, 0u64);
    for loc in chunks.iter().filter_map(|c| browser.index().get(&BlobId::Chunk(*c))) {
        raw += u64::from(loc.entry.raw_length);
        if loc.entry.stored_raw() {
            stored_raw += u64::from(loc.entry.raw_length);
        }
    }
    raw >= 4096 && stored_raw * 10 >= raw * 9
}

fn zip_error(e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(e) => from_io(e),
        other => Error::io("cannot write the archive", std::io::Error::other(other)),
    }
}

/// The DOS date and time (local, 2-second steps) zip entries carry; times outside
/// 1980..2107 become the DOS epoch (the extended timestamp still has the real time).
fn dos_time(t: Timespec) -> zip::DateTime {
    let local = jiff::Timestamp::new(t.secs, 0)
        .map(|ts| ts.to_zoned_datetime(jiff::tz::TimeZone::system()).datetime())
        .ok()
        .and_then(|d| {
            zip::DateTime::from_date_and_time(
                u16::try_from(d.year()).ok()?,
                d.month() as u8,
                d.day() as u8,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
            )
            .ok()
        });
    local.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_fall_back_to_the_dos_epoch_out_of_range() {
        assert_eq!(dos_time(Timespec { secs: -5, nanos: 0 }), zip::DateTime::default());
        let t = dos_time(Timespec { secs: 1_600_000_000, nanos: 0 });
        assert!(t.year() == 2020 && t.month() == 9);
    }
}
