//! Writes small valid seed inputs for every fuzz target into fuzz/seeds/<target>/.
//! Run from fuzz/: `cargo run --release --example gen_seeds` (deterministic except for
//! random salts and ephemeral keys, which the format draws fresh on every write).

use cairn::chunker::ChunkerParams;
use cairn::compress;
use cairn::crypto::keys::{KdfParams, MasterKey};
use cairn::format::config::{Config, REPO_FORMAT};
use cairn::format::envelope::{self, ObjectType};
use cairn::format::index::IndexFile;
use cairn::format::keyfile::KeyFile;
use cairn::format::lock::Lock;
use cairn::format::pack::{encode_toc, Entry, PackClass};
use cairn::format::references::References;
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::snapshot_file::{MaintenanceSummary, SnapshotFile};
use cairn::format::tree::{Node, NodeKind, Tree, TreeBlob};
use cairn::format::Timespec;
use cairn::id::{BlobId, ChunkId, IndexId, PackId, RefsId, SnapshotId, TreeId};
use cairn::pack::PackBuilder;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn ts(secs: i64) -> Timespec {
    Timespec { secs, nanos: 123 }
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: Some("alice".into()),
        group: None,
        mtime: ts(1_700_000_000),
        atime: ts(1_700_000_001),
        ctime: ts(1_700_000_002),
        inode: 42,
        device: 2049,
        links: 1,
        xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
    }
}

