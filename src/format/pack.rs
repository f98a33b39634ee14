//! Pack files: immutable containers of sealed frames, named by the BLAKE3 hash of their
//! bytes. A frame is the compressed plaintexts of one or more blobs of one kind, sealed
//! as one: neighbouring chunks share a compression context (a 64 KiB chunk compressed
//! alone loses much of what zstd finds across a file), while each blob keeps its own
//! index entry, id and check.
//!
//! ```text
//! 0    4   magic "CRNP"
//! 4    1   pack version (3, or 4 for a key epoch above 0; 1 and 2 are still read)
//! 5    3   version 4: key epoch (u16 LE), then 0; older versions: reserved, 0
//! 8    32  ephemeral X25519 public key; the pack key comes from it (keys.rs)
//! 40   ..  frames: AES-256-GCM(pack key, nonce = counter_nonce(offset), aad = frame_aad)
//!          of compress::encode(plaintexts of the frame's blobs, in order)
//! T    L   table of contents: AES-256-GCM(pack key, nonce = 12 x 0xFF, aad = bytes 0..40)
//!          of: u32 count, then count entries (ENTRY_LEN bytes each, see `Entry`)
//! T+L  4   u32 LE: L
//! T+L+4 4  magic "CRNT"
//! ```
//!
//! Version 5 (a repository with maintenance, format-spec/maintenance-key.md) names its
//! epoch whatever it is and a class in byte 7: 1 data (a second copy of the table, sealed
//! for the maintenance key, before the table of contents), 2 references records, 3 moved
//! frames (after the header, `u32` O and O origins of 36 bytes; each frame behind an
//! 8-byte prefix naming its origin and its offset there; the table sealed for the
//! maintenance key and bound to the header and origins).
//! Version 4 (written since 2026-12-06 by a repository whose keys were rotated) is version
//! 3 with the key epoch the pack is sealed under in bytes 5..7: frames are read by offset
//! after the header alone, so the header must say which epoch's key opens them. A pack
//! of epoch 0 is written as version 3, which older cairns read.
//! Version 3 (written since 2026-12-04) binds the pack key to the kind of object (a pack)
//! and hedges the ephemeral key against a repeating random source (keys.rs); its layout
//! is that of version 2. Version 2 packs have the first key derivation. Version 1 packs
//! hold one blob per frame, with `kind || id` as associated data, and 45-byte entries
//! without `start`.

use super::Reader;
use crate::crypto::aead::TAG_LEN;
use crate::error::{Error, ErrorKind, Result};
use crate::id::{BlobId, BlobKind};

pub const MAGIC: &[u8; 4] = b"CRNP";
pub const TRAILER_MAGIC: &[u8; 4] = b"CRNT";
/// The version this cairn writes for key epoch 0, and the first bound to the object kind.
pub const VERSION: u8 = 3;
/// The version that names its key epoch (written for epochs above 0).
pub const VERSION_4: u8 = 4;
/// The version of a repository with maintenance (format-spec/maintenance-key.md): a class
/// byte, and in data packs a second copy of the table for the maintenance key.
pub const VERSION_5: u8 = 5;
/// Frames, with the first key derivation.
pub const VERSION_2: u8 = 2;
/// The first version: one blob per frame.
pub const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 40;
pub const TRAILER_LEN: usize = 8;
pub const TOC_NONCE: [u8; 12] = [0xFF; 12];
/// The nonce of a version 5 data pack's maintenance table (its own key; frames never use
/// it, their counter starts at 40).
pub const MAINTENANCE_TABLE_NONCE: [u8; 12] = [0; 12];
/// The kind byte a version 5 data pack's maintenance table key is bound to.
pub const MAINTENANCE_TABLE_KIND: u8 = 0x54;
/// The kind byte a references pack's key is bound to.
pub const REFERENCES_PACK_KIND: u8 = 0x4D;

