//! The activity log: appending entries and reading them back with their chain checked.
//!
//! An entry is appended after the operation it records, and a failure to append never
//! fails the operation (the data is safe; the record is what is missing), but it is
//! reported to the caller.
//!
//! Names in `log/` are only claims: a new entry chains to the newest entries that open
//! and verify (name, seal, number), never to a name it has not read, and a number larger
//! than the count of names listed cannot be genuine and is passed over. So a planted name
//! neither wedges the log nor becomes part of it. What an entry proves, and against whom,
//! is in format-spec/threat-model.md: one attested by a full key was written by a full
//! key; any other could have been written by any holder of the write root.

use super::Repository;
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType};
use crate::format::log::{self, LogEntry};
use crate::format::Timespec;
use crate::id::SnapshotId;
use std::collections::{BTreeMap, HashSet};

/// What an operation reports for the log.
#[derive(Clone, Debug, Default)]
pub struct LogRecord {
    pub operation: String,
    pub outcome: String,
    pub snapshot: Option<SnapshotId>,
    pub figures: Vec<(String, String)>,
}

impl LogRecord {
    pub fn new(operation: &str, outcome: &str) -> Self {
        LogRecord { operation: operation.into(), outcome: outcome.into(), ..Default::default() }
    }

    pub fn figure(mut self, key: &str, value: impl ToString) -> Self {
        self.figures.push((key.into(), value.to_string()));
        self
    }
}

/// The log as read back, and what is wrong with its chain.
#[derive(Debug, Default)]
pub struct LogReport {
    /// Entries in order of their sequence numbers.
    pub entries: Vec<LogEntry>,
    pub problems: Vec<String>,
}

/// Entry hashes by sequence number, and the names that are not entry names.
type LogListing = (BTreeMap<u64, Vec<[u8; 32]>>, Vec<String>);

fn names_by_seq(repo: &Repository) -> Result<LogListing> {
    let mut by_seq: BTreeMap<u64, Vec<[u8; 32]>> = BTreeMap::new();
    let mut bad = Vec::new();
    for name in repo.backend().list(FileType::Log)? {
        match log::parse_name(&name) {
            Ok((seq, hash)) => by_seq.entry(seq).or_default().push(hash),
            Err(e) => bad.push(e.to_string()),
        }
    }
    // The cache keeps entries by hash, and none the store no longer lists.
    if let Some(cache) = &repo.object_cache {
        let listed: Vec<String> = by_seq.values().flatten().map(|h| crate::id::hex_encode(h)).collect();
        cache.retain(FileType::Log, &listed);
    }
    Ok((by_seq, bad))
}

impl Repository {
    /// Append an entry for `record`, chained to the newest entries that verify.
    pub fn append_log(&self, record: LogRecord) -> Result<()> {
        // Both wait for the store: at once, a round trip or more fewer on a remote one.
        let (current, head) = std::thread::scope(|s| {
            let head = s.spawn(|| self.log_head());
            (self.keys_still_current(), head.join())
        });
        current?;
        let (seq, prev) = head.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let entry = LogEntry {
            seq,
            prev,
            time: Timespec::now(),
            host: crate::sys::hostname(),
            user: crate::sys::username(),
            key: self.key_id,
            operation: record.operation,
            outcome: record.outcome,
            snapshot: record.snapshot,
            figures: record.figures,
            written_by: Default::default(),
        };
        let bytes = envelope::seal(&self.keys, ObjectType::Log, &entry.encode())?;
        let hash = *blake3::hash(&bytes).as_bytes();
        self.backend.write(FileType::Log, &log::name(seq, &hash), &bytes)?;
        if let Some(cache) = &self.object_cache {
            cache.put(FileType::Log, &hash, &bytes);
        }
        Ok(())
    }

