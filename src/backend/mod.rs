//! Storage backends: dumb stores of immutable named objects. They know nothing of
//! encryption or formats; retry, caching and limits belong in wrappers, not here.
//!
//! Contract for every implementation (tests/backend_conformance.rs runs it):
//! - `write` makes an object visible under its final name only when it is complete
//!   (temp name + rename, or one PUT); an interrupted write leaves no partial object;
//! - a missing object is `ErrorKind::NotFound`, distinct from any other failure;
//! - objects are never modified in place.
//!
//! Remote stores (`sftp:`, `s3:`) are wrapped by [`open`] in [`retry::RetryBackend`] (and a
//! [`cache::PackCache`] of whole packs for ranged reads); they
//! report transient failures (network, server errors, timeouts) as `ErrorKind::Io` and
//! everything a retry cannot fix (missing object or bucket, refused credentials) as its
//! own kind, which is what the wrapper relies on.

pub mod cache;
#[cfg(feature = "failpoints")]
pub mod faulty;
mod http;
pub mod limit;
pub mod list_ahead;
pub mod local;
pub mod object_lock;
pub mod rest;
pub mod retry;
pub mod s3;
pub mod sftp;
#[cfg(test)]
pub mod watched;

use crate::error::Result;
use std::time::Duration;

/// A buffer whose first byte is aligned to this many bytes (and that is at least this
/// long) may be written past the page cache by a local store (see `crate::direct_io`).
pub const WRITE_ALIGN: usize = crate::direct_io::ALIGN;

/// The kinds of stored objects, each in its own namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    Log,
}

impl FileType {
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Log,
    ];

    /// The most bytes an object of this type may have: checked against the stored size
    /// before an object is read whole. Packs have a tighter limit per repository
    /// (`Repository::pack_read_limit`); this is the most any pack may reach.
    pub fn size_limit(self) -> u64 {
        match self {
            FileType::Config | FileType::Lock => 64 << 10,
            // A 64 KiB header, the fixed fields and the wrapped key.
            FileType::Key => 128 << 10,
            // Index files prune and repair write hold at most ENTRIES_PER_INDEX_FILE
            // entries (about 5 MiB); backups write four packs' worth.
            FileType::Index => 64 << 20,
            FileType::Snapshot => 16 << 20,
            FileType::Log => 1 << 20,
            FileType::Pack => crate::format::pack::MAX_OFFSET as u64 + (64 << 20),
        }
    }

    /// The folder of this type inside a repository.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Log => "log",
        }
    }
}

