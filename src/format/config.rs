//! The repository config: chunking, compression and pack parameters, the repository
//! public key and, for a repository in an S3 bucket with Object Lock, how long every
//! object is locked. Stored as the object `config`, sealed with the shared key (envelope
//! type 1). A config without a lock is written in version 1, which every cairn reads; one
//! with a lock in version 2, which a cairn that would write unlocked objects refuses.

use super::{decode_versioned, encode_versioned, Timespec};
use crate::chunker::ChunkerParams;
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// Encoding version of a config payload without an object lock.
pub const CONFIG_VERSION: u8 = 1;
/// Encoding version of a config payload with an object lock.
pub const CONFIG_VERSION_LOCKED: u8 = 2;
/// Encoding version of a config payload of a repository with maintenance (field 11).
pub const CONFIG_VERSION_MAINTENANCE: u8 = 3;
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
    /// S3 Object Lock for every object written (versions 2 and 3).
    pub object_lock: Option<ObjectLockPolicy>,
    /// The current key epoch's maintenance public key, in a repository with maintenance
    /// (version 3 only): every snapshot file then carries a summary sealed to it
    /// (format-spec/maintenance-key.md). No writer takes it from here alone.
    pub maintenance: Option<[u8; 32]>,
}

/// How long, and how firmly, S3 Object Lock keeps each object from deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockPolicy {
    /// Every object is written to be retained this long, and renewed to this long while
    /// kept snapshots need it.
    pub period_secs: u64,
    pub mode: LockMode,
}

/// The S3 retention modes: governance can be lifted by a user with the bypass permission,
/// compliance by nobody, the account's root user included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The name S3 uses in headers and retention documents.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// The shortest and longest lock periods: a second (for tests), and 100 years.
pub const MIN_LOCK_PERIOD: u64 = 1;
pub const MAX_LOCK_PERIOD: u64 = 100 * 365 * 86400;

impl ObjectLockPolicy {
    pub fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.period_secs)
    }

    /// An object is renewed once less than this is left of its lock: a third of the
    /// period, so renewals are rare and a lock never runs out between runs made at least
    /// every two thirds of the period.
    pub fn renew_before(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.period_secs / 3)
    }
}

/// The fields of a version 2 config: the same as version 3 without field 11.
#[derive(Serialize, Deserialize)]
struct ConfigV2 {
    format: u32,
    repo_id: [u8; 32],
    created: Timespec,
    chunker: ChunkerParams,
    compression_level: i32,
    pack_size: u32,
    public_key: [u8; 32],
    object_lock: Option<ObjectLockPolicy>,
}

/// The fields of a version 1 config: the same as version 2 without the lock.
#[derive(Serialize, Deserialize)]
struct ConfigV1 {
    format: u32,
    repo_id: [u8; 32],
    created: Timespec,
    chunker: ChunkerParams,
    compression_level: i32,
    pack_size: u32,
    public_key: [u8; 32],
}

