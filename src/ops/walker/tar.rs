//! `backup --stdin-tar`: a tar stream (GNU or POSIX pax, as GNU tar, `docker export`,
//! `kubectl exec ... tar c` or `borg export-tar` write it) stored as a snapshot tree with
//! the metadata the archive carries: modes with setuid/setgid/sticky, owners by id and
//! name, nanosecond times (pax), extended attributes (pax `SCHILY.xattr.*`), symlinks,
//! hard links, fifos, devices, and sparse files (GNU), whose holes are stored as zeros.
//!
//! The stream is read once, in order: each file's content is chunked as it passes, and
//! the folders are stored at the end, deepest first. An entry whose path leaves the
//! archive (`..`) is left out and reported, as an unreadable file is in a folder backup.

use super::Walker;
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{valid_name, Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::TreeId;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use tar::EntryType;

/// A folder being assembled: its own entry (once the archive gives one) and its contents.
#[derive(Default)]
struct Folder {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, Item>,
}

enum Item {
    Leaf(Node),
    Folder(Folder),
}

/// All hard links of a file share this device number and an inode counted from 1.
const LINK_DEVICE: u64 = 1;

impl Walker<'_> {
    /// Store the tar stream `reader` as a tree; `time` stands for folders the archive
    /// names only through their contents.
    pub fn save_tar(&self, reader: Box<dyn Read + Send>, time: Timespec) -> Result<TreeId> {
        let mut archive = tar::Archive::new(reader);
        let mut root = Folder::default();
        let mut links: HashMap<u64, u64> = HashMap::new();
        let bad =
            |e: std::io::Error| Error::invalid(format!("standard input is not a readable tar stream: {e}"));
        for entry in archive.entries().map_err(bad)? {
            self.check_interrupt()?;
            let mut entry = entry.map_err(bad)?;
            let raw_path = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            let Some(parts) = components(&raw_path) else {
                self.skip(Path::new(&shown), "the path leaves the archive; left out");
                continue;
            };
            let kind = entry.header().entry_type();
            if matches!(kind, EntryType::XGlobalHeader) {
                continue;
            }
            let mut node = node_of(&mut entry, &parts, time).map_err(bad)?;
            node.kind = match kind {
                EntryType::Directory => {
                    if parts.is_empty() {
                        root.node = Some(node);
                    } else {
                        folder_at(&mut root, &parts, time).node = Some(node);
                    }
                    self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    let (size, chunks) = self.save_stream(&mut entry, u64::MAX)?.map_err(|e| {
                        Error::new(ErrorKind::Io, format!("reading {shown} from the tar stream: {e}"))
                    })?;
                    self.counters.files.fetch_add(1, Ordering::Relaxed);
                    self.counters.files_new.fetch_add(1, Ordering::Relaxed);
                    self.counters.total_bytes.fetch_add(size, Ordering::Relaxed);
                    NodeKind::File { size, chunks }
                }
                EntryType::Link => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                    match components(&target).and_then(|t| leaf_at(&mut root, &t)) {
                        Some(first) if matches!(first.kind, NodeKind::File { .. }) => {
                            if first.inode == 0 {
                                first.inode = links.len() as u64 + 1;
                                first.device = LINK_DEVICE;
                                links.insert(first.inode, 1);
                            }
                            *links.get_mut(&first.inode).expect("counted") += 1;
                            self.counters.files.fetch_add(1, Ordering::Relaxed);
                            // The link's own entry holds no data or metadata of its own: it
                            // is the file's node under another name.
                            node = Node { name: std::mem::take(&mut node.name), ..first.clone() };
                            node.kind.clone()
                        }
                        _ => {
                            self.skip(
                                Path::new(&shown),
                                format!(
                                    "a hard link to {}, which the archive does not hold before it; left out",
                                    String::from_utf8_lossy(&target)
                                ),
                            );
                            continue;
                        }
                    }
                }
                EntryType::Symlink => NodeKind::Symlink {
                    target: entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default(),
                },
                EntryType::Fifo => NodeKind::Fifo,
                EntryType::Char | EntryType::Block => {
                    let h = entry.header();
                    let major = h.device_major().ok().flatten().unwrap_or(0);
                    let minor = h.device_minor().ok().flatten().unwrap_or(0);
                    let rdev = rustix::fs::makedev(major, minor);
                    if kind == EntryType::Char {
                        NodeKind::CharDevice { rdev }
                    } else {
                        NodeKind::BlockDevice { rdev }
                    }
                }
                other => {
                    self.skip(
                        Path::new(&shown),
                        format!("a tar entry of type {other:?}, which cairn does not store; left out"),
                    );
                    continue;
                }
            };
            if !matches!(node.kind, NodeKind::File { .. }) {
                self.counters.others.fetch_add(1, Ordering::Relaxed);
            }
            let Some((name, dirs)) = parts.split_last() else {
                self.skip(Path::new(&shown), "the archive's root is not a folder; left out");
                continue;
            };
            folder_at(&mut root, dirs, time).children.insert(name.clone(), Item::Leaf(node));
        }
        // Read what follows the archive's end to the stream's end, so a program writing it
        // finishes (and its exit status can be judged) instead of waiting on a full pipe.
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(bad)?;
        self.store_folder(root, &links).map(|(id, _)| id)
    }

    /// Store a folder's contents, deepest first: its tree id and its own node.
    fn store_folder(&self, folder: Folder, links: &HashMap<u64, u64>) -> Result<(TreeId, Option<Node>)> {
        let mut nodes = Vec::with_capacity(folder.children.len());
        for (name, item) in folder.children {
            match item {
                Item::Leaf(mut node) => {
                    if node.inode != 0 {
                        node.links = links.get(&node.inode).copied().unwrap_or(1);
                    }
                    nodes.push(node);
                }
                Item::Folder(sub) => {
                    let (tree, node) = self.store_folder(sub, links)?;
                    let mut node = node.expect("every folder gets a node");
                    node.name = name;
                    node.kind = NodeKind::Dir { tree };
                    nodes.push(node);
                }
            }
        }
        let id = self.save_tree(Tree { nodes })?;
        Ok((id, folder.node))
    }
}

