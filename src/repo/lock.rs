//! Locks: shared for operations that add or read (backup, restore, check), exclusive for
//! those that delete (forget, prune). The protocol is in format-spec/locks.md: write
//! your own lock, then list; back off if a live conflicting lock is there. A held lock is
//! refreshed by a background thread so a long run is never taken for a dead one; a lock
//! whose process is gone (same host) or that was not refreshed within the timeout is
//! stale and ignored, and `cairn unlock` removes it.
//!
//! Locks are not a security boundary, and anyone who can write to the storage can plant
//! files in `locks/`: a lock that does not open (damaged, planted, another repository's,
//! or too large to be one) counts as stale, so it never blocks anyone; `check` reports
//! it and `unlock` removes it.

use super::Repository;
use crate::backend::FileType;
use crate::crypto::keys::RepoKeys;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType};
use crate::format::lock::Lock;
use crate::format::Timespec;
use crate::id::hex_encode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is rewritten.
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A lock found in the repository.
#[derive(Clone, Debug)]
pub struct FoundLock {
    pub name: String,
    /// `None` when the lock object cannot be opened (it is then stale).
    pub lock: Option<Lock>,
    pub stale: bool,
}

impl FoundLock {
    pub fn describe(&self) -> String {
        match &self.lock {
            Some(l) => format!(
                "{} lock by {}@{} pid {} for {} since {}s ago",
                if l.exclusive { "exclusive" } else { "shared" },
                l.user,
                l.host,
                l.pid,
                l.operation,
                Timespec::now().secs - l.time.secs
            ),
            None => format!("unreadable lock {}", self.name),
        }
    }
}

