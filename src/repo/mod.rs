//! Opening and creating repositories, and the small facade commands use to load and save
//! objects. Everything stored goes through here or through pack/ and index/; the facade
//! itself knows no command.

use crate::backend::{self, Backend, FileType};
use crate::chunker::{Chunker, ChunkerParams};
use crate::crypto::keys::{fill_random, KdfParams, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{Config, REPO_FORMAT};
use crate::format::envelope::{self, ObjectType};
use crate::format::index::IndexFile;
use crate::format::snapshot::Snapshot;
use crate::format::Timespec;
use crate::id::{IndexId, KeyId, RefsId, SnapshotId, TreeId};
use std::sync::Arc;

pub mod keys;
pub mod lock;
pub mod object_cache;
pub mod read_lock;
pub mod secrets;
pub mod select;
pub mod snapshot_file;

/// Readable snapshots, and the names of damaged snapshot objects with the reason.
pub type SnapshotsAndDamage = (Vec<(SnapshotId, Snapshot)>, Vec<(String, Error)>);

/// The snapshots loaded from `names` (in the same order), oldest first, and the names of
/// those that are damaged (or of a version this cairn does not read) with why; any other
/// error (the store's) is returned.
fn sorted_with_damage(
    names: Vec<String>,
    loaded: Vec<Result<(SnapshotId, Snapshot)>>,
) -> Result<SnapshotsAndDamage> {
    let (mut out, mut damaged) = (Vec::new(), Vec::new());
    for (name, loaded) in names.into_iter().zip(loaded) {
        match loaded {
            Ok(s) => out.push(s),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Corrupt | ErrorKind::InvalidInput | ErrorKind::Unsupported
                ) =>
            {
                damaged.push((name, e))
            }
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok((out, damaged))
}

/// `latest` cannot be decided while a snapshot cannot be read: its time is unknown, and it
/// may be the newest. Restoring an older snapshot in its place without a word would be
/// worse than asking the user to name one.
pub fn latest_is_decidable(damaged: &[(String, Error)]) -> Result<()> {
    let Some((name, why)) = damaged.first() else { return Ok(()) };
    let short = &name[..name.len().min(8)];
    Err(Error::new(
        ErrorKind::Corrupt,
        format!(
            "'latest' cannot be decided: snapshot {short} cannot be read ({why}) and may be the newest; name a snapshot by id (`cairn snapshots` lists the readable ones), or remove it with `cairn forget {short}`"
        ),
    ))
}

/// Refuse `what` (a command that deletes or replaces data) while a snapshot cannot be
/// read, unless it is among `named`, the snapshots this very command removes: deleting
/// data while a snapshot cannot be read (damaged, or written by a newer cairn) could
/// delete what that snapshot uses.
pub fn refuse_unreadable(damaged: &[(String, Error)], named: &[SnapshotId], what: &str) -> Result<()> {
    let blocking: Vec<&(String, Error)> =
        damaged.iter().filter(|(name, _)| !named.iter().any(|id| id.to_hex() == *name)).collect();
    let Some((first, why)) = blocking.first() else { return Ok(()) };
    let short = &first[..first.len().min(8)];
    let others = match blocking.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let remedy = if why.kind() == ErrorKind::Unsupported {
        "upgrade cairn, or"
    } else {
        "put back a good copy of it, or"
    };
    Err(Error::new(
        ErrorKind::UnreadableSnapshot,
        format!(
            "{what} refused, nothing changed: snapshot {short}{others} cannot be read ({why}); {remedy} remove it with `cairn forget {short}` (its data then goes with the next prune)"
        ),
    ))
}
pub mod log;
pub use keys::{KeyInfo, KeySource};

/// Choices made once, at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
    /// S3 Object Lock on every object (an S3 bucket with Object Lock enabled only).
    pub object_lock: Option<crate::format::config::ObjectLockPolicy>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::DEFAULT,
            compression_level: crate::compress::DEFAULT_LEVEL,
            // 8 MiB: packs are built in memory, one per worker plus one being written, so
            // the pack size sets most of a backup's memory (measured: 16 MiB packs gave a
            // peak of 119 MB on the gateway corpus, 8 MiB packs 70 MB, at the same speed).
            pack_size: 8 << 20,
            kdf: KdfParams::DEFAULT,
            object_lock: None,
        }
    }
}