    /// The number of the next entry and the hashes of the newest entries that open and
    /// verify. A genuine log has an entry of every number below its newest, so a number at
    /// or above the count of names is a planted one.
    fn log_head(&self) -> Result<(u64, Vec<[u8; 32]>)> {
        let (by_seq, _) = names_by_seq(self)?;
        let names: u64 = by_seq.values().map(|h| h.len() as u64).sum();
        for (seq, hashes) in by_seq.range(..names).rev() {
            let mut good = Vec::new();
            for hash in hashes {
                match self.load_log_entry(&log::name(*seq, hash), hash, *seq) {
                    Ok(_) => good.push(*hash),
                    Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(e),
                    Err(_) => {}
                }
            }
            if !good.is_empty() {
                return Ok((seq + 1, good));
            }
        }
        Ok((0, Vec::new()))
    }

    /// Read every entry and check the chain: names match contents, numbers have no gaps,
    /// every `prev` exists.
    pub fn read_log(&self) -> Result<LogReport> {
        let mut report = LogReport::default();
        let (by_seq, bad) = names_by_seq(self)?;
        report.problems.extend(bad);
        let mut expected_seq = 0;
        let mut previous: HashSet<[u8; 32]> = HashSet::new();
        for (seq, hashes) in &by_seq {
            if *seq != expected_seq {
                report.problems.push(format!(
                    "log entries {expected_seq}..{} are missing (removed?)",
                    seq.saturating_sub(1)
                ));
            }
            let mut this_level = HashSet::new();
            for hash in hashes {
                let name = log::name(*seq, hash);
                match self.load_log_entry(&name, hash, *seq) {
                    Ok(entry) => {
                        for p in entry.prev.iter().filter(|p| *seq == expected_seq && !previous.contains(*p))
                        {
                            report.problems.push(format!(
                                "log entry {seq} follows {}, which is missing (removed?)",
                                crate::id::hex_encode(&p[..4])
                            ));
                        }
                        if *seq > 0 && entry.prev.is_empty() {
                            report.problems.push(format!("log entry {seq} names no predecessor"));
                        }
                        report.entries.push(entry);
                    }
                    Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(e),
                    Err(e) => report.problems.push(format!("log entry {name}: {e}")),
                }
                this_level.insert(*hash);
            }
            previous = this_level;
            expected_seq = seq + 1;
        }
        Ok(report)
    }

    /// Seal anew every entry not of the write epoch (key rotation), and every entry that
    /// follows one sealed anew: an entry names its predecessors by the hash of their bytes,
    /// so the chain is written again from the first entry sealed anew, each with its writer
    /// kept. The old entries are removed only once the whole new chain is stored; until
    /// then both chains are whole. A copy an earlier run stored (the same entry, the same
    /// predecessors) is used instead of a second one. Returns how many entries were replaced.
    pub(crate) fn reseal_log(&self) -> Result<usize> {
        use std::collections::HashMap;
        let write = self.keys.write_epoch();
        let (by_seq, _) = names_by_seq(self)?;
        let mut renamed: HashMap<[u8; 32], [u8; 32]> = HashMap::new();
        let mut replaced = Vec::new();
        for (seq, hashes) in &by_seq {
            let mut level = Vec::new();
            for hash in hashes {
                let name = log::name(*seq, hash);
                let Ok(bytes) = self.read_object(FileType::Log, &name) else { continue };
                if blake3::hash(&bytes).as_bytes() != hash {
                    continue;
                }
                // An entry no epoch opens is damage or a planted name: left as it is.
                let Ok(opened) = envelope::open_attested(&self.keys, ObjectType::Log, &bytes) else {
                    continue;
                };
                let Ok(entry) = LogEntry::decode(&opened.payload) else { continue };
                if entry.seq == *seq {
                    level.push((*hash, entry, opened));
                }
            }
            let stored: HashMap<Vec<u8>, [u8; 32]> = level
                .iter()
                .filter(|(_, _, o)| o.epoch == write)
                .map(|(hash, _, o)| (o.payload.clone(), *hash))
                .collect();
            for (hash, entry, opened) in &level {
                if opened.epoch == write && !entry.prev.iter().any(|p| renamed.contains_key(p)) {
                    continue;
                }
                let mut anew = entry.clone();
                anew.prev = entry.prev.iter().map(|p| *renamed.get(p).unwrap_or(p)).collect();
                let payload = anew.encode();
                let new_hash = match stored.get(&payload) {
                    Some(h) => *h,
                    None => {
                        let writer = match opened.written_by {
                            envelope::WrittenBy::FullKey => envelope::WrittenBy::FullKey,
                            envelope::WrittenBy::MaintenanceKey => envelope::WrittenBy::MaintenanceKey,
                            _ => envelope::WrittenBy::BackupOnlyKey,
                        };
                        let bytes = envelope::seal_as(&self.keys, ObjectType::Log, &payload, writer)?;
                        let h = *blake3::hash(&bytes).as_bytes();
                        self.backend.write(FileType::Log, &log::name(*seq, &h), &bytes)?;
                        h
                    }
                };
                renamed.insert(*hash, new_hash);
                replaced.push(log::name(*seq, hash));
            }
        }
        crate::failpoint::hit("rotate:after-new-log");
        crate::ops::object_lock::note_deleted(self, FileType::Log, &replaced)?;
        for name in &replaced {
            self.backend.remove(FileType::Log, name)?;
        }
        Ok(replaced.len())
    }

