//! On-disk types and their byte encodings, and nothing else: no I/O, no policy.
//! format-spec/ describes every byte written here; a change to an encoding bumps its
//! version and the spec in the same commit.
//!
//! Structured objects (config, key file header, tree, snapshot, lock) are a version byte
//! followed by postcard (its 1.0 wire format: varints, length-prefixed sequences, enum
//! variants as varint indices). Records read in bulk (pack tables, index files) are fixed
//! width little endian. Every decoder checks magic, version and lengths against the bytes
//! present before allocating.

pub mod config;
pub mod envelope;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod log;
pub mod pack;
pub mod references;
pub mod snapshot;
pub mod snapshot_file;
pub mod tree;

use crate::error::{Error, ErrorKind, Result};
use serde::{de::DeserializeOwned, Serialize};

/// Time as seconds and nanoseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timespec {
    pub secs: i64,
    pub nanos: u32,
}

impl Timespec {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timespec { secs: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }
}

/// Encode `value` as a version byte followed by postcard.
pub(crate) fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serializing our own plain structs into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding of an in-memory value"));
    out
}

/// Decode a version byte followed by postcard, refusing other versions and trailing bytes.
pub(crate) fn decode_versioned<T: DeserializeOwned>(what: &str, version: u8, bytes: &[u8]) -> Result<T> {
    let (&v, body) = bytes.split_first().ok_or_else(|| Error::corrupt(format!("empty {what}")))?;
    if v != version {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what} has encoding version {v}; this cairn reads version {version}"),
        ));
    }
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| Error::corrupt(format!("{what} does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(format!("{what} has {} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// A cursor over fixed-width little-endian records that refuses to read past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader { bytes, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::corrupt(format!("{} truncated", self.what)));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn id(&mut self) -> Result<[u8; 32]> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }

    /// A count of records of `size` bytes each, checked against the bytes left.
    pub fn count(&mut self, size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.checked_mul(size).is_none_or(|total| total > self.bytes.len()) {
            return Err(Error::corrupt(format!(
                "{} claims {n} records, more than its bytes hold",
                self.what
            )));
        }
        Ok(n)
    }

    pub fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::corrupt(format!("{} has {} trailing bytes", self.what, self.bytes.len())))
        }
    }
}