/// What a pack of version 5 holds (byte 7 of its header); older packs are all data packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackClass {
    /// Chunks or trees, sealed to the repository public key.
    Data = 1,
    /// References records (kind 3), sealed to the maintenance public key.
    References = 2,
    /// Frames of chunks or trees moved out of other packs by a maintenance key's prune,
    /// each still sealed as it was in the pack it came from (its origin); only the table
    /// is this pack's own, sealed to the maintenance public key.
    Moved = 3,
}

/// The kind byte a moved-frames pack's table key is bound to.
pub const MOVED_TABLE_KIND: u8 = 0x46;
/// An origin of a moved-frames pack: ephemeral public key (32), `u16 LE` key epoch, `u16
/// LE` pack version.
pub const ORIGIN_LEN: usize = 36;
/// The most origins one moved-frames pack names (a prune starts another pack then).
pub const MAX_ORIGINS: usize = 4096;
/// Before each moved frame: `u16 LE` origin number, 2 zero bytes, `u32 LE` the frame's
/// offset in its origin.
pub const PREFIX_LEN: usize = 8;

/// A pack a moved frame was first sealed in: what its key and associated data come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub eph_pub: [u8; 32],
    pub epoch: u16,
    pub version: u8,
}

impl Origin {
    /// The origin of frames sealed in the data pack whose header is `h`.
    pub fn of(h: &Header) -> Origin {
        Origin { eph_pub: h.eph_pub, epoch: h.epoch, version: h.version }
    }
}

/// The head of a moved-frames pack: its header, the origin count and the origins. Its
/// table is bound to all of it.
pub fn moved_head(eph_pub: &[u8; 32], epoch: u16, origins: &[Origin]) -> Vec<u8> {
    let mut out = header(eph_pub, epoch, Some(PackClass::Moved)).to_vec();
    out.extend_from_slice(&(origins.len() as u32).to_le_bytes());
    for o in origins {
        out.extend_from_slice(&o.eph_pub);
        out.extend_from_slice(&o.epoch.to_le_bytes());
        out.extend_from_slice(&u16::from(o.version).to_le_bytes());
    }
    out
}

/// How many bytes the head of a pack takes: the header, and for a moved-frames pack its
/// origins, whose count is in the 4 bytes after the header (`first` holds at least 44
/// bytes of the pack).
pub fn head_len(h: &Header, first: &[u8]) -> Result<usize> {
    if h.class != PackClass::Moved {
        return Ok(HEADER_LEN);
    }
    let count = first
        .get(HEADER_LEN..HEADER_LEN + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| Error::corrupt("moved-frames pack is truncated before its origins"))?;
    if !(1..=MAX_ORIGINS).contains(&count) {
        return Err(Error::corrupt(format!("moved-frames pack names {count} origins (1 to {MAX_ORIGINS})")));
    }
    Ok(HEADER_LEN + 4 + ORIGIN_LEN * count)
}

/// The header and head of a stored pack, read by `read(len)` (the first `len` bytes):
/// the header with the 4 bytes after it (any pack is longer), then for a moved-frames
/// pack the rest of its origins.
pub fn read_head(mut read: impl FnMut(usize) -> Result<Vec<u8>>) -> Result<(Header, Vec<u8>)> {
    let mut head = read(HEADER_LEN + 4)?;
    let h = parse_header(&head)?;
    let len = head_len(&h, &head)?;
    if len > head.len() {
        head = read(len)?;
    }
    if head.len() < len {
        return Err(Error::corrupt("pack is truncated in its head"));
    }
    head.truncate(len);
    Ok((h, head))
}

/// The origins of a moved-frames pack from its head (`head_len` bytes or more). Frames are
/// moved only out of data packs with frames: versions 2 to 5.
pub fn parse_origins(h: &Header, head: &[u8]) -> Result<Vec<Origin>> {
    let len = head_len(h, head)?;
    let bytes = head
        .get(HEADER_LEN + 4..len)
        .ok_or_else(|| Error::corrupt("moved-frames pack origins are truncated"))?;
    bytes
        .chunks_exact(ORIGIN_LEN)
        .map(|o| {
            let epoch = u16::from_le_bytes([o[32], o[33]]);
            let version = u16::from_le_bytes([o[34], o[35]]);
            let epoch_ok = match version as u8 {
                VERSION_2 | VERSION => epoch == 0,
                VERSION_4 => epoch > 0,
                _ => true,
            };
            if !(u16::from(VERSION_2)..=u16::from(VERSION_5)).contains(&version) || !epoch_ok {
                return Err(Error::corrupt(format!(
                    "moved-frames pack origin of pack version {version}, epoch {epoch}"
                )));
            }
            Ok(Origin { eph_pub: o[..32].try_into().expect("32 bytes"), epoch, version: version as u8 })
        })
        .collect()
}

