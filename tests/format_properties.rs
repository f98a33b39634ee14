//! Round-trip properties of the on-disk encodings, on random values: packs (built by
//! `PackBuilder`, read back by the reader's functions), index files, trees (version 2,
//! split into parts under a head), snapshots and envelopes (version 2). Each decodes to
//! exactly what was encoded; every strict prefix of an encoding is refused; a sealed
//! object with any byte changed does not open.
//!
//! PROPTEST_CASES raises the number of cases (default 64 each).

use cairn::compress::{self, Encoding};
use cairn::crypto::keys::{MasterKey, RepoKeys};
use cairn::format::envelope::{self, ObjectType, WrittenBy};
use cairn::format::index::IndexFile;
use cairn::format::pack::{Entry, HEADER_LEN, MAX_BLOB, MAX_OFFSET, MAX_SEALED};
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Node, NodeKind, Tree, TreeBlob, TREE_VERSION};
use cairn::format::Timespec;
use cairn::id::{BlobId, ChunkId, IndexId, PackId, SnapshotId, TreeId};
use cairn::pack::reader::{blob_of_frame, open_frame, read_toc, PackKey};
use cairn::pack::PackBuilder;
use proptest::prelude::*;
use std::sync::OnceLock;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One repository's keys for every case: a full key and a backup-only key of it.
fn keys() -> &'static (RepoKeys, RepoKeys) {
    static KEYS: OnceLock<(RepoKeys, RepoKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let m = MasterKey::generate().unwrap();
        let repo_id = [7u8; 32];
        (m.derive(m.public_key(), repo_id).unwrap(), m.backup_only().derive(m.public_key(), repo_id).unwrap())
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn timespec() -> impl Strategy<Value = Timespec> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timespec { secs, nanos })
}

// ---------------------------------------------------------------------------------------
// Packs
// ---------------------------------------------------------------------------------------

/// Frames of blobs, all of one kind each; blob contents from a few patterns so some
/// compress and some do not.
fn frames() -> impl Strategy<Value = Vec<(bool, Vec<Vec<u8>>)>> {
    let blob = prop_oneof![
        bytes(3000),
        (any::<u8>(), 1usize..20_000).prop_map(|(b, n)| vec![b; n]),
        (1usize..200).prop_map(|n| b"<policy name='gateway'/>\n".repeat(n)),
    ];
    proptest::collection::vec((any::<bool>(), proptest::collection::vec(blob, 1..5)), 1..6)
}

