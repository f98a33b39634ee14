//! Snapshots: one backup's root tree and what is known about it. Payload of an envelope
//! of type Snapshot (sealed to the repository public key). Encoding: version byte (1),
//! then postcard `Snapshot`.

use super::envelope::WrittenBy;
use super::{decode_versioned, encode_versioned, Timespec};
use crate::error::Result;
use crate::id::{SnapshotId, TreeId};
use serde::{Deserialize, Serialize};

pub const SNAPSHOT_VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: Timespec,
    pub host: String,
    pub user: String,
    /// The backed-up paths: absolute, normalized, sorted, without paths inside other
    /// paths (raw bytes); a stdin backup has its name.
    pub paths: Vec<Vec<u8>>,
    pub tags: Vec<String>,
    /// Key/value labels, sorted by key.
    pub labels: Vec<(String, String)>,
    pub excludes: Vec<String>,
    pub tree: TreeId,
    /// The snapshot whose files were compared to find unchanged ones.
    pub parent: Option<SnapshotId>,
    /// For a snapshot made by copy or rewrite: the snapshot it was made from.
    pub original: Option<SnapshotId>,
    pub summary: Summary,
    /// The cairn version that wrote it.
    pub program: String,
    /// Who wrote it, as proven by the envelope's attestation when the snapshot was read
    /// (not part of the encoding: set by `Repository::load_snapshot`).
    #[serde(skip)]
    pub written_by: WrittenBy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent whose metadata changed, so they were read again.
    pub files_changed: u64,
    /// Files whose chunk list was taken from the parent without reading them.
    pub files_unchanged: u64,
    pub dirs: u64,
    /// Symlinks, fifos, devices, sockets.
    pub others: u64,
    pub bytes_read: u64,
    /// Logical size of all files in the snapshot.
    pub total_bytes: u64,
    pub chunks_new: u64,
    /// Bytes of new blobs as stored (after dedup, compression and sealing).
    pub bytes_added: u64,
    /// Files that could not be read; above zero means the snapshot is partial.
    pub errors: u64,
    pub duration_ms: u64,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(SNAPSHOT_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_versioned("snapshot", SNAPSHOT_VERSION, bytes)
    }

    pub fn is_partial(&self) -> bool {
        self.summary.errors > 0
    }
}
