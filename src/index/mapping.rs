//! The only unsafe code of cairn: mapping the index cache file, viewing its entries as
//! slots, and dropping its pages from this process. Kept here, small, so it is read as a
//! whole.
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

/// Drop every page of the map from this process's memory. The kernel maps the pages next
/// to each one a lookup reads (up to 64 KiB, when they are in the page cache), so a
/// process that looks up many blobs would, without this, grow by the whole file. The
/// pages stay in the page cache; a later read maps them again.
pub(super) fn release(map: &memmap2::Mmap) {
    // SAFETY: the map is private and read-only, so no page was ever written: dropping a
    // page only makes the next read fetch the same bytes from the file again (cairn never
    // changes a cache file in place), and slices into the map stay valid meanwhile.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
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