fn blob_id(k: &RepoKeys, is_tree: bool, plain: &[u8]) -> BlobId {
    if is_tree {
        BlobId::Tree(k.tree_id(plain))
    } else {
        BlobId::Chunk(k.chunk_id(plain))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_built_pack_reads_back_blob_for_blob(frames in frames(), level in prop_oneof![Just(0), Just(3)]) {
        let (k, writer) = keys();
        // Packs are written by either kind of key and read with the full key.
        let mut b = PackBuilder::new(1 << 16, None);
        let mut expected = Vec::new();
        for (is_tree, blobs) in &frames {
            let list: Vec<(BlobId, u32)> =
                blobs.iter().map(|p| (blob_id(k, *is_tree, p), p.len() as u32)).collect();
            // Level 0 takes the path of data stored as it is: written from where it lies.
            let plain = blobs.concat();
            let encoded = match level {
                0 => Encoding::Stored(&plain),
                _ => Encoding::Encoded(compress::encode(&plain, level)),
            };
            b.add_frame(if level == 0 { writer } else { k }, &list, &encoded).unwrap();
            expected.extend(blobs.iter().cloned().zip(list));
        }
        let pack = b.finish();
        prop_assert_eq!(pack.id, PackId(*blake3::hash(pack.bytes()).as_bytes()));
        let toc = read_toc(k, pack.bytes()).unwrap();
        prop_assert_eq!(&toc, &pack.entries);
        prop_assert_eq!(toc.len(), expected.len());
        let key = PackKey::of_header(k, pack.bytes()).unwrap();
        for (e, (plain, (id, len))) in toc.iter().zip(&expected) {
            prop_assert_eq!((e.id, e.raw_length), (*id, *len));
            let mut sealed = pack.bytes()[e.offset as usize..(e.offset + e.length) as usize].to_vec();
            let frame = open_frame(&key, e, &mut sealed).unwrap();
            prop_assert_eq!(blob_of_frame(k, e, &frame).unwrap(), &plain[..]);
        }
        // The table of contents is sealed: any changed byte of it is found.
        let at = pack.bytes().len() - 9;
        let mut bad = pack.bytes().to_vec();
        bad[at] ^= 0x40;
        prop_assert!(read_toc(k, &bad).is_err());
        // A backup-only key reads nothing back.
        prop_assert!(read_toc(writer, pack.bytes()).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Index files
// ---------------------------------------------------------------------------------------

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        HEADER_LEN as u32..MAX_OFFSET,
        17u32..=MAX_SEALED,
        0u32..=MAX_BLOB,
        0u32..=MAX_BLOB,
    )
        .prop_map(|(tree, id, offset, length, raw_length, start)| Entry {
            id: if tree { BlobId::Tree(TreeId(id)) } else { BlobId::Chunk(ChunkId(id)) },
            offset,
            length,
            raw_length: raw_length.min(MAX_BLOB - start.min(MAX_BLOB)),
            start,
        })
}

fn index_file() -> impl Strategy<Value = IndexFile> {
    (
        proptest::collection::vec(any::<[u8; 32]>().prop_map(IndexId), 0..4),
        proptest::collection::vec(
            (any::<[u8; 32]>().prop_map(PackId), proptest::collection::vec(entry(), 0..8)),
            0..5,
        ),
    )
        .prop_map(|(supersedes, packs)| IndexFile { supersedes, packs })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn index_files_round_trip_and_refuse_every_prefix(f in index_file()) {
        let enc = f.encode();
        prop_assert_eq!(IndexFile::decode(&enc).unwrap(), f);
        for cut in 0..enc.len() {
            prop_assert!(IndexFile::decode(&enc[..cut]).is_err(), "a prefix of {} bytes decoded", cut);
        }
        let mut longer = enc.clone();
        longer.push(0);
        prop_assert!(IndexFile::decode(&longer).is_err(), "trailing bytes accepted");
    }
}

// ---------------------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------------------

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("no NUL or /", |b| *b != 0 && *b != b'/'), 1..24)
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn kind() -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        (any::<u64>(), proptest::collection::vec(any::<[u8; 32]>().prop_map(ChunkId), 0..6))
            .prop_map(|(size, chunks)| NodeKind::File { size, chunks }),
        any::<[u8; 32]>().prop_map(|t| NodeKind::Dir { tree: TreeId(t) }),
        bytes(64).prop_map(|target| NodeKind::Symlink { target }),
        Just(NodeKind::Fifo),
        any::<u64>().prop_map(|rdev| NodeKind::CharDevice { rdev }),
        any::<u64>().prop_map(|rdev| NodeKind::BlockDevice { rdev }),
        Just(NodeKind::Socket),
    ]
}

