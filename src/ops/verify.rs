//! Verify a restored tree against its snapshot: every entry exists with the right kind,
//! content (each file re-read and its chunks' keyed ids recomputed), size, mode,
//! modification time, symlink target, extended attributes, owner (when root) and hard
//! links; and no entry is there below the restored paths that the snapshot lacks (a stale
//! jar left in a gateway's lib folder changes its classpath). Used by `restore --verify`
//! and `drill`.

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Node, NodeKind};
use crate::format::Timespec;
use crate::id::{BlobId, TreeId};
use crate::index::Index;
use crate::ops::restore::same_inode;
use crate::ops::restore_delete;
use crate::ops::restore_target::TargetRoot;
use crate::pack::PackReader;
use crate::repo::Repository;
use crate::tree::walk::{walk, Visit};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// One line per difference: the path and what differs.
    pub differences: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compare the tree `tree` (restored below `target`, limited to `includes`) with the disk.
/// Entries the snapshot does not have are differences too, looked for below the
/// `restored` snapshot paths only (see [`restore_delete::restored_paths`]).
pub fn verify(
    repo: &Repository,
    tree: &TreeId,
    target: &Path,
    includes: &[PathBuf],
    restored: &[PathBuf],
    interrupt: &AtomicBool,
) -> Result<VerifyReport> {
    let index = Index::load(repo)?;
    let reader = PackReader::new(repo);
    let mut report = VerifyReport::default();
    let mut files = Vec::new();
    let as_root = crate::sys::is_root();
    walk(&reader, &index, tree, target, includes, &mut |v| match v {
        Visit::Node(path, node) => {
            report.entries += 1;
            let Ok(md) = std::fs::symlink_metadata(path) else {
                report.differences.push(format!("{}: missing", path.display()));
                return Ok(false);
            };
            report.differences.extend(compare_meta(path, &node, &md, as_root));
            let descend = md.is_dir() && matches!(node.kind, NodeKind::Dir { .. });
            if md.is_file() && matches!(node.kind, NodeKind::File { .. }) {
                files.push((path.to_path_buf(), node));
            }
            Ok(descend)
        }
        Visit::Unreadable(dir, e) => {
            report.differences.push(format!("{}: folder not verifiable: {e}", dir.display()));
            Ok(false)
        }
    })?;
    let mut first_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for (path, node) in &files {
        if node.links > 1 {
            if let Some(first) = first_of_inode.get(&(node.device, node.inode)) {
                if !same_inode(first, path) {
                    report.differences.push(format!(
                        "{}: not a hard link to {}",
                        path.display(),
                        first.display()
                    ));
                }
            } else {
                first_of_inode.insert((node.device, node.inode), path.clone());
            }
        }
    }
    let diffs: Vec<Vec<String>> = files
        .par_iter()
        .map(|(path, node)| {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Interrupted, "verification interrupted"));
            }
            Ok(compare_file(repo, &index, path, node, interrupt))
        })
        .collect::<Result<_>>()?;
    // compare_file stops early at an interrupt: its (empty) answer is not a verdict.
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::new(ErrorKind::Interrupted, "verification interrupted"));
    }
    report.differences.extend(diffs.into_iter().flatten());
    let root = TargetRoot::open_existing(target)?;
    for extra in restore_delete::find_extras(&reader, &index, tree, &root, restored)? {
        report.differences.push(format!(
            "{}: not in the snapshot (an extra entry; `restore --delete` removes it)",
            extra.display()
        ));
    }
    report.files = files.len() as u64;
    report.bytes =
        files.iter().map(|(_, n)| if let NodeKind::File { size, .. } = n.kind { size } else { 0 }).sum();
    report.differences.sort();
    Ok(report)
}

/// Metadata differences of one entry (content is compared separately).
fn compare_meta(path: &Path, node: &Node, md: &Metadata, as_root: bool) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let p = path.display();
    let ft = md.file_type();
    let kind_ok = match &node.kind {
        NodeKind::File { .. } => ft.is_file(),
        NodeKind::Dir { .. } => ft.is_dir(),
        NodeKind::Symlink { .. } => ft.is_symlink(),
        NodeKind::Fifo => ft.is_fifo(),
        NodeKind::CharDevice { .. } => ft.is_char_device(),
        NodeKind::BlockDevice { .. } => ft.is_block_device(),
        NodeKind::Socket => return out, // sockets are not restored
    };
    if !kind_ok {
        out.push(format!("{p}: is not a {}", node.kind.name()));
        return out;
    }
    if let NodeKind::Symlink { target } = &node.kind {
        let actual =
            std::fs::read_link(path).map(|t| t.into_os_string().as_bytes().to_vec()).unwrap_or_default();
        if &actual != target {
            out.push(format!("{p}: symlink target differs"));
        }
    } else if md.mode() & 0o7777 != node.mode {
        out.push(format!("{p}: mode {:o}, snapshot has {:o}", md.mode() & 0o7777, node.mode));
    }
    if let NodeKind::File { size, .. } = &node.kind {
        if md.len() != *size {
            out.push(format!("{p}: {} bytes, snapshot has {size}", md.len()));
        }
    }
    let mtime = Timespec { secs: md.mtime(), nanos: md.mtime_nsec() as u32 };
    if mtime != node.mtime {
        out.push(format!("{p}: modification time differs"));
    }
    if as_root
        && (md.uid() != node.uid || md.gid() != node.gid)
        && node.user.is_none()
        && node.group.is_none()
    {
        out.push(format!("{p}: owner {}:{}, snapshot has {}:{}", md.uid(), md.gid(), node.uid, node.gid));
    }
    if !node.xattrs.is_empty() && !matches!(node.kind, NodeKind::Symlink { .. }) {
        for (name, value) in &node.xattrs {
            if xattr::get(path, OsStr::from_bytes(name)).ok().flatten().as_ref() != Some(value) {
                out.push(format!("{p}: extended attribute {} differs", String::from_utf8_lossy(name)));
            }
        }
    }
    out
}

/// Re-read a file in its chunks' lengths and recompute each chunk id.
fn compare_file(
    repo: &Repository,
    index: &Index,
    path: &Path,
    node: &Node,
    interrupt: &AtomicBool,
) -> Vec<String> {
    let NodeKind::File { chunks, .. } = &node.kind else { return Vec::new() };
    let p = path.display();
    let Ok(mut f) = std::fs::File::open(path) else { return vec![format!("{p}: cannot be opened")] };
    let mut buf = Vec::new();
    for (i, id) in chunks.iter().enumerate() {
        if interrupt.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let Some(loc) = index.get(&BlobId::Chunk(*id)) else {
            return vec![format!("{p}: chunk {i} is not in the repository index")];
        };
        buf.resize(loc.entry.raw_length as usize, 0);
        if f.read_exact(&mut buf).is_err() || !repo.keys().names(&BlobId::Chunk(*id), &buf) {
            return vec![format!("{p}: content differs from the snapshot (chunk {i})")];
        }
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest).unwrap_or(0) != 0 {
        return vec![format!("{p}: longer than in the snapshot")];
    }
    Vec::new()
}