fn main() {
    let keys = cairn_fuzz::keys();

    let config = Config {
        format: REPO_FORMAT,
        repo_id: [7; 32],
        created: ts(1_700_000_000),
        chunker: ChunkerParams::DEFAULT,
        compression_level: 3,
        pack_size: 16 << 20,
        public_key: cairn_fuzz::master().public_key(),
        object_lock: None,
        maintenance: None,
    };
    write("config", "default", &config.encode());
    let with_maintenance = Config { maintenance: keys.maintenance_public(), ..config.clone() };
    write("config", "maintenance_v3", &with_maintenance.encode());

    let tree = Tree {
        nodes: vec![
            node(b"a.txt", NodeKind::File { size: 10, chunks: vec![ChunkId([1; 32])] }),
            node(b"dir", NodeKind::Dir { tree: TreeId([2; 32]) }),
            node(b"link", NodeKind::Symlink { target: b"a.txt".to_vec() }),
            node(b"null", NodeKind::CharDevice { rdev: 259 }),
        ],
    };
    // One blob each: the id is not stored in it.
    let id_of = |_: &[u8]| TreeId([0; 32]);
    write("tree", "four_nodes", &tree.encode_blobs(id_of)[0].1);
    write("tree", "empty", &Tree::default().encode_blobs(id_of)[0].1);
    let head = TreeBlob { nodes: Vec::new(), parts: vec![TreeId([3; 32]), TreeId([4; 32])] };
    write("tree", "split_head", &head.encode());

    let snapshot = Snapshot {
        time: ts(1_700_000_000),
        host: "gw1".into(),
        user: "root".into(),
        paths: vec![b"/etc".to_vec()],
        tags: vec!["daily".into()],
        labels: vec![("site".into(), "lab".into())],
        excludes: vec!["*.tmp".into()],
        tree: TreeId([3; 32]),
        parent: Some(SnapshotId([4; 32])),
        original: None,
        summary: Summary { files: 10, dirs: 2, bytes_read: 1000, total_bytes: 1000, ..Summary::default() },
        program: "cairn 0.1.0".into(),
        written_by: Default::default(),
    };
    write("snapshot", "basic", &snapshot.encode());

    let lock = Lock {
        time: ts(1_700_000_000),
        host: "gw1".into(),
        user: "root".into(),
        pid: 4242,
        exclusive: false,
        operation: "backup".into(),
    };
    write("lock", "shared", &lock.encode());

    let entries = vec![
        Entry { id: BlobId::Chunk(ChunkId([5; 32])), offset: 40, length: 100, raw_length: 90, start: 0 },
        Entry { id: BlobId::Chunk(ChunkId([7; 32])), offset: 40, length: 100, raw_length: 30, start: 90 },
        Entry { id: BlobId::Tree(TreeId([6; 32])), offset: 140, length: 50, raw_length: 200, start: 0 },
    ];
    let index =
        IndexFile { supersedes: vec![IndexId([8; 32])], packs: vec![(PackId([9; 32]), entries.clone())] };
    write("index", "one_pack", &index.encode());
    write("index", "empty", &IndexFile::default().encode());

    // pack: a real sealed pack, and the `[u16 blob area][table]` form.
    let mut b = PackBuilder::new(1 << 16, None);
    let (first, second) = (b"<config>gateway</config>".repeat(20), b"second".to_vec());
    let frame = [
        (BlobId::Chunk(keys.chunk_id(&first)), first.len() as u32),
        (BlobId::Chunk(keys.chunk_id(&second)), 6),
    ];
    b.add_frame(
        keys,
        &frame,
        &compress::Encoding::Encoded(compress::encode(&[first.clone(), second].concat(), 3)),
    )
    .unwrap();
    b.add(keys, BlobId::Chunk(keys.chunk_id(b"alone")), compress::encode(b"alone", 3), 5).unwrap();
    write("pack", "sealed_pack", b.finish().bytes());
    // Version 5: a data pack with its maintenance table, and a references pack.
    let record = References { tree: TreeId([2; 32]), subtrees: vec![RefsId([3; 32])], chunks: vec![ChunkId([1; 32])] };
    let encoded = record.encode();
    write("references", "record", &encoded);
    write("references", "tree", &tree.encode_blobs(id_of)[0].1);
    for (name, class, id, plain) in [
        ("v5_data", PackClass::Data, BlobId::Chunk(keys.chunk_id(b"alone")), b"alone".to_vec()),
        ("v5_references", PackClass::References, BlobId::References(keys.references_id(&encoded)), encoded.clone()),
    ] {
        let mut b = PackBuilder::new(1 << 16, Some(class));
        b.add(keys, id, compress::encode(&plain, 3), plain.len() as u32).unwrap();
        let pack = b.finish();
        write("pack", name, pack.bytes());
        if class == PackClass::Data {
            // Its frame moved into a moved-frames pack, as a maintenance key's prune does.
            let e = pack.entries[0];
            let sealed = &pack.bytes()[e.offset as usize..(e.offset + e.length) as usize];
            let (origin, source, body) = cairn::format::pack::FrameOrigins::of_head(pack.bytes()).unwrap().frame(e.offset, sealed).unwrap();
            let mut moved = cairn::pack::moved::MovedPack::default();
            moved.add(origin, source, body, &pack.entries);
            write("pack", "v5_moved", &moved.finish(keys).unwrap().1);
        }
    }
    let with_record = IndexFile {
        supersedes: vec![],
        packs: vec![(
            PackId([9; 32]),
            vec![Entry { id: BlobId::References(RefsId([4; 32])), offset: 40, length: 60, raw_length: 40, start: 0 }],
        )],
    };
    write("index", "version_3", &with_record.encode());
    let mut framed = 200u16.to_le_bytes().to_vec();
    framed.extend_from_slice(&encode_toc(&entries));
    write("pack", "table", &framed);

    // envelope: real sealed objects, and the `[type selector][encoded body]` form.
    write("envelope", "config", &envelope::seal_config(cairn_fuzz::master(), 0, &config.encode()).unwrap());
    write("envelope", "snapshot", &envelope::seal(keys, ObjectType::Snapshot, &snapshot.encode()).unwrap());
    // snapshot_file: a snapshot file with a summary beside its envelope, and a summary's
    // payload alone.
    let sealed_snapshot = envelope::seal(keys, ObjectType::Snapshot, &snapshot.encode()).unwrap();
    let summary = MaintenanceSummary {
        // Any 32 bytes: the decoders do not check the envelope it names.
        snapshot: [9; 32],
        time: snapshot.time,
        host: snapshot.host.clone(),
        paths: vec![[1; 32], [2; 32]],
        tags: snapshot.tags.clone(),
        labels: snapshot.labels.clone(),
        references: None,
    };
    write("snapshot_file", "summary", &summary.encode());
    let sealed_summary = envelope::seal(keys, ObjectType::Summary, &summary.encode()).unwrap();
    write("snapshot_file", "with_summary", &SnapshotFile::join(&sealed_snapshot, &sealed_summary));
    write("snapshot_file", "bare", &sealed_snapshot);
    let mut body = vec![1u8]; // selects Index
    body.extend_from_slice(&compress::encode(&index.encode(), 3));
    write("envelope", "index_body", &body);

    write("compress", "zstd", &compress::encode(&b"<entity type=\"Policy\"/>\n".repeat(50), 3));
    write("compress", "raw", &compress::encode(b"abc", 0));

    // keyfile: version 2, wrapped with the weakest accepted KDF (runs Argon2id once, here
    // only). The version 1 seeds `full` and `backup_only` were written by cairns of before
    // key file version 2 and are kept as they are.
    let m = MasterKey::from_bytes_v1(&cairn_fuzz::master_bytes()).unwrap();
    write("keyfile", "full_v2", &KeyFile::wrap(&m, keys, b"pw", KdfParams::FLOOR, "gw1", "root").unwrap());
    write(
        "keyfile",
        "backup_only_v2",
        &KeyFile::wrap(&m.backup_only(), keys, b"pw", KdfParams::FLOOR, "gw1", "root").unwrap(),
    );
    // key_material: version 2 of both kinds, and version 3 (two epochs and an older
    // content root, as during a content key rotation).
    let fresh = MasterKey::generate().unwrap();
    write("key_material", "full_v2", &fresh.to_bytes());
    write("key_material", "backup_only_v2", &fresh.backup_only().to_bytes());
    write("key_material", "full_v3", &fresh.with_new_content(None).unwrap().to_bytes());
    // Version 4: a maintenance key, and a backup-only key carrying the maintenance
    // public key.
    write("key_material", "maintenance_v4", &fresh.maintenance().unwrap().to_bytes());
    write("key_material", "backup_only_v4", &fresh.backup_only_with_maintenance().unwrap().to_bytes());
    // index_cache: the index cache file of a small repository (300 blob entries), its own
    // MAC dropped: the target seals it with its fixed key (bit 0 of the first byte).
    let tmp = std::env::temp_dir().join(format!("cairn-gen-seeds-{}", std::process::id()));
    std::env::set_var("XDG_CACHE_HOME", tmp.join("cache"));
    let loc = tmp.join("repo");
    let repo = cairn::Repository::init(loc.to_str().unwrap(), b"pw", &Default::default(), None).unwrap();
    cairn::pack::BlobWriter::run(&repo, Default::default(), |w| {
        for i in 0..300u32 {
            let blob = format!("blob {i} ").repeat(40).into_bytes();
            w.save(BlobId::Chunk(repo.keys().chunk_id(&blob)), &blob).unwrap();
        }
    })
    .unwrap();
    cairn::index::Index::load(&repo).unwrap();
    let cache = std::fs::read(repo.index_cache_path().unwrap()).unwrap();
    write("index_cache", "300_entries", &[&[1u8][..], &cache[..cache.len() - 32]].concat());
    std::fs::remove_dir_all(&tmp).unwrap();

    // Every seed must be accepted by today's decoders, or it seeds nothing useful.
    let read = |t: &str, n: &str| {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(t).join(n)).unwrap()
    };
    Config::decode(&read("config", "default")).unwrap();
    TreeBlob::decode(&read("tree", "four_nodes")).unwrap();
    TreeBlob::decode(&read("tree", "split_head")).unwrap();
    Snapshot::decode(&read("snapshot", "basic")).unwrap();
    Lock::decode(&read("lock", "shared")).unwrap();
    IndexFile::decode(&read("index", "one_pack")).unwrap();
    cairn::pack::reader::read_toc(keys, &read("pack", "sealed_pack")).unwrap();
    for seed in ["v5_data", "v5_references", "v5_moved"] {
        cairn::pack::reader::read_toc(keys, &read("pack", seed)).unwrap();
    }
    References::decode(&read("references", "record")).unwrap();
    assert_eq!(read("index", "version_3")[0], 3);
    IndexFile::decode(&read("index", "version_3")).unwrap();
    envelope::open_config(cairn_fuzz::master(), &read("envelope", "config")).unwrap();
    envelope::open(keys, ObjectType::Snapshot, &read("envelope", "snapshot")).unwrap();
    compress::decode(&read("compress", "zstd"), 1 << 20).unwrap();
    let seeds = std::env::temp_dir().join(format!("cairn-gen-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&seeds).unwrap();
    assert_eq!(cairn::index::open_for_fuzzing(&read("index_cache", "300_entries"), &seeds), 300);
    std::fs::remove_dir_all(&seeds).unwrap();
    for seed in ["full", "backup_only", "full_v2", "backup_only_v2"] {
        KeyFile::decode(&read("keyfile", seed)).unwrap();
    }
    SnapshotFile::split(&read("snapshot_file", "with_summary")).unwrap().summary.unwrap();
    MaintenanceSummary::decode(&read("snapshot_file", "summary")).unwrap();
    Config::decode(&read("config", "maintenance_v3")).unwrap();
    for seed in ["full_v2", "backup_only_v2", "full_v3", "maintenance_v4", "backup_only_v4"] {
        MasterKey::from_bytes(&read("key_material", seed)).unwrap();
    }
    println!("seeds written");
}