/// Where the frames of one pack were first sealed, read from its head without any key:
/// what moving a frame keeps, so a frame moved again keeps its first origin.
pub enum FrameOrigins {
    /// A data pack's frames were sealed in it.
    Here(Origin),
    /// A moved-frames pack's frames name their origins in their prefixes.
    Moved(Vec<Origin>),
}

impl FrameOrigins {
    /// The origins of the frames of the pack whose head is `head` (`read_head`).
    pub fn of_head(head: &[u8]) -> Result<FrameOrigins> {
        let h = parse_header(head)?;
        match h.class {
            PackClass::Data if h.version >= VERSION_2 => Ok(FrameOrigins::Here(Origin::of(&h))),
            PackClass::Moved => Ok(FrameOrigins::Moved(parse_origins(&h, head)?)),
            _ => Err(Error::invalid(format!(
                "frames of a {:?} pack of version {} are not moved",
                h.class, h.version
            ))),
        }
    }

    /// Where the sealed frame `sealed`, at `offset` of this pack, was first sealed: its
    /// origin, its offset there, and its sealed bytes without a moved frame's prefix.
    pub fn frame<'s>(&self, offset: u32, sealed: &'s [u8]) -> Result<(Origin, u32, &'s [u8])> {
        match self {
            FrameOrigins::Here(origin) => Ok((*origin, offset, sealed)),
            FrameOrigins::Moved(origins) => {
                let (o, source) = parse_prefix(sealed, origins.len())?;
                Ok((origins[o], source, &sealed[PREFIX_LEN..]))
            }
        }
    }
}

/// The prefix of a moved frame: its origin's number and its offset in that origin.
pub fn moved_prefix(origin: u16, source_offset: u32) -> [u8; PREFIX_LEN] {
    let mut p = [0u8; PREFIX_LEN];
    p[..2].copy_from_slice(&origin.to_le_bytes());
    p[4..].copy_from_slice(&source_offset.to_le_bytes());
    p
}

/// Read a moved frame's prefix: origin number (below `origins`) and source offset.
pub fn parse_prefix(prefix: &[u8], origins: usize) -> Result<(usize, u32)> {
    let p: &[u8; PREFIX_LEN] = prefix
        .get(..PREFIX_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::corrupt("moved frame is shorter than its prefix"))?;
    let origin = u16::from_le_bytes([p[0], p[1]]) as usize;
    let source = u32::from_le_bytes(p[4..].try_into().expect("4 bytes"));
    if origin >= origins || p[2..4] != [0, 0] || !(HEADER_LEN as u32..MAX_OFFSET).contains(&source) {
        return Err(Error::corrupt(format!("moved frame prefix names origin {origin} at {source}")));
    }
    Ok((origin, source))
}
/// kind (1) + id (32) + offset (4) + sealed length (4) + raw length (4) + start (4).
pub const ENTRY_LEN: usize = 49;
/// A version 1 entry has no `start`.
pub const ENTRY_LEN_V1: usize = 45;
/// The largest plaintext a blob, or a frame, may have (trees of huge directories included).
pub const MAX_BLOB: u32 = 64 << 20;
/// The largest sealed frame: a stored (uncompressed) MAX_BLOB with its tag byte and tag.
pub const MAX_SEALED: u32 = MAX_BLOB + 1 + TAG_LEN as u32;
/// Frames start below this offset (a pack of at most 1 GiB, overshot by one frame).
pub const MAX_OFFSET: u32 = 1 << 31;

