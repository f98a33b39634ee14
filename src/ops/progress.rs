//! Progress of a running backup, shared between the workers that advance it and whoever
//! displays it. Totals come from a separate scan of the sources, which may finish after
//! the backup has started (or never, for a stream).

use crate::ops::exclude::Excludes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Progress {
    /// Whether anyone shows totals: only then does the backup scan the sources for them
    /// (a second stat of every file).
    pub want_totals: AtomicBool,
    /// Files finished (read, or found unchanged).
    pub files: AtomicU64,
    /// Bytes of finished files and of the current chunks read.
    pub bytes: AtomicU64,
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    /// Set when the totals are complete.
    pub scanned: AtomicBool,
    /// Bytes the backup stored in the repository, set when it ends (also when it fails or
    /// is interrupted: what it stored stays, indexed, for the next run).
    pub stored: AtomicU64,
    current: Mutex<PathBuf>,
}

impl Progress {
    pub fn set_current(&self, path: &Path) {
        if let Ok(mut c) = self.current.lock() {
            c.clear();
            c.push(path);
        }
    }

    pub fn current(&self) -> PathBuf {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Count files and bytes below `sources` as a backup with `excludes` would see them.
    /// Best effort: unreadable entries are skipped; stops early when `stop` is set.
    pub fn scan(&self, sources: &[PathBuf], excludes: &Excludes, stop: &AtomicBool) {
        let mut stack: Vec<PathBuf> = sources.to_vec();
        while let Some(p) = stack.pop() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
            if excludes.excludes_path(&p, md.is_dir()) {
                continue;
            }
            if md.is_dir() {
                if excludes.excludes_folder_contents(&p) {
                    continue;
                }
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if md.is_file() && !excludes.excludes_size(md.len()) {
                self.total_files.fetch_add(1, Ordering::Relaxed);
                self.total_bytes.fetch_add(md.len(), Ordering::Relaxed);
            }
        }
        self.scanned.store(true, Ordering::Relaxed);
    }
}