/// The file of kind `kind` (a folder name) for one repository location in the cache
/// folder: `CAIRN_CACHE_DIR`, else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`. What
/// is cached there are hints: losing them costs time, never correctness.
pub fn cache_file(kind: &str, location: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let dir = std::env::var_os("CAIRN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cairn")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn")))?;
    let tag = blake3::hash(location.as_bytes()).to_hex();
    Some(dir.join(kind).join(&tag[..32]))
}

/// Write a cache file, its folder private to the user; best effort, like every hint.
pub fn write_cache_file(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    }
    let _ = std::fs::write(path, bytes);
}

/// Make every write of a new repository locked, once the bucket is known to lock.
fn start_object_lock(backend: &dyn Backend, policy: crate::format::config::ObjectLockPolicy) -> Result<()> {
    let lock = backend.object_lock().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!("{}: --object-lock needs an S3 repository (s3:...)", backend.location()),
        )
    })?;
    if !lock.bucket_lock_enabled()? {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: the bucket has no Object Lock; create a bucket with Object Lock enabled \
                 (it can only be chosen when the bucket is made), or leave out --object-lock",
                backend.location()
            ),
        ));
    }
    lock.set_policy(policy);
    Ok(())
}

/// The config's maintenance public key (field 11) must be the one the key in use derives
/// or carries: a backup-only key holder could rewrite the config to receive every other
/// writer's summaries (format-spec/maintenance-key.md). A maintenance key needs it.
fn check_maintenance_public(
    config: &Config,
    keys: &RepoKeys,
    kind: crate::crypto::keys::KeyKind,
) -> Result<()> {
    let ours = keys.maintenance_public();
    match (config.maintenance, ours) {
        (Some(named), Some(ours)) if named != ours => {
            Err(Error::corrupt("the config's maintenance public key is not this key's (config replaced?)"))
        }
        (None, _) if kind == crate::crypto::keys::KeyKind::Maintenance => Err(Error::corrupt(
            "the config names no maintenance public key, yet this is a maintenance key (config replaced?)",
        )),
        _ => Ok(()),
    }
}

/// What a command lists to choose snapshots and load the index: for [`Repository::will_list`].
pub const SNAPSHOTS_AND_INDEX: &[FileType] = &[FileType::Snapshot, FileType::Pack, FileType::Index];

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    keys: Arc<RepoKeys>,
    /// Kept for key management; wiped on drop.
    master: MasterKey,
    key_id: KeyId,
    key_source: KeySource,
    /// Snapshots and index files kept on this machine for a remote store (None for a
    /// local one, with `--no-cache`, and for commands that verify the store).
    object_cache: Option<object_cache::ObjectCache>,
    /// How the index goes through this machine's cache file.
    index_cache: IndexCache,
    /// The object types the command will list once it holds its lock ([`Repository::will_list`]).
    listed_once_locked: std::sync::Mutex<Vec<FileType>>,
    /// The references record id of each tree this process stored or computed one for
    /// (src/pack/records.rs), so a folder's record can name its subfolders' records.
    records: std::sync::Mutex<std::collections::HashMap<TreeId, RefsId>>,
}

/// How a command uses this machine's index cache file (src/index/cached.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexCache {
    /// Not at all (`--no-cache`): the index loads into memory.
    Off,
    /// Mapped, and brought up to date with the index files written since it was made.
    Use,
    /// Made anew from the store's index files, whatever the file holds: for commands that
    /// verify the store (a cached entry would hide a damaged index file).
    Rebuild,
}

impl Repository {
    /// The references record id of tree `id`, if this process stored or computed it.
    pub fn record_of(&self, id: &TreeId) -> Option<RefsId> {
        self.records.lock().expect("records lock").get(id).copied()
    }

    /// Remember the record id of a tree whose record is stored (or being stored).
    pub fn remember_record(&self, id: TreeId, record: RefsId) {
        self.records.lock().expect("records lock").insert(id, record);
    }