/// A node's metadata, under a name given later.
fn node_body() -> impl Strategy<Value = Node> {
    (
        kind(),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        (proptest::option::of("[a-z]{1,8}"), proptest::option::of("[a-z]{1,8}")),
        (timespec(), timespec(), timespec()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        proptest::collection::vec((bytes(16), bytes(300)), 0..3),
    )
        .prop_map(
            |(
                kind,
                (mode, uid, gid),
                (user, group),
                (mtime, atime, ctime),
                (inode, device, links),
                xattrs,
            )| {
                Node {
                    name: Vec::new(),
                    kind,
                    mode,
                    uid,
                    gid,
                    user,
                    group,
                    mtime,
                    atime,
                    ctime,
                    inode,
                    device,
                    links,
                    xattrs,
                }
            },
        )
}

fn tree() -> impl Strategy<Value = Tree> {
    proptest::collection::btree_map(name(), node_body(), 0..40).prop_map(|m| Tree {
        nodes: m
            .into_iter()
            .map(|(name, mut n)| {
                n.name = name;
                n
            })
            .collect(),
    })
}

fn id_of(bytes: &[u8]) -> TreeId {
    keys().0.tree_id(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn trees_round_trip_whole_or_split_into_parts(t in tree(), split in 200usize..6000) {
        let blobs = t.encode_blobs_split_at(split, id_of);
        for (id, b) in &blobs {
            prop_assert_eq!(*id, id_of(b), "each blob is named by its bytes");
            prop_assert_eq!(b[0], TREE_VERSION);
            for cut in 0..b.len() {
                prop_assert!(TreeBlob::decode(&b[..cut]).is_err(), "a prefix of {} bytes decoded", cut);
            }
        }
        let head = TreeBlob::decode(&blobs.last().unwrap().1).unwrap();
        let nodes = if head.parts.is_empty() {
            prop_assert_eq!(blobs.len(), 1);
            head.nodes
        } else {
            prop_assert!(head.nodes.is_empty(), "a head holds no entries");
            prop_assert_eq!(head.parts.len(), blobs.len() - 1);
            let mut nodes = Vec::new();
            for (part, (id, b)) in head.parts.iter().zip(&blobs) {
                prop_assert_eq!(part, id, "the head lists its parts in order");
                let p = TreeBlob::decode(b).unwrap();
                prop_assert!(p.parts.is_empty(), "one level of parts only");
                prop_assert!(!p.nodes.is_empty());
                nodes.extend(p.nodes);
            }
            nodes
        };
        let back = Tree { nodes };
        back.check().unwrap();
        prop_assert_eq!(&back, &t);
        // The same folder always encodes alike (an unchanged folder keeps its id).
        prop_assert_eq!(t.encode_blobs_split_at(split, id_of), blobs);
        // Folders this small are one blob at the stored split size.
        prop_assert_eq!(t.encode_blobs(id_of).len(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots and envelopes
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        (timespec(), text(), text(), proptest::collection::vec(bytes(40), 0..4)),
        (proptest::collection::vec(text(), 0..4), proptest::collection::vec((text(), text()), 0..3)),
        (proptest::collection::vec(text(), 0..3), any::<[u8; 32]>()),
        (proptest::option::of(any::<[u8; 32]>()), proptest::option::of(any::<[u8; 32]>())),
        (proptest::collection::vec(any::<u64>(), 12), text()),
    )
        .prop_map(
            |(
                (time, host, user, paths),
                (tags, labels),
                (excludes, tree),
                (parent, original),
                (n, program),
            )| {
                Snapshot {
                    time,
                    host,
                    user,
                    paths,
                    tags,
                    labels,
                    excludes,
                    tree: TreeId(tree),
                    parent: parent.map(SnapshotId),
                    original: original.map(SnapshotId),
                    summary: Summary {
                        files: n[0],
                        files_new: n[1],
                        files_changed: n[2],
                        files_unchanged: n[3],
                        dirs: n[4],
                        others: n[5],
                        bytes_read: n[6],
                        total_bytes: n[7],
                        chunks_new: n[8],
                        bytes_added: n[9],
                        errors: n[10],
                        duration_ms: n[11],
                    },
                    program,
                    written_by: WrittenBy::default(),
                }
            },
        )
}

fn object_type() -> impl Strategy<Value = ObjectType> {
    prop_oneof![
        Just(ObjectType::Index),
        Just(ObjectType::Snapshot),
        Just(ObjectType::Lock),
        Just(ObjectType::Log)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_round_trip_and_refuse_every_prefix(s in snapshot()) {
        let enc = s.encode();
        prop_assert_eq!(Snapshot::decode(&enc).unwrap(), s);
        for cut in 0..enc.len() {
            prop_assert!(Snapshot::decode(&enc[..cut]).is_err(), "a prefix of {} bytes decoded", cut);
        }
    }

    #[test]
    fn envelopes_open_to_their_payload_and_writer_and_no_changed_byte_opens(
        payload in prop_oneof![bytes(2000), (1usize..300).prop_map(|n| b"snapshot ".repeat(n))],
        ty in object_type(),
        by_full_key in any::<bool>(),
        flip_at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (full, backup_only) = keys();
        let writer = if by_full_key { full } else { backup_only };
        let sealed = envelope::seal(writer, ty, &payload).unwrap();
        prop_assert_eq!(&sealed[..4], envelope::MAGIC);
        prop_assert_eq!(sealed[4], envelope::VERSION);
        let opened = envelope::open_attested(full, ty, &sealed).unwrap();
        prop_assert_eq!(&opened.payload, &payload);
        let want = if by_full_key { WrittenBy::FullKey } else { WrittenBy::BackupOnlyKey };
        prop_assert_eq!(opened.written_by, want);
        let mut bad = sealed.clone();
        bad[flip_at.index(sealed.len())] ^= flip;
        prop_assert!(envelope::open_attested(full, ty, &bad).is_err(), "a changed byte opened");
        // Bound to its type: the same bytes do not open as another kind of object.
        let other = if ty == ObjectType::Index { ObjectType::Log } else { ObjectType::Index };
        prop_assert!(envelope::open_attested(full, other, &sealed).is_err());
        for cut in [0, sealed.len() / 2, sealed.len() - 1] {
            prop_assert!(envelope::open_attested(full, ty, &sealed[..cut]).is_err());
        }
    }
}
