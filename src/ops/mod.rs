//! Operations that commands run. Each takes a repository and options and returns an
//! outcome; none prints.

pub mod backup;
pub mod check;
pub mod copy;
pub mod dump;
pub mod exclude;
pub mod expiry;
mod flusher;
pub mod forget;
pub mod import_borg;
pub mod import_restic;
pub mod maintenance;
pub mod object_lock;
pub mod progress;
pub mod prune;
mod read_ahead;
pub(crate) mod read_pool;
pub mod rechunk;
pub mod records;
pub mod repair;
pub mod restore;
pub mod restore_delete;
pub mod restore_target;
pub mod rewrite;
pub mod rotate;
mod sparse_writer;
pub mod tag;
pub mod tar_stream;
pub mod verify;
mod walker;
