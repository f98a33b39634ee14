//! Model-based test of the repository's history operations. Random sequences of backup,
//! forget, prune, copy, tag and rewrite run against two repositories (a source and the
//! destination of `copy`) and, beside them, against a model: a map of every snapshot
//! each repository should hold to what it should contain. After every step:
//! - each repository lists exactly the model's snapshots, with their times and tags;
//! - every one of them restores exactly: the same entries, and for files the same bytes,
//!   mode and mtime (with nanoseconds) as the source had when it was backed up;
//! - every blob a snapshot reaches (trees, tree parts, chunks) is still stored in a pack
//!   (whatever prune deleted, it deleted nothing reachable).
//!
//! It drives the library, not the binary: a sequence is many steps, each followed by a
//! restore of every snapshot, and proptest shrinks a failing sequence by running it
//! again many times; one key derivation per repository (not one per command) keeps that
//! affordable. The binary's own paths (locks, output, exit codes) have their tests
//! elsewhere; tests/golden.rs runs prune, copy and `key passwd` through the binary.
//!
//! PROPTEST_CASES raises the number of sequences (default 10).

use cairn::crypto::keys::KdfParams;
use cairn::format::snapshot::Snapshot;
use cairn::format::tree::NodeKind;
use cairn::format::Timespec;
use cairn::id::{BlobId, SnapshotId, TreeId};
use cairn::index::Index;
use cairn::ops::backup::{backup, BackupOptions, Source};
use cairn::ops::exclude::{ExcludeOptions, Excludes};
use cairn::ops::forget::{self, GroupBy, RetentionPolicy};
use cairn::ops::progress::Progress;
use cairn::ops::restore::{restore, RestoreOptions};
use cairn::ops::tag::{tag_snapshots, TagEdit};
use cairn::ops::{copy, prune, rewrite};
use cairn::pack::PackReader;
use cairn::{InitOptions, Repository};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, UNIX_EPOCH};

const PASSPHRASE: &[u8] = b"model passphrase";
/// 2026-01-01T00:00:00Z: backups are an hour apart from here, all before now.
const EPOCH: i64 = 1_767_225_600;
/// The file paths a sequence writes to (relative to the source root), and the symlink.
const FILES: [&str; 7] =
    ["a.xml", "b.bin", "sub/c.tmp", "sub/d.xml", "sub/deep/e.bin", "sub/deep/f.tmp", "dump.sql"];
const LINK: &str = "sub/link";
const SIZES: [usize; 6] = [0, 1, 700, 9_000, 70_000, 200_000];
const MODES: [u32; 4] = [0o644, 0o600, 0o755, 0o4750];

/// What the model knows of one entry of a source tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Dir,
    File { data: Vec<u8>, mode: u32, mtime: (i64, i64) },
    Symlink(Vec<u8>),
}

/// A whole tree by relative path.
type Content = BTreeMap<PathBuf, Item>;

#[derive(Clone, Debug)]
struct ModelSnapshot {
    content: Content,
    time: i64,
    tags: Vec<String>,
}

#[derive(Clone, Debug)]
enum Edit {
    Write { slot: usize, seed: u8, size: usize, mode: u32 },
    Remove { slot: usize },
    Relink { target: u8 },
}

#[derive(Clone, Debug)]
enum Step {
    Backup { edits: Vec<Edit>, tag: bool },
    ForgetOne { pick: usize },
    ForgetPolicy { last: u32, keep_tag: bool },
    Prune { max_unused: f64, destination: bool },
    Copy { pick: Option<usize> },
    Tag { pick: usize, edit: usize },
    Rewrite { pattern: usize },
}

/// The tag edits a Tag step picks from.
fn tag_edit(n: usize) -> TagEdit {
    match n {
        0 => TagEdit { add: vec!["keep".into()], ..Default::default() },
        1 => TagEdit { remove: vec!["keep".into()], ..Default::default() },
        2 => TagEdit { set: vec!["x".into(), "y".into()], ..Default::default() },
        _ => TagEdit { labels: vec![("owner".into(), "model".into())], ..Default::default() },
    }
}

