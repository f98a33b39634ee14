//! Which packs prune deletes, repacks and keeps: pure logic over what the index files
//! and the packs' own tables say, with reads only through [`PackProbe`], so it can be
//! tested against a model and `--dry-run` is the same computation.
//!
//! The rule it keeps: **a pack is deleted or repacked only when every used blob it holds,
//! by the index or by its own sealed table, has a verified copy that stays.** Index files
//! are written by anyone with the write root (a backup-only key can forge entries that
//! name real blob ids in packs of its own), so a location is never trusted for a deletion
//! just because an index names it:
//! - a used blob with one location lives there (if that copy is bad, nothing prune could
//!   delete would hold a better one: the packs that might are all read below);
//! - a used blob with several locations lives in the first one that reads back intact
//!   (decrypted and re-hashed); if none does, every location stays;
//! - every pack about to be deleted or repacked has its own table of contents read, and
//!   the blobs it lists join the candidates; the choice is made again until no new table
//!   comes in (the set of read tables only grows, so this ends);
//! - a pack whose table cannot be read is never deleted.

use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::Entry;
use crate::id::{BlobId, PackId};
use crate::index::Location;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The reads the selection needs.
pub trait PackProbe {
    /// The pack's own sealed table of contents; `Ok(None)` when it cannot be read.
    fn table(&self, pack: &PackId) -> Result<Option<Vec<Entry>>>;
    /// Whether the blob at `loc` reads back intact (opened and re-hashed).
    fn verify(&self, loc: &Location) -> Result<bool>;
    /// Whether [`PackProbe::verify`] can tell for this blob at all: a maintenance key
    /// cannot open chunks or trees. A copy it cannot tell about is neither chosen nor
    /// dropped, so a used blob with several such copies keeps every one.
    fn can_verify(&self, _loc: &Location) -> bool {
        true
    }
}

/// What to do with the packs.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub delete: Vec<PackId>,
    pub repack: Vec<PackId>,
    /// Packs that stay, with the entries the new index names them by.
    pub keep: Vec<(PackId, Vec<Entry>)>,
    /// Used blobs to copy out of repacked packs, each from its verified or only location.
    pub moves: Vec<Location>,
    /// Packs left alone because their table could not be read.
    pub unreadable: Vec<PackId>,
    /// Used blobs none of whose several copies reads back intact (every copy stays).
    pub unverifiable: Vec<BlobId>,
    /// Locations that failed to read back: left out of the new index.
    pub bad: Vec<Location>,
    pub bytes_delete: u64,
    pub bytes_repack_used: u64,
    pub bytes_repack_unused: u64,
    pub bytes_keep: u64,
    pub blobs_used: usize,
    pub blobs_unused: usize,
}

/// One pack as known so far.
struct Known {
    entries: Vec<Entry>,
    /// Whether `entries` come from the pack's own table.
    from_table: bool,
}

/// Decide for every pack in `indexed` (entries from the live index files, stored packs
/// only) and `orphans` (stored packs no index file names). `used`: every blob a snapshot
/// reaches. `max_unused`: repack a pack when more than this share of its bytes is unused;
/// `always`: repack these packs whatever the share (delete them when wholly unused).
pub fn select(
    indexed: HashMap<PackId, Vec<Entry>>,
    orphans: &[PackId],
    used: &HashSet<BlobId>,
    max_unused: f64,
    always: &HashSet<PackId>,
    probe: &impl PackProbe,
) -> Result<Selection> {
    let mut known: BTreeMap<PackId, Known> =
        indexed.into_iter().map(|(p, entries)| (p, Known { entries, from_table: false })).collect();
    let mut unreadable = Vec::new();
    for pack in orphans {
        match probe.table(pack)? {
            Some(entries) => {
                known.insert(*pack, Known { entries, from_table: true });
            }
            None => unreadable.push(*pack),
        }
    }
    let mut verified: HashMap<(PackId, Entry), bool> = HashMap::new();
    loop {
        let homes = choose_homes(&known, used, probe, &mut verified)?;
        let mut sel = classify(&known, &homes, max_unused, always, &unreadable);
        let pending: Vec<PackId> = sel
            .delete
            .iter()
            .chain(&sel.repack)
            .filter(|p| !known[*p].from_table && !unreadable.contains(p))
            .copied()
            .collect();
        if pending.is_empty() {
            sel.unreadable = unreadable;
            sel.unverifiable = homes.unverifiable;
            sel.bad = verified
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|((pack, entry), _)| Location { pack: *pack, entry: *entry })
                .collect();
            let bad: HashSet<(PackId, Entry)> = sel.bad.iter().map(|l| (l.pack, l.entry)).collect();
            for (pack, entries) in &mut sel.keep {
                entries.retain(|e| !bad.contains(&(*pack, *e)));
            }
            return Ok(sel);
        }
        for pack in pending {
            match probe.table(&pack)? {
                Some(entries) => {
                    known.insert(pack, Known { entries, from_table: true });
                }
                // Never delete what cannot be read: it stays as the index describes it.
                None => unreadable.push(pack),
            }
        }
    }
}

