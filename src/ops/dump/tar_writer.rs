//! The tar side of dump: POSIX pax archives through the `tar` crate's `Builder` and `Header`.
//!
//! Each entry is a ustar header, preceded by a pax extended header when the ustar fields
//! cannot hold something: a path or link target over 100 bytes or not UTF-8 (`path`,
//! `linkpath`), sub-second or out-of-range mtimes (`mtime`), large ids, long owner names,
//! sizes of 8 GiB and more, xattrs (`SCHILY.xattr.NAME`, which GNU tar and bsdtar restore),
//! and holes (GNU sparse 1.0: `GNU.sparse.major/minor/name/realsize`, the map at the start
//! of the data).

use super::sparse::{self, SparseBody, ZeroChunks};
use super::{from_io, ArchiveWriter, Ctx, FileBody, Gate};
use crate::error::Result;
use crate::format::tree::{Node, NodeKind};
use crate::format::Timespec;
use std::io::Read;
use tar::{Builder, EntryType, Header};

/// Largest values the ustar octal fields hold: 7 digits (ids) and 11 digits (size, mtime).
const MAX_ID: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
/// Longest owner and group name a ustar header holds.
const MAX_OWNER_NAME: usize = 32;

pub struct TarArchive<'o> {
    builder: Builder<Gate<'o>>,
    zeros: ZeroChunks,
}

impl<'o> TarArchive<'o> {
    pub fn new(out: Gate<'o>) -> Self {
        TarArchive { builder: Builder::new(out), zeros: ZeroChunks::default() }
    }

    /// Write the pax extended header (if any records) and then `header` with `body`.
    fn append(&mut self, header: &mut Header, pax: &[(String, Vec<u8>)], body: &mut dyn Read) -> Result<()> {
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(from_io)?;
        }
        header.set_cksum();
        self.builder.append(header, body).map_err(from_io)
    }
}

impl ArchiveWriter for TarArchive<'_> {
    fn add(&mut self, ctx: &mut Ctx<'_, '_>, name: &[u8], node: &Node, link_to: Option<&[u8]>) -> Result<()> {
        let mut header = Header::new_ustar();
        let mut pax = Vec::new();
        metadata(&mut header, &mut pax, node);
        let out = &mut ctx.outcome;
        let entry_type = match (&node.kind, link_to) {
            (NodeKind::File { .. }, Some(first)) => {
                set_field(&mut header.as_old_mut().linkname, &mut pax, "linkpath", first);
                out.links += 1;
                EntryType::Link
            }
            (NodeKind::File { .. }, None) => EntryType::Regular,
            (NodeKind::Dir { .. }, _) => EntryType::Directory,
            (NodeKind::Symlink { target }, _) => {
                set_field(&mut header.as_old_mut().linkname, &mut pax, "linkpath", target);
                EntryType::Symlink
            }
            (NodeKind::Fifo, _) => EntryType::Fifo,
            (NodeKind::CharDevice { rdev }, _) | (NodeKind::BlockDevice { rdev }, _) => {
                let ustar = header.as_ustar_mut().expect("a ustar header");
                ustar.set_device_major(rustix::fs::major(*rdev));
                ustar.set_device_minor(rustix::fs::minor(*rdev));
                match node.kind {
                    NodeKind::CharDevice { .. } => EntryType::Char,
                    _ => EntryType::Block,
                }
            }
            (NodeKind::Socket, _) => {
                out.warnings.push(format!(
                    "{}: a socket; tar cannot hold sockets, left out",
                    String::from_utf8_lossy(name)
                ));
                return Ok(());
            }
        };
        header.set_entry_type(entry_type);
        let (NodeKind::File { size, chunks }, EntryType::Regular) = (&node.kind, entry_type) else {
            match &node.kind {
                NodeKind::Dir { .. } => out.dirs += 1,
                NodeKind::File { .. } => {}
                _ => out.others += 1,
            }
            let mut name = name.to_vec();
            if entry_type == EntryType::Directory {
                name.push(b'/');
            }
            set_path(&mut header, &mut pax, &name);
            header.set_size(0);
            return self.append(&mut header, &pax, &mut std::io::empty());
        };
        out.files += 1;
        out.bytes += size;
        let Some(layout) = sparse::plan(ctx, &mut self.zeros, chunks, *size)? else {
            set_path(&mut header, &mut pax, name);
            set_size(&mut header, &mut pax, *size);
            return self.append(&mut header, &pax, &mut FileBody::new(ctx, chunks, *size)?);
        };
        ctx.outcome.sparse += 1;
        // GNU tar's naming for sparse members: the real name is in GNU.sparse.name.
        let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
            Some(i) => (&name[..=i], &name[i + 1..]),
            None => (&b""[..], name),
        };
        let stand_in = [dir, b"GNUSparseFile.0/", base].concat();
        copy_truncated(&mut header.as_old_mut().name, &stand_in);
        pax.push(("GNU.sparse.major".into(), b"1".to_vec()));
        pax.push(("GNU.sparse.minor".into(), b"0".to_vec()));
        pax.push(("GNU.sparse.name".into(), name.to_vec()));
        pax.push(("GNU.sparse.realsize".into(), size.to_string().into_bytes()));
        set_size(&mut header, &mut pax, SparseBody::stored_size(&layout));
        let data_ids = sparse::data_chunks(&layout, chunks);
        let mut body = SparseBody::new(ctx, &layout, &data_ids);
        self.append(&mut header, &pax, &mut body)
    }

    fn finish(&mut self) -> Result<()> {
        self.builder.finish().map_err(from_io)?;
        use std::io::Write;
        self.builder.get_mut().flush().map_err(from_io)
    }
}