/// The exclude patterns a Rewrite step picks from, and which relative paths each drops.
fn rewrite_pattern(n: usize, src: &Path) -> (String, fn(&Path) -> bool) {
    match n {
        0 => ("*.tmp".into(), |p| p.extension().is_some_and(|e| e == "tmp")),
        1 => ("deep/".into(), |p| p.starts_with("sub/deep")),
        2 => (format!("{}/sub/d.xml", src.display()), |p| p == Path::new("sub/d.xml")),
        _ => ("b.bin".into(), |p| p == Path::new("b.bin")),
    }
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..FILES.len(), 0u8..4, 0..SIZES.len(), 0..MODES.len())
            .prop_map(|(slot, seed, s, m)| Edit::Write { slot, seed, size: SIZES[s], mode: MODES[m] }),
        1 => (0..FILES.len()).prop_map(|slot| Edit::Remove { slot }),
        1 => (0u8..3).prop_map(|target| Edit::Relink { target }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (proptest::collection::vec(edit_strategy(), 0..4), any::<bool>())
            .prop_map(|(edits, tag)| Step::Backup { edits, tag }),
        1 => (0usize..8).prop_map(|pick| Step::ForgetOne { pick }),
        1 => (1u32..4, any::<bool>()).prop_map(|(last, keep_tag)| Step::ForgetPolicy { last, keep_tag }),
        2 => (prop_oneof![Just(0.0), Just(0.1), Just(1.0)], any::<bool>())
            .prop_map(|(max_unused, destination)| Step::Prune { max_unused, destination }),
        2 => proptest::option::of(0usize..8).prop_map(|pick| Step::Copy { pick }),
        1 => (0usize..8, 0usize..4).prop_map(|(pick, edit)| Step::Tag { pick, edit }),
        1 => (0usize..4).prop_map(|pattern| Step::Rewrite { pattern }),
    ]
}

/// File content: text for even seeds (compressible), random bytes for odd ones. Few
/// seeds, so files share content and chunks.
fn file_data(seed: u8, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size];
    if seed % 2 == 0 {
        let line = format!("<policy seed=\"{seed}\" name=\"gateway\"/>\n");
        for (i, b) in out.iter_mut().enumerate() {
            *b = line.as_bytes()[i % line.len()];
        }
    } else {
        blake3::Hasher::new().update(&[seed]).finalize_xof().fill(&mut out);
    }
    out
}

/// The two repositories, the source tree, and what the model says each should hold.
struct World {
    _dir: tempfile::TempDir,
    src: PathBuf,
    scratch: PathBuf,
    a: Repository,
    b: Repository,
    /// The source tree as the model last wrote it.
    source: Content,
    in_a: BTreeMap<SnapshotId, ModelSnapshot>,
    in_b: BTreeMap<SnapshotId, ModelSnapshot>,
    /// Copies in the destination, by the source snapshot they were made from.
    copied: BTreeMap<SnapshotId, SnapshotId>,
    clock: i64,
    restores: u64,
}