/// The locations where used blobs live.
struct Homes {
    live: HashSet<(PackId, Entry)>,
    unverifiable: Vec<BlobId>,
}

fn choose_homes(
    known: &BTreeMap<PackId, Known>,
    used: &HashSet<BlobId>,
    probe: &impl PackProbe,
    verified: &mut HashMap<(PackId, Entry), bool>,
) -> Result<Homes> {
    let mut candidates: HashMap<BlobId, Vec<(PackId, Entry)>> = HashMap::new();
    for (pack, k) in known {
        for e in k.entries.iter().filter(|e| used.contains(&e.id)) {
            candidates.entry(e.id).or_default().push((*pack, *e));
        }
    }
    let missing = used.len() - candidates.len();
    if missing > 0 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("{missing} blobs that snapshots use are in no pack; prune stops; run `cairn check`"),
        ));
    }
    let mut homes = Homes { live: HashSet::new(), unverifiable: Vec::new() };
    let mut ids: Vec<&BlobId> = candidates.keys().collect();
    ids.sort_by_key(|id| *id.bytes());
    for id in ids {
        let mut cands = candidates[id].clone();
        cands.sort_by_key(|(p, e)| (*p, e.offset, e.start));
        cands.dedup();
        if cands.len() == 1 {
            homes.live.insert(cands[0]);
            continue;
        }
        let mut home = None;
        for c in &cands {
            if !probe.can_verify(&Location { pack: c.0, entry: c.1 }) {
                continue;
            }
            let ok = match verified.get(c) {
                Some(ok) => *ok,
                None => {
                    let ok = probe.verify(&Location { pack: c.0, entry: c.1 })?;
                    verified.insert(*c, ok);
                    ok
                }
            };
            if ok {
                home = Some(*c);
                break;
            }
        }
        match home {
            Some(h) => {
                homes.live.insert(h);
            }
            None => {
                homes.unverifiable.push(*id);
                homes.live.extend(cands);
            }
        }
    }
    Ok(homes)
}

