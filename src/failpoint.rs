//! Failpoints: named places in the commands that change the repository where a test can
//! kill the process outright (SIGKILL: no destructor, no flush, no lock removal, as the
//! OOM killer or a pulled plug would), to show that every acknowledged snapshot survives
//! a kill at each of them (tests/failpoints.rs).
//!
//! They exist only in builds with the cargo feature `failpoints` (the tests' build). In
//! any other build [`hit`] and [`wrote`] are empty inline functions, so the release binary
//! carries no trace of them and no environment variable can make it stop.
//!
//! `CAIRN_FAILPOINT` chooses one:
//! - `NAME` kills the process the first time the point NAME is reached, `NAME@N` the
//!   N-th time (a command that replaces several snapshots reaches a point once each);
//! - `write:N` kills it right after the N-th backend write of the process returned, so a
//!   sweep over N kills a command between every two of its writes. The writes are counted
//!   by the test wrapper `backend::faulty`, which every store is wrapped in.
//!
//! A name that is not in [`POINTS`] is refused when the command starts (exit 2): a typo
//! must not make a test pass without ever killing anything.
//!
//! This module must stay free of repository logic: it only decides whether to die here.

use crate::error::{Error, Result};

/// The environment variable that selects a failpoint.
pub const ENV: &str = "CAIRN_FAILPOINT";

/// Every failpoint, and the state of the repository when a process dies there.
pub const POINTS: &[(&str, &str)] = &[
    (
        "pack-writer:after-packs",
        "every pack of the run stored, the last index file not yet written (backup, copy, prune's repack, rewrite, repair snapshots)",
    ),
    ("backup:before-snapshot", "packs and index files stored, the snapshot not"),
    ("backup:after-snapshot", "the snapshot stored, not yet reported or logged"),
    ("forget:after-first-removal", "one chosen snapshot deleted, the others not yet"),
    ("forget:after-removals", "every chosen snapshot deleted, nothing logged or pruned yet"),
    ("prune:moved-pack-unindexed", "a maintenance key's moved-frames pack stored, its index file not yet"),
    ("prune:after-repack", "used blobs copied into new, indexed packs; nothing deleted"),
    ("prune:after-new-index", "the superseding index files stored, the old ones still there"),
    ("prune:after-old-index-delete", "the old index files deleted, no pack deleted yet"),
    ("prune:mid-pack-deletion", "the first unused pack deleted, the others not yet"),
    ("prune:after-pack-deletion", "every unused pack deleted, leftover temporary files not yet"),
    ("repair-index:after-new-index", "the rebuilt index files stored, the old ones still there"),
    ("repair-index:after-old-index-delete", "the old index files deleted, misnamed packs not yet"),
    (
        "snapshot-rewrite:after-trees",
        "the new trees stored and indexed, no snapshot replaced yet (rewrite, repair snapshots)",
    ),
    (
        "snapshot-replace:after-new",
        "a replacing snapshot stored, the one it replaces not yet deleted (tag, rewrite, repair snapshots)",
    ),
    ("snapshot-replace:after-old-removed", "one snapshot replaced, the next not yet"),
    ("copy:before-snapshot", "a copied snapshot's data stored and indexed, its snapshot not"),
    ("copy:after-snapshot", "one snapshot copied, the next not started"),
    ("key:after-store", "a new key file stored (key add; key passwd before the old key goes)"),
    ("key:after-remove", "a key file deleted (key remove; key passwd), not yet reported"),
    ("job:between-steps", "a job's step ended, the next not started"),
    ("rotate:after-key-in-use", "key rotate: the key in use rewritten (with both key epochs, or at the end the new one alone)"),
    ("rotate:mid-key-rewrap", "key rotate: one more key file rewritten, the others not yet"),
    ("rotate:after-config", "key rotate: the config sealed under the new key epoch, nothing sealed anew yet"),
    ("rotate:after-new-snapshot", "key rotate: a snapshot sealed anew, the old one not yet deleted"),
    ("rotate:after-stored-anew", "key rotate --content-keys: a snapshot stored anew under the new content keys, the old one not yet deleted"),
    ("maintenance:after-key-files", "key add --maintenance: every other key file given the maintenance public key, the config not yet written"),
    ("maintenance:after-config", "key add --maintenance: the config names the maintenance public key, no snapshot has a summary yet"),
    ("maintenance:after-summary", "key add --maintenance, repair maintenance: a snapshot stored with a summary, the one without not yet deleted"),
    ("rotate:after-new-log", "key rotate: the activity log's new chain stored, the old entries still there"),
];

