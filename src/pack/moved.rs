//! Packs frames moved out of other packs without opening them (pack version 5, class 3,
//! format-spec/maintenance-key.md): how a maintenance key's prune repacks. Each frame
//! keeps the key and nonce it was first sealed with, so the pack names the packs they
//! came from (origins) and prefixes each frame with its origin and offset there; only the
//! table is this pack's own, sealed to the maintenance public key. Pure: no I/O.

use crate::crypto::aead::Cipher;
use crate::crypto::keys::RepoKeys;
use crate::error::{Error, Result};
use crate::format::pack::{self, Entry, Origin};
use crate::id::PackId;
use std::collections::HashMap;

#[derive(Default)]
pub struct MovedPack {
    origins: Vec<Origin>,
    numbers: HashMap<Origin, u16>,
    /// The prefixed frames, as they follow the head.
    frames: Vec<u8>,
    /// Their entries, offsets counted from the start of `frames`.
    entries: Vec<Entry>,
}

impl MovedPack {
    /// Whether a frame of `origin` can join: a pack names at most `MAX_ORIGINS` origins.
    pub fn takes(&self, origin: &Origin) -> bool {
        self.numbers.contains_key(origin) || self.origins.len() < pack::MAX_ORIGINS
    }

    /// Append `sealed`, a frame first sealed in `origin` at offset `source`, whose blobs
    /// are `entries` (as the table of the pack it is moved out of lists them).
    pub fn add(&mut self, origin: Origin, source: u32, sealed: &[u8], entries: &[Entry]) {
        assert!(self.takes(&origin), "a pack names at most MAX_ORIGINS origins");
        let number = *self.numbers.entry(origin).or_insert_with(|| {
            self.origins.push(origin);
            (self.origins.len() - 1) as u16
        });
        let offset = self.frames.len() as u32;
        self.frames.extend_from_slice(&pack::moved_prefix(number, source));
        self.frames.extend_from_slice(sealed);
        let length = (pack::PREFIX_LEN + sealed.len()) as u32;
        self.entries.extend(entries.iter().map(|e| Entry { offset, length, ..*e }));
    }