/// Held while the operation runs; removes its lock when dropped.
pub struct LockGuard<'r> {
    repo: &'r Repository,
    name: Arc<Mutex<String>>,
    /// The keys the lock is sealed with (the refresher's too).
    keys: Arc<Mutex<Arc<RepoKeys>>>,
    /// Whether it is held exclusive now (a key rotation lets backups go on for a while).
    exclusive: Arc<AtomicBool>,
    operation: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl LockGuard<'_> {
    /// Seal the lock anew with `keys` (a key rotation's new epoch), and refresh it with
    /// them from now on: written before the old one is removed, so it never disappears,
    /// and it stays readable by every key once the old epoch is gone.
    pub fn seal_under(&self, keys: Arc<RepoKeys>) -> Result<()> {
        let mut name = self.name.lock().expect("lock name");
        let new =
            write_lock(self.repo.backend(), &keys, self.exclusive.load(Ordering::SeqCst), &self.operation)?;
        let old = std::mem::replace(&mut *name, new);
        *self.keys.lock().expect("lock keys") = keys;
        self.repo.backend().remove(FileType::Lock, &old)
    }

    /// Hold the lock shared from now on, so that backups may run beside the rest of the
    /// operation: the shared lock is written before the exclusive one is removed, so the
    /// repository is never unlocked in between.
    pub fn make_shared(&self) -> Result<()> {
        let mut name = self.name.lock().expect("lock name");
        let keys = self.keys.lock().expect("lock keys").clone();
        let new = write_lock(self.repo.backend(), &keys, false, &self.operation)?;
        self.exclusive.store(false, Ordering::SeqCst);
        let old = std::mem::replace(&mut *name, new);
        self.repo.backend().remove(FileType::Lock, &old)
    }

    /// Hold the lock exclusive again, waiting (backing off from 1 s to 30 s; `say` is
    /// told what it waits for) until no other live lock is there. Until then it stays
    /// shared; an interrupt ends the wait.
    pub fn make_exclusive_waiting(&self, say: &dyn Fn(&str), interrupt: &AtomicBool) -> Result<()> {
        let mut pause = Duration::from_secs(1);
        loop {
            let keys = self.keys.lock().expect("lock keys").clone();
            let exclusive = write_lock(self.repo.backend(), &keys, true, &self.operation)?;
            let own = self.name.lock().expect("lock name").clone();
            let others: Vec<FoundLock> = self
                .repo
                .locks_opened_with(&keys, &[&exclusive, &own])?
                .into_iter()
                .filter(|f| !f.stale)
                .collect();
            let Some(other) = others.first() else {
                let mut name = self.name.lock().expect("lock name");
                self.exclusive.store(true, Ordering::SeqCst);
                let old = std::mem::replace(&mut *name, exclusive);
                return self.repo.backend().remove(FileType::Lock, &old);
            };
            self.repo.backend().remove(FileType::Lock, &exclusive)?;
            let what = match others.len() {
                1 => "another lock".to_string(),
                n => format!("{n} other locks"),
            };
            say(&format!("waiting for {what} to end: {}", other.describe()));
            let until = std::time::Instant::now() + pause;
            while std::time::Instant::now() < until {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        format!("{} interrupted while waiting for the other locks to end", self.operation),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        *self.stop.0.lock().expect("lock stop") = true;
        self.stop.1.notify_all();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let name = self.name.lock().expect("lock name").clone();
        let _ = self.repo.backend().remove(FileType::Lock, &name);
    }
}

fn is_stale(l: &Lock, now: Timespec) -> bool {
    if now.secs - l.time.secs > STALE_AFTER.as_secs() as i64 {
        return true;
    }
    l.host == crate::sys::hostname() && !process_exists(l.pid)
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Repository {
    /// Every lock in the repository, with whether it is stale.
    pub fn locks(&self) -> Result<Vec<FoundLock>> {
        self.locks_but(None)
    }

    /// Every lock but the one named `own` (which this process wrote and need not read
    /// back), read many at once: on a remote store each read is a round trip.
    fn locks_but(&self, own: Option<&str>) -> Result<Vec<FoundLock>> {
        self.locks_opened_with(&self.keys, own.as_slice())
    }

    /// Every lock but those named in `own`, opened with `keys`.
    fn locks_opened_with(&self, keys: &RepoKeys, own: &[&str]) -> Result<Vec<FoundLock>> {
        use rayon::prelude::*;
        let now = Timespec::now();
        let mut names = self.backend.list(FileType::Lock)?;
        names.retain(|n| !own.contains(&n.as_str()));
        crate::ops::read_pool::install(self, || {
            names
                .into_par_iter()
                .map(|name| {
                    let lock = self
                        .backend
                        .read(FileType::Lock, &name, FileType::Lock.size_limit())
                        .and_then(|b| envelope::open(keys, ObjectType::Lock, &b))
                        .and_then(|p| Lock::decode(&p))
                        .ok();
                    let stale = lock.as_ref().is_none_or(|l| is_stale(l, now));
                    FoundLock { name, lock, stale }
                })
                .collect()
        })
    }

    fn write_lock(&self, exclusive: bool, operation: &str) -> Result<String> {
        write_lock(self.backend.as_ref(), &self.keys, exclusive, operation)
    }

    /// Take a lock for `operation`; fails with `Locked` while a live conflicting lock exists.
    pub fn lock(&self, exclusive: bool, operation: &str) -> Result<LockGuard<'_>> {
        let own = self.write_lock(exclusive, operation)?;
        self.start_listings();
        let conflicts: Vec<FoundLock> = self
            .locks_but(Some(&own))?
            .into_iter()
            .filter(|f| !f.stale)
            .filter(|f| exclusive || f.lock.as_ref().is_some_and(|l| l.exclusive))
            .collect();
        if let Some(c) = conflicts.first() {
            // Listings made while another process holds the repository are not relied on.
            self.backend.list_ahead(&[]);
            let _ = self.backend.remove(FileType::Lock, &own);
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "repository is locked: {}; wait for it, or if that process is gone run `cairn unlock`",
                    c.describe()
                ),
            ));
        }
        let name = Arc::new(Mutex::new(own));
        let keys = Arc::new(Mutex::new(self.keys.clone()));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let exclusive = Arc::new(AtomicBool::new(exclusive));
        let refresher = self.spawn_refresher(
            name.clone(),
            keys.clone(),
            stop.clone(),
            exclusive.clone(),
            operation.to_string(),
        );
        Ok(LockGuard { repo: self, name, keys, exclusive, operation: operation.to_string(), stop, refresher })
    }

    /// [`Repository::lock`], waiting up to `wait` while another process holds a
    /// conflicting lock (a shared repository: another host's backup while this one
    /// prunes). Tries again after 1 s, then doubling up to 30 s, never past `wait`; an
    /// interrupt ends the wait. A wait of zero is one try.
    pub fn lock_waiting(
        &self,
        exclusive: bool,
        operation: &str,
        wait: std::time::Duration,
        interrupt: &std::sync::atomic::AtomicBool,
    ) -> Result<LockGuard<'_>> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_secs(1);
        loop {
            let err = match self.lock(exclusive, operation) {
                Err(e) if e.kind() == ErrorKind::Locked => e,
                other => return other,
            };
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(match wait.is_zero() {
                    true => err,
                    false => err.wrap(format!("still locked after waiting {} s", wait.as_secs())),
                });
            }
            let until = std::time::Instant::now() + pause.min(left);
            while std::time::Instant::now() < until {
                if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        format!("{operation} interrupted while waiting for a lock"),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            pause = (pause * 2).min(std::time::Duration::from_secs(30));
        }
    }

    /// Rewrite the lock every REFRESH_EVERY until stopped: write the new one, then remove
    /// the old one, so the lock never disappears while held.
    fn spawn_refresher(
        &self,
        name: Arc<Mutex<String>>,
        keys: Arc<Mutex<Arc<RepoKeys>>>,
        stop: Arc<(Mutex<bool>, Condvar)>,
        exclusive: Arc<AtomicBool>,
        operation: String,
    ) -> Option<std::thread::JoinHandle<()>> {
        let backend = self.backend.clone();
        Some(std::thread::spawn(move || loop {
            let (flag, cv) = &*stop;
            let guard = flag.lock().expect("lock stop");
            if *guard {
                return; // stopped before this thread first waited
            }
            let (guard, timeout) = cv.wait_timeout(guard, REFRESH_EVERY).expect("lock stop");
            if *guard {
                return;
            }
            drop(guard);
            if timeout.timed_out() {
                let mut name = name.lock().expect("lock name");
                let keys = keys.lock().expect("lock keys").clone();
                if let Ok(new) =
                    write_lock(backend.as_ref(), &keys, exclusive.load(Ordering::SeqCst), &operation)
                {
                    let old = std::mem::replace(&mut *name, new);
                    let _ = backend.remove(FileType::Lock, &old);
                }
            }
        }))
    }

    /// Remove stale locks (or, with `all`, every lock). Returns the removed locks.
    pub fn unlock(&self, all: bool) -> Result<Vec<FoundLock>> {
        let mut removed = Vec::new();
        for f in self.locks()? {
            if all || f.stale {
                self.backend.remove(FileType::Lock, &f.name)?;
                removed.push(f);
            }
        }
        Ok(removed)
    }
}