impl World {
    fn new(share_ids: bool) -> World {
        let dir = tempfile::Builder::new().prefix("cairn-model-").tempdir().unwrap();
        let src = dir.path().join("src");
        let scratch = dir.path().join("scratch");
        for d in ["", "sub", "sub/deep"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::create_dir_all(&scratch).unwrap();
        let opts = InitOptions {
            // Small chunks and the smallest packs: many blobs and packs for prune to sort.
            chunker: cairn::chunker::ChunkerParams { min_size: 2048, avg_size: 8192, max_size: 32768 },
            pack_size: cairn::format::config::MIN_PACK_SIZE,
            kdf: KdfParams::NEW_KEY_FLOOR,
            ..InitOptions::default()
        };
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let a = Repository::init(&path("a"), PASSPHRASE, &opts, None).unwrap();
        let b = if share_ids {
            Repository::init_sharing_ids(&path("b"), PASSPHRASE, &opts, None, &a).unwrap()
        } else {
            Repository::init(&path("b"), PASSPHRASE, &opts, None).unwrap()
        };
        let mut source = Content::new();
        source.insert("sub".into(), Item::Dir);
        source.insert("sub/deep".into(), Item::Dir);
        World {
            _dir: dir,
            src,
            scratch,
            a,
            b,
            source,
            in_a: BTreeMap::new(),
            in_b: BTreeMap::new(),
            copied: BTreeMap::new(),
            clock: 0,
            restores: 0,
        }
    }

    /// Change the source tree, and the model's picture of it alike.
    fn apply_edit(&mut self, edit: &Edit) {
        self.clock += 1;
        match *edit {
            Edit::Write { slot, seed, size, mode } => {
                let rel = PathBuf::from(FILES[slot]);
                let p = self.src.join(&rel);
                let data = file_data(seed, size);
                fs::write(&p, &data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                let mtime = (EPOCH - 86_400 + self.clock, (self.clock * 7_919) % 1_000_000_000);
                let t = UNIX_EPOCH + Duration::new(mtime.0 as u64, mtime.1 as u32);
                File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_times(FileTimes::new().set_modified(t))
                    .unwrap();
                self.source.insert(rel, Item::File { data, mode, mtime });
            }
            Edit::Remove { slot } => {
                let rel = PathBuf::from(FILES[slot]);
                if self.source.remove(&rel).is_some() {
                    fs::remove_file(self.src.join(&rel)).unwrap();
                }
            }
            Edit::Relink { target } => {
                let p = self.src.join(LINK);
                let _ = fs::remove_file(&p);
                let to = format!("../{}", FILES[target as usize]);
                std::os::unix::fs::symlink(&to, &p).unwrap();
                self.source.insert(LINK.into(), Item::Symlink(to.into_bytes()));
            }
        }
    }

    fn step(&mut self, step: &Step) {
        let stop = AtomicBool::new(false);
        match step {
            Step::Backup { edits, tag } => {
                edits.iter().for_each(|e| self.apply_edit(e));
                self.clock += 1;
                let time = EPOCH + self.clock * 3600;
                let tags: Vec<String> = if *tag { vec!["keep".into()] } else { Vec::new() };
                let opts = BackupOptions {
                    host: Some("model".into()),
                    tags: tags.clone(),
                    time: Some(Timespec { secs: time, nanos: 0 }),
                    ..Default::default()
                };
                let out = backup(
                    &self.a,
                    Source::Paths(vec![self.src.clone()]),
                    &opts,
                    &stop,
                    &Progress::default(),
                )
                .unwrap();
                assert!(
                    out.errors.is_empty() && out.changed.is_empty(),
                    "{:?} {:?}",
                    out.errors,
                    out.changed
                );
                self.in_a.insert(out.id, ModelSnapshot { content: self.source.clone(), time, tags });
            }
            Step::ForgetOne { pick } => {
                let Some(id) = nth(&self.in_a, *pick) else { return };
                forget::remove_snapshots(&self.a, &[id]).unwrap();
                self.in_a.remove(&id);
            }
            Step::ForgetPolicy { last, keep_tag } => self.forget_policy(*last, *keep_tag),
            Step::Prune { max_unused, destination } => {
                let repo = if *destination { &self.b } else { &self.a };
                let opts = prune::PruneOptions { max_unused: *max_unused, ..Default::default() };
                let plan = prune::plan(repo, &opts, &stop).unwrap();
                prune::execute(repo, &plan, &stop).unwrap();
            }
            Step::Copy { pick } => self.copy(*pick),
            Step::Tag { pick, edit } => {
                let Some(id) = nth(&self.in_a, *pick) else { return };
                let snap = self.a.load_snapshot(&id).unwrap();
                let edit = tag_edit(*edit);
                let done = tag_snapshots(&self.a, &[(id, snap.clone())], &edit, |_| {}).unwrap();
                // The model's own idea of the edit: only tags are modelled.
                let mut m = self.in_a[&id].clone();
                let would = edit.apply(id, &snap);
                assert_eq!(done.len(), usize::from(would.is_some()));
                if let Some(r) = done.first() {
                    m.tags = r.snapshot.tags.clone();
                    let expected_tags = expected_tags(&self.in_a[&id].tags, &edit);
                    assert_eq!(m.tags, expected_tags, "{edit:?}");
                    self.in_a.remove(&id);
                    self.in_a.insert(r.new, m);
                }
            }
            Step::Rewrite { pattern } => self.rewrite(*pattern),
        }
    }

    fn forget_policy(&mut self, last: u32, keep_tag: bool) {
        let policy = RetentionPolicy {
            last,
            tags: if keep_tag { vec!["keep".into()] } else { Vec::new() },
            ..Default::default()
        };
        let snaps = self.a.snapshots().unwrap();
        if snaps.is_empty() {
            return;
        }
        let groups = forget::plan(
            snaps,
            &policy,
            GroupBy::default(),
            &jiff::tz::TimeZone::UTC,
            jiff::Timestamp::now(),
        )
        .unwrap();
        let dropped: Vec<SnapshotId> =
            groups.iter().flat_map(|g| &g.decisions).filter(|d| !d.keep()).map(|d| d.id).collect();
        forget::remove_snapshots(&self.a, &dropped).unwrap();
        // The model: one group (one host, one path); the `last` newest stay, and with
        // keep_tag every snapshot tagged "keep".
        let mut by_time: Vec<(i64, SnapshotId)> = self.in_a.iter().map(|(id, m)| (m.time, *id)).collect();
        by_time.sort_by(|x, y| y.cmp(x));
        let keep: HashSet<SnapshotId> = by_time
            .iter()
            .enumerate()
            .filter(|(i, (_, id))| {
                (*i as u32) < last || (keep_tag && self.in_a[id].tags.iter().any(|t| t == "keep"))
            })
            .map(|(_, (_, id))| *id)
            .collect();
        let expected: HashSet<SnapshotId> =
            self.in_a.keys().filter(|id| !keep.contains(id)).copied().collect();
        assert_eq!(
            dropped.iter().copied().collect::<HashSet<_>>(),
            expected,
            "forget dropped other snapshots"
        );
        self.in_a.retain(|id, _| keep.contains(id));
    }

    fn copy(&mut self, pick: Option<usize>) {
        let all = self.a.snapshots().unwrap();
        let selected: Vec<(SnapshotId, Snapshot)> = match pick {
            None => all,
            Some(k) => all.into_iter().skip(k % self.in_a.len().max(1)).take(1).collect(),
        };
        let out = copy::copy(&self.a, &self.b, &selected, &AtomicBool::new(false)).unwrap();
        assert_eq!(out.snapshots.len(), selected.len());
        for c in out.snapshots {
            assert_eq!(c.already_there, self.copied.contains_key(&c.source), "copy of {}", c.source);
            if let Some(earlier) = self.copied.get(&c.source) {
                assert_eq!(*earlier, c.copy, "an earlier copy is found, not made again");
                continue;
            }
            self.copied.insert(c.source, c.copy);
            self.in_b.insert(c.copy, self.in_a[&c.source].clone());
        }
    }

    fn rewrite(&mut self, pattern: usize) {
        let (glob, drops) = rewrite_pattern(pattern, &self.src);
        let excludes = Excludes::new(&ExcludeOptions { patterns: vec![glob], ..Default::default() }).unwrap();
        let snaps = self.a.snapshots().unwrap();
        let out =
            rewrite::rewrite_snapshots(&self.a, &snaps, &excludes, false, &AtomicBool::new(false)).unwrap();
        let expected: HashSet<SnapshotId> =
            self.in_a.iter().filter(|(_, m)| m.content.keys().any(|p| drops(p))).map(|(id, _)| *id).collect();
        let done: HashSet<SnapshotId> = out.iter().map(|r| r.old).collect();
        assert_eq!(done, expected, "rewrite changed other snapshots than those holding what it drops");
        for r in out {
            let mut m = self.in_a.remove(&r.old).unwrap();
            m.content.retain(|p, _| !drops(p));
            self.in_a.insert(r.new.expect("not a dry run"), m);
        }
    }

    /// The invariants, in both repositories.
    fn check(&mut self) {
        for which in [false, true] {
            let (repo, model) = if which { (&self.b, &self.in_b) } else { (&self.a, &self.in_a) };
            let listed = repo.snapshots().unwrap();
            let ids: Vec<SnapshotId> = listed.iter().map(|(id, _)| *id).collect();
            let mut want: Vec<SnapshotId> = model.keys().copied().collect();
            let mut got = ids.clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "repository {} lists other snapshots than the model holds", name(which));
            let stored: HashSet<BlobId> =
                prune::stored_blob_ids(repo).unwrap().into_values().flatten().collect();
            let index = Index::load(repo).unwrap();
            for (id, snap) in &listed {
                let m = &model[id];
                assert_eq!((snap.time.secs, &snap.tags), (m.time, &m.tags), "snapshot {id} record");
                for blob in reachable(repo, &index, snap.tree) {
                    assert!(stored.contains(&blob), "snapshot {id} reaches {blob}, which no pack holds");
                }
                self.restores += 1;
                let target = self.scratch.join(format!("r{}", self.restores));
                restore(repo, &snap.tree, &target, &RestoreOptions::default(), &AtomicBool::new(false))
                    .unwrap();
                let restored = read_tree(&target.join(self.src.strip_prefix("/").unwrap()));
                assert_same_content(&m.content, &restored, id);
                fs::remove_dir_all(&target).unwrap();
            }
        }
    }
}

fn name(destination: bool) -> &'static str {
    if destination {
        "b (copies)"
    } else {
        "a"
    }
}

