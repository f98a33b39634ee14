//! `backup --stdin-tar`: a tar stream (GNU or POSIX pax, as GNU tar, `docker export`,
//! `kubectl exec ... tar c` or `borg export-tar` write it) stored as a snapshot tree with
//! the metadata the archive carries: modes with setuid/setgid/sticky, owners by id and
//! name, nanosecond times (pax), extended attributes (pax `SCHILY.xattr.*`), symlinks,
//! hard links, fifos, devices, and sparse files (GNU), whose holes are stored as zeros.
//!
//! The stream is read once, in order: each file's content is chunked as it passes, and
//! the folders are stored at the end, deepest first. An entry whose path leaves the
//! archive (`..`) or nests deeper than `MAX_DEPTH` folders (a path in a pax record
//! has no length limit) is left out and reported, as
//! an unreadable file is in a folder backup.
//!
//! The stream comes from another program (a container's export, a remote shell), so it
//! is hostile input: reading it is kept apart from storing what it holds ([`TarSink`]),
//! and the fuzz target `tar` feeds arbitrary streams through [`read_tar`].

use super::walker::MAX_DEPTH;
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{valid_name, Node, NodeKind, Tree};
use crate::format::Timespec;
use crate::id::{ChunkId, TreeId};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use tar::EntryType;

/// A file's content as stored: its size and chunks, or why reading it failed.
pub type Content = std::result::Result<(u64, Vec<ChunkId>), String>;

/// What an entry stored counts as, for the progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Folder,
    /// A file with content of this many bytes.
    File(u64),
    /// A further name of a file already stored (a hard link).
    Link,
    /// A symlink, fifo or device.
    Other,
}

/// Where the entries of a tar stream go.
pub trait TarSink {
    /// Fails once the run is interrupted.
    fn interrupted(&self) -> Result<()>;
    /// Store a file's content as it passes.
    fn file(&self, content: &mut dyn Read) -> Result<Content>;
    /// Store a folder's tree.
    fn tree(&self, tree: Tree) -> Result<TreeId>;
    /// Report an entry left out of the snapshot, and why.
    fn left_out(&self, path: &str, why: &str);
    /// Count an entry stored.
    fn counted(&self, what: Counted);
}

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

/// Store the tar stream `reader` through `sink`: returns the root folder's tree. `time`
/// stands for folders the archive names only through their contents.
pub fn read_tar(reader: impl Read, time: Timespec, sink: &impl TarSink) -> Result<TreeId> {
    let mut archive = tar::Archive::new(reader);
    let mut root = Folder::default();
    let mut links: HashMap<u64, u64> = HashMap::new();
    let bad = |e: std::io::Error| Error::invalid(format!("standard input is not a readable tar stream: {e}"));
    for entry in archive.entries().map_err(bad)? {
        sink.interrupted()?;
        let mut entry = entry.map_err(bad)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let Some(parts) = components(&raw_path) else {
            sink.left_out(&shown, "the path leaves the archive; left out");
            continue;
        };
        if parts.len() > MAX_DEPTH {
            sink.left_out(&shown, &format!("the path nests deeper than {MAX_DEPTH} folders; left out"));
            continue;
        }
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
                sink.counted(Counted::Folder);
                continue;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let (size, chunks) = sink.file(&mut entry)?.map_err(|e| {
                    Error::new(ErrorKind::Io, format!("reading {shown} from the tar stream: {e}"))
                })?;
                sink.counted(Counted::File(size));
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
                        sink.counted(Counted::Link);
                        // The link's own entry holds no data or metadata of its own: it
                        // is the file's node under another name.
                        node = Node { name: std::mem::take(&mut node.name), ..first.clone() };
                        node.kind.clone()
                    }
                    _ => {
                        sink.left_out(
                            &shown,
                            &format!(
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
                sink.left_out(
                    &shown,
                    &format!("a tar entry of type {other:?}, which cairn does not store; left out"),
                );
                continue;
            }
        };
        if !matches!(node.kind, NodeKind::File { .. }) {
            sink.counted(Counted::Other);
        }
        let Some((name, dirs)) = parts.split_last() else {
            sink.left_out(&shown, "the archive's root is not a folder; left out");
            continue;
        };
        folder_at(&mut root, dirs, time).children.insert(name.clone(), Item::Leaf(node));
    }
    // Read what follows the archive's end to the stream's end, so a program writing it
    // finishes (and its exit status can be judged) instead of waiting on a full pipe.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(bad)?;
    store_folder(root, &links, sink).map(|(id, _)| id)
}

