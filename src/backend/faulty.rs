//! A failing store, for tests: a wrapper that makes chosen calls of the store under it
//! fail (no space, an I/O error, a timeout), come back short, or come back with one bit
//! flipped, so tests/faults.rs can drive the real binary against a store that breaks.
//! It also counts successful writes for the failpoint `write:N` (see `crate::failpoint`).
//!
//! Compiled only with the cargo feature `failpoints`; [`super::open`] then wraps every
//! store in it (innermost, right around the store, so a remote store's retries see the
//! faults as they would see the store's own).
//!
//! `CAIRN_FAULTS` is a comma-separated list of rules `OP[/TYPE]:N[+]:FAULT`:
//! - OP is `read` (whole or ranged reads), `write`, `list` or `delete`;
//! - TYPE limits the rule to one kind of object (`config`, `key`, `pack`, `index`,
//!   `snapshot`, `lock`, `log`); without it every call of OP counts;
//! - N: the N-th such call (from 1) fails; `N+` that one and every later one (a disk that
//!   stays full);
//! - FAULT: `enospc`, `eio`, `timeout`; for reads also `short` (the bytes end early) and
//!   `flip` (one bit of the returned bytes is flipped: what a bad cable or a bad disk
//!   sector would give, and what authentication must catch).
//!
//! A failed write stores nothing, as a write of the real stores that fails leaves no
//! object under its name. The counts are per opened store.

use super::{Backend, FileType, Leftover};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable holding the rules.
pub const ENV: &str = "CAIRN_FAULTS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    List,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    NoSpace,
    Eio,
    Timeout,
    Short,
    Flip,
}

#[derive(Debug)]
pub struct Rule {
    pub op: Op,
    pub file_type: Option<FileType>,
    pub nth: u64,
    /// Also every call after the `nth`.
    pub onwards: bool,
    pub fault: Fault,
    calls: AtomicU64,
}

impl Rule {
    /// Whether this call (of `op` on `ft`) is one the rule fails.
    fn fires(&self, op: Op, ft: FileType) -> bool {
        if op != self.op || self.file_type.is_some_and(|t| t != ft) {
            return false;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        n == self.nth || (self.onwards && n > self.nth)
    }
}

/// Parse `CAIRN_FAULTS`.
pub fn parse(text: &str) -> Result<Vec<Rule>> {
    text.split(',').filter(|r| !r.trim().is_empty()).map(|r| parse_rule(r.trim(), text)).collect()
}

fn parse_rule(rule: &str, all: &str) -> Result<Rule> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "{ENV}={all}: rule '{rule}' {why}; write OP[/TYPE]:N[+]:FAULT, e.g. write/pack:2:enospc"
        ))
    };
    let parts: Vec<&str> = rule.split(':').collect();
    let [target, count, fault] = parts[..] else { return Err(bad("does not have three parts")) };
    let (op, file_type) = match target.split_once('/') {
        Some((op, ty)) => {
            let ft = FileType::ALL.into_iter().find(|f| type_name(*f) == ty);
            (op, Some(ft.ok_or_else(|| bad("names no object type"))?))
        }
        None => (target, None),
    };
    let op = match op {
        "read" => Op::Read,
        "write" => Op::Write,
        "list" => Op::List,
        "delete" => Op::Delete,
        _ => return Err(bad("names no operation (read, write, list, delete)")),
    };
    let (count, onwards) = match count.strip_suffix('+') {
        Some(c) => (c, true),
        None => (count, false),
    };
    let nth = count.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| bad("has no count from 1"))?;
    let fault = match fault {
        "enospc" => Fault::NoSpace,
        "eio" => Fault::Eio,
        "timeout" => Fault::Timeout,
        "short" if op == Op::Read => Fault::Short,
        "flip" if op == Op::Read => Fault::Flip,
        "short" | "flip" => return Err(bad("gives a fault only reads can have")),
        _ => return Err(bad("names no fault (enospc, eio, timeout, short, flip)")),
    };
    Ok(Rule { op, file_type, nth, onwards, fault, calls: AtomicU64::new(0) })
}

fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Config => "config",
        FileType::Key => "key",
        FileType::Pack => "pack",
        FileType::Index => "index",
        FileType::Snapshot => "snapshot",
        FileType::Lock => "lock",
        FileType::Log => "log",
    }
}

pub struct FaultyBackend {
    inner: Box<dyn Backend>,
    rules: Vec<Rule>,
}

/// Wrap `store` with the rules of `CAIRN_FAULTS` (none when it is not set).
pub fn from_env(store: Box<dyn Backend>) -> Result<Box<dyn Backend>> {
    let rules = match std::env::var(ENV) {
        Ok(text) => parse(&text)?,
        Err(_) => Vec::new(),
    };
    Ok(Box::new(FaultyBackend { inner: store, rules }))
}

impl FaultyBackend {
    pub fn new(inner: Box<dyn Backend>, rules: Vec<Rule>) -> Self {
        FaultyBackend { inner, rules }
    }

    /// The fault this call gets, if any (every matching rule counts the call).
    fn fault(&self, op: Op, ft: FileType) -> Option<Fault> {
        self.rules.iter().filter(|r| r.fires(op, ft)).map(|r| r.fault).last()
    }

