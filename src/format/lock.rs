//! Locks: who is working on the repository. Payload of an envelope of type Lock, stored
//! under locks/ and removed when the operation ends. Encoding: version byte (1), then
//! postcard `Lock`.

use super::{decode_versioned, encode_versioned, Timespec};
use crate::error::Result;
use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub time: Timespec,
    pub host: String,
    pub user: String,
    pub pid: u32,
    /// Exclusive locks (prune, repair) exclude every other lock; shared ones only those.
    pub exclusive: bool,
    pub operation: String,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(LOCK_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_versioned("lock", LOCK_VERSION, bytes)
    }
}
