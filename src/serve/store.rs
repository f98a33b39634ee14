//! The repositories a server holds: each a store of its own under the root, a quarantine
//! that deletes go to, and what the server tracks for quotas, metrics and lock owners.
//! Every call here blocks; the HTTP layer runs them off its event loop.

use super::names::ObjectName;
use crate::backend::{Backend, FileType};
use crate::error::{ErrorKind, Result};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Bytes and objects a repository holds, kept current as objects come and go.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub bytes: u64,
    pub objects: [u64; 7],
    /// When the newest snapshot arrived.
    pub newest_snapshot: Option<SystemTime>,
}

pub struct RepoStore {
    pub name: String,
    live: Box<dyn Backend>,
    /// The repository's folder, on a local root: writes wait for its creation there.
    live_root: Option<PathBuf>,
    quarantine: Box<dyn Backend>,
    /// The quarantine's folder on a local root, made at the first delete.
    quarantine_root: Option<PathBuf>,
    /// Whether the quarantine's layout is made (once per run).
    quarantine_made: std::sync::atomic::AtomicBool,
    usage: Mutex<Option<Usage>>,
    /// Objects being received: a second upload of the same name meanwhile is a conflict.
    receiving: Mutex<HashSet<(FileType, String)>>,
    /// Which token made each lock, so read and append tokens delete only their own; also
    /// kept as one small file per lock in `owners_dir`, so a restart forgets none.
    lock_owners: Mutex<HashMap<String, String>>,
    owners_dir: Option<PathBuf>,
}

fn type_index(ft: FileType) -> usize {
    FileType::ALL.iter().position(|&t| t == ft).expect("every type is in ALL")
}

/// Why a write was refused, for the HTTP status.
#[derive(Debug)]
pub enum Refusal {
    Exists,
    OverQuota { used: u64, quota: u64 },
    NotARepository,
}

impl RepoStore {
    fn new(root: &str, name: &str, state: Option<&std::path::Path>) -> Result<RepoStore> {
        let live = join(root, name);
        let quarantine = join(root, &format!("{QUARANTINE}/{name}"));
        let local = |l: &str| (!crate::backend::is_remote(l)).then(|| PathBuf::from(l));
        Ok(RepoStore {
            name: name.to_string(),
            live: crate::backend::open(&live)?,
            live_root: local(&live),
            quarantine: crate::backend::open(&quarantine)?,
            quarantine_root: local(&quarantine),
            quarantine_made: std::sync::atomic::AtomicBool::new(false),
            usage: Mutex::new(None),
            receiving: Mutex::new(HashSet::new()),
            lock_owners: Mutex::new(HashMap::new()),
            owners_dir: state.map(|s| s.join("lock-owners").join(name)),
        })
    }

    pub fn exists(&self) -> Result<bool> {
        self.live.exists(FileType::Config, "config")
    }

    /// Create the repository's folders (the config comes as its first object).
    pub fn create(&self) -> Result<()> {
        self.live.create()
    }

    /// Bytes and objects now, counted from the store the first time.
    pub fn usage(&self) -> Result<Usage> {
        let mut slot = self.usage.lock().expect("usage lock");
        if let Some(u) = *slot {
            return Ok(u);
        }
        let mut u = Usage::default();
        for ft in FileType::ALL {
            for entry in self.list(ft)? {
                u.bytes += entry.size;
                u.objects[type_index(ft)] += 1;
                if ft == FileType::Snapshot {
                    u.newest_snapshot = u.newest_snapshot.max(entry.modified);
                }
            }
        }
        *slot = Some(u);
        Ok(u)
    }

    fn account(&self, ft: FileType, bytes: u64, added: bool) {
        if let Some(u) = self.usage.lock().expect("usage lock").as_mut() {
            let i = type_index(ft);
            if added {
                u.bytes += bytes;
                u.objects[i] += 1;
                if ft == FileType::Snapshot {
                    u.newest_snapshot = Some(SystemTime::now());
                }
            } else {
                u.bytes = u.bytes.saturating_sub(bytes);
                u.objects[i] = u.objects[i].saturating_sub(1);
            }
        }
    }