    fn load_log_entry(&self, name: &str, hash: &[u8; 32], seq: u64) -> Result<LogEntry> {
        // Entries are named by the hash of their bytes, as snapshots are: a copy in the
        // object cache that hashes to the name is the entry (the newest, read back by
        // every append, is most often one this machine wrote).
        let bytes = match self.object_cache.as_ref().and_then(|c| c.get(FileType::Log, hash)) {
            Some(bytes) => bytes,
            None => {
                let bytes = self.read_object(FileType::Log, name)?;
                if blake3::hash(&bytes).as_bytes() != hash {
                    return Err(Error::corrupt("altered: its content does not match its name"));
                }
                if let Some(cache) = &self.object_cache {
                    cache.put(FileType::Log, hash, &bytes);
                }
                bytes
            }
        };
        let opened = envelope::open_attested(&self.keys, ObjectType::Log, &bytes)?;
        let mut entry = LogEntry::decode(&opened.payload)?;
        entry.written_by = opened.written_by;
        if entry.seq != seq {
            return Err(Error::corrupt(format!("holds number {} under number {seq}", entry.seq)));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{InitOptions, KeySource};

    #[test]
    fn entries_chain_and_removal_or_tampering_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap();
        let opts = InitOptions::default();
        let repo = Repository::init(loc, b"pw", &opts, None).unwrap();
        for i in 0..4 {
            repo.append_log(LogRecord::new("backup", "success").figure("n", i)).unwrap();
        }
        let r = repo.read_log().unwrap();
        assert_eq!(r.entries.len(), 4);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.entries[3].figures, vec![("n".to_string(), "3".to_string())]);
        let mut names = repo.backend().list(FileType::Log).unwrap();
        names.sort();
        // Remove entry 1: a gap and a dangling predecessor.
        repo.backend().remove(FileType::Log, &names[1]).unwrap();
        let r = Repository::open(loc, b"pw", &KeySource::Stored).unwrap().read_log().unwrap();
        assert!(r.problems.iter().any(|p| p.contains("missing")), "{:?}", r.problems);
        // Alter entry 2's bytes.
        let p = dir.path().join("r/log").join(&names[2]);
        let mut b = std::fs::read(&p).unwrap();
        b[50] ^= 1;
        std::fs::write(&p, b).unwrap();
        let r = repo.read_log().unwrap();
        assert!(r.problems.iter().any(|p| p.contains("altered")), "{:?}", r.problems);
    }
}