    /// Create a repository at `location` with a first full key for `passphrase`, stored in
    /// the repository or, with `key_file`, apart from it.
    pub fn init(
        location: &str,
        passphrase: &[u8],
        opts: &InitOptions,
        key_file: Option<&std::path::Path>,
    ) -> Result<Repository> {
        Self::init_on(backend::open(location)?, passphrase, opts, key_file)
    }

    pub fn init_on(
        backend: Box<dyn Backend>,
        passphrase: &[u8],
        opts: &InitOptions,
        key_file: Option<&std::path::Path>,
    ) -> Result<Repository> {
        Self::init_with(backend, passphrase, opts, key_file, MasterKey::generate()?)
    }

    /// Create a repository that chunks and names blobs exactly as `src` does (its chunk
    /// sizes and its write root, see [`MasterKey::sharing_ids`]), so snapshots copied
    /// from `src` and backups made directly into it deduplicate against each other, and
    /// `copy` needs no data read for blobs already present.
    pub fn init_sharing_ids(
        location: &str,
        passphrase: &[u8],
        opts: &InitOptions,
        key_file: Option<&std::path::Path>,
        src: &Repository,
    ) -> Result<Repository> {
        src.require_full_key("share its chunker parameters")?;
        let opts = InitOptions { chunker: src.config.chunker, ..opts.clone() };
        Self::init_with(backend::open(location)?, passphrase, &opts, key_file, src.master.sharing_ids()?)
    }

