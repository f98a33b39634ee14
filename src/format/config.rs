//! The repository config: chunking, compression and pack parameters and the repository
//! public key. Stored as the object `config`, sealed with the shared key (envelope type 1).

use super::{decode_versioned, encode_versioned, Timespec};
use crate::chunker::ChunkerParams;
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// Encoding version of the config payload.
pub const CONFIG_VERSION: u8 = 1;
/// The repository format this build writes and reads.
pub const REPO_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version (REPO_FORMAT).
    pub format: u32,
    /// Random, names the repository (shown by `cairn init` and in locks).
    pub repo_id: [u8; 32],
    pub created: Timespec,
    pub chunker: ChunkerParams,
    /// zstd level for new blobs (0 stores raw).
    pub compression_level: i32,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
    /// X25519 public key that packs and snapshots are sealed to.
    pub public_key: [u8; 32],
}

pub const MIN_PACK_SIZE: u32 = 1 << 20;
pub const MAX_PACK_SIZE: u32 = 1 << 30;

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(CONFIG_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let c: Config = decode_versioned("config", CONFIG_VERSION, bytes)?;
        if c.format != REPO_FORMAT {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "repository format {} is not supported by this cairn (reads {REPO_FORMAT})",
                    c.format
                ),
            ));
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        self.chunker.check()?;
        if !(-7..=22).contains(&self.compression_level) {
            return Err(Error::invalid(format!(
                "compression level {} is outside zstd's range -7..=22",
                self.compression_level
            )));
        }
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(Error::invalid(format!(
                "pack size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE} bytes",
                self.pack_size
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = Config {
            format: REPO_FORMAT,
            repo_id: [1; 32],
            created: Timespec { secs: 5, nanos: 6 },
            chunker: ChunkerParams::DEFAULT,
            compression_level: 3,
            pack_size: 16 << 20,
            public_key: [2; 32],
        };
        assert_eq!(Config::decode(&c.encode()).unwrap(), c);
        let future = Config { format: 2, ..c.clone() };
        assert_eq!(Config::decode(&future.encode()).unwrap_err().kind(), ErrorKind::Unsupported);
        let bad = Config { pack_size: 10, ..c.clone() };
        assert!(Config::decode(&bad.encode()).is_err());
        let mut trailing = c.encode();
        trailing.push(0);
        assert!(Config::decode(&trailing).is_err());
    }
}