/// Store a folder's contents, deepest first: its tree id and its own node.
fn store_folder(
    folder: Folder,
    links: &HashMap<u64, u64>,
    sink: &impl TarSink,
) -> Result<(TreeId, Option<Node>)> {
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
                let (tree, node) = store_folder(sub, links, sink)?;
                let mut node = node.expect("every folder gets a node");
                node.name = name;
                node.kind = NodeKind::Dir { tree };
                nodes.push(node);
            }
        }
    }
    let id = sink.tree(Tree { nodes })?;
    Ok((id, folder.node))
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
        secs = secs.checked_sub(1)?;
        nanos = 1_000_000_000 - nanos;
    }
    Some(Timespec { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps what a stream stored: trees by a counter id, and the entries left out.
    #[derive(Default)]
    struct Kept {
        trees: Mutex<Vec<Tree>>,
        left_out: Mutex<Vec<String>>,
    }

    impl TarSink for Kept {
        fn interrupted(&self) -> Result<()> {
            Ok(())
        }
        fn file(&self, content: &mut dyn Read) -> Result<Content> {
            let mut bytes = Vec::new();
            content.read_to_end(&mut bytes).expect("in memory");
            Ok(Ok((bytes.len() as u64, Vec::new())))
        }
        fn tree(&self, tree: Tree) -> Result<TreeId> {
            let mut trees = self.trees.lock().unwrap();
            trees.push(tree);
            Ok(TreeId([trees.len() as u8; 32]))
        }
        fn left_out(&self, path: &str, why: &str) {
            self.left_out.lock().unwrap().push(format!("{}: {why}", &path[..path.len().min(40)]));
        }
        fn counted(&self, _: Counted) {}
    }

    #[test]
    fn a_path_nested_past_the_depth_limit_is_left_out_and_the_rest_stored() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(EntryType::Regular);
            builder.append_data(&mut h, path, data).expect("append");
        };
        add("conf/gateway.xml", b"<gateway/>");
        // 20,000 folders deep: stored by recursion, this took more stack than a thread has.
        add(&format!("{}deep.txt", "d/".repeat(20_000)), b"deep");
        add(&format!("{}edge.txt", "e/".repeat(MAX_DEPTH - 1)), b"edge");
        let stream = builder.into_inner().expect("tar stream");

        let kept = Kept::default();
        read_tar(&stream[..], Timespec { secs: 1_733_400_000, nanos: 0 }, &kept).expect("stored");
        let left_out = kept.left_out.lock().unwrap();
        assert_eq!(left_out.len(), 1, "{left_out:?}");
        assert!(left_out[0].starts_with("d/d/d/") && left_out[0].contains("deeper than 1024 folders"));
        let trees = kept.trees.lock().unwrap();
        // conf, the MAX_DEPTH - 1 folders e/..., the root: the deep path made no folder.
        assert_eq!(trees.len(), 1 + (MAX_DEPTH - 1) + 1);
        let root = trees.last().unwrap();
        let names: Vec<&[u8]> = root.nodes.iter().map(|n| &n.name[..]).collect();
        assert_eq!(names, [&b"conf"[..], b"e"]);
        assert!(trees.iter().any(|t| t.nodes.iter().any(|n| n.name == b"edge.txt")));
    }

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
        // The earliest whole second has no second before it to borrow from.
        assert_eq!(pax_time(b"-9223372036854775808"), Some(Timespec { secs: i64::MIN, nanos: 0 }));
        assert_eq!(pax_time(b"-9223372036854775808.5"), None);
    }
}
