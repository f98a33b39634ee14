//! Listings started before they are asked for, on remote stores.
//!
//! A command lists several object types one after another right after it takes its lock
//! (a backup: the locks, the snapshots, the packs, the index files), and on a remote store
//! each listing waits at least a round trip (an SFTP listing three). [`Backend::list_ahead`]
//! starts the listings a command names in the background, so they overlap each other and
//! the lock check; the next `list` of such a type takes the result.
//!
//! A listing taken this way is as fresh as one made when it was started: the repository
//! starts them once its lock is written, and drops them if its lock check meets a
//! conflict (format-spec/locks.md, *Taking a lock*), and a write or delete of a type by this process drops its
//! pending listing, so nobody gets a listing older than their own changes. Each is taken
//! at most once, and only within [`FRESH_FOR`] of its start: it serves the first steps of
//! a command, not a question asked after an hour's backup (whether a snapshot name is
//! taken). The next `list` of the type asks the store again. A listing that failed is
//! asked for again, so its error comes from the call that needs it.

use super::{Backend, FileType, Leftover, Listed};
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long after its start a listing made ahead may be handed out.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// A listing made ahead: when it started, and the thread making it.
type Pending = (Instant, JoinHandle<Result<Vec<String>>>);

pub struct ListAhead {
    inner: Arc<dyn Backend>,
    pending: Mutex<HashMap<FileType, Pending>>,
}

