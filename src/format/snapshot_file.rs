//! Snapshot files of a repository with maintenance (format-spec/maintenance-key.md):
//! the snapshot envelope and its summary in one file, and the summary's payload.
//!
//! ```text
//! 0     4  magic "CRNS"
//! 4     1  version (1)
//! 5     3  reserved, 0
//! 8     4  u32 LE: length A of the snapshot envelope
//! 12    A  the snapshot envelope (type 3)
//! 12+A  B  the summary: an envelope of version 3, type 7, to the end of the file
//! ```
//! A file starting with "CRNO" is a bare snapshot envelope: a snapshot without a summary.
//! The two are one file so that a summary is its snapshot's writer's: the file's name is
//! the hash of both, and the summary names the hash of the envelope beside it.

use super::{decode_versioned, encode_versioned, Timespec};
use crate::error::{Error, ErrorKind, Result};
use crate::id::RefsId;
use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 4] = b"CRNS";
pub const VERSION: u8 = 1;
const HEAD_LEN: usize = 12;
/// The shortest envelope that can hold anything: its 72-byte header, a byte and the tag.
const MIN_ENVELOPE: usize = 89;
/// Encoding version of a summary's payload.
pub const SUMMARY_VERSION: u8 = 1;

/// The parts of a snapshot file.
pub struct SnapshotFile<'a> {
    /// The snapshot envelope.
    pub envelope: &'a [u8],
    /// The summary envelope: `None` for a bare snapshot envelope.
    pub summary: Option<&'a [u8]>,
}

impl<'a> SnapshotFile<'a> {
    /// Split a stored snapshot file, checking its framing only (the envelopes are checked
    /// when opened).
    pub fn split(bytes: &'a [u8]) -> Result<SnapshotFile<'a>> {
        if bytes.starts_with(super::envelope::MAGIC) {
            return Ok(SnapshotFile { envelope: bytes, summary: None });
        }
        if bytes.len() < HEAD_LEN || &bytes[..4] != MAGIC {
            return Err(Error::corrupt("not a cairn snapshot file (bad magic)"));
        }
        if bytes[4] != VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "snapshot file version {} is not supported (this cairn reads {VERSION}); upgrade cairn",
                    bytes[4]
                ),
            ));
        }
        if bytes[5..8] != [0, 0, 0] {
            return Err(Error::corrupt("snapshot file reserved bytes are not zero"));
        }
        let a = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let rest = bytes.len() - HEAD_LEN;
        if a < MIN_ENVELOPE || rest < a || rest - a < MIN_ENVELOPE {
            return Err(Error::corrupt("snapshot file envelope lengths do not fit the file"));
        }
        Ok(SnapshotFile { envelope: &bytes[HEAD_LEN..HEAD_LEN + a], summary: Some(&bytes[HEAD_LEN + a..]) })
    }

    /// A snapshot file of `envelope` and `summary`.
    pub fn join(envelope: &[u8], summary: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_LEN + envelope.len() + summary.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&(envelope.len() as u32).to_le_bytes());
        out.extend_from_slice(envelope);
        out.extend_from_slice(summary);
        out
    }
}

/// What a maintenance key learns of a snapshot: what `forget` decides by, source paths
/// replaced by keyed hashes. User, excludes, parent, original, program and statistics
/// stay out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceSummary {
    /// The hash of the snapshot envelope in the same file.
    pub snapshot: [u8; 32],
    pub time: Timespec,
    pub host: String,
    /// `KH(source-path key, p)` of each source path, sorted, no duplicates.
    pub paths: Vec<[u8; 32]>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// The references id of the root tree's references record (references.rs): `None`
    /// when its writer could not make the records (a summary written before records
    /// existed, or by a backup-only key missing a subfolder's record).
    pub references: Option<RefsId>,
}

impl MaintenanceSummary {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(SUMMARY_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let s: MaintenanceSummary = decode_versioned("summary", SUMMARY_VERSION, bytes)?;
        if !s.paths.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::corrupt("summary paths are not sorted without duplicates"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_join_and_refusals() {
        let env = vec![1u8; 100];
        let sum = vec![2u8; 90];
        let file = SnapshotFile::join(&env, &sum);
        let parts = SnapshotFile::split(&file).unwrap();
        assert_eq!((parts.envelope, parts.summary), (&env[..], Some(&sum[..])));
        // A bare envelope is a snapshot without a summary.
        let mut bare = b"CRNO".to_vec();
        bare.extend_from_slice(&[0; 100]);
        assert!(SnapshotFile::split(&bare).unwrap().summary.is_none());
        // Lengths that do not fit, short parts, reserved bytes, other versions and magics.
        // (the summary part is 90 bytes: two fewer than that is shorter than any envelope)
        for cut in [0, 4, 11, 12, 100, file.len() - 2] {
            assert!(SnapshotFile::split(&file[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = file.clone();
        long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SnapshotFile::split(&long).is_err());
        let mut reserved = file.clone();
        reserved[6] = 1;
        assert!(SnapshotFile::split(&reserved).is_err());
        let mut newer = file.clone();
        newer[4] = 2;
        assert_eq!(SnapshotFile::split(&newer).err().unwrap().kind(), ErrorKind::Unsupported);
        assert!(SnapshotFile::split(b"XXXX............").is_err());
    }

    #[test]
    fn summaries_round_trip_and_unsorted_paths_are_refused() {
        let s = MaintenanceSummary {
            snapshot: [1; 32],
            time: Timespec { secs: 7, nanos: 8 },
            host: "gw1".into(),
            paths: vec![[2; 32], [3; 32]],
            tags: vec!["daily".into()],
            labels: vec![("name".into(), "n".into())],
            references: None,
        };
        assert_eq!(MaintenanceSummary::decode(&s.encode()).unwrap(), s);
        let unsorted = MaintenanceSummary { paths: vec![[3; 32], [2; 32]], ..s.clone() };
        assert!(MaintenanceSummary::decode(&unsorted.encode()).is_err());
        let twice = MaintenanceSummary { paths: vec![[2; 32], [2; 32]], ..s.clone() };
        assert!(MaintenanceSummary::decode(&twice.encode()).is_err());
        let mut trailing = s.encode();
        trailing.push(0);
        assert!(MaintenanceSummary::decode(&trailing).is_err());
    }
}
