//! What a restore target holds that the snapshot does not: found below the restored paths
//! only (the snapshot's own paths, or the `--include` paths), listed by `restore --verify`
//! and `restore --delete --dry-run`, removed by `restore --delete`.
//!
//! "Below the restored paths" matters: a snapshot of /opt/gw/conf restored to `/` must
//! never touch /opt/gw/other or /usr, which the snapshot's folders above conf/ merely
//! lead through. Removal goes through folder handles opened without following symlinks
//! (restore_target.rs): a symlink is removed itself, never what it points to, and nothing
//! outside the target is reached.

use super::restore_target::{self, Found, TargetRoot};
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::TreeId;
use crate::index::Index;
use crate::pack::PackReader;
use crate::tree::load_tree;
use rustix::fs::AtFlags;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The snapshot paths a restore covers: the `--include` paths, or else the snapshot's
/// own paths (a stdin backup's name is a file in the root folder). Paths inside other
/// paths are dropped.
pub fn restored_paths(snapshot: &Snapshot, includes: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = if includes.is_empty() {
        snapshot
            .paths
            .iter()
            .map(|p| Path::new("/").join(OsStr::from_bytes(p.strip_prefix(b"/").unwrap_or(p))))
            .collect()
    } else {
        includes.to_vec()
    };
    paths.sort();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept
}

/// Every entry below the restored `paths` (snapshot paths, placed below the target) that
/// the snapshot does not have, sorted. An extra folder is listed once, not its contents.
pub fn find_extras(
    reader: &PackReader<'_>,
    index: &Index,
    root_tree: &TreeId,
    target: &TargetRoot,
    paths: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let mut extras = Vec::new();
    for p in paths {
        let mut tree = load_tree(reader, index, root_tree)?;
        let mut at = target.path().to_path_buf();
        let mut is_dir = true;
        for name in p.iter().filter(|c| *c != OsStr::new("/")) {
            match tree.find(name.as_bytes()).map(|n| &n.kind) {
                Some(NodeKind::Dir { tree: sub }) => tree = load_tree(reader, index, sub)?,
                // A file (nothing below it) or a path the snapshot does not have.
                _ => is_dir = false,
            }
            at.push(name);
            if !is_dir {
                break;
            }
        }
        if is_dir {
            extras_in(reader, index, &tree, target, &at, &mut extras)?;
        }
    }
    extras.sort();
    Ok(extras)
}

/// Extras in the folder `at` (which the snapshot has as `tree`) and below it.
fn extras_in(
    reader: &PackReader<'_>,
    index: &Index,
    tree: &Tree,
    target: &TargetRoot,
    at: &Path,
    extras: &mut Vec<PathBuf>,
) -> Result<()> {
    // Not there, or not a folder (a symlink is not followed): nothing below it to list;
    // restore or verify deal with the entry itself.
    let Ok(dir) = target.dir(at) else { return Ok(()) };
    for name in list(&dir, at)? {
        match tree.find(name.as_bytes()).map(|n| &n.kind) {
            None => extras.push(at.join(&name)),
            Some(NodeKind::Dir { tree: sub }) if restore_target::lookup(&dir, &name)? == Found::Dir => {
                let sub = load_tree(reader, index, sub)?;
                extras_in(reader, index, &sub, target, &at.join(&name), extras)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The names in an open folder.
fn list(dir: &OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
    let listing = rustix::fs::Dir::read_from(dir)
        .map_err(|e| Error::io(format!("cannot list {}", shown.display()), e.into()))?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", shown.display()), e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// Remove `path` (below the target) and, if it is a folder, everything in it. Symlinks
/// are removed themselves, never followed.
pub fn remove(target: &TargetRoot, path: &Path) -> Result<()> {
    let (dir, name) = target.parent(path)?;
    target.forget(path);
    remove_at(&dir, name, path)
}

fn remove_at(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<()> {
    if restore_target::lookup(dir, name)? == Found::Dir {
        let sub = restore_target::open_dir_at(dir, name)
            .map_err(|e| Error::io(format!("cannot open {}", shown.display()), e.into()))?;
        for child in list(&sub, shown)? {
            remove_at(&sub, &child, &shown.join(&child))?;
        }
        return rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| Error::io(format!("cannot remove folder {}", shown.display()), e.into()));
    }
    match restore_target::unlink(dir, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", shown.display()), e)),
    }
}