impl ListAhead {
    pub fn new(inner: Box<dyn Backend>) -> Self {
        ListAhead { inner: inner.into(), pending: Mutex::new(HashMap::new()) }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<FileType, Pending>> {
        self.pending.lock().expect("listings ahead")
    }

    /// Drop the pending listing of `ft`, before this process changes that type: it
    /// may no longer hold what the store holds once the change is made.
    fn changing(&self, ft: FileType) {
        self.pending().remove(&ft);
    }
}

impl Backend for ListAhead {
    fn list_ahead(&self, types: &[FileType]) {
        let mut pending = self.pending();
        // Listings started before are as old as whatever made the caller start again (a
        // lock that met a conflict and waited): none of them is handed out any more.
        pending.clear();
        for &ft in types {
            let inner = self.inner.clone();
            let started = std::thread::Builder::new().name("list-ahead".into()).spawn(move || inner.list(ft));
            // Without a thread the listing is simply made when it is asked for.
            if let Ok(handle) = started {
                pending.insert(ft, (Instant::now(), handle));
            }
        }
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        let taken = self.pending().remove(&ft).filter(|(started, _)| started.elapsed() <= FRESH_FOR);
        if let Some(Ok(Ok(names))) = taken.map(|(_, listing)| listing.join()) {
            return Ok(names);
        }
        self.inner.list(ft)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.inner.read(ft, name, max)
    }
    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_range(ft, name, offset, len)
    }
    fn read_range_direct(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_range_direct(ft, name, offset, len)
    }
    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.changing(ft);
        self.inner.write(ft, name, bytes)
    }
    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.inner.size(ft, name)
    }
    fn list_detailed(&self, ft: FileType) -> Result<Vec<Listed>> {
        self.inner.list_detailed(ft)
    }
    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        self.changing(ft);
        self.inner.remove(ft, name)
    }
    fn write_parallelism(&self) -> usize {
        self.inner.write_parallelism()
    }
    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>> {
        self.inner.leftovers(age)
    }
    fn remove_leftover(&self, path: &str) -> Result<()> {
        self.inner.remove_leftover(path)
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        self.inner.modified(ft, name)
    }
    fn arrival_is_authoritative(&self) -> bool {
        self.inner.arrival_is_authoritative()
    }
    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLock> {
        self.inner.object_lock()
    }
    fn exists(&self, ft: FileType, name: &str) -> Result<bool> {
        self.inner.exists(ft, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::backend::watched::{Op, Watched};
    use crate::repo::{InitOptions, KeySource, Repository, SNAPSHOTS_AND_INDEX};

    #[test]
    fn a_listing_ahead_that_failed_is_made_again_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().to_str().unwrap());
        local.create().unwrap();
        let a = "a".repeat(64);
        local.write(FileType::Snapshot, &a, b"one").unwrap();
        // The store fails every listing made ahead (its thread dies with it).
        let store = Watched::new(LocalBackend::new(dir.path().to_str().unwrap()), |op, _| {
            if op == Op::List && std::thread::current().name() == Some("list-ahead") {
                panic!("the connection broke off");
            }
        });
        let b = ListAhead::new(Box::new(store));
        b.list_ahead(&[FileType::Snapshot]);
        assert_eq!(names(&b, FileType::Snapshot), vec![a]);
    }

    #[test]
    fn a_lock_starts_the_listings_a_command_named_and_a_conflict_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        // Each listing's type, and the thread that made it.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let noted = seen.clone();
        let store = Watched::new(LocalBackend::new(&loc), move |op, ft| {
            if op == Op::List {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                noted.lock().unwrap().push((ft, thread));
            }
        });
        let wrapped = Box::new(ListAhead::new(Box::new(store)));
        let repo = Repository::init_on(wrapped, b"pw", &InitOptions::default(), None).unwrap();
        // Who listed each type, once the repository is opened and locked and the index
        // and snapshots are loaded.
        let listers = |ft: FileType| -> Vec<String> {
            seen.lock().unwrap().iter().filter(|(t, _)| *t == ft).map(|(_, who)| who.clone()).collect()
        };
        let load = || {
            crate::index::Index::load(&repo).unwrap();
            repo.snapshots().unwrap();
        };

        seen.lock().unwrap().clear();
        repo.will_list(SNAPSHOTS_AND_INDEX);
        let held = repo.lock(false, "backup").unwrap();
        load();
        for ft in SNAPSHOTS_AND_INDEX {
            assert_eq!(listers(*ft), vec!["list-ahead"], "{ft:?}: listed once, ahead");
        }
        drop(held);

        // Another process's exclusive lock: the listings the failed attempt started are
        // not used; the command lists anew once it holds its lock.
        let other =
            Repository::open_on(Box::new(LocalBackend::new(&loc)), b"pw", &KeySource::Stored).unwrap();
        let prune = other.lock(true, "prune").unwrap();
        seen.lock().unwrap().clear();
        assert_eq!(repo.lock(false, "backup").err().map(|e| e.kind()), Some(crate::error::ErrorKind::Locked));
        drop(prune);
        load();
        // (The dropped listings may still be running, and be noted after the command's.)
        let me = std::thread::current().name().unwrap().to_string();
        for ft in SNAPSHOTS_AND_INDEX {
            assert!(listers(*ft).contains(&me), "{ft:?}: listed anew by the command itself");
        }
    }

    fn names(b: &dyn Backend, ft: FileType) -> Vec<String> {
        let mut n = b.list(ft).unwrap();
        n.sort();
        n
    }

    #[test]
    fn a_listing_ahead_is_taken_once_and_never_outlives_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().to_str().unwrap());
        local.create().unwrap();
        let store: Arc<dyn Backend> = Arc::new(local);
        let b = ListAhead { inner: store.clone(), pending: Mutex::new(HashMap::new()) };
        let a = "a".repeat(64);
        let c = "c".repeat(64);
        store.write(FileType::Snapshot, &a, b"one").unwrap();

        // Taken from the listing made ahead: a snapshot written behind the wrapper's back
        // (as another host would) after it was made is not in it...
        b.list_ahead(&[FileType::Snapshot, FileType::Index]);
        while !b.pending()[&FileType::Snapshot].1.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        store.write(FileType::Snapshot, &c, b"two").unwrap();
        assert_eq!(names(&b, FileType::Snapshot), vec![a.clone()]);
        // ... and the next listing asks the store.
        assert_eq!(names(&b, FileType::Snapshot), vec![a.clone(), c.clone()]);

        // A write of the type through the wrapper drops its pending listing.
        b.list_ahead(&[FileType::Index]);
        b.write(FileType::Index, &a, b"index").unwrap();
        assert!(b.pending().is_empty());
        assert_eq!(names(&b, FileType::Index), vec![a.clone()]);

        // So does a delete; and starting again drops whatever was pending.
        b.list_ahead(&[FileType::Snapshot, FileType::Index]);
        b.remove(FileType::Snapshot, &a).unwrap();
        assert_eq!(b.pending().keys().copied().collect::<Vec<_>>(), vec![FileType::Index]);
        b.list_ahead(&[]);
        assert!(b.pending().is_empty());
        assert_eq!(names(&b, FileType::Snapshot), vec![c.clone()]);

        // A listing not asked for within FRESH_FOR of its start is not handed out.
        b.list_ahead(&[FileType::Snapshot]);
        while !b.pending()[&FileType::Snapshot].1.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now().checked_sub(FRESH_FOR + Duration::from_secs(1)).unwrap();
        b.pending().get_mut(&FileType::Snapshot).unwrap().0 = started;
        store.remove(FileType::Snapshot, &c).unwrap();
        assert_eq!(names(&b, FileType::Snapshot), Vec::<String>::new());
    }
}