fn write_lock(
    backend: &dyn crate::backend::Backend,
    keys: &RepoKeys,
    exclusive: bool,
    operation: &str,
) -> Result<String> {
    let lock = Lock {
        time: Timespec::now(),
        host: crate::sys::hostname(),
        user: crate::sys::username(),
        pid: std::process::id(),
        exclusive,
        operation: operation.into(),
    };
    let bytes = envelope::seal(keys, ObjectType::Lock, &lock.encode())?;
    let name = hex_encode(blake3::hash(&bytes).as_bytes());
    backend.write(FileType::Lock, &name, &bytes)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::InitOptions;

    fn plant(repo: &Repository, pid: u32, age_secs: i64, exclusive: bool) {
        let mut time = Timespec::now();
        time.secs -= age_secs;
        let lock = Lock {
            time,
            host: crate::sys::hostname(),
            user: "u".into(),
            pid,
            exclusive,
            operation: "x".into(),
        };
        let bytes = envelope::seal(&repo.keys, ObjectType::Lock, &lock.encode()).unwrap();
        repo.backend.write(FileType::Lock, &hex_encode(blake3::hash(&bytes).as_bytes()), &bytes).unwrap();
    }

    #[test]
    fn shared_locks_coexist_exclusive_ones_do_not_and_stale_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let opts = InitOptions::default();
        let repo = Repository::init(loc.to_str().unwrap(), b"pw", &opts, None).unwrap();
        {
            let _a = repo.lock(false, "backup").unwrap();
            let _b = repo.lock(false, "backup").unwrap();
            assert_eq!(repo.lock(true, "prune").err().unwrap().kind(), ErrorKind::Locked);
            assert_eq!(repo.locks().unwrap().len(), 2, "the refused lock was removed again");
        }
        assert!(repo.locks().unwrap().is_empty(), "dropping a guard removes its lock");
        let _x = repo.lock(true, "prune").unwrap();
        let err = repo.lock(false, "backup").err().unwrap();
        assert!(err.to_string().contains("cairn unlock"), "{err}");
        drop(_x);

        // A live process's lock blocks; a dead process's or an old one does not.
        plant(&repo, std::process::id(), 0, true);
        assert!(repo.lock(false, "backup").is_err());
        assert_eq!(repo.unlock(false).unwrap().len(), 0);
        assert_eq!(repo.unlock(true).unwrap().len(), 1);
        // A lock that does not open never blocks, and unlock removes it.
        repo.backend.write(FileType::Lock, &"ab".repeat(32), b"planted").unwrap();
        drop(repo.lock(true, "prune").unwrap());
        assert_eq!(repo.unlock(false).unwrap().len(), 1);
        plant(&repo, u32::MAX - 1, 0, true);
        plant(&repo, std::process::id(), STALE_AFTER.as_secs() as i64 + 60, true);
        assert!(repo.locks().unwrap().iter().all(|l| l.stale));
        drop(repo.lock(true, "prune").unwrap());
        assert_eq!(repo.unlock(false).unwrap().len(), 2);
        assert!(repo.locks().unwrap().is_empty());
    }
}