    /// Every object of a type, with its size and arrival (in one listing on S3).
    pub fn list(&self, ft: FileType) -> Result<Vec<Listed>> {
        self.live.list_detailed(ft)
    }

    pub fn read(&self, name: &ObjectName, range: Option<(u64, u64)>) -> Result<Vec<u8>> {
        match range {
            Some((offset, len)) => self.live.read_range(name.ft, &name.name, offset, len),
            None => self.live.read(name.ft, &name.name, name.ft.size_limit()),
        }
    }

    /// Size and arrival time of one object.
    pub fn stat(&self, name: &ObjectName) -> Result<(u64, Option<SystemTime>)> {
        Ok((self.live.size(name.ft, &name.name)?, self.live.modified(name.ft, &name.name)?))
    }

    /// Store a new object whose bytes were checked against its name. Existing names are
    /// never replaced, but for the config when `replace_config` says so (an admin token's
    /// key rotation): the old config goes to the quarantine first. `owner` is the token's
    /// name (remembered for locks).
    pub fn create_object(
        &self,
        name: &ObjectName,
        bytes: &[u8],
        quota: Option<u64>,
        owner: &str,
        replace_config: bool,
    ) -> Result<std::result::Result<(), Refusal>> {
        // `init` writes its key before the config; on a local root the folders made by a
        // create come first (a bucket needs none).
        if self.live_root.as_ref().is_some_and(|r| !r.is_dir()) {
            return Ok(Err(Refusal::NotARepository));
        }
        let key = (name.ft, name.name.clone());
        if !self.receiving.lock().expect("receiving lock").insert(key.clone()) {
            return Ok(Err(Refusal::Exists));
        }
        let result = if replace_config
            && name.ft == FileType::Config
            && self.live.exists(name.ft, &name.name)?
        {
            self.keep_in_quarantine(name).and_then(|()| self.live.write(name.ft, &name.name, bytes)).map(Ok)
        } else {
            self.create_unique(name, bytes, quota, owner)
        };
        self.receiving.lock().expect("receiving lock").remove(&key);
        result
    }

    fn create_unique(
        &self,
        name: &ObjectName,
        bytes: &[u8],
        quota: Option<u64>,
        owner: &str,
    ) -> Result<std::result::Result<(), Refusal>> {
        if self.live.exists(name.ft, &name.name)? {
            return Ok(Err(Refusal::Exists));
        }
        if let Some(quota) = quota {
            let used = self.usage()?.bytes;
            if used + bytes.len() as u64 > quota {
                return Ok(Err(Refusal::OverQuota { used, quota }));
            }
        }
        self.live.write(name.ft, &name.name, bytes)?;
        self.account(name.ft, bytes.len() as u64, true);
        if name.ft == FileType::Lock {
            self.lock_owners.lock().expect("owners lock").insert(name.name.clone(), owner.to_string());
            if let Some(dir) = &self.owners_dir {
                // Lost only if the server dies right here; the lock then goes stale.
                let _ = crate::sys::create_private_dir(dir)
                    .and_then(|_| crate::sys::write_private_file(&dir.join(&name.name), owner.as_bytes()));
            }
        }
        Ok(Ok(()))
    }

    /// Who made a lock, as far as this server run knows.
    pub fn lock_owner(&self, name: &str) -> Option<String> {
        if let Some(o) = self.lock_owners.lock().expect("owners lock").get(name) {
            return Some(o.clone());
        }
        let file = self.owners_dir.as_ref()?.join(name);
        let mut owner = String::new();
        use std::io::Read;
        std::fs::File::open(file).ok()?.take(256).read_to_string(&mut owner).ok()?;
        Some(owner)
    }