/// Delete, repack or keep each pack by the share of its bytes the live entries use; a
/// pack whose own table cannot be read is kept as the index describes it.
fn classify(
    known: &BTreeMap<PackId, Known>,
    homes: &Homes,
    max_unused: f64,
    always: &HashSet<PackId>,
    unreadable: &[PackId],
) -> Selection {
    let mut sel = Selection::default();
    for (pack, k) in known {
        if unreadable.contains(pack) {
            let frames: HashSet<(u32, u32)> = k.entries.iter().map(|e| (e.offset, e.length)).collect();
            sel.bytes_keep += frames.iter().map(|&(_, len)| u64::from(len)).sum::<u64>();
            sel.keep.push((*pack, k.entries.clone()));
            continue;
        }
        let mut live_here = Vec::new();
        // Per frame (by offset): sealed length, plaintext bytes, plaintext bytes in use.
        let mut frames: HashMap<u32, (u64, u64, u64)> = HashMap::new();
        for e in &k.entries {
            let live = homes.live.contains(&(*pack, *e));
            let f = frames.entry(e.offset).or_insert((e.length as u64, 0, 0));
            f.1 += e.raw_length as u64;
            if live {
                f.2 += e.raw_length as u64;
                live_here.push(*e);
            } else {
                sel.blobs_unused += 1;
            }
        }
        sel.blobs_used += live_here.len();
        // A frame's sealed bytes count as unused in the share of its plaintext no
        // snapshot uses: repacking rewrites only the used blobs.
        let total: u64 = frames.values().map(|f| f.0).sum();
        let unused: u64 = frames.values().map(|&(len, raw, live)| len * (raw - live) / raw.max(1)).sum();
        if live_here.is_empty() {
            sel.delete.push(*pack);
            sel.bytes_delete += total;
        } else if always.contains(pack) || (unused > 0 && unused as f64 > max_unused * total as f64) {
            sel.repack.push(*pack);
            sel.bytes_repack_used += total - unused;
            sel.bytes_repack_unused += unused;
            sel.moves.extend(live_here.into_iter().map(|entry| Location { pack: *pack, entry }));
        } else {
            sel.bytes_keep += total;
            sel.keep.push((*pack, k.entries.clone()));
        }
    }
    sel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;
    use std::cell::RefCell;

    /// Packs as they really are, and which stored copies are intact.
    #[derive(Default)]
    struct Model {
        tables: HashMap<PackId, Vec<Entry>>,
        intact: HashSet<(PackId, Entry)>,
        tables_read: RefCell<Vec<PackId>>,
    }

    impl PackProbe for Model {
        fn table(&self, pack: &PackId) -> Result<Option<Vec<Entry>>> {
            self.tables_read.borrow_mut().push(*pack);
            Ok(self.tables.get(pack).cloned())
        }
        fn verify(&self, loc: &Location) -> Result<bool> {
            Ok(self.intact.contains(&(loc.pack, loc.entry)))
        }
    }

    fn blob(n: u8) -> BlobId {
        BlobId::Chunk(ChunkId([n; 32]))
    }

    fn entry(n: u8, frame: u32) -> Entry {
        Entry { id: blob(n), offset: 40 + frame * 100, length: 100, raw_length: 80, start: 0 }
    }

    fn pack(n: u8) -> PackId {
        PackId([n; 32])
    }

    /// A real pack holding `blobs`, one frame each, all intact.
    fn real(m: &mut Model, p: u8, blobs: &[u8]) -> Vec<Entry> {
        let entries: Vec<Entry> = blobs.iter().enumerate().map(|(i, &b)| entry(b, i as u32)).collect();
        for e in &entries {
            m.intact.insert((pack(p), *e));
        }
        m.tables.insert(pack(p), entries.clone());
        entries
    }

    fn used(blobs: &[u8]) -> HashSet<BlobId> {
        blobs.iter().map(|&b| blob(b)).collect()
    }

    #[test]
    fn an_honest_repository_deletes_unused_packs_without_verifying_anything() {
        let mut m = Model::default();
        let a = real(&mut m, 1, &[1, 2]);
        let b = real(&mut m, 2, &[3]);
        let s = select([(pack(1), a), (pack(2), b)].into(), &[], &used(&[1, 2]), 0.1, &HashSet::new(), &m)
            .unwrap();
        assert_eq!(s.delete, vec![pack(2)]);
        assert_eq!(s.keep.len(), 1);
        assert_eq!(*m.tables_read.borrow(), vec![pack(2)], "only the deleted pack's table is read");
    }

    #[test]
    fn a_forged_copy_in_a_pack_of_the_attackers_never_costs_the_real_one() {
        let mut m = Model::default();
        let a = real(&mut m, 5, &[1, 2]);
        // Pack 1 (sorts first) claims blob 1 and 2, holding garbage: not intact.
        let forged = vec![entry(1, 0), entry(2, 1)];
        m.tables.insert(pack(1), forged.clone());
        let s =
            select([(pack(5), a), (pack(1), forged)].into(), &[], &used(&[1, 2]), 0.0, &HashSet::new(), &m)
                .unwrap();
        assert_eq!(s.delete, vec![pack(1)]);
        assert!(s.keep.iter().any(|(p, _)| *p == pack(5)));
        assert_eq!(s.bad.len(), 2);
    }

    #[test]
    fn a_pack_the_index_hides_is_found_by_its_own_table_before_deletion() {
        let mut m = Model::default();
        let a = real(&mut m, 5, &[1, 9]);
        // The index (forged) says pack 5 holds only blob 9 (unused) and puts blob 1 in
        // pack 3, a pack with garbage at that place.
        let hidden = vec![a[1]];
        let forged = vec![entry(1, 0)];
        m.tables.insert(pack(3), forged.clone());
        let s =
            select([(pack(5), hidden), (pack(3), forged)].into(), &[], &used(&[1]), 0.0, &HashSet::new(), &m)
                .unwrap();
        assert!(!s.delete.contains(&pack(5)), "{s:?}");
        assert!(s.repack.contains(&pack(5)) || s.keep.iter().any(|(p, _)| *p == pack(5)));
        let moved_or_kept: Vec<PackId> =
            s.moves.iter().map(|l| l.pack).chain(s.keep.iter().map(|k| k.0)).collect();
        assert!(moved_or_kept.contains(&pack(5)));
    }

    /// A key rotation's packs: repacked though every byte is used, deleted when none is,
    /// and the packs not named left as the share rule says.
    #[test]
    fn packs_to_repack_always_move_whatever_their_share() {
        let mut m = Model::default();
        let a = real(&mut m, 1, &[1, 2]);
        let b = real(&mut m, 2, &[3]);
        let c = real(&mut m, 3, &[4]);
        let always: HashSet<PackId> = [pack(1), pack(2)].into();
        let indexed = [(pack(1), a), (pack(2), b), (pack(3), c)].into();
        let s = select(indexed, &[], &used(&[1, 2, 4]), 0.1, &always, &m).unwrap();
        assert_eq!(s.repack, vec![pack(1)], "wholly used, repacked anyway");
        assert_eq!(s.delete, vec![pack(2)], "wholly unused: deleted");
        assert!(s.keep.iter().any(|(p, _)| *p == pack(3)), "not named, wholly used: kept");
        assert_eq!(s.moves.len(), 2);
    }

    #[test]
    fn orphans_holding_used_blobs_stay_and_unreadable_packs_are_never_deleted() {
        let mut m = Model::default();
        real(&mut m, 7, &[1]);
        let s = select(HashMap::new(), &[pack(7), pack(8)], &used(&[1]), 0.1, &HashSet::new(), &m).unwrap();
        assert_eq!(s.keep.len(), 1, "the orphan holds a used blob: it stays and gets indexed");
        assert_eq!(s.unreadable, vec![pack(8)]);
        assert!(s.delete.is_empty());
        let e = select(HashMap::new(), &[], &used(&[1]), 0.1, &HashSet::new(), &m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
    }

    /// An indexed pack whose own table cannot be read stays, even when its index entries
    /// name no used blob: the index may hide what it holds (a lost index file), and only
    /// its table could tell. It stays as the index describes it.
    #[test]
    fn an_indexed_pack_whose_table_cannot_be_read_is_never_deleted() {
        let mut m = Model::default();
        let a = real(&mut m, 5, &[1]);
        // Pack 8 holds the real copy of blob 2, but its index file is gone; what the index
        // says of it names only unused blob 9, and a forged entry puts blob 2 in pack 5.
        let hidden = vec![entry(9, 0)];
        let claimed = vec![entry(1, 0), entry(2, 1)];
        let s = select(
            [(pack(5), claimed), (pack(8), hidden.clone())].into(),
            &[],
            &used(&[1, 2]),
            0.1,
            &HashSet::new(),
            &m,
        )
        .unwrap();
        assert!(s.delete.is_empty() && s.repack.is_empty(), "{:?} {:?}", s.delete, s.repack);
        assert_eq!(s.unreadable, vec![pack(8)]);
        assert!(s.keep.contains(&(pack(8), hidden)), "kept as the index describes it");
        assert!(s.keep.iter().any(|(p, _)| *p == pack(5)) && m.intact.contains(&(pack(5), a[0])));
    }

    /// A probe that can open no blob (a maintenance key's, for chunks and trees): every
    /// copy of a used blob stays, and none is dropped from the index as bad.
    #[test]
    fn copies_the_probe_cannot_tell_about_all_stay() {
        struct Blind(Model);
        impl PackProbe for Blind {
            fn table(&self, pack: &PackId) -> Result<Option<Vec<Entry>>> {
                self.0.table(pack)
            }
            fn verify(&self, _: &Location) -> Result<bool> {
                panic!("not asked")
            }
            fn can_verify(&self, _: &Location) -> bool {
                false
            }
        }
        let mut m = Model::default();
        let a = real(&mut m, 5, &[1]);
        let forged = vec![entry(1, 0), entry(7, 1)];
        m.tables.insert(pack(1), forged.clone());
        let b = real(&mut m, 6, &[8]);
        let indexed = [(pack(5), a), (pack(1), forged), (pack(6), b)].into();
        let s = select(indexed, &[], &used(&[1]), 1.0, &HashSet::new(), &Blind(m)).unwrap();
        assert_eq!(s.delete, vec![pack(6)], "only the pack of no used blob goes");
        assert_eq!(s.keep.len(), 2, "both copies of blob 1 stay, the forged one's pack too");
        assert!(s.bad.is_empty() && s.repack.is_empty());
        assert_eq!(s.unverifiable, vec![blob(1)]);
    }

    #[test]
    fn when_no_copy_verifies_every_copy_stays() {
        let mut m = Model::default();
        let a = vec![entry(1, 0)];
        let b = vec![entry(1, 0)];
        m.tables.insert(pack(1), a.clone());
        m.tables.insert(pack(2), b.clone());
        let s =
            select([(pack(1), a), (pack(2), b)].into(), &[], &used(&[1]), 0.1, &HashSet::new(), &m).unwrap();
        assert!(s.delete.is_empty());
        assert_eq!(s.unverifiable, vec![blob(1)]);
    }
}
