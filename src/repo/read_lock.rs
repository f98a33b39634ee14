//! Locks for commands that only read (snapshots, ls, cat, find, diff, dump, restore,
//! check, mount, stats, drill), on repositories the user may only be able to read.
//!
//! The policy (format-spec/locks.md, "Readers"): a reader takes a shared lock when it
//! can, so that an owner's prune waits for it; when the storage refuses to store the lock
//! because this user may not write there (a read-only mount, read-only S3 credentials, a
//! read-only SFTP account: permission denied or a read-only filesystem), the reader goes
//! on without one and says so once; with `--no-lock` it does not try. Any other failure
//! to lock (a conflicting exclusive lock, an unreachable store) still stops the command.
//! Reading without a lock cannot harm the repository, which it never changes; the one
//! risk is to the reader itself, whose data a concurrent prune may remove: every object
//! is authenticated, so that shows as a clear "not found" error, never as wrong data.

use super::lock::LockGuard;
use super::Repository;
use crate::error::{ErrorKind, Result};

/// Whether a reader tries to lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadLockPolicy {
    /// Take a shared lock; go on without one where the user may not write.
    #[default]
    Try,
    /// Take none (`--no-lock`).
    Skip,
}

/// What a reader holds while it reads.
pub enum ReadLock<'r> {
    Held(LockGuard<'r>),
    /// No lock; `Some(why)` when one was tried and refused (for a warning), `None` when
    /// none was asked for.
    Unlocked(Option<String>),
}

impl ReadLock<'_> {
    /// The warning a command prints once when it reads without the lock it tried.
    pub fn warning(&self) -> Option<&str> {
        match self {
            ReadLock::Unlocked(Some(why)) => Some(why),
            _ => None,
        }
    }
}

impl Repository {
    /// Lock for a command that only reads, following [`ReadLockPolicy`], waiting up to
    /// `wait` while an exclusive lock is held.
    pub fn lock_for_reading(
        &self,
        operation: &str,
        policy: ReadLockPolicy,
        wait: std::time::Duration,
        interrupt: &std::sync::atomic::AtomicBool,
    ) -> Result<ReadLock<'_>> {
        if policy == ReadLockPolicy::Skip {
            self.start_listings();
            return Ok(ReadLock::Unlocked(None));
        }
        match self.lock_waiting(false, operation, wait, interrupt) {
            Ok(guard) => Ok(ReadLock::Held(guard)),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                self.start_listings();
                Ok(ReadLock::Unlocked(Some(format!(
                    "reading without a lock, as this user cannot write to the repository ({e}); a prune \
                     meanwhile could remove what this command reads (--no-lock skips the attempt)"
                ))))
            }
            Err(e) => Err(e),
        }
    }
}