/// Where a blob lives in its pack: the frame (offset and sealed length) and the blob's
/// bytes inside the frame's plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub id: BlobId,
    /// Offset of the sealed frame from the start of the pack.
    pub offset: u32,
    /// Sealed length of the frame: encoded payload plus tag.
    pub length: u32,
    /// Plaintext length of the blob.
    pub raw_length: u32,
    /// Where the blob starts in the frame's plaintext.
    pub start: u32,
}

impl Entry {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.id.kind() as u8);
        out.extend_from_slice(self.id.bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
    }

    /// Read an entry of a table or index file of `version` (1 or 2).
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<Self> {
        let kind = BlobKind::from_byte(r.u8()?)?;
        let id = BlobId::from_parts(kind, r.id()?);
        let (offset, length, raw_length) = (r.u32()?, r.u32()?, r.u32()?);
        let start = if version == VERSION_1 { 0 } else { r.u32()? };
        let e = Entry { id, offset, length, raw_length, start };
        let plausible = (HEADER_LEN as u32..MAX_OFFSET).contains(&e.offset)
            && (TAG_LEN as u32 + 1..=MAX_SEALED).contains(&e.length)
            && e.start as u64 + e.raw_length as u64 <= MAX_BLOB as u64;
        if !plausible {
            return Err(Error::corrupt(format!("implausible pack entry for {}", e.id)));
        }
        Ok(e)
    }

    /// One past the blob's last byte in its frame's plaintext.
    pub fn end(&self) -> usize {
        self.start as usize + self.raw_length as usize
    }

    /// Whether the blob is stored as is, in a frame of its own: the writer's choice for
    /// bytes that did not compress (archives, media), so a sign of them.
    pub fn stored_raw(&self) -> bool {
        self.start == 0 && self.length as usize == self.raw_length as usize + 1 + TAG_LEN
    }

    /// Whether two entries name the same frame.
    pub fn same_frame(&self, other: &Entry) -> bool {
        self.offset == other.offset
    }
}

/// The AES-GCM associated data of a frame of a pack of `version` holding `id`: in
/// version 2 the kind of its blobs (each blob's id is checked by hashing its plaintext);
/// in version 1, whose frames hold one blob, the kind and that blob's id.
pub fn frame_aad(version: u8, id: &BlobId) -> Aad {
    let mut aad = Aad([0u8; 33], 1);
    aad.0[0] = id.kind() as u8;
    if version == VERSION_1 {
        aad.0[1..].copy_from_slice(id.bytes());
        aad.1 = 33;
    }
    aad
}

/// Associated data of a frame (see [`frame_aad`]).
pub struct Aad([u8; 33], usize);

impl std::ops::Deref for Aad {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

/// The header of a pack sealed under key epoch `epoch`: version 5 of `class` in a
/// repository with maintenance, else version 3 or 4.
pub fn header(eph_pub: &[u8; 32], epoch: u16, class: Option<PackClass>) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    if let Some(class) = class {
        h[4] = VERSION_5;
        h[5..7].copy_from_slice(&epoch.to_le_bytes());
        h[7] = class as u8;
    } else if epoch == 0 {
        h[4] = VERSION;
    } else {
        h[4] = VERSION_4;
        h[5..7].copy_from_slice(&epoch.to_le_bytes());
    }
    h[8..].copy_from_slice(eph_pub);
    h
}

/// What a pack header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    /// The key epoch the pack is sealed under (0 before version 4).
    pub epoch: u16,
    /// `Data` for every pack before version 5.
    pub class: PackClass,
    pub eph_pub: [u8; 32],
}

impl Header {
    /// How many sealed tables of L bytes end the pack: a version 5 data pack holds the
    /// maintenance table before its table of contents.
    pub fn tables(&self) -> usize {
        if self.version == VERSION_5 && self.class == PackClass::Data {
            2
        } else {
            1
        }
    }

