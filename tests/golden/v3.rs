//! Golden-v3: the history the third golden repository holds (envelope version 2, pack
//! version 3, tree version 2), how it was made, and its manifest: every entry of every
//! snapshot with all the metadata cairn keeps.
//!
//! The history: two backups of a tree with owners, nanosecond times, xattrs, hard links,
//! devices, a fifo, holes, a non-UTF-8 name and a folder of 1,100 long symlinks (large
//! enough to be stored as a split tree: a head and two parts); a backup-only key added to
//! the repository, which backs up another host; the second snapshot tagged and labelled;
//! a fourth backup forgotten (its data left for prune). Each backup writes its own index
//! file, and every command an entry of the activity log.

use super::common;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the tree of the full key's backups was, and where the backup-only host's was.
pub const SOURCE: &str = "/tmp/cairn-golden-v3-src";
pub const HOST_SOURCE: &str = "/tmp/cairn-golden-v3-host";
pub const BACKUP_ONLY_PASSPHRASE: &str = "golden-backup-only-v3";
/// Snapshot times, as listed (the forgotten fourth backup is not among them).
pub const TIMES: [&str; 3] = ["2026-12-10T06:00:00Z", "2026-12-11T06:00:00Z", "2026-12-12T06:00:00Z"];
/// Entries in the folder stored in parts, and the length of each one's symlink target.
const WIDE_ENTRIES: usize = 1100;
const WIDE_TARGET_LEN: usize = 4000;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Folders with more entries than this are summed up in the manifest: one line with
/// the count and a hash of their entries' lines (compared as exactly, kept short).
const SUMMED_UP_ABOVE: usize = 100;

/// Every entry under `root` (itself included, as "."), one line each: kind, mode, owner,
/// mtime with nanoseconds; for files also atime, size, content hash, hard-link group and
/// whether it has holes; symlink targets, device numbers and xattrs (names and values).
/// Metadata is read before any content, and content without touching atimes.
pub fn full_manifest(root: &Path) -> String {
    let entries = common::scan(root);
    // Hard links: the first path (in order) of each inode names its group.
    let mut first_of_inode: HashMap<u64, Vec<u8>> = HashMap::new();
    for (p, e) in &entries {
        if e.kind == common::Kind::File && e.nlink > 1 {
            first_of_inode.entry(e.ino).or_insert_with(|| p.clone());
        }
    }
    let parent = |p: &[u8]| p.iter().rposition(|&b| b == b'/').map_or(Vec::new(), |i| p[..i].to_vec());
    let mut children: HashMap<Vec<u8>, usize> = HashMap::new();
    for p in entries.keys().filter(|p| !p.is_empty()) {
        *children.entry(parent(p)).or_default() += 1;
    }
    let mut out = String::new();
    let mut summed: BTreeMap<Vec<u8>, blake3::Hasher> = BTreeMap::new();
    for (p, e) in &entries {
        let line = entry_line(root, p, e, first_of_inode.get(&e.ino));
        let dir = parent(p);
        if !p.is_empty() && children[&dir] > SUMMED_UP_ABOVE {
            summed.entry(dir).or_default().update(line.as_bytes());
        } else {
            out += &line;
        }
    }
    for (dir, h) in summed {
        out +=
            &format!("{}/*\t{} entries, lines blake3={}\n", hex(&dir), children[&dir], h.finalize().to_hex());
    }
    out
}

fn entry_line(root: &Path, p: &[u8], e: &common::Entry, link_group: Option<&Vec<u8>>) -> String {
    let name = if p.is_empty() { ".".to_string() } else { hex(p) };
    let mut line = format!(
        "{name}\t{:?} mode={:o} owner={}:{} mtime={}.{:09}",
        e.kind, e.mode, e.uid, e.gid, e.mtime.0, e.mtime.1
    );
    match e.kind {
        common::Kind::File => {
            let data = common::read_quietly(&root.join(OsStr::from_bytes(p)));
            line += &format!(
                " atime={}.{:09} size={} blake3={}",
                e.atime.0,
                e.atime.1,
                e.size,
                blake3::hash(&data).to_hex()
            );
            if let Some(first) = link_group.filter(|_| e.nlink > 1) {
                line += &format!(" link={}", hex(first));
            }
            if e.size >= 1 << 20 && e.blocks * 512 * 4 < e.size {
                line += " holes";
            }
        }
        common::Kind::Symlink => {
            line += &format!(" target={}", blake3::hash(e.target.as_deref().unwrap()).to_hex())
        }
        common::Kind::Char | common::Kind::Block => line += &format!(" rdev={}", e.rdev),
        _ => {}
    }
    for (k, v) in &e.xattrs {
        line += &format!(" xattr={}={}", hex(k), hex(v));
    }
    line.push('\n');
    line
}