pub const MIN_PACK_SIZE: u32 = 1 << 20;
pub const MAX_PACK_SIZE: u32 = 1 << 30;

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        match (self.maintenance, self.object_lock) {
            (Some(_), _) => encode_versioned(CONFIG_VERSION_MAINTENANCE, self),
            (None, Some(_)) => encode_versioned(
                CONFIG_VERSION_LOCKED,
                &ConfigV2 {
                    format: self.format,
                    repo_id: self.repo_id,
                    created: self.created,
                    chunker: self.chunker,
                    compression_level: self.compression_level,
                    pack_size: self.pack_size,
                    public_key: self.public_key,
                    object_lock: self.object_lock,
                },
            ),
            (None, None) => encode_versioned(
                CONFIG_VERSION,
                &ConfigV1 {
                    format: self.format,
                    repo_id: self.repo_id,
                    created: self.created,
                    chunker: self.chunker,
                    compression_level: self.compression_level,
                    pack_size: self.pack_size,
                    public_key: self.public_key,
                },
            ),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let c: Config = if bytes.first() == Some(&CONFIG_VERSION_MAINTENANCE) {
            let c: Config = decode_versioned("config", CONFIG_VERSION_MAINTENANCE, bytes)?;
            if c.maintenance.is_none() {
                return Err(Error::corrupt("config version 3 names no maintenance public key"));
            }
            c
        } else if bytes.first() == Some(&CONFIG_VERSION_LOCKED) {
            let v2: ConfigV2 = decode_versioned("config", CONFIG_VERSION_LOCKED, bytes)?;
            if v2.object_lock.is_none() {
                return Err(Error::corrupt("config version 2 names no object lock"));
            }
            Config {
                format: v2.format,
                repo_id: v2.repo_id,
                created: v2.created,
                chunker: v2.chunker,
                compression_level: v2.compression_level,
                pack_size: v2.pack_size,
                public_key: v2.public_key,
                object_lock: v2.object_lock,
                maintenance: None,
            }
        } else {
            let v1: ConfigV1 = decode_versioned("config", CONFIG_VERSION, bytes)?;
            Config {
                format: v1.format,
                repo_id: v1.repo_id,
                created: v1.created,
                chunker: v1.chunker,
                compression_level: v1.compression_level,
                pack_size: v1.pack_size,
                public_key: v1.public_key,
                object_lock: None,
                maintenance: None,
            }
        };
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
        if let Some(lock) = self.object_lock {
            if !(MIN_LOCK_PERIOD..=MAX_LOCK_PERIOD).contains(&lock.period_secs) {
                return Err(Error::invalid(format!(
                    "an object lock of {} seconds is outside 1 second ..= 100 years",
                    lock.period_secs
                )));
            }
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
            compression_level: crate::compress::DEFAULT_LEVEL,
            pack_size: 16 << 20,
            public_key: [2; 32],
            object_lock: None,
            maintenance: None,
        };
        assert_eq!(Config::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.encode()[0], CONFIG_VERSION, "a config without a lock stays readable by older cairns");
        let locked = Config {
            object_lock: Some(ObjectLockPolicy { period_secs: 30 * 86400, mode: LockMode::Compliance }),
            ..c.clone()
        };
        assert_eq!(locked.encode()[0], CONFIG_VERSION_LOCKED);
        assert_eq!(Config::decode(&locked.encode()).unwrap(), locked);
        let mut unlocked_v2 = c.encode();
        unlocked_v2[0] = CONFIG_VERSION_LOCKED;
        unlocked_v2.push(0); // None
        assert!(Config::decode(&unlocked_v2).is_err());
        // With maintenance: version 3, with or without a lock; a version 3 naming none
        // is refused.
        for lock in [None, locked.object_lock] {
            let kept = Config { maintenance: Some([4; 32]), object_lock: lock, ..c.clone() };
            assert_eq!(kept.encode()[0], CONFIG_VERSION_MAINTENANCE);
            assert_eq!(Config::decode(&kept.encode()).unwrap(), kept);
        }
        let mut no_maintenance = locked.encode();
        no_maintenance[0] = CONFIG_VERSION_MAINTENANCE;
        no_maintenance.push(0); // None
        assert!(Config::decode(&no_maintenance).is_err());
        let forever = Config {
            object_lock: Some(ObjectLockPolicy {
                period_secs: MAX_LOCK_PERIOD + 1,
                mode: LockMode::Governance,
            }),
            ..c.clone()
        };
        assert!(Config::decode(&forever.encode()).is_err());
        let future = Config { format: 2, ..c.clone() };
        assert_eq!(Config::decode(&future.encode()).unwrap_err().kind(), ErrorKind::Unsupported);
        let bad = Config { pack_size: 10, ..c.clone() };
        assert!(Config::decode(&bad.encode()).is_err());
        let mut trailing = c.encode();
        trailing.push(0);
        assert!(Config::decode(&trailing).is_err());
    }
}
