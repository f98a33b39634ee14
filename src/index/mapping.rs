//! The only unsafe code of cairn: mapping the index cache file, and viewing its entries
//! as slots. Kept here, small, so it is read as a whole.
#![allow(unsafe_code)]

use super::Slot;

/// Map `file` for reading.
pub(super) fn map(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is only read. cairn never changes a cache file in place (a new one
    // is renamed over it, and the old map keeps the old inode); another process that
    // writes into the file anyway changes only bytes every page check covers, and a
    // truncation is the one thing that could fault, which only the file's owner can do.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// `bytes` as slots (its length a multiple of the slot size).
pub(super) fn slots(bytes: &[u8]) -> &[Slot] {
    const SIZE: usize = std::mem::size_of::<Slot>();
    const _: () = assert!(std::mem::align_of::<Slot>() == 1);
    assert_eq!(bytes.len() % SIZE, 0, "whole slots");
    // SAFETY: Slot is repr(C) and made of byte arrays only (31 bytes, alignment 1, no
    // padding), so every byte pattern is a valid Slot and every address is aligned for
    // one; the result covers exactly the bytes of `bytes` and borrows them.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<Slot>(), bytes.len() / SIZE) }
}