/// The `pick`-th snapshot of the model (modulo its size), if there is any.
fn nth(m: &BTreeMap<SnapshotId, ModelSnapshot>, pick: usize) -> Option<SnapshotId> {
    (!m.is_empty()).then(|| *m.keys().nth(pick % m.len()).unwrap())
}

/// Tags after `edit`, as `cairn tag` documents it: set replaces, then remove, then add.
fn expected_tags(tags: &[String], edit: &TagEdit) -> Vec<String> {
    let mut t: Vec<String> = if edit.set.is_empty() { tags.to_vec() } else { edit.set.clone() };
    t.retain(|x| !edit.remove.contains(x));
    for a in &edit.add {
        if !t.contains(a) {
            t.push(a.clone());
        }
    }
    t
}

/// Every blob snapshot tree `root` reaches: trees, the parts of split ones, and chunks.
fn reachable(repo: &Repository, index: &Index, root: TreeId) -> HashSet<BlobId> {
    let reader = PackReader::new(repo);
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(BlobId::Tree(id)) {
            continue;
        }
        let (tree, parts) = cairn::tree::load_tree_with_parts(&reader, index, &id)
            .unwrap_or_else(|e| panic!("tree {id} of a listed snapshot does not load: {e}"));
        seen.extend(parts.into_iter().map(BlobId::Tree));
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { chunks, .. } => seen.extend(chunks.into_iter().map(BlobId::Chunk)),
                _ => {}
            }
        }
    }
    seen
}