/// The manifest file: a section per snapshot ("# snapshot TIME"), then "# log OPS".
pub fn parse(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let (mut sections, mut log) = (BTreeMap::new(), Vec::new());
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# snapshot ") {
            current = Some(t.to_string());
            sections.insert(t.to_string(), String::new());
        } else if let Some(ops) = line.strip_prefix("# log ") {
            log = ops.split(',').map(String::from).collect();
        } else {
            let s = sections.get_mut(current.as_ref().expect("a section")).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    (sections, log)
}

fn mknod(p: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
    let mode = rustix::fs::Mode::from_raw_mode(0o640);
    rustix::fs::mknodat(rustix::fs::CWD, p, kind, mode, rustix::fs::makedev(major, minor)).unwrap();
}

/// The first tree: every kind of entry and metadata cairn keeps (run as root).
pub fn make_source(root: &Path) {
    use std::fs;
    let _ = fs::remove_dir_all(root);
    for d in ["conf/policies", "bin", "dev", "data", "empty", "wide"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in 0..12 {
        let body = format!("<policy id=\"{i}\">\n{}</policy>\n", "  <filter name=\"f\"/>\n".repeat(i * 20));
        fs::write(root.join(format!("conf/policies/p{i:02}.xml")), body).unwrap();
    }
    fs::write(root.join("conf/empty.properties"), b"").unwrap();
    fs::write(root.join(OsStr::from_bytes(b"conf/caf\xe9-\xff.txt")), b"not utf-8").unwrap();
    fs::write(root.join("bin/start"), b"#!/bin/sh\nexec gateway \"$@\"\n").unwrap();
    fs::hard_link(root.join("bin/start"), root.join("conf/start.link")).unwrap();
    fs::write(root.join("bin/helper"), b"\x7fELF helper").unwrap();
    std::os::unix::fs::symlink("../conf/policies/p01.xml", root.join("bin/policy")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"missing/\xe9t\xe9"), root.join("bin/dangling")).unwrap();
    mknod(&root.join("dev/null-like"), rustix::fs::FileType::CharacterDevice, 1, 3);
    mknod(&root.join("dev/loop-like"), rustix::fs::FileType::BlockDevice, 7, 200);
    mknod(&root.join("dev/fifo"), rustix::fs::FileType::Fifo, 0, 0);
    let mut jar = vec![0u8; 40_000];
    blake3::Hasher::new().update(b"golden-v3 jar").finalize_xof().fill(&mut jar);
    fs::write(root.join("data/ext.jar"), &jar).unwrap();
    // Holes: 2 MiB, data only at 1 MiB.
    let f = fs::File::create(root.join("data/sparse.img")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"SPARSE-V3", 1 << 20).unwrap();
    f.set_len(2 << 20).unwrap();
    // A folder whose tree encodes to more than SPLIT_BYTES: stored as parts.
    let target = "t".repeat(WIDE_TARGET_LEN);
    for i in 0..WIDE_ENTRIES {
        std::os::unix::fs::symlink(&target, root.join(format!("wide/w{i:04}"))).unwrap();
    }
    xattr::set(root.join("conf/policies/p00.xml"), "user.cairn.origin", b"gateway\xff\x00binary").unwrap();
    xattr::set(root.join("conf/policies/p00.xml"), "user.cairn.empty", b"").unwrap();
    xattr::set(root.join("conf"), "user.cairn.dir", b"folder xattr").unwrap();
    for (rel, uid, gid) in
        [("bin/helper", 4242, 4243), ("conf/policies", 65534, 65534), ("bin/policy", 4242, 4243)]
    {
        std::os::unix::fs::lchown(root.join(rel), Some(uid), Some(gid)).unwrap();
    }
    for (rel, mode) in [("bin/helper", 0o4755), ("bin/start", 0o2751), ("empty", 0o1777), ("data", 0o750)] {
        fs::set_permissions(root.join(rel), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    common::set_times_everywhere(root, 3);
}

/// What changed before the second backup: a file edited, one removed, one added, a
/// mode and an owner changed, all times set anew.
pub fn change_source(root: &Path) {
    use std::fs;
    fs::write(root.join("conf/policies/p03.xml"), "<policy id=\"3\" changed=\"yes\"/>\n".repeat(40)).unwrap();
    fs::remove_file(root.join("conf/policies/p11.xml")).unwrap();
    fs::write(root.join("conf/added.xml"), b"<added/>\n").unwrap();
    fs::set_permissions(root.join("conf/added.xml"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    std::os::unix::fs::lchown(root.join("conf/added.xml"), Some(1234), Some(5678)).unwrap();
    common::set_times_everywhere(root, 4);
}

/// The backup-only host's small tree.
pub fn make_host_source(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/host.conf"), b"host=golden-host\n").unwrap();
    std::fs::write(root.join("etc/shared.xml"), "<policy id=\"1\">\n".repeat(30)).unwrap();
    common::set_times_everywhere(root, 5);
}

/// The folder of the first snapshot that must be stored in parts.
pub const WIDE: &str = "wide";