pub trait Backend: Send + Sync {
    /// Where the repository is, for messages.
    fn location(&self) -> String;
    /// Create the repository's folders; fails with `AlreadyExists` if a config is there.
    fn create(&self) -> Result<()>;
    /// Read a whole object of at most `max` bytes. A larger one is refused (*corrupt*, see
    /// [`too_large`]) before its bytes are read, so a planted huge file costs no memory.
    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`; fewer only if the object ends first.
    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// `read_range` past the cache of whole packs (`cache.rs`), for a reader that fetches
    /// packs itself (`pack::prefetch`); the wrappers in front of that cache pass it on.
    fn read_range_direct(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_range(ft, name, offset, len)
    }
    /// Store an object atomically under `name`.
    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()>;
    /// Names of all objects of a type (unordered).
    fn list(&self, ft: FileType) -> Result<Vec<String>>;
    /// Start listing `types` in the background for the next `list` of each, and forget
    /// any listing started before (`list_ahead.rs`); a store that lists fast does nothing.
    fn list_ahead(&self, types: &[FileType]) {
        let _ = types;
    }
    /// Size of an object in bytes.
    fn size(&self, ft: FileType, name: &str) -> Result<u64>;
    /// Every object of a type with its size and modification time, in one listing where
    /// the store gives them (S3), else by looking at each. An object that goes between
    /// the listing and the look is left out.
    fn list_detailed(&self, ft: FileType) -> Result<Vec<Listed>> {
        list_by_looking(self, ft)
    }
    /// Delete an object; deleting a missing object is `NotFound`.
    fn remove(&self, ft: FileType, name: &str) -> Result<()>;
    /// How many writes may usefully run at once: a remote store hides its latency by
    /// overlapping uploads, a local disk gains nothing.
    fn write_parallelism(&self) -> usize {
        1
    }
    /// Temporary files that writes interrupted before their rename left behind (names
    /// starting with `local::TEMP_PREFIX`), unchanged for at least `age`. Stores that write
    /// an object in one request (S3) leave none.
    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>> {
        let _ = age;
        Ok(Vec::new())
    }
    /// Delete a leftover that `leftovers` named; any other path is refused.
    fn remove_leftover(&self, path: &str) -> Result<()> {
        Err(crate::error::Error::invalid(format!("{path}: this store keeps no temporary files")))
    }
    /// How many pack reads may usefully wait at once: check --read-data and restore keep
    /// this many fetches from a remote store in flight (so the network, not one round
    /// trip after another, sets their pace); a local disk is read by one thread per core.
    fn read_parallelism(&self) -> usize {
        1
    }
    /// Whether each request crosses a network (every store but a local folder): such a
    /// repository keeps its snapshots and index files in a local cache
    /// (`repo::object_cache`).
    fn is_remote(&self) -> bool {
        false
    }
    /// When an object was last written, as the store says (`None` where it cannot say).
    /// Prune spares unindexed packs younger than its grace period by it.
    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        let _ = (ft, name);
        Ok(None)
    }
    /// Whether `modified` is the time an object reached the store by the store's own clock,
    /// which no writer can set (a `cairn serve` server stamps it), and costs no request
    /// after a listing. Retention then treats a snapshot that claims a later time as forged.
    fn arrival_is_authoritative(&self) -> bool {
        false
    }
    /// S3 Object Lock, where the store offers it (an S3 bucket); every wrapper passes it on.
    fn object_lock(&self) -> Option<&dyn object_lock::ObjectLock> {
        None
    }
    /// Whether an object exists.
    fn exists(&self, ft: FileType, name: &str) -> Result<bool> {
        match self.size(ft, name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The error for an object larger than its type allows: planted or damaged, never read.
pub fn too_large(ft: FileType, name: &str, size: u64, max: u64) -> crate::error::Error {
    crate::error::Error::corrupt(format!(
        "{}/{name} is {size} bytes, more than the {max} such an object may have (planted or damaged); it was not read",
        ft.dir()
    ))
}

/// [`Backend::list_detailed`] by a listing and a look at each object.
pub fn list_by_looking<B: Backend + ?Sized>(b: &B, ft: FileType) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for name in b.list(ft)? {
        let size = match b.size(ft, &name) {
            Ok(s) => s,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let modified = match b.modified(ft, &name) {
            Ok(m) => m,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(Listed { name, size, modified });
    }
    Ok(out)
}

/// One object of a [`Backend::list_detailed`] listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
}

/// A temporary file an interrupted write left: its path from the repository's root
/// (`data/ab/.tmp-...`) and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub path: String,
    pub size: u64,
}

/// The folders that hold objects, relative to the repository's root ("" is the root,
/// where the config is): each type's folder, packs spread over `data/00` to `data/ff`
/// as [`object_path`] places them. Writes make their temporary files there too.
pub fn object_dirs() -> Vec<String> {
    let mut dirs = Vec::new();
    for ft in FileType::ALL {
        match ft {
            FileType::Pack => {
                dirs.extend((0..=255u8).map(|b| format!("{}/{}", ft.dir(), crate::id::hex_encode(&[b]))))
            }
            _ => dirs.push(ft.dir().to_string()),
        }
    }
    dirs
}

/// Whether `path` names a temporary file in one of `object_dirs` (so deleting it can only
/// ever remove a leftover, never an object).
pub fn is_leftover_path(path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    name.len() > local::TEMP_PREFIX.len()
        && name.starts_with(local::TEMP_PREFIX)
        && object_dirs().iter().any(|d| d == dir)
}

/// Join a folder from `object_dirs` and a file name.
pub fn in_dir(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether a location names a remote store rather than a local folder.
pub fn is_remote(location: &str) -> bool {
    ["sftp:", "s3:", "rest:"].iter().any(|p| location.starts_with(p))
}

/// Open the backend a repository location names: `sftp:[user@]host[:port]/path`,
/// `s3:http[s]://host[:port]/bucket[/prefix]`, `rest:http[s]://host[:port]/repo` (a
/// `cairn serve` server), or a local path. Remote ones get retries.
pub fn open(location: &str) -> Result<Box<dyn Backend>> {
    if let Some(rest) = location.strip_prefix("sftp:") {
        let b = sftp::SftpBackend::new(sftp::SftpLocation::parse(rest)?)?;
        return Ok(remote(with_faults(limit::wrap(Box::new(b)))?));
    }
    if let Some(rest) = location.strip_prefix("rest:") {
        let b = rest::RestBackend::new(rest)?;
        return Ok(remote(with_faults(limit::wrap(Box::new(b)))?));
    }
    if let Some(rest) = location.strip_prefix("s3:") {
        let b = s3::S3Backend::new(s3::S3Location::parse(rest)?, location)?;
        return Ok(remote(with_faults(limit::wrap(Box::new(b)))?));
    }
    with_faults(limit::wrap(Box::new(local::LocalBackend::new(location))))
}

/// The failing store of the tests (`faulty.rs`), right around the store so that retries
/// meet its faults as they would the store's own; only in builds with the `failpoints`
/// feature, and the store itself in every other build.
fn with_faults(store: Box<dyn Backend>) -> Result<Box<dyn Backend>> {
    #[cfg(feature = "failpoints")]
    return faulty::from_env(store);
    #[cfg(not(feature = "failpoints"))]
    Ok(store)
}

/// The wrappers every remote store gets, in this order: listings made ahead, in front of
/// a cache of whole packs, in front of retries, in front of the store.
fn remote(store: Box<dyn Backend>) -> Box<dyn Backend> {
    let retried = retry::RetryBackend::new(store, retry::RetryPolicy::DEFAULT);
    Box::new(list_ahead::ListAhead::new(Box::new(cache::PackCache::new(Box::new(retried)))))
}

/// The path of an object relative to the repository root: the same layout on every
/// backend, so a repository can be moved between them with any file copying tool.
pub fn object_path(ft: FileType, name: &str) -> String {
    match ft {
        FileType::Config => "config".to_string(),
        // Packs are spread over 256 folders by their first byte, so no folder grows huge.
        FileType::Pack => format!("data/{}/{name}", name.get(..2).unwrap_or("00")),
        _ => format!("{}/{name}", ft.dir()),
    }
}

/// Object names are hex ids or `config`; anything else must not reach a remote path.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(crate::error::Error::invalid(format!("'{name}' is not a valid object name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_files_in_object_folders_count_as_leftovers() {
        let dirs = object_dirs();
        assert_eq!(dirs.len(), 6 + 256);
        assert!(["", "keys", "index", "snapshots", "locks", "log", "data/00", "data/ff"]
            .iter()
            .all(|d| dirs.iter().any(|x| x == d)));
        for ok in [".tmp-config-0011", "data/ab/.tmp-ab00-ff", "index/.tmp-x"] {
            assert!(is_leftover_path(ok), "{ok}");
        }
        for bad in [
            "config",
            "data/ab/ab00",
            ".tmp-",
            "data/.tmp-x",
            "data/ab/../.tmp-x",
            "../.tmp-x",
            "/etc/.tmp-x",
            "data/ab/sub/.tmp-x",
        ] {
            assert!(!is_leftover_path(bad), "{bad}");
        }
    }
}
