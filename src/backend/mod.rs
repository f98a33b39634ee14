//! Storage backends: dumb stores of immutable named objects. They know nothing of
//! encryption or formats; retry, caching and limits belong in wrappers, not here.
//!
//! Contract for every implementation (tests/backend_conformance.rs runs it):
//! - `write` makes an object visible under its final name only when it is complete
//!   (temp name + rename, or one PUT); an interrupted write leaves no partial object;
//! - a missing object is `ErrorKind::NotFound`, distinct from any other failure;
//! - objects are never modified in place.

pub mod local;

use crate::error::Result;

/// The kinds of stored objects, each in its own namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    Log,
}

impl FileType {
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Log,
    ];

    /// The folder of this type inside a repository.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Log => "log",
        }
    }
}

pub trait Backend: Send + Sync {
    /// Where the repository is, for messages.
    fn location(&self) -> String;
    /// Create the repository's folders; fails with `AlreadyExists` if a config is there.
    fn create(&self) -> Result<()>;
    /// Read a whole object.
    fn read(&self, ft: FileType, name: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`; fewer only if the object ends first.
    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Store an object atomically under `name`.
    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()>;
    /// Names of all objects of a type (unordered).
    fn list(&self, ft: FileType) -> Result<Vec<String>>;
    /// Size of an object in bytes.
    fn size(&self, ft: FileType, name: &str) -> Result<u64>;
    /// Delete an object; deleting a missing object is `NotFound`.
    fn remove(&self, ft: FileType, name: &str) -> Result<()>;
    /// Whether an object exists.
    fn exists(&self, ft: FileType, name: &str) -> Result<bool> {
        match self.size(ft, name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Open the backend a repository location names. Only local paths exist today.
pub fn open(location: &str) -> Result<Box<dyn Backend>> {
    Ok(Box::new(local::LocalBackend::new(location)))
}