/// The path's parts, without `.`, empty parts and a leading `/`; `None` if one is `..`
/// or not a valid name.
fn components(path: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            p if valid_name(p) => out.push(p.to_vec()),
            _ => return None,
        }
    }
    Some(out)
}

/// The folder at `parts` below `root`, made (with `time` and default metadata until the
/// archive names it) where missing; a leaf in the way is replaced.
fn folder_at<'f>(root: &'f mut Folder, parts: &[Vec<u8>], time: Timespec) -> &'f mut Folder {
    let mut at = root;
    for part in parts {
        let item = at.children.entry(part.clone()).or_insert_with(|| Item::Folder(Folder::default()));
        if !matches!(item, Item::Folder(_)) {
            *item = Item::Folder(Folder::default());
        }
        let Item::Folder(f) = item else { unreachable!("made a folder above") };
        if f.node.is_none() {
            f.node = Some(implicit_folder(part, time));
        }
        at = f;
    }
    at
}

fn leaf_at<'f>(root: &'f mut Folder, parts: &[Vec<u8>]) -> Option<&'f mut Node> {
    let (name, dirs) = parts.split_last()?;
    let mut at = root;
    for part in dirs {
        match at.children.get_mut(part)? {
            Item::Folder(f) => at = f,
            Item::Leaf(_) => return None,
        }
    }
    match at.children.get_mut(name)? {
        Item::Leaf(n) => Some(n),
        Item::Folder(_) => None,
    }
}

fn implicit_folder(name: &[u8], time: Timespec) -> Node {
    // A plain folder's metadata, as a snapshot's root folder has (its tree is set on store).
    Node { name: name.to_vec(), ..crate::browse::root_node(TreeId([0; 32]), time) }
}

/// An entry's metadata: the header's, refined by its pax records (nanosecond times,
/// names, extended attributes). The kind is filled in by the caller.
fn node_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    parts: &[Vec<u8>],
    time: Timespec,
) -> std::io::Result<Node> {
    let h = entry.header();
    let secs =
        |v: std::io::Result<u64>| Timespec { secs: v.map(|s| s as i64).unwrap_or(time.secs), nanos: 0 };
    let mtime = secs(h.mtime());
    let gnu = h.as_gnu();
    let atime = gnu.and_then(|g| g.atime().ok()).filter(|&t| t > 0).map_or(mtime, |t| secs(Ok(t)));
    let ctime = gnu.and_then(|g| g.ctime().ok()).filter(|&t| t > 0).map_or(mtime, |t| secs(Ok(t)));
    let name_of =
        |b: Option<&[u8]>| b.filter(|b| !b.is_empty()).map(|b| String::from_utf8_lossy(b).into_owned());
    let mut node = Node {
        name: parts.last().cloned().unwrap_or_default(),
        kind: NodeKind::Fifo,
        mode: h.mode().unwrap_or(0o644) & 0o7777,
        uid: h.uid().unwrap_or(0) as u32,
        gid: h.gid().unwrap_or(0) as u32,
        user: name_of(h.username_bytes()),
        group: name_of(h.groupname_bytes()),
        mtime,
        atime,
        ctime,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            match key {
                b"mtime" => node.mtime = pax_time(value).unwrap_or(node.mtime),
                b"atime" => node.atime = pax_time(value).unwrap_or(node.atime),
                b"ctime" => node.ctime = pax_time(value).unwrap_or(node.ctime),
                b"uname" => node.user = name_of(Some(value)),
                b"gname" => node.group = name_of(Some(value)),
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        node.xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    node.xattrs.sort();
    Ok(node)
}

/// A pax time: seconds with an optional fraction ("1733400000.123456789"), possibly negative.
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = whole.parse().ok()?;
    if fraction.is_empty() {
        return Some(Timespec { secs, nanos: 0 });
    }
    let digits: String = fraction.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u32 = format!("{digits:0<9}").parse().ok()?;
    let mut secs = secs;
    if whole.starts_with('-') && nanos > 0 {
        // -1.25 is 1.25 s before the epoch: -2 s plus 0.75 s.
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(Timespec { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_archive() {
        assert_eq!(
            components(b"./opt/gw/conf/").unwrap(),
            vec![b"opt".to_vec(), b"gw".to_vec(), b"conf".to_vec()]
        );
        assert_eq!(components(b"/etc//x").unwrap(), vec![b"etc".to_vec(), b"x".to_vec()]);
        assert!(components(b"a/../../etc/passwd").is_none());
        assert!(components(b"./").unwrap().is_empty());
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(pax_time(b"1733400000.123456789"), Some(Timespec { secs: 1733400000, nanos: 123456789 }));
        assert_eq!(pax_time(b"1733400000.5"), Some(Timespec { secs: 1733400000, nanos: 500000000 }));
        assert_eq!(pax_time(b"42"), Some(Timespec { secs: 42, nanos: 0 }));
        assert_eq!(pax_time(b"-1.25"), Some(Timespec { secs: -2, nanos: 750000000 }));
        assert_eq!(pax_time(b"x"), None);
    }
}
