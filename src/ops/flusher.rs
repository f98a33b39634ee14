//! Writing restored data back to disk while the restore goes on.
//!
//! A restore reports success only once its data is on disk, which takes one flush of the
//! target filesystem at the end. With the kernel's default thresholds (a tenth of memory),
//! nothing is written back before that flush, so a restore of a gigabyte used to wait
//! for the disk for its last 0.7 s with both cores idle. A background thread now flushes
//! each time `FLUSH_EVERY` more bytes have been written, so the disk works while the
//! cores do, and the final flush finds little left.
//!
//! The background flushes use their own handle of the filesystem: a write-back error is
//! reported once per open handle, so the final flush (on the caller's handle) still sees
//! any error that happened in between.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Bytes written between two background flushes.
pub const FLUSH_EVERY: u64 = 64 << 20;

pub struct Flusher {
    every: u64,
    unflushed: AtomicU64,
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<u64>>,
}

impl Flusher {
    /// Flush the filesystem holding `dir` after each `every` bytes reported to `wrote`.
    /// Without a handle (the folder cannot be opened) nothing is flushed early.
    pub fn new(dir: Option<File>, every: u64) -> Self {
        let Some(dir) = dir else {
            return Flusher { every, unflushed: AtomicU64::new(0), wake: None, thread: None };
        };
        let (tx, rx) = sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            let mut flushes = 0;
            while rx.recv().is_ok() {
                // Errors are the final flush's to report (see the module comment).
                let _ = rustix::fs::syncfs(&dir);
                flushes += 1;
            }
            flushes
        });
        Flusher { every, unflushed: AtomicU64::new(0), wake: Some(tx), thread: Some(thread) }
    }

    /// Count `bytes` more written; wakes the flusher when enough have gathered.
    pub fn wrote(&self, bytes: u64) {
        let before = self.unflushed.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes >= self.every
            && self
                .unflushed
                .compare_exchange(before + bytes, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Some(tx) = &self.wake {
                // A flush already pending covers these bytes too.
                let _ = tx.try_send(());
            }
        }
    }

    /// Stop the thread once its pending flush is done; returns how many flushes ran.
    pub fn finish(mut self) -> u64 {
        self.wake.take();
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_run_as_data_gathers_and_stop_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let f = Flusher::new(Some(File::open(dir.path()).unwrap()), 1 << 20);
        f.wrote(512 << 10);
        f.wrote(256 << 10);
        assert_eq!(f.unflushed.load(Ordering::Relaxed), 768 << 10, "below the threshold: no flush yet");
        f.wrote(512 << 10);
        assert_eq!(f.unflushed.load(Ordering::Relaxed), 0, "the threshold started a flush");
        assert_eq!(f.finish(), 1);

        let none = Flusher::new(None, 1);
        none.wrote(10);
        assert_eq!(none.finish(), 0);
    }
}
