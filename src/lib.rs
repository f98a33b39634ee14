//! cairn: a content-addressed, deduplicating, compressed and encrypted backup repository.
//!
//! Backup walks the sources and, for each file, splits its bytes with a keyed FastCDC
//! chunker ([`chunker`]), names every chunk by a keyed BLAKE3 hash ([`id::ChunkId`]),
//! skips chunks the [`index`] already knows, compresses the rest with zstd
//! ([`compress`]), seals them with AES-256-GCM under a per-pack key and packs them into
//! immutable pack files ([`pack`]) stored through a [`backend`]. Directories become tree
//! blobs, and a snapshot names the root tree. Restore walks the same structure back,
//! decrypting every chunk and recomputing its id before writing a byte.
//!
//! The on-disk format is specified in `format-spec/` and implemented in [`format`].

// Denied everywhere but src/index/mapping.rs, which maps the index cache file.
#![deny(unsafe_code)]

pub mod backend;
pub mod browse;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod direct_io;
pub mod error;
pub mod failpoint;
pub mod format;
pub mod id;
pub mod index;
pub mod job;
pub mod mount;
pub mod ops;
pub mod pack;
pub mod repo;
pub mod restic;
pub mod serve;
pub mod sys;
pub mod tree;
pub mod units;

pub use error::{Error, ErrorKind, Result};
pub use repo::{InitOptions, Repository};