    /// Whether its tables may list blobs of `kind`: references records in references
    /// packs only, and only they there.
    pub fn holds(&self, kind: BlobKind) -> bool {
        (kind == BlobKind::References) == (self.class == PackClass::References)
    }
}

/// Check a pack header.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(Error::corrupt("not a cairn pack (bad magic)"));
    }
    let version = bytes[4];
    let unsupported =
        |what: String| Err(Error::new(ErrorKind::Unsupported, format!("{what}; upgrade cairn")));
    if !(VERSION_1..=VERSION_5).contains(&version) {
        return unsupported(format!(
            "pack version {version} is not supported (this cairn reads 1 to {VERSION_5})"
        ));
    }
    let epoch = match version {
        VERSION_4 | VERSION_5 => u16::from_le_bytes([bytes[5], bytes[6]]),
        _ => 0,
    };
    let class = match (version, bytes[7]) {
        (VERSION_5, 1) => PackClass::Data,
        (VERSION_5, 2) => PackClass::References,
        (VERSION_5, 3) => PackClass::Moved,
        (VERSION_5, c) => {
            return unsupported(format!("pack class {c} is not supported (this cairn reads 1 to 3)"))
        }
        _ => PackClass::Data,
    };
    let reserved: &[u8] = match version {
        VERSION_5 => &[],
        VERSION_4 => &bytes[7..8],
        _ => &bytes[5..8],
    };
    if reserved.iter().any(|&b| b != 0) || (version == VERSION_4 && epoch == 0) {
        return Err(Error::corrupt("pack header reserved bytes are not zero"));
    }
    Ok(Header { version, epoch, class, eph_pub: bytes[8..40].try_into().expect("32 bytes") })
}

/// Check the trailer of a whole pack of `tables` tables (`Header::tables`); returns the
/// range of the sealed table of contents. The frames end `tables - 1` lengths before it.
pub fn parse_trailer(pack: &[u8], tables: usize) -> Result<std::ops::Range<usize>> {
    let n = pack.len();
    if n < HEADER_LEN + TAG_LEN + 4 + TRAILER_LEN || &pack[n - 4..] != TRAILER_MAGIC {
        return Err(Error::corrupt("pack trailer missing (truncated pack?)"));
    }
    let len = u32::from_le_bytes(pack[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    table_range(n as u64, len as u64, tables).map(|r| r.start as usize..r.end as usize)
}

/// The range of the table of contents of a pack of `size` bytes whose trailer gives the
/// length `len`, with `tables` tables of that length; checks they fit.
pub fn table_range(size: u64, len: u64, tables: usize) -> Result<std::ops::Range<u64>> {
    let area = size.saturating_sub((HEADER_LEN + TRAILER_LEN) as u64);
    if len < (TAG_LEN + 4) as u64 || len.saturating_mul(tables as u64) > area {
        return Err(Error::corrupt("pack table of contents length does not fit the pack"));
    }
    Ok(size - TRAILER_LEN as u64 - len..size - TRAILER_LEN as u64)
}

/// The table of contents of a version 2 pack.
pub fn encode_toc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * ENTRY_LEN + TAG_LEN);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.write(&mut out);
    }
    out
}