/// What a restored tree holds, in the model's terms.
fn read_tree(root: &Path) -> Content {
    let mut out = Content::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let p = root.join(&rel);
            let md = fs::symlink_metadata(&p).unwrap();
            let item = if md.is_dir() {
                stack.push(rel.clone());
                Item::Dir
            } else if md.file_type().is_symlink() {
                Item::Symlink(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec())
            } else {
                Item::File {
                    data: fs::read(&p).unwrap(),
                    mode: md.mode() & 0o7777,
                    mtime: (md.mtime(), md.mtime_nsec()),
                }
            };
            out.insert(rel, item);
        }
    }
    out
}

fn assert_same_content(want: &Content, got: &Content, id: &SnapshotId) {
    if want == got {
        return;
    }
    let mut diffs = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => diffs.push(format!("{}: missing", p.display())),
            Some(g) if g != w => {
                diffs.push(format!("{}: differs: want {}, got {}", p.display(), brief(w), brief(g)))
            }
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{}: not in the snapshot, yet restored", p.display()));
    }
    panic!("snapshot {id} does not restore as backed up:\n  {}", diffs.join("\n  "));
}

fn brief(i: &Item) -> String {
    match i {
        Item::Dir => "folder".into(),
        Item::Symlink(t) => format!("symlink to {}", String::from_utf8_lossy(t)),
        Item::File { data, mode, mtime } => {
            format!(
                "{} bytes {} mode {mode:o} mtime {}.{:09}",
                data.len(),
                blake3::hash(data).to_hex(),
                mtime.0,
                mtime.1
            )
        }
    }
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(10),
        // A failing sequence is printed shrunk; nothing is written beside the sources.
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_snapshot_the_model_holds_restores_exactly_after_every_step(
        share_ids in any::<bool>(),
        steps in proptest::collection::vec(step_strategy(), 1..14),
    ) {
        let mut w = World::new(share_ids);
        for step in &steps {
            w.step(step);
            w.check();
        }
    }
}