/// Mode, owner and mtime fields, and xattr records.
fn metadata(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, node: &Node) {
    header.set_mode(node.mode & 0o7777);
    header.set_uid(node.uid.into());
    header.set_gid(node.gid.into());
    for (id, key) in [(node.uid, "uid"), (node.gid, "gid")] {
        if u64::from(id) > MAX_ID {
            pax.push((key.into(), id.to_string().into_bytes()));
        }
    }
    let ustar = header.as_ustar_mut().expect("a ustar header");
    for (name, is_user) in [(&node.user, true), (&node.group, false)] {
        let Some(name) = name else { continue };
        let fits = name.len() <= MAX_OWNER_NAME && !name.contains('\0');
        let set = match (fits, is_user) {
            (true, true) => ustar.set_username(name),
            (true, false) => ustar.set_groupname(name),
            (false, _) => Err(std::io::Error::other("too long")),
        };
        if set.is_err() {
            pax.push((if is_user { "uname" } else { "gname" }.into(), name.as_bytes().to_vec()));
        }
    }
    let Timespec { secs, nanos } = node.mtime;
    header.set_mtime(secs.clamp(0, MAX_OCTAL_11 as i64) as u64);
    if nanos != 0 || secs < 0 || secs as u64 > MAX_OCTAL_11 {
        pax.push(("mtime".into(), pax_time(node.mtime).into_bytes()));
    }
    for (name, value) in &node.xattrs {
        // GNU tar's spelling: '=' and '%' in the name are %-escaped.
        let name = String::from_utf8_lossy(name).replace('%', "%25").replace('=', "%3D");
        pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
}

/// Seconds since the epoch with 9 decimals; negative times count down from the epoch.
fn pax_time(t: Timespec) -> String {
    if t.secs < 0 && t.nanos > 0 {
        format!("-{}.{:09}", -(t.secs + 1), 1_000_000_000 - t.nanos)
    } else {
        format!("{}.{:09}", t.secs, t.nanos)
    }
}

fn set_size(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, size: u64) {
    header.set_size(size);
    if size > MAX_OCTAL_11 {
        pax.push(("size".into(), size.to_string().into_bytes()));
    }
}

fn set_path(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, path: &[u8]) {
    set_field(&mut header.as_old_mut().name, pax, "path", path);
}

/// A name or link target: in the 100-byte field when it fits and is UTF-8, else in a pax
/// record, with as much as fits in the field for readers that ignore pax. Names that are not
/// UTF-8 go in as raw bytes, as GNU tar writes and reads them (it warns about, and ignores,
/// the `hdrcharset=BINARY` record POSIX has for this, so none is written).
fn set_field(field: &mut [u8; 100], pax: &mut Vec<(String, Vec<u8>)>, key: &str, value: &[u8]) {
    let utf8 = std::str::from_utf8(value).is_ok();
    copy_truncated(field, value);
    if value.len() > field.len() || !utf8 {
        pax.push((key.into(), value.to_vec()));
    }
}

fn copy_truncated(field: &mut [u8; 100], value: &[u8]) {
    let n = value.len().min(field.len());
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_carry_nanoseconds_and_count_down_before_the_epoch() {
        assert_eq!(pax_time(Timespec { secs: 1_600_000_000, nanos: 5 }), "1600000000.000000005");
        assert_eq!(pax_time(Timespec { secs: -2, nanos: 500_000_000 }), "-1.500000000");
        assert_eq!(pax_time(Timespec { secs: -1, nanos: 250_000_000 }), "-0.750000000");
        assert_eq!(pax_time(Timespec { secs: -3, nanos: 0 }), "-3.000000000");
    }

    #[test]
    fn long_or_raw_names_go_to_pax_records() {
        let mut field = [0u8; 100];
        let mut pax = Vec::new();
        set_field(&mut field, &mut pax, "path", b"etc/short");
        assert!(pax.is_empty());
        assert_eq!(&field[..10], b"etc/short\0");
        let long = vec![b'a'; 150];
        set_field(&mut field, &mut pax, "path", &long);
        assert_eq!(pax, vec![("path".to_string(), long.clone())]);
        assert_eq!(field, [b'a'; 100]);
        let mut pax = Vec::new();
        set_field(&mut field, &mut pax, "linkpath", b"caf\xff");
        assert_eq!(pax, vec![("linkpath".to_string(), b"caf\xff".to_vec())]);
    }
}
