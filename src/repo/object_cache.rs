//! Snapshots, index files and activity log entries of a remote repository, kept on this
//! machine's disk.
//!
//! Every command reads all of a repository's snapshots (to find a parent, to apply a
//! retention policy, to name `latest`) and most read all of its index files. Over a link
//! with 40 ms of latency a hundred snapshots cost four seconds read one by one, though
//! none of them ever changes: both kinds are named by the BLAKE3 hash of their bytes and
//! are never rewritten, only deleted. So a copy read once is as good as the stored object,
//! as long as it is checked to be that object. What this machine writes (its backups'
//! snapshots and index files, its log entries) goes into the cache too, so the next
//! backup reads its parent from here, and the next log entry the one it follows.
//!
//! - A cached copy is used only after its bytes hash to its name; one that does not is
//!   deleted and read from the store again. It is then opened (authenticated) as a stored
//!   object is, so a planted or damaged file costs a read, never a wrong answer.
//! - Only names the store lists are read, so an object deleted from the store is never
//!   brought back from the cache; each listing also drops the cached copies of objects the
//!   store no longer has. The cache is thus bounded by the repository's own metadata.
//! - Commands that verify what is stored (check, repair) bypass it.
//! - It lives in the cache folder (see [`super::cache_file`]) under the repository's id,
//!   private to the user (folders 0700, files 0600). Deleting it costs time, never data;
//!   `--no-cache` (or `CAIRN_NO_CACHE=1`) turns it off.

use crate::backend::FileType;
use crate::id::hex_encode;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turn the object cache off for this process (`--no-cache`).
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Whether caches are on for this process (not after `--no-cache`).
pub fn enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed)
}

/// The cached objects of one repository.
#[derive(Debug, Clone)]
pub struct ObjectCache {
    dir: PathBuf,
}

impl ObjectCache {
    /// The cache of the repository with id `repo_id`, unless caching is off or there is no
    /// cache folder.
    pub fn for_repository(repo_id: &[u8; 32]) -> Option<ObjectCache> {
        if DISABLED.load(Ordering::Relaxed) {
            return None;
        }
        super::cache_file("objects", &hex_encode(repo_id)).map(|dir| ObjectCache { dir })
    }

    /// A cache in `dir` (tests).
    #[cfg(test)]
    pub fn at(dir: PathBuf) -> ObjectCache {
        ObjectCache { dir }
    }

    fn path(&self, ft: FileType, name: &str) -> PathBuf {
        self.dir.join(ft.dir()).join(name)
    }

    /// The cached bytes of the object of type `ft` named `id`, if they hash to `id`.
    pub fn get(&self, ft: FileType, id: &[u8; 32]) -> Option<Vec<u8>> {
        let path = self.path(ft, &hex_encode(id));
        let bytes = std::fs::read(&path).ok()?;
        if blake3::hash(&bytes).as_bytes() == id {
            return Some(bytes);
        }
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Keep `bytes`, which the caller has just hashed to `id`, as the object of type `ft`
    /// named `id`; best effort. Not hashed again here: [`ObjectCache::get`] checks every
    /// copy it serves. Written to a private temporary file and renamed, so a reader never
    /// sees half a file.
    pub fn put(&self, ft: FileType, id: &[u8; 32], bytes: &[u8]) {
        let name = hex_encode(id);
        let folder = self.dir.join(ft.dir());
        if std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&folder).is_err() {
            return;
        }
        let tmp = folder.join(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes));
        if written.is_err() || std::fs::rename(&tmp, folder.join(&name)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Drop the cached objects of type `ft` the store no longer lists (and leftovers of
    /// writes that did not finish).
    pub fn retain(&self, ft: FileType, listed: &[String]) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(ft.dir())) else { return };
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| listed.contains(n)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn named(bytes: &[u8]) -> [u8; 32] {
        *blake3::hash(bytes).as_bytes()
    }

    #[test]
    fn a_copy_is_served_only_while_it_is_the_object_its_name_says() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ObjectCache::at(dir.path().join("c"));
        let (a, b) = (b"snapshot a".as_slice(), b"snapshot b".as_slice());
        assert_eq!(cache.get(FileType::Snapshot, &named(a)), None);
        cache.put(FileType::Snapshot, &named(a), a);
        assert_eq!(cache.get(FileType::Snapshot, &named(a)).as_deref(), Some(a));
        // Bytes that are not the named object are not served, whoever put them there.
        cache.put(FileType::Snapshot, &named(b), a);
        assert_eq!(cache.get(FileType::Snapshot, &named(b)), None);
        // A copy altered on disk is not served, and is removed.
        let path = cache.path(FileType::Snapshot, &hex_encode(&named(a)));
        std::fs::write(&path, b"snapshot A").unwrap();
        assert_eq!(cache.get(FileType::Snapshot, &named(a)), None);
        assert!(!path.exists());
        // Types are kept apart.
        cache.put(FileType::Index, &named(b), b);
        assert_eq!(cache.get(FileType::Snapshot, &named(b)), None);
        assert_eq!(cache.get(FileType::Index, &named(b)).as_deref(), Some(b));
    }

    #[test]
    fn files_are_private_and_what_the_store_no_longer_lists_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ObjectCache::at(dir.path().join("c"));
        let (a, b) = (b"index a".as_slice(), b"index b".as_slice());
        cache.put(FileType::Index, &named(a), a);
        cache.put(FileType::Index, &named(b), b);
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.path(FileType::Index, &hex_encode(&named(a)))), 0o600);
        assert_eq!(mode(dir.path().join("c").join(FileType::Index.dir())), 0o700);
        cache.retain(FileType::Index, &[hex_encode(&named(b))]);
        assert_eq!(cache.get(FileType::Index, &named(a)), None);
        assert_eq!(cache.get(FileType::Index, &named(b)).as_deref(), Some(b));
    }
}
