//! Import from restic: each snapshot of a restic repository (format version 1 or 2)
//! becomes a cairn snapshot with the same time, host, user, paths, tags and tree, read by
//! cairn's own restic reader ([`crate::restic`]) and stored through the backup pipeline
//! ([`crate::ops::backup::Source::Restic`]). Imported snapshots carry the label
//! `restic-snapshot=ID`, so a second import adds only snapshots it has not seen.

use crate::id::{ChunkId, TreeId};
use crate::restic::format::Id;
use crate::restic::Repo;
use std::collections::HashMap;
use std::sync::Mutex;

/// The label that names the restic snapshot a snapshot was imported from.
pub const SNAPSHOT_LABEL: &str = "restic-snapshot";
/// The label that names the restic snapshot's parent, as restic recorded it.
pub const PARENT_LABEL: &str = "restic-parent";

/// The most folders remembered between snapshots (about 100 bytes each); past it the
/// memory starts again empty.
const MAX_REMEMBERED_TREES: usize = 2 << 20;

/// The most chunk ids remembered in file contents between snapshots (128 MiB of ids);
/// past it the memory starts again empty.
const MAX_REMEMBERED_CHUNKS: usize = 4 << 20;

/// A restic folder stored as a cairn tree, with what it holds (for the summary).
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    pub tree: TreeId,
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
}

/// A file's content as stored: its size and chunks.
pub(crate) type Content = (u64, Vec<ChunkId>);

/// An opened restic repository and what this import stored from it so far: a folder or a
/// file content met again in a later snapshot is not read again.
pub struct ResticSource {
    pub repo: Repo,
    pub(crate) trees: Mutex<HashMap<Id, Stored>>,
    pub(crate) files: Mutex<Remembered>,
}

/// File contents stored so far, by the hash of their restic blob list.
#[derive(Default)]
pub(crate) struct Remembered {
    pub(crate) contents: HashMap<[u8; 32], Content>,
    chunks: usize,
}

impl ResticSource {
    pub fn new(repo: Repo) -> ResticSource {
        ResticSource { repo, trees: Mutex::default(), files: Mutex::default() }
    }

    pub(crate) fn remember_tree(&self, id: Id, stored: Stored) {
        let mut trees = self.trees.lock().expect("trees lock");
        if trees.len() >= MAX_REMEMBERED_TREES {
            trees.clear();
        }
        trees.insert(id, stored);
    }

    pub(crate) fn remember_file(&self, key: [u8; 32], content: Content) {
        let mut files = self.files.lock().expect("files lock");
        if files.chunks + content.1.len() > MAX_REMEMBERED_CHUNKS {
            *files = Remembered::default();
        }
        files.chunks += content.1.len() + 1;
        files.contents.insert(key, content);
    }
}