/// Decode an opened table of contents of a pack of `version` and check every entry lies
/// inside `blob_area` (the bytes between header and table). The entries of one frame
/// follow each other with the same kind and length, the first starting at 0 and each
/// next one where the one before ends.
pub fn decode_toc(bytes: &[u8], blob_area_end: usize, header: &Header) -> Result<Vec<Entry>> {
    let version = header.version;
    let mut r = Reader::new("pack table of contents", bytes);
    let n = r.count(if version == VERSION_1 { ENTRY_LEN_V1 } else { ENTRY_LEN })?;
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    for _ in 0..n {
        let e = Entry::read(&mut r, version)?;
        if !header.holds(e.id.kind()) {
            return Err(Error::corrupt(format!("a {:?} pack lists {}", header.class, e.id)));
        }
        if header.class == PackClass::Moved && (e.length as usize) <= PREFIX_LEN + TAG_LEN {
            return Err(Error::corrupt(format!(
                "moved frame of {} is shorter than its prefix and tag",
                e.id
            )));
        }
        if e.offset as u64 + e.length as u64 > blob_area_end as u64 {
            return Err(Error::corrupt(format!("pack entry for {} points past the blobs", e.id)));
        }
        let follows = match entries.last() {
            Some(p) if p.same_frame(&e) => {
                p.length == e.length && p.id.kind() == e.id.kind() && e.start as usize == p.end()
            }
            _ => e.start == 0,
        };
        if !follows {
            return Err(Error::corrupt(format!("pack entry for {} does not follow its frame", e.id)));
        }
        entries.push(e);
    }
    r.finish()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, RefsId, TreeId};

    fn data(version: u8) -> Header {
        Header { version, epoch: 0, class: PackClass::Data, eph_pub: [0; 32] }
    }

    #[test]
    fn version_5_names_its_class_and_epoch() {
        for (class, epoch) in [(PackClass::Data, 0), (PackClass::References, 3)] {
            let h = parse_header(&header(&[9; 32], epoch, Some(class))).unwrap();
            assert_eq!(h, Header { version: VERSION_5, epoch, class, eph_pub: [9; 32] });
            assert_eq!(h.tables(), if class == PackClass::Data { 2 } else { 1 });
        }
        assert_eq!(parse_header(&header(&[9; 32], 0, None)).unwrap().version, VERSION);
        let mut h = header(&[9; 32], 0, Some(PackClass::Data));
        h[7] = 4;
        assert_eq!(parse_header(&h).unwrap_err().kind(), ErrorKind::Unsupported);
        h[7] = 0;
        assert_eq!(parse_header(&h).unwrap_err().kind(), ErrorKind::Unsupported);
    }

    /// A moved-frames pack's head and prefixes: what they say round-trips, and every
    /// value a writer cannot have written is refused before any key is tried.
    #[test]
    fn moved_frames_heads_and_prefixes_refuse_what_no_writer_writes() {
        let origin = |epoch: u16, version: u8| Origin { eph_pub: [3; 32], epoch, version };
        let good = [origin(0, VERSION), origin(2, VERSION_4), origin(0, VERSION_5)];
        let head = moved_head(&[9; 32], 1, &good);
        let h = parse_header(&head).unwrap();
        assert_eq!((h.class, h.epoch), (PackClass::Moved, 1));
        assert_eq!(head_len(&h, &head).unwrap(), head.len());
        assert_eq!(parse_origins(&h, &head).unwrap(), good);
        assert!(parse_origins(&h, &head[..head.len() - 1]).is_err(), "truncated");
        for count in [0u32, MAX_ORIGINS as u32 + 1] {
            let mut bad = head.clone();
            bad[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&count.to_le_bytes());
            assert!(head_len(&h, &bad).is_err(), "{count} origins");
        }
        for wrong in [origin(0, VERSION_1), origin(0, 6), origin(1, VERSION), origin(0, VERSION_4)] {
            let bad = moved_head(&[9; 32], 1, &[wrong]);
            assert!(parse_origins(&h, &bad).is_err(), "{wrong:?}");
        }
        let frames = FrameOrigins::of_head(&head).unwrap();
        let mut sealed = moved_prefix(2, 4096).to_vec();
        sealed.extend_from_slice(&[7; 20]);
        let (o, source, body) = frames.frame(999, &sealed).unwrap();
        assert_eq!((o, source, body.len()), (good[2], 4096, 20));
        for bad in [moved_prefix(3, 4096), moved_prefix(0, 39), [0, 0, 1, 0, 0, 16, 0, 0]] {
            assert!(parse_prefix(&bad, 3).is_err(), "{bad:?}");
        }
        assert!(parse_prefix(&[0; 7], 3).is_err(), "shorter than a prefix");
        // A data pack's frames are their own origin; a references pack's are never moved.
        let data = header(&[5; 32], 0, Some(PackClass::Data));
        let (o, source, _) = FrameOrigins::of_head(&data).unwrap().frame(40, &sealed).unwrap();
        assert_eq!((o.eph_pub, source), ([5; 32], 40));
        assert!(FrameOrigins::of_head(&header(&[5; 32], 0, Some(PackClass::References))).is_err());
        // A moved-frames table entry must hold a prefix and a tag.
        let e =
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 200, length: 24, raw_length: 1, start: 0 };
        assert!(decode_toc(&encode_toc(&[e]), 400, &h).is_err());
        assert!(decode_toc(&encode_toc(&[Entry { length: 25, ..e }]), 400, &h).is_ok());
    }

    #[test]
    fn references_records_only_in_references_packs() {
        let r = Entry {
            id: BlobId::References(RefsId([1; 32])),
            offset: 40,
            length: 100,
            raw_length: 90,
            start: 0,
        };
        let c = Entry { id: BlobId::Chunk(ChunkId([1; 32])), ..r };
        let refs = Header { class: PackClass::References, version: VERSION_5, ..data(VERSION_5) };
        assert!(decode_toc(&encode_toc(&[r]), 140, &refs).is_ok());
        assert!(decode_toc(&encode_toc(&[c]), 140, &refs).is_err());
        for v in [VERSION, VERSION_4, VERSION_5] {
            assert!(decode_toc(&encode_toc(&[r]), 140, &data(v)).is_err());
            assert!(decode_toc(&encode_toc(&[c]), 140, &data(v)).is_ok());
        }
    }

    #[test]
    fn a_data_pack_of_version_5_has_room_for_two_tables() {
        assert_eq!(table_range(200, 30, 2).unwrap(), 162..192);
        assert!(table_range(200, 80, 2).is_err());
        assert!(table_range(200, 80, 1).is_ok());
        assert!(table_range(200, 19, 1).is_err());
    }

    #[test]
    fn toc_round_trip_and_bounds() {
        let entries = vec![
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 40, length: 100, raw_length: 90, start: 0 },
            Entry { id: BlobId::Chunk(ChunkId([3; 32])), offset: 40, length: 100, raw_length: 10, start: 90 },
            Entry { id: BlobId::Tree(TreeId([2; 32])), offset: 140, length: 50, raw_length: 200, start: 0 },
        ];
        let enc = encode_toc(&entries);
        assert_eq!(decode_toc(&enc, 190, &data(VERSION)).unwrap(), entries);
        assert!(decode_toc(&enc, 189, &data(VERSION)).is_err());
        assert!(decode_toc(&enc[..enc.len() - 1], 190, &data(VERSION)).is_err());
        let mut huge = enc.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_toc(&huge, 190, &data(VERSION)).is_err());
    }

    #[test]
    fn a_frame_is_contiguous_and_of_one_kind() {
        let a =
            Entry { id: BlobId::Chunk(ChunkId([1; 32])), offset: 40, length: 100, raw_length: 90, start: 0 };
        let b = Entry { id: BlobId::Chunk(ChunkId([3; 32])), start: 90, raw_length: 5, ..a };
        assert!(decode_toc(&encode_toc(&[a, b]), 140, &data(VERSION)).is_ok());
        for bad in [
            vec![Entry { start: 1, ..a }],
            vec![a, Entry { start: 91, ..b }],
            vec![a, Entry { length: 99, ..b }],
            vec![a, Entry { id: BlobId::Tree(TreeId([3; 32])), ..b }],
        ] {
            assert!(decode_toc(&encode_toc(&bad), 140, &data(VERSION)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_1_tables_have_no_start() {
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1.push(1);
        v1.extend_from_slice(&[7; 32]);
        for x in [40u32, 30, 20] {
            v1.extend_from_slice(&x.to_le_bytes());
        }
        let e = decode_toc(&v1, 70, &data(VERSION_1)).unwrap();
        assert_eq!(
            e,
            vec![Entry {
                id: BlobId::Chunk(ChunkId([7; 32])),
                offset: 40,
                length: 30,
                raw_length: 20,
                start: 0
            }]
        );
        assert!(decode_toc(&v1, 70, &data(VERSION)).is_err());
    }
}
