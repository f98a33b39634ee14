//! What a store with S3 Object Lock offers beyond plain objects: writing every object with
//! a retain-until date, reading and extending that date, and listing and deleting the
//! versions a locked bucket keeps. Only the S3 store implements it; the operations that
//! use it live in `ops::object_lock`.

use super::FileType;
use crate::error::Result;
use crate::format::config::ObjectLockPolicy;
use std::time::SystemTime;

/// One stored version of an object, or a delete marker, as the bucket lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The object's path below the repository (`data/ab/abcd…`, `snapshots/…`, `config`).
    pub path: String,
    pub version_id: String,
    /// A delete marker: what a delete without a version id leaves; it hides the object.
    pub delete_marker: bool,
    /// The object's current version (or marker).
    pub latest: bool,
    pub modified: Option<SystemTime>,
}

pub trait ObjectLock: Send + Sync {
    /// Lock every object written from now on (lock files excepted: they are deleted when
    /// their command ends) for the policy's period.
    fn set_policy(&self, policy: ObjectLockPolicy);
    /// Whether the bucket has Object Lock enabled, without which no lock can be set.
    fn bucket_lock_enabled(&self) -> Result<bool>;
    /// When the current version of an object may be deleted (`None`: not locked).
    fn retain_until(&self, ft: FileType, name: &str) -> Result<Option<SystemTime>>;
    /// Lock the current version of an object until `until` (never shortens in a store
    /// that enforces the lock).
    fn extend(&self, ft: FileType, name: &str, until: SystemTime) -> Result<()>;
    /// Every version and delete marker below the repository.
    fn versions(&self) -> Result<Vec<Version>>;
    /// When a given version may be deleted (`None`: not locked).
    fn version_retain_until(&self, path: &str, version_id: &str) -> Result<Option<SystemTime>>;
    /// Delete one version or delete marker for good; a locked version is refused
    /// (`PermissionDenied`).
    fn remove_version(&self, path: &str, version_id: &str) -> Result<()>;
}