    fn error(&self, fault: Fault, what: String) -> Error {
        let what = format!("{what} (injected fault)");
        match fault {
            Fault::NoSpace => Error::io(what, std::io::Error::from(rustix::io::Errno::NOSPC)),
            Fault::Timeout => Error::io(
                what,
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the store did not answer in time"),
            ),
            _ => Error::io(what, std::io::Error::from(rustix::io::Errno::IO)),
        }
    }

    fn read_with(&self, ft: FileType, name: &str, read: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
        let what = || format!("cannot read {}", super::object_path(ft, name));
        match self.fault(Op::Read, ft) {
            None => read(),
            Some(Fault::Short) => read().map(|mut b| {
                b.truncate(b.len() / 2);
                b
            }),
            Some(Fault::Flip) => read().map(|mut b| {
                let at = b.len() / 2;
                if let Some(byte) = b.get_mut(at) {
                    *byte ^= 0x10;
                }
                b
            }),
            Some(f) => Err(self.error(f, what())),
        }
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.read_with(ft, name, || self.inner.read(ft, name, max))
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_with(ft, name, || self.inner.read_range(ft, name, offset, len))
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        if let Some(f) = self.fault(Op::Write, ft) {
            return Err(self.error(f, format!("cannot write {}", super::object_path(ft, name))));
        }
        self.inner.write(ft, name, bytes)?;
        crate::failpoint::wrote();
        Ok(())
    }

    fn list_detailed(&self, ft: FileType) -> Result<Vec<super::Listed>> {
        if let Some(f) = self.fault(Op::List, ft) {
            return Err(self.error(f, format!("cannot list {}/", ft.dir())));
        }
        self.inner.list_detailed(ft)
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        if let Some(f) = self.fault(Op::List, ft) {
            return Err(self.error(f, format!("cannot list {}/", ft.dir())));
        }
        self.inner.list(ft)
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.inner.size(ft, name)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        if let Some(f) = self.fault(Op::Delete, ft) {
            return Err(self.error(f, format!("cannot delete {}", super::object_path(ft, name))));
        }
        self.inner.remove(ft, name)
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

    fn arrival_is_authoritative(&self) -> bool {
        self.inner.arrival_is_authoritative()
    }
    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLock> {
        self.inner.object_lock()
    }

    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        self.inner.modified(ft, name)
    }

    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>> {
        self.inner.leftovers(age)
    }

    fn remove_leftover(&self, path: &str) -> Result<()> {
        self.inner.remove_leftover(path)
    }

    fn exists(&self, ft: FileType, name: &str) -> Result<bool> {
        self.inner.exists(ft, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::error::ErrorKind;

    fn store(rules: &str) -> (tempfile::TempDir, FaultyBackend) {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().join("r"));
        local.create().unwrap();
        (dir, FaultyBackend::new(Box::new(local), parse(rules).unwrap()))
    }

    #[test]
    fn rules_parse_and_bad_ones_say_what_is_wrong() {
        let r = parse("write/pack:2:enospc, read:3+:flip").unwrap();
        assert_eq!(
            (r[0].op, r[0].file_type, r[0].nth, r[0].onwards),
            (Op::Write, Some(FileType::Pack), 2, false)
        );
        assert_eq!(
            (r[1].op, r[1].file_type, r[1].nth, r[1].onwards, r[1].fault),
            (Op::Read, None, 3, true, Fault::Flip)
        );
        for bad in
            ["write:1", "write/packs:1:eio", "write:0:eio", "write:1:flip", "copy:1:eio", "read:1:melt"]
        {
            let e = parse(bad).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(&format!("rule '{bad}'")), "{e}");
        }
    }

    #[test]
    fn the_nth_call_of_its_kind_fails_and_nothing_is_stored() {
        let (_d, b) = store("write/index:2:enospc,delete:1:eio");
        b.write(FileType::Pack, "aa", b"pack").unwrap();
        b.write(FileType::Index, "i1", b"one").unwrap();
        let e = b.write(FileType::Index, "i2", b"two").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
        assert!(e.to_string().starts_with("cannot write index/i2 (injected fault)"), "{e}");
        assert!(!b.exists(FileType::Index, "i2").unwrap());
        b.write(FileType::Index, "i3", b"three").unwrap();
        assert_eq!(b.remove(FileType::Index, "i1").unwrap_err().kind(), ErrorKind::Io);
        b.remove(FileType::Index, "i1").unwrap();
    }

    #[test]
    fn reads_come_back_short_or_flipped_once_or_onwards() {
        let (_d, b) = store("read/snapshot:1:short,read/snapshot:2:flip,read/key:2+:timeout");
        let bytes = b"0123456789".to_vec();
        b.write(FileType::Snapshot, "s", &bytes).unwrap();
        b.write(FileType::Key, "k", &bytes).unwrap();
        assert_eq!(b.read(FileType::Snapshot, "s", 100).unwrap(), b"01234");
        let flipped = b.read_range(FileType::Snapshot, "s", 0, 10).unwrap();
        assert_eq!(flipped.len(), 10);
        assert_eq!(flipped.iter().zip(&bytes).filter(|(x, y)| x != y).count(), 1);
        assert_eq!(b.read(FileType::Snapshot, "s", 100).unwrap(), bytes);
        assert_eq!(b.read(FileType::Key, "k", 100).unwrap(), bytes);
        for _ in 0..3 {
            let e = b.read(FileType::Key, "k", 100).unwrap_err();
            assert!(e.to_string().contains("did not answer in time"), "{e}");
        }
    }
}
