//! Retries of transient failures for remote backends: exponential backoff with full
//! jitter, so many clients failing together do not come back together.
//!
//! Only `ErrorKind::Io` is retried: remote backends report network trouble, timeouts and
//! server errors as `Io`, and whatever a retry cannot fix (a missing object or bucket,
//! refused credentials, a full disk) as its own kind, which passes through at once.
//! Retrying is safe because every operation is idempotent on immutable objects: a write
//! stores the same bytes under the same name again, and a `remove` that failed in
//! transit but took effect shows up as `NotFound` on the next try, which counts as done.

use super::{Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one...
    pub base: Duration,
    /// ... up to this.
    pub max: Duration,
}

impl RetryPolicy {
    /// About a minute of trying in all: long enough for a server restart or a network
    /// blip, short enough that a dead server is reported while someone is watching.
    pub const DEFAULT: RetryPolicy =
        RetryPolicy { attempts: 7, base: Duration::from_millis(250), max: Duration::from_secs(20) };

    /// The wait before try `n + 1` after `n` failures: uniform in [0, min(max, base*2^(n-1))].
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let cap = exp.min(self.max);
        let mut r = [0u8; 8];
        // Without randomness the wait is simply the cap: still correct, only less spread.
        let frac = match getrandom::fill(&mut r) {
            Ok(()) => (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 1.0,
        };
        cap.mul_f64(frac)
    }
}

pub struct RetryBackend {
    inner: Box<dyn Backend>,
    policy: RetryPolicy,
}

impl RetryBackend {
    pub fn new(inner: Box<dyn Backend>, policy: RetryPolicy) -> Self {
        // CAIRN_RETRIES overrides the number of tries, for scripts that prefer to fail fast.
        let attempts = std::env::var("CAIRN_RETRIES").ok().and_then(|v| v.parse().ok());
        let policy = RetryPolicy { attempts: attempts.unwrap_or(policy.attempts).max(1), ..policy };
        RetryBackend { inner, policy }
    }

    fn run<T>(&self, what: &str, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut failures = 0;
        loop {
            match op() {
                Err(e) if e.kind() == ErrorKind::Io && failures + 1 < self.policy.attempts => {
                    failures += 1;
                    std::thread::sleep(self.policy.delay(failures));
                }
                Err(e) if e.kind() == ErrorKind::Io && failures > 0 => {
                    return Err(e.wrap(format!("{what} failed {} times", failures + 1)))
                }
                other => return other,
            }
        }
    }
}

impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.run("creating the repository", || self.inner.create())
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.run("reading", || self.inner.read(ft, name, max))
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.run("reading", || self.inner.read_range(ft, name, offset, len))
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.run("writing", || self.inner.write(ft, name, bytes))
    }

    fn arrival_is_authoritative(&self) -> bool {
        self.inner.arrival_is_authoritative()
    }
    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLock> {
        self.inner.object_lock()
    }

    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        self.run("looking up", || self.inner.modified(ft, name))
    }

    fn list_detailed(&self, ft: FileType) -> Result<Vec<super::Listed>> {
        self.run("listing", || self.inner.list_detailed(ft))
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        self.run("listing", || self.inner.list(ft))
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.run("looking up", || self.inner.size(ft, name))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let mut tried = false;
        self.run("deleting", || {
            let r = self.inner.remove(ft, name);
            let again = std::mem::replace(&mut tried, true);
            match r {
                // An earlier try that failed in transit may have deleted it.
                Err(e) if e.kind() == ErrorKind::NotFound && again => Ok(()),
                other => other,
            }
        })
    }

    fn write_parallelism(&self) -> usize {
        self.inner.write_parallelism()
    }

    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    fn leftovers(&self, age: std::time::Duration) -> Result<Vec<super::Leftover>> {
        self.run("listing", || self.inner.leftovers(age))
    }

    fn remove_leftover(&self, path: &str) -> Result<()> {
        // Prune ignores NotFound here, so a retry after a delete that took effect is fine.
        self.run("deleting", || self.inner.remove_leftover(path))
    }
}

/// An `Io` error meaning "try again" for remote backends.
pub fn transient(context: impl Into<String>, cause: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {cause}", context.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A store whose first `fail` calls fail with `kind`.
    struct Flaky {
        calls: AtomicU32,
        fail: u32,
        kind: ErrorKind,
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn create(&self) -> Result<()> {
            Ok(())
        }
        fn read(&self, _: FileType, _: &str, _: u64) -> Result<Vec<u8>> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                return Err(Error::new(self.kind, "boom"));
            }
            Ok(b"ok".to_vec())
        }
        fn read_range(&self, ft: FileType, n: &str, _: u64, _: u64) -> Result<Vec<u8>> {
            self.read(ft, n, u64::MAX)
        }
        fn write(&self, _: FileType, _: &str, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn list(&self, _: FileType) -> Result<Vec<String>> {
            Ok(vec![])
        }
        fn size(&self, _: FileType, _: &str) -> Result<u64> {
            Ok(0)
        }
        fn remove(&self, ft: FileType, n: &str) -> Result<()> {
            match self.read(ft, n, u64::MAX) {
                Ok(_) => Err(Error::new(ErrorKind::NotFound, "gone")),
                Err(e) => Err(e),
            }
        }
    }

    const FAST: RetryPolicy =
        RetryPolicy { attempts: 4, base: Duration::from_millis(1), max: Duration::from_millis(4) };

    fn flaky(fail: u32, kind: ErrorKind) -> RetryBackend {
        RetryBackend { inner: Box::new(Flaky { calls: AtomicU32::new(0), fail, kind }), policy: FAST }
    }

    #[test]
    fn transient_errors_are_retried_until_the_limit() {
        assert_eq!(flaky(3, ErrorKind::Io).read(FileType::Pack, "a", 9).unwrap(), b"ok");
        let e = flaky(4, ErrorKind::Io).read(FileType::Pack, "a", 9).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().starts_with("reading failed 4 times: boom"), "{e}");
    }

    #[test]
    fn permanent_errors_pass_through_at_once() {
        let b = flaky(1, ErrorKind::PermissionDenied);
        assert_eq!(b.read(FileType::Pack, "a", 9).unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(b.read(FileType::Pack, "a", 9).unwrap(), b"ok");
    }

    #[test]
    fn a_remove_that_took_effect_before_a_failure_counts_as_done() {
        // First call fails in transit, the retry finds the object gone.
        flaky(1, ErrorKind::Io).remove(FileType::Lock, "a").unwrap();
        // Without a failed try first, a missing object stays an error.
        assert_eq!(
            flaky(0, ErrorKind::Io).remove(FileType::Lock, "a").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let p = RetryPolicy::DEFAULT;
        for n in 1..30 {
            let d = p.delay(n);
            assert!(d <= p.max);
            assert!(d <= p.base * (1 << (n - 1).min(20)));
        }
    }
}
