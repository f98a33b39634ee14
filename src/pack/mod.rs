//! Building packs in memory (no I/O) and reading blobs back out of stored packs.

pub mod builder;
pub mod frame_cache;
pub mod frames;
pub mod moved;
pub mod prefetch;
pub mod reader;
pub mod records;
pub mod writer;

pub use builder::{FinishedPack, PackBuilder};
pub use reader::PackReader;
pub use writer::BlobWriter;
