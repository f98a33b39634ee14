//! The repositories a server holds: each a store of its own under the root, a quarantine
//! that deletes go to, and what the server tracks for quotas, metrics and lock owners.
//! Every call here blocks; the HTTP layer runs them off its event loop.

use super::names::ObjectName;
use crate::backend::{local::LocalBackend, Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
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
    live_root: PathBuf,
    quarantine: Box<dyn Backend>,
    quarantine_root: PathBuf,
    usage: Mutex<Option<Usage>>,
    /// Objects being received: a second upload of the same name meanwhile is a conflict.
    receiving: Mutex<HashSet<(FileType, String)>>,
    /// Which token made each lock, so read and append tokens delete only their own.
    lock_owners: Mutex<HashMap<String, String>>,
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
    fn new(root: &Path, name: &str) -> RepoStore {
        RepoStore {
            name: name.to_string(),
            live: Box::new(LocalBackend::new(root.join(name))),
            live_root: root.join(name),
            quarantine: Box::new(LocalBackend::new(quarantine_dir(root).join(name))),
            quarantine_root: quarantine_dir(root).join(name),
            usage: Mutex::new(None),
            receiving: Mutex::new(HashSet::new()),
            lock_owners: Mutex::new(HashMap::new()),
        }
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
                    u.newest_snapshot = u.newest_snapshot.max(entry.arrived);
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

    pub fn list(&self, ft: FileType) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for name in self.live.list(ft)? {
            // An object deleted between the listing and the look is simply not listed.
            let size = match self.live.size(ft, &name) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let arrived = self.live.modified(ft, &name)?;
            out.push(Listed { name, size, arrived });
        }
        Ok(out)
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
    /// never replaced; `owner` is the token's name (remembered for locks).
    pub fn create_object(
        &self,
        name: &ObjectName,
        bytes: &[u8],
        quota: Option<u64>,
        owner: &str,
    ) -> Result<std::result::Result<(), Refusal>> {
        // `init` writes its key before the config; the folders made by a create come first.
        if !self.live_root.is_dir() {
            return Ok(Err(Refusal::NotARepository));
        }
        let key = (name.ft, name.name.clone());
        if !self.receiving.lock().expect("receiving lock").insert(key.clone()) {
            return Ok(Err(Refusal::Exists));
        }
        let result = self.create_unique(name, bytes, quota, owner);
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
        }
        Ok(Ok(()))
    }

    /// Who made a lock, as far as this server run knows.
    pub fn lock_owner(&self, name: &str) -> Option<String> {
        self.lock_owners.lock().expect("owners lock").get(name).cloned()
    }

    /// Delete an object. Locks go at once; everything else is moved to the quarantine,
    /// from which `undelete` brings it back until it expires.
    pub fn delete(&self, name: &ObjectName) -> Result<()> {
        let size = self.live.size(name.ft, &name.name)?;
        if name.ft != FileType::Lock {
            let bytes = self.live.read(name.ft, &name.name, name.ft.size_limit())?;
            if !self.quarantine_root.exists() {
                // Two first deletions at once: the second finds the folders made.
                let _ = self.quarantine.create();
            }
            self.quarantine.write(name.ft, &name.name, &bytes)?;
        }
        self.live.remove(name.ft, &name.name)?;
        self.lock_owners.lock().expect("owners lock").remove(&name.name);
        self.account(name.ft, size, false);
        Ok(())
    }

    /// Bring back quarantined objects deleted within `since` (all if None) that are not in
    /// the repository; returns how many came back.
    pub fn undelete(&self, since: Option<Duration>) -> Result<u64> {
        let cutoff = since.map(|d| SystemTime::now() - d);
        let mut restored = 0;
        for ft in FileType::ALL {
            let names = match self.quarantine.list(ft) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for name in names {
                let deleted = self.quarantine.modified(ft, &name)?;
                if cutoff.is_some_and(|c| deleted.is_some_and(|d| d < c)) {
                    continue;
                }
                if !self.live.exists(ft, &name)? {
                    let bytes = self.quarantine.read(ft, &name, ft.size_limit())?;
                    self.live.write(ft, &name, &bytes)?;
                    restored += 1;
                }
                self.quarantine.remove(ft, &name)?;
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
            let names = match self.quarantine.list(ft) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for name in names {
                if self.quarantine.modified(ft, &name)?.is_some_and(|t| t < cutoff) {
                    self.quarantine.remove(ft, &name)?;
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }
}

/// One listed object.
#[derive(Clone, Debug)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub arrived: Option<SystemTime>,
}

fn quarantine_dir(root: &Path) -> PathBuf {
    super::tokens::state_dir(root).join("quarantine")
}

/// Every repository under a root, opened on first use.
pub struct Repos {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<RepoStore>>>,
}

impl Repos {
    pub fn new(root: &Path) -> Repos {
        Repos { root: root.to_path_buf(), open: Mutex::new(HashMap::new()) }
    }

    /// The store of repository `name` (which must be a valid name).
    pub fn get(&self, name: &str) -> Arc<RepoStore> {
        let mut open = self.open.lock().expect("repos lock");
        open.entry(name.to_string()).or_insert_with(|| Arc::new(RepoStore::new(&self.root, name))).clone()
    }

    /// Names of the repositories under the root (folders holding a config).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| Error::io(format!("cannot list {}", self.root.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if super::tokens::check_repo_name(&name).is_ok() && entry.path().join("config").is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}