    fn init_with(
        backend: Box<dyn Backend>,
        passphrase: &[u8],
        opts: &InitOptions,
        key_file: Option<&std::path::Path>,
        master: MasterKey,
    ) -> Result<Repository> {
        opts.kdf.check_new()?;
        if let Some(k) = key_file.filter(|k| k.exists()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("key file {} already exists; choose a new path", k.display()),
            ));
        }
        let mut repo_id = [0u8; 32];
        fill_random(&mut repo_id)?;
        let config = Config {
            format: REPO_FORMAT,
            repo_id,
            created: Timespec::now(),
            chunker: opts.chunker,
            compression_level: opts.compression_level,
            pack_size: opts.pack_size,
            public_key: master.public_key(),
            object_lock: opts.object_lock,
            maintenance: None,
        };
        config.validate()?;
        if let Some(policy) = opts.object_lock {
            start_object_lock(backend.as_ref(), policy)?;
        }
        backend.create()?;
        // Key first, config last: a folder with a config is a repository, so the config
        // appears only when everything needed to open it is there.
        let keys = master.derive(config.public_key, config.repo_id)?;
        let key_id = keys::store_key(backend.as_ref(), &master, &keys, passphrase, opts.kdf, key_file)?;
        backend.write(FileType::Config, "config", &envelope::seal_config(&master, 0, &config.encode())?)?;
        let key_source = key_file.map(|k| KeySource::File(k.to_path_buf())).unwrap_or_default();
        Ok(Self::assemble(backend, config, keys, master, key_id, key_source))
    }

    /// Open the repository at `location` with `passphrase` and the key from `source`.
    pub fn open(location: &str, passphrase: &[u8], source: &KeySource) -> Result<Repository> {
        Self::open_on(backend::open(location)?, passphrase, source)
    }

    pub fn open_on(backend: Box<dyn Backend>, passphrase: &[u8], source: &KeySource) -> Result<Repository> {
        // The config and the key are read at once: on a remote store, one round trip.
        let (sealed, key) = std::thread::scope(|s| {
            let config = s.spawn(|| backend.read(FileType::Config, "config", FileType::Config.size_limit()));
            let key = keys::open_key(backend.as_ref(), source, passphrase);
            (config.join().expect("the config's reader does not panic"), key)
        });
        let sealed = match sealed {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The store's own look says what is missing where it can (an S3 bucket).
                backend.exists(FileType::Config, "config")?;
                return Err(Error::new(
                    ErrorKind::NotARepository,
                    format!(
                        "{} is not a cairn repository (no config); check --repo or run `cairn init`",
                        backend.location()
                    ),
                ));
            }
            sealed => sealed?,
        };
        let (key_id, master) = key?;
        let config =
            Config::decode(&envelope::open_config(&master, &sealed)?).map_err(|e| e.wrap("config"))?;
        let keys = master.derive(config.public_key, config.repo_id)?;
        check_maintenance_public(&config, &keys, master.kind)?;
        if let Some(policy) = config.object_lock {
            match backend.object_lock() {
                Some(lock) => lock.set_policy(policy),
                // A locked bucket copied to a folder must still restore; say what is lost.
                None => eprintln!(
                    "cairn: warning: this repository was made for S3 Object Lock, which {} does not offer; \
                     what is written here is not locked",
                    backend.location()
                ),
            }
        }
        Ok(Self::assemble(backend, config, keys, master, key_id, source.clone()))
    }

    /// The opened or new repository; a store that answers each read after a round trip
    /// gets an object cache (a local folder is its own cache).
    fn assemble(
        backend: Box<dyn Backend>,
        config: Config,
        keys: RepoKeys,
        master: MasterKey,
        key_id: KeyId,
        key_source: KeySource,
    ) -> Repository {
        let object_cache =
            backend.is_remote().then(|| object_cache::ObjectCache::for_repository(&config.repo_id)).flatten();
        Repository {
            backend: backend.into(),
            config,
            keys: Arc::new(keys),
            master,
            key_id,
            key_source,
            object_cache,
            index_cache: if object_cache::enabled() { IndexCache::Use } else { IndexCache::Off },
            listed_once_locked: std::sync::Mutex::new(Vec::new()),
            records: Default::default(),
        }
    }

    /// Say which object types the command will list once it holds its lock: a remote
    /// store lists them in the background, all at once, as soon as the lock is written
    /// (or at once when the command reads without one), instead of one round trip after
    /// another when each is needed (`backend::list_ahead`).
    pub fn will_list(&self, types: &[FileType]) {
        *self.listed_once_locked.lock().expect("listings wanted") = types.to_vec();
    }

    /// Start the listings [`Repository::will_list`] named: called once what is listed
    /// from now on may be relied on (the lock is written, or none is taken).
    pub(crate) fn start_listings(&self) {
        let types = self.listed_once_locked.lock().expect("listings wanted").clone();
        if !types.is_empty() {
            self.backend.list_ahead(&types);
        }
    }

    /// Refuse (with `Locked`) when the stored config names another key epoch than the one
    /// this repository was opened with: a key rotation ran since, and what this process
    /// would seal now, no key could open once the rotation completes. Checked before
    /// writes that take no lock (log entries); every other write holds a lock that a
    /// rotation's exclusive one excludes.
    pub(crate) fn keys_still_current(&self) -> Result<()> {
        let sealed = self.backend.read(FileType::Config, "config", FileType::Config.size_limit())?;
        let current = envelope::open_config(&self.master, &sealed)
            .and_then(|c| Config::decode(&c))
            .is_ok_and(|c| c.public_key == self.config.public_key);
        if current {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Locked,
                "the repository's keys were rotated since this process opened it; open it again",
            ))
        }
    }

    /// Whether a key rotation was begun and not finished: the key in use holds two epochs.
    pub fn rotation_unfinished(&self) -> bool {
        self.master.epoch_numbers().len() > 1
    }

    /// The working keys, shared (a lock sealed anew under a rotation's new epoch).
    pub(crate) fn keys_shared(&self) -> Arc<RepoKeys> {
        self.keys.clone()
    }

    /// The key material in use (key rotation reads and replaces it).
    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The key in use now wraps `master`, whose epoch `config` names is the one everything
    /// new is sealed under: the config is written sealed under it, and the repository is
    /// opened anew with it (same store, same key file). A crash before the config's write
    /// leaves the old config, after it the new: both open with every key file that holds
    /// both epochs.
    pub(crate) fn switch_epoch(&self, master: MasterKey, public_key: [u8; 32]) -> Result<Repository> {
        let config = Config { public_key, ..self.config.clone() };
        let mut next = self.with_material(master, config, self.key_id)?;
        // With maintenance, the config names the new epoch's maintenance public key.
        if next.config.maintenance.is_some() {
            next.config.maintenance = next.keys.maintenance_public();
        }
        let sealed = envelope::seal_config(&next.master, next.keys.write_epoch(), &next.config.encode())?;
        self.backend.write(FileType::Config, "config", &sealed)?;
        crate::failpoint::hit("rotate:after-config");
        Ok(next)
    }

    /// Write this repository's config, sealed under its write epoch.
    pub(crate) fn write_config(&self) -> Result<()> {
        let sealed = envelope::seal_config(&self.master, self.keys.write_epoch(), &self.config.encode())?;
        self.backend.write(FileType::Config, "config", &sealed)
    }

    /// This repository opened with other key material and config, the key in use being
    /// `key_id` (same store).
    pub(crate) fn with_material(
        &self,
        master: MasterKey,
        config: Config,
        key_id: KeyId,
    ) -> Result<Repository> {
        let keys = master.derive(config.public_key, config.repo_id)?;
        let object_cache = self
            .backend
            .is_remote()
            .then(|| object_cache::ObjectCache::for_repository(&config.repo_id))
            .flatten();
        Ok(Repository {
            backend: self.backend.clone(),
            config,
            keys: Arc::new(keys),
            master,
            key_id,
            key_source: self.key_source.clone(),
            object_cache,
            index_cache: self.index_cache,
            listed_once_locked: std::sync::Mutex::new(Vec::new()),
            records: Default::default(),
        })
    }

    /// Store sealed bytes of a content-addressed object under the hash of its bytes.
    pub(crate) fn store_sealed(&self, ft: FileType, bytes: &[u8]) -> Result<[u8; 32]> {
        let id = *blake3::hash(bytes).as_bytes();
        self.backend.write(ft, &crate::id::hex_encode(&id), bytes)?;
        if let Some(cache) = &self.object_cache {
            cache.put(ft, &id, bytes);
        }
        Ok(id)
    }

    /// This repository reading every snapshot and index file from the store itself: for
    /// commands that verify what is stored (a cached copy would hide a damaged object).
    /// The index cache file is made anew from the store, so memory stays bounded.
    pub fn reading_the_store_only(mut self) -> Repository {
        self.object_cache = None;
        self.with_index_cache(IndexCache::Rebuild)
    }

    /// This repository using the index cache file as `how` says (never more than the
    /// process allows: after `--no-cache` it stays off).
    pub fn with_index_cache(mut self, how: IndexCache) -> Repository {
        if self.index_cache != IndexCache::Off {
            self.index_cache = how;
        }
        self
    }

    /// How the index goes through this machine's cache file.
    pub fn index_cache(&self) -> IndexCache {
        self.index_cache
    }

    /// This machine's index cache file of the repository, if the index goes through one
    /// (src/index/cached.rs).
    pub fn index_cache_path(&self) -> Option<std::path::PathBuf> {
        if self.index_cache == IndexCache::Off {
            return None;
        }
        cache_file("index", &crate::id::hex_encode(&self.config.repo_id))
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.config.chunker, self.keys.gear_table())
    }

    /// The most bytes a pack of this repository is read whole with (check, repair): its
    /// pack size twice over, with room for an outsized frame and the table of contents.
    pub fn pack_read_limit(&self) -> u64 {
        let size = u64::from(self.config.pack_size.max(8 << 20));
        let frame = u64::from(crate::format::pack::MAX_SEALED);
        (2 * size + 2 * frame + (64 << 20)).min(FileType::Pack.size_limit())
    }

    /// Read a whole stored object, refusing one larger than its type may be.
    pub fn read_object(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let max = if ft == FileType::Pack { self.pack_read_limit() } else { ft.size_limit() };
        self.backend.read(ft, name, max)
    }

    /// Seal `payload` as an object of `ty`, store it under the hash of its bytes.
    fn save_object(&self, ft: FileType, ty: ObjectType, payload: &[u8]) -> Result<[u8; 32]> {
        // What this machine wrote it need not read back (the next backup's parent).
        self.store_sealed(ft, &envelope::seal(&self.keys, ty, payload)?)
    }

    /// The bytes of the object of type `ft` named by the hash `id` of its bytes (a
    /// snapshot, an index file), checked to be that object: from the object cache when it
    /// holds it, else from the store (and then kept in the cache).
    pub fn read_named_object(&self, ft: FileType, id: &[u8; 32]) -> Result<Vec<u8>> {
        if let Some(bytes) = self.object_cache.as_ref().and_then(|c| c.get(ft, id)) {
            return Ok(bytes);
        }
        let bytes = self.read_object(ft, &crate::id::hex_encode(id))?;
        if blake3::hash(&bytes).as_bytes() != id {
            return Err(Error::corrupt("its content does not match its name"));
        }
        if let Some(cache) = &self.object_cache {
            cache.put(ft, id, &bytes);
        }
        Ok(bytes)
    }

    /// The names the store lists for objects of type `ft`; the object cache drops what it
    /// holds of any other.
    pub fn list_named_objects(&self, ft: FileType) -> Result<Vec<String>> {
        let names = self.backend.list(ft)?;
        if let Some(cache) = &self.object_cache {
            cache.retain(ft, &names);
        }
        Ok(names)
    }

    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        self.save_object(FileType::Index, ObjectType::Index, &file.encode()).map(IndexId)
    }

    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let writer = match self.master.kind {
            crate::crypto::keys::KeyKind::Full => envelope::WrittenBy::FullKey,
            _ => envelope::WrittenBy::BackupOnlyKey,
        };
        let bytes = self.seal_snapshot_file(&snap.encode(), writer)?;
        self.store_sealed(FileType::Snapshot, &bytes).map(SnapshotId)
    }

    /// Store `new` in place of the snapshot `old`: the new one is stored first, so a crash
    /// in between leaves both, never neither.
    pub fn replace_snapshot(&self, old: &SnapshotId, new: &Snapshot) -> Result<SnapshotId> {
        self.carry_record(old);
        let id = self.save_snapshot(new)?;
        crate::failpoint::hit("snapshot-replace:after-new");
        if id != *old {
            crate::ops::object_lock::note_deleted(self, FileType::Snapshot, &[old.to_hex()])?;
            self.backend.remove(FileType::Snapshot, &old.to_hex())?;
        }
        crate::failpoint::hit("snapshot-replace:after-old-removed");
        Ok(id)
    }

    /// The snapshot `id`; for a maintenance key, what its summary tells of it
    /// ([`Repository::summary_view`]).
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        if self.master.kind == crate::crypto::keys::KeyKind::Maintenance {
            return self.summary_view(id).map(|(view, _)| view);
        }
        if !self.keys.can_read() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this is a backup-only key: it cannot read stored data; use a full key",
            ));
        }
        self.load_snapshot_with(id, snapshot_file::Summary::Skipped)
    }

    /// [`Repository::load_snapshot`] that also opens the summary beside the snapshot, if
    /// any, and requires it to be valid and to agree with the snapshot (check).
    pub fn load_snapshot_verified(&self, id: &SnapshotId) -> Result<Snapshot> {
        if self.master.kind != crate::crypto::keys::KeyKind::Full {
            return self.load_snapshot(id);
        }
        self.load_snapshot_with(id, snapshot_file::Summary::Verified)
    }

    fn load_snapshot_with(&self, id: &SnapshotId, summary: snapshot_file::Summary) -> Result<Snapshot> {
        let opened = self.read_snapshot_file(id, summary)?.snapshot.expect("a full key opens the snapshot");
        let mut snap = Snapshot::decode(&opened.payload).map_err(|e| e.wrap(format!("snapshot {id}")))?;
        snap.written_by = opened.written_by;
        Ok(snap)
    }

    /// Every readable snapshot, oldest first. Damaged ones are left out (see
    /// [`Repository::snapshots_and_damage`]): one bad object must not stop every backup.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.snapshots_and_damage()?.0)
    }

    /// Every readable snapshot, oldest first, and the names of damaged ones with why. They
    /// are read as many at once as the store serves well.
    pub fn snapshots_and_damage(&self) -> Result<SnapshotsAndDamage> {
        use rayon::prelude::*;
        let names = self.list_named_objects(FileType::Snapshot)?;
        if self.master.kind == crate::crypto::keys::KeyKind::Maintenance {
            return self.summaries_and_damage(names);
        }
        let loaded: Vec<Result<(SnapshotId, Snapshot)>> = crate::ops::read_pool::install(self, || {
            names
                .par_iter()
                .map(|name| SnapshotId::from_hex(name).and_then(|id| Ok((id, self.load_snapshot(&id)?))))
                .collect()
        })?;
        sorted_with_damage(names, loaded)
    }

    /// The id a snapshot spec names, without reading the snapshot when the spec is an id
    /// prefix: a snapshot that cannot be read can still be named (to remove it).
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId> {
        if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            let spec_lc = spec.to_ascii_lowercase();
            let matches: Vec<String> = self
                .backend
                .list(FileType::Snapshot)?
                .into_iter()
                .filter(|n| n.starts_with(&spec_lc))
                .collect();
            if let [one] = matches.as_slice() {
                return SnapshotId::from_hex(one);
            }
        }
        self.find_snapshot(spec).map(|(id, _)| id)
    }

    /// A snapshot named by `latest`, a full id, a unique id prefix, or its name (label
    /// `name`, set by a job's snapshot-name template). An id prefix wins over a name.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            let (mut good, damaged) = self.snapshots_and_damage()?;
            latest_is_decidable(&damaged)?;
            return good
                .pop()
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "the repository has no snapshots yet"));
        }
        if spec.is_empty() {
            return Err(Error::invalid(
                "empty snapshot name: give 'latest', an id prefix or a snapshot name",
            ));
        }
        if spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            let spec_lc = spec.to_ascii_lowercase();
            let matches: Vec<String> = self
                .backend
                .list(FileType::Snapshot)?
                .into_iter()
                .filter(|n| n.starts_with(&spec_lc))
                .collect();
            match matches.as_slice() {
                [one] => {
                    let id = SnapshotId::from_hex(one)?;
                    return Ok((id, self.load_snapshot(&id)?));
                }
                [] => {}
                many => {
                    return Err(Error::invalid(format!(
                        "'{spec}' matches {} snapshots; give more digits of the id",
                        many.len()
                    )))
                }
            }
        }
        // Not an id: a name given by a job's snapshot-name template (label `name`).
        let mut named: Vec<(SnapshotId, Snapshot)> = self
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| s.labels.iter().any(|(k, v)| k == "name" && v == spec))
            .collect();
        match named.len() {
            1 => Ok(named.remove(0)),
            0 => Err(Error::new(
                ErrorKind::NotFound,
                format!("no snapshot has an id starting with '{spec}' or the name '{spec}'; `cairn snapshots` lists them"),
            )),
            n => Err(Error::invalid(format!("{n} snapshots are named '{spec}'; give an id instead"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> InitOptions {
        InitOptions::default()
    }

    #[test]
    fn init_open_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap();
        let r = Repository::init(loc, b"pw", &fast(), None).unwrap();
        let again = Repository::open(loc, b"pw", &KeySource::Stored).unwrap();
        assert_eq!(again.config(), r.config());
        assert_eq!(again.key_id(), r.key_id());
        assert_eq!(
            Repository::open(loc, b"nope", &KeySource::Stored).err().unwrap().kind(),
            ErrorKind::WrongPassword
        );
        assert_eq!(
            Repository::init(loc, b"pw", &fast(), None).err().unwrap().kind(),
            ErrorKind::AlreadyExists
        );
        let empty = dir.path().join("none");
        assert_eq!(
            Repository::open(empty.to_str().unwrap(), b"pw", &KeySource::Stored).err().unwrap().kind(),
            ErrorKind::NotARepository
        );
        assert_eq!(r.find_snapshot("latest").err().unwrap().kind(), ErrorKind::NotFound);
        // Not hex: it could be a snapshot name, and none has it.
        assert_eq!(r.find_snapshot("xyz").err().unwrap().kind(), ErrorKind::NotFound);
        assert_eq!(r.find_snapshot("").err().unwrap().kind(), ErrorKind::InvalidInput);
    }
}