    /// Delete an object. Locks go at once; everything else is moved to the quarantine,
    /// from which `undelete` brings it back until it expires.
    pub fn delete(&self, name: &ObjectName) -> Result<()> {
        let size = self.live.size(name.ft, &name.name)?;
        if name.ft != FileType::Lock {
            self.keep_in_quarantine(name)?;
        }
        self.live.remove(name.ft, &name.name)?;
        if name.ft == FileType::Lock {
            self.lock_owners.lock().expect("owners lock").remove(&name.name);
            if let Some(dir) = &self.owners_dir {
                let _ = std::fs::remove_file(dir.join(&name.name));
            }
        }
        self.account(name.ft, size, false);
        Ok(())
    }

    /// A copy of the stored object in the quarantine.
    fn keep_in_quarantine(&self, name: &ObjectName) -> Result<()> {
        let bytes = self.live.read(name.ft, &name.name, name.ft.size_limit())?;
        if !self.quarantine_made.load(std::sync::atomic::Ordering::Relaxed) {
            if self.quarantine_root.as_ref().is_none_or(|r| !r.exists()) {
                // Two first deletions at once: the second finds the folders made.
                let _ = self.quarantine.create();
            }
            self.quarantine_made.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.quarantine.write(name.ft, &name.name, &bytes)
    }

    /// Bring back quarantined objects deleted within `since` (all if None) that are not in
    /// the repository; returns how many came back.
    pub fn undelete(&self, since: Option<Duration>) -> Result<u64> {
        let cutoff = since.map(|d| SystemTime::now() - d);
        let mut restored = 0;
        for ft in FileType::ALL {
            for entry in self.quarantined(ft)? {
                // The time it was moved to the quarantine: when it was deleted.
                if cutoff.is_some_and(|c| entry.modified.is_some_and(|d| d < c)) {
                    continue;
                }
                if !self.live.exists(ft, &entry.name)? {
                    let bytes = self.quarantine.read(ft, &entry.name, ft.size_limit())?;
                    self.live.write(ft, &entry.name, &bytes)?;
                    restored += 1;
                }
                self.quarantine.remove(ft, &entry.name)?;
            }
        }
        *self.usage.lock().expect("usage lock") = None;
        Ok(restored)
    }

    /// Delete quarantined objects older than `keep`; returns how many went.
    pub fn expire(&self, keep: Duration) -> Result<u64> {
        let cutoff = SystemTime::now() - keep;
        let mut gone = 0;
        for ft in FileType::ALL {
            for entry in self.quarantined(ft)? {
                if entry.modified.is_some_and(|t| t < cutoff) {
                    self.quarantine.remove(ft, &entry.name)?;
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }

    /// What the quarantine holds of a type (nothing before the first delete).
    fn quarantined(&self, ft: FileType) -> Result<Vec<Listed>> {
        match self.quarantine.list_detailed(ft) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }
}

pub use crate::backend::Listed;

/// Where deleted objects go, beside the repositories: `ROOT/.cairn-serve/quarantine/REPO`
/// in the layout of a repository. No repository name starts with a dot.
const QUARANTINE: &str = ".cairn-serve/quarantine";

/// A location below `root`.
fn join(root: &str, name: &str) -> String {
    format!("{}/{name}", root.trim_end_matches('/'))
}

/// Every repository under a root, opened on first use.
pub struct Repos {
    root: String,
    /// The server's state folder (lock owners); None for offline work (undelete).
    state: Option<PathBuf>,
    open: Mutex<HashMap<String, Arc<RepoStore>>>,
}

impl Repos {
    pub fn new(root: &str, state: Option<&std::path::Path>) -> Repos {
        Repos { root: root.to_string(), state: state.map(PathBuf::from), open: Mutex::new(HashMap::new()) }
    }

    /// The store of repository `name` (which must be a valid name).
    pub fn get(&self, name: &str) -> Result<Arc<RepoStore>> {
        let mut open = self.open.lock().expect("repos lock");
        if let Some(s) = open.get(name) {
            return Ok(s.clone());
        }
        let store = Arc::new(RepoStore::new(&self.root, name, self.state.as_deref())?);
        open.insert(name.to_string(), store.clone());
        Ok(store)
    }
}
