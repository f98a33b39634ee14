//! Limits an operator sets on a store: `--connections N`, the most requests in flight
//! at once (uploads and reads alike), and `--limit-upload` and `--limit-download`: a
//! store's traffic paced to a rate, in KiB/s (1024 bytes), shared by every thread of the
//! process. Each transfer takes the next free
//! slot of its length at the rate and waits until that slot has passed, so over any
//! stretch of time no more than the rate goes through (the first transfer excepted).
//! The wait ends early, with `Interrupted`, when the command is interrupted.
//!
//! The wrapper sits right around the store (inside retries), so a retried upload pays
//! again, as it crosses the link again.

use super::{Backend, FileType, Leftover, Listed};
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The limits of this process: KiB/s up and down (None: unlimited), and the flag that
/// interrupts a wait.
#[derive(Clone, Default)]
pub struct Limits {
    pub upload_kib: Option<u64>,
    pub download_kib: Option<u64>,
    /// The most uploads, and the most reads, in flight at once.
    pub connections: Option<usize>,
    pub interrupt: Option<Arc<AtomicBool>>,
}

fn configured() -> &'static Mutex<Limits> {
    static LIMITS: OnceLock<Mutex<Limits>> = OnceLock::new();
    LIMITS.get_or_init(|| Mutex::new(Limits::default()))
}

/// Set the limits every store opened from now on obeys (the command line does, once).
pub fn set(limits: Limits) {
    *configured().lock().expect("limits lock") = limits;
}

/// One direction's pace: the moment the link is free again.
struct Pace {
    bytes_per_sec: f64,
    free_at: Mutex<Instant>,
}

impl Pace {
    fn new(kib: u64) -> Pace {
        Pace { bytes_per_sec: kib.max(1) as f64 * 1024.0, free_at: Mutex::new(Instant::now()) }
    }

    /// Wait until `bytes` have had their time on the link.
    fn pay(&self, bytes: usize, interrupt: Option<&AtomicBool>) -> Result<()> {
        let until = {
            let mut free_at = self.free_at.lock().expect("pace lock");
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
            *free_at
        };
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if interrupt.is_some_and(|i| i.load(Ordering::Relaxed)) {
                return Err(Error::new(ErrorKind::Interrupted, "interrupted while pacing a transfer"));
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
    }
}

pub struct LimitedBackend {
    inner: Box<dyn Backend>,
    up: Option<Pace>,
    down: Option<Pace>,
    connections: Option<usize>,
    interrupt: Option<Arc<AtomicBool>>,
}

/// `store` paced as [`set`] said; the store itself when no limit is set.
pub fn wrap(store: Box<dyn Backend>) -> Box<dyn Backend> {
    let limits = configured().lock().expect("limits lock").clone();
    if limits.upload_kib.is_none() && limits.download_kib.is_none() && limits.connections.is_none() {
        return store;
    }
    Box::new(LimitedBackend {
        inner: store,
        up: limits.upload_kib.map(Pace::new),
        down: limits.download_kib.map(Pace::new),
        connections: limits.connections.map(|c| c.max(1)),
        interrupt: limits.interrupt,
    })
}

impl LimitedBackend {
    fn down(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if let Some(p) = &self.down {
            p.pay(bytes.len(), self.interrupt.as_deref())?;
        }
        Ok(bytes)
    }
}

impl Backend for LimitedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.down(self.inner.read(ft, name, max)?)
    }
    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.down(self.inner.read_range(ft, name, offset, len)?)
    }
    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        if let Some(p) = &self.up {
            p.pay(bytes.len(), self.interrupt.as_deref())?;
        }
        self.inner.write(ft, name, bytes)
    }
    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        self.inner.list(ft)
    }
    fn list_detailed(&self, ft: FileType) -> Result<Vec<Listed>> {
        self.inner.list_detailed(ft)
    }
    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.inner.size(ft, name)
    }
    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        self.inner.remove(ft, name)
    }
    fn write_parallelism(&self) -> usize {
        self.connections.unwrap_or_else(|| self.inner.write_parallelism())
    }
    fn read_parallelism(&self) -> usize {
        self.connections.unwrap_or_else(|| self.inner.read_parallelism())
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>> {
        self.inner.leftovers(age)
    }
    fn remove_leftover(&self, path: &str) -> Result<()> {
        self.inner.remove_leftover(path)
    }
    fn modified(&self, ft: FileType, name: &str) -> Result<Option<SystemTime>> {
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

    #[test]
    fn connections_set_how_many_requests_are_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let local = || Box::new(super::super::local::LocalBackend::new(dir.path())) as Box<dyn Backend>;
        set(Limits { connections: Some(6), ..Limits::default() });
        let b = wrap(local());
        assert_eq!((b.write_parallelism(), b.read_parallelism()), (6, 6));
        set(Limits::default());
        let b = wrap(local());
        assert_eq!(b.write_parallelism(), 1, "unlimited: the store's own");
    }

    #[test]
    fn a_pace_lets_through_no_more_than_its_rate_and_stops_when_interrupted() {
        let pace = Pace::new(100); // 100 KiB/s
        let started = Instant::now();
        for _ in 0..3 {
            pace.pay(10 << 10, None).unwrap(); // 10 KiB: 0.1 s of the link each
        }
        assert!(started.elapsed() >= Duration::from_millis(290), "{:?}", started.elapsed());
        let stop = AtomicBool::new(true);
        let e = pace.pay(1 << 30, Some(&stop)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
    }
}