    /// Bytes of frames so far.
    pub fn size(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seal the table: the pack's name, bytes and entries.
    pub fn finish(self, keys: &RepoKeys) -> Result<(PackId, Vec<u8>, Vec<Entry>)> {
        let content = blake3::hash(&self.frames);
        let (eph, key) = keys.new_maintenance_sealed_key(pack::MOVED_TABLE_KIND, content.as_bytes())?;
        let head = pack::moved_head(&eph, keys.write_epoch(), &self.origins);
        if (head.len() + self.frames.len()) as u64 >= u64::from(pack::MAX_OFFSET) {
            return Err(Error::invalid("moved frames exceed a pack's largest size"));
        }
        let base = head.len() as u32;
        let entries: Vec<Entry> =
            self.entries.iter().map(|e| Entry { offset: e.offset + base, ..*e }).collect();
        let mut table = pack::encode_toc(&entries);
        Cipher::new(&key).seal_in_place(&pack::TOC_NONCE, &head, &mut table);
        let mut bytes = head;
        bytes.extend_from_slice(&self.frames);
        bytes.extend_from_slice(&table);
        bytes.extend_from_slice(&(table.len() as u32).to_le_bytes());
        bytes.extend_from_slice(pack::TRAILER_MAGIC);
        Ok((PackId(*blake3::hash(&bytes).as_bytes()), bytes, entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FileType;
    use crate::error::ErrorKind;
    use crate::index::{Index, Location};
    use crate::pack::reader::{read_toc, Table};
    use crate::pack::PackReader;
    use crate::repo::Repository;

    /// Move every frame of `pack` (as its maintenance table, or a moved-frames pack's
    /// table, lists them) into a new moved-frames pack with `keys`' repository; store it.
    fn move_all(repo: &Repository, pack: &PackId) -> (PackId, Vec<Entry>) {
        let reader = PackReader::new(repo);
        let table = match reader.stored_table(pack, Table::Maintenance).unwrap() {
            Some(t) => t,
            None => reader.stored_toc(pack).unwrap(),
        };
        let bytes = repo.read_object(FileType::Pack, &pack.to_hex()).unwrap();
        let mut out = MovedPack::default();
        let origins = pack::FrameOrigins::of_head(&bytes).unwrap();
        for e in table.iter().filter(|e| e.start == 0) {
            let frame: Vec<Entry> = table.iter().filter(|f| f.same_frame(e)).copied().collect();
            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            let (origin, source, sealed) = origins.frame(e.offset, sealed).unwrap();
            out.add(origin, source, sealed, &frame);
        }
        let (id, bytes, entries) = out.finish(repo.keys()).unwrap();
        repo.backend().write(FileType::Pack, &id.to_hex(), &bytes).unwrap();
        (id, entries)
    }

    /// A maintenance key moves the frames of a data pack, and again out of the moved
    /// pack, without opening one: a full key reads every blob from the moved copy and
    /// its table; the maintenance key reads the table and opens no frame; a changed
    /// prefix or origin makes a frame, or the table, fail to open.
    #[test]
    fn moved_frames_open_with_their_origins_key_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (full, writer, keeper, _src) = crate::ops::maintenance::tests::with_maintenance(dir.path());
        let blobs: Vec<Vec<u8>> =
            (0..5).map(|i| format!("<route id='{i}'/>\n").repeat(20_000 + i * 3_000).into_bytes()).collect();
        let ids = crate::pack::writer::store_chunks(&writer, &blobs);
        let index = Index::load(&full).unwrap();
        let source = index.get(&ids[0]).unwrap().pack;
        assert!(ids.iter().all(|id| index.get(id).unwrap().pack == source), "one pack");
        let (moved, entries) = move_all(&keeper, &source);
        let (again, _) = move_all(&keeper, &moved);
        for pack in [moved, again] {
            let bytes = full.read_object(FileType::Pack, &pack.to_hex()).unwrap();
            assert_eq!(pack::parse_header(&bytes).unwrap().class, pack::PackClass::Moved);
            let toc = read_toc(full.keys(), &bytes).unwrap();
            assert_eq!(PackReader::new(&keeper).stored_toc(&pack).unwrap(), toc, "both keys read the table");
            assert!(read_toc(writer.keys(), &bytes).is_err(), "a backup-only key reads no table");
            let (by_full, by_keeper) = (PackReader::new(&full), PackReader::new(&keeper));
            for (id, blob) in ids.iter().zip(&blobs) {
                let entry = *toc.iter().find(|e| e.id == *id).unwrap();
                let loc = Location { pack, entry };
                assert_eq!(&by_full.read_blob(&loc).unwrap(), blob);
                assert_eq!(by_keeper.read_blob(&loc).unwrap_err().kind(), ErrorKind::PermissionDenied);
            }
        }
        // Damage: the prefix's origin number, its source offset, an origin's epoch.
        let bytes = full.read_object(FileType::Pack, &moved.to_hex()).unwrap();
        let at = entries[0].offset as usize;
        for (byte, what) in
            [(at, "origin number"), (at + 4, "source offset"), (pack::HEADER_LEN + 4 + 32, "origin")]
        {
            let mut bad = bytes.clone();
            bad[byte] ^= 1;
            let id = PackId(*blake3::hash(&bad).as_bytes());
            full.backend().write(FileType::Pack, &id.to_hex(), &bad).unwrap();
            let reader = PackReader::new(&full);
            let read = reader.read_blob(&Location { pack: id, entry: Entry { ..entries[0] } });
            assert!(read.is_err(), "a changed {what} opens nothing");
            if what == "origin" {
                assert!(reader.stored_toc(&id).is_err(), "the table is bound to the origins");
            }
        }
    }
}