/// Die here if `CAIRN_FAILPOINT` names this point (and this is the chosen hit of it).
#[inline(always)]
pub fn hit(name: &'static str) {
    #[cfg(feature = "failpoints")]
    active::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Count one backend write that returned successfully; die if it was the chosen one.
#[inline(always)]
pub fn wrote() {
    #[cfg(feature = "failpoints")]
    active::wrote();
}

/// Refuse a `CAIRN_FAILPOINT` that names no failpoint (in builds that have them).
pub fn check_env() -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(v) = std::env::var_os(ENV) {
        parse(&v.to_string_lossy())?;
    }
    Ok(())
}

/// What `CAIRN_FAILPOINT` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// Kill at the `nth` hit of the point `name`.
    Point { name: &'static str, nth: u64 },
    /// Kill after the `n`-th backend write.
    Write(u64),
}

pub fn parse(text: &str) -> Result<Spec> {
    let count = |n: &str| {
        n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::invalid(format!("{ENV}={text}: '{n}' is not a count from 1; write NAME@N or write:N"))
        })
    };
    if let Some(n) = text.strip_prefix("write:") {
        return Ok(Spec::Write(count(n)?));
    }
    let (name, nth) = match text.rsplit_once('@') {
        Some((name, n)) => (name, count(n)?),
        None => (text, 1),
    };
    match POINTS.iter().find(|(p, _)| *p == name) {
        Some((p, _)) => Ok(Spec::Point { name: p, nth }),
        None => Err(Error::invalid(format!(
            "{ENV}={text} names no failpoint; known: write:N, {}",
            POINTS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(feature = "failpoints")]
mod active {
    use super::Spec;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    static WRITES: AtomicU64 = AtomicU64::new(0);

    fn spec() -> Option<&'static Spec> {
        // `check_env` refused a bad value at start; a bad one here (a library user that
        // skipped it) selects nothing.
        SPEC.get_or_init(|| std::env::var(super::ENV).ok().and_then(|v| super::parse(&v).ok())).as_ref()
    }

    pub fn hit(name: &'static str) {
        debug_assert!(super::POINTS.iter().any(|(p, _)| *p == name), "failpoint {name} is not in POINTS");
        if let Some(Spec::Point { name: chosen, nth }) = spec() {
            if *chosen == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                die(&format!("{name}@{nth}"));
            }
        }
    }

    pub fn wrote() {
        if let Some(Spec::Write(n)) = spec() {
            if WRITES.fetch_add(1, Ordering::SeqCst) + 1 == *n {
                die(&format!("write:{n}"));
            }
        }
    }

    /// SIGKILL to this process: nothing after this line runs, on any thread.
    fn die(what: &str) -> ! {
        eprintln!("cairn: failpoint {what} reached: killing the process");
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // Only if the signal could not be sent: still no cleanup.
        std::process::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_unknown_names_are_refused() {
        assert_eq!(parse("write:3").unwrap(), Spec::Write(3));
        assert_eq!(parse("prune:after-repack").unwrap(), Spec::Point { name: "prune:after-repack", nth: 1 });
        assert_eq!(
            parse("snapshot-replace:after-new@2").unwrap(),
            Spec::Point { name: "snapshot-replace:after-new", nth: 2 }
        );
        for bad in ["write:0", "write:x", "prune:after-repak", "prune:after-repack@0", ""] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().starts_with(&format!("{ENV}={bad}")), "{e}");
        }
    }

    #[test]
    fn point_names_are_unique() {
        let mut names: Vec<&str> = POINTS.iter().map(|(p, _)| *p).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), POINTS.len());
    }
}
