//! Activity log entries: one immutable object per operation that changed or examined the
//! repository, chained by hash. Payload of an envelope of type Log (shared seal: every key
//! can append and read). Encoding: version byte (1), then postcard `LogEntry`.
//!
//! The object's name is `SEQ-HASH`: SEQ is the entry's sequence number as 16 decimal
//! digits, HASH the hex BLAKE3 of the object's bytes. Entry n names, in `prev`, the hashes
//! of the entries of number n - 1 its writer saw (two writers at once can both write
//! number n: the chain forks and the next entry joins both). A removed entry leaves a gap
//! in the numbers or a dangling `prev`; an altered one no longer matches its name.

use super::envelope::WrittenBy;
use super::{decode_versioned, encode_versioned, Timespec};
use crate::error::{Error, Result};
use crate::id::{KeyId, SnapshotId};
use serde::{Deserialize, Serialize};

pub const LOG_VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Hashes (names without the sequence number) of the entries numbered seq - 1.
    pub prev: Vec<[u8; 32]>,
    pub time: Timespec,
    pub host: String,
    pub user: String,
    pub key: KeyId,
    /// What ran: backup, check, key add, ...
    pub operation: String,
    /// success, partial or failed.
    pub outcome: String,
    pub snapshot: Option<SnapshotId>,
    /// Figures of the operation (bytes added, files, duration, damage found, ...).
    pub figures: Vec<(String, String)>,
    /// Who wrote it, as proven by the envelope when it was read (not encoded).
    #[serde(skip)]
    pub written_by: WrittenBy,
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(LOG_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_versioned("log entry", LOG_VERSION, bytes)
    }
}

/// The object name of entry `seq` whose bytes hash to `hash`.
pub fn name(seq: u64, hash: &[u8; 32]) -> String {
    format!("{seq:016}-{}", crate::id::hex_encode(hash))
}

/// Split an object name into sequence number and hash.
pub fn parse_name(name: &str) -> Result<(u64, [u8; 32])> {
    let bad = || Error::corrupt(format!("'{name}' is not a log entry name"));
    let (seq, hash) = name.split_once('-').ok_or_else(bad)?;
    if seq.len() != 16 {
        return Err(bad());
    }
    let seq = seq.parse().map_err(|_| bad())?;
    let hash = crate::id::hex_decode(hash).map_err(|_| bad())?.try_into().map_err(|_| bad())?;
    Ok((seq, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_fail() {
        let n = name(42, &[0xab; 32]);
        assert!(n.starts_with("0000000000000042-abab"));
        assert_eq!(parse_name(&n).unwrap(), (42, [0xab; 32]));
        for bad in ["42-abab", "0000000000000042", "000000000000004x-ab", &n[..n.len() - 2]] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
