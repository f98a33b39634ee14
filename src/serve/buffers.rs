//! Upload buffers kept between requests. A pack upload is received whole into a
//! block-aligned buffer of about 8 MiB; a fresh one costs a page fault and a zeroed page
//! per 4 KiB on its first fill (7% of the server's CPU time in a served backup, measured
//! with perf), a kept one is warm.

use std::sync::Mutex;

/// Buffers kept when idle: enough for the uploads a few clients have in flight at once
/// (about 36 MiB of memory with 8 MiB packs).
const KEPT: usize = 4;

/// Buffers larger than this are freed rather than kept (an upload of an unusually large
/// object should not pin its memory).
const KEPT_CAPACITY: usize = 32 << 20;

#[derive(Default)]
pub struct Buffers {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// An empty buffer, warm if one is kept.
    pub fn take(&self) -> Vec<u8> {
        self.idle.lock().expect("buffers lock").pop().unwrap_or_default()
    }

    /// Hand a buffer back once its upload is stored.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() > KEPT_CAPACITY {
            return;
        }
        buf.clear();
        let mut idle = self.idle.lock().expect("buffers lock");
        if idle.len() < KEPT {
            idle.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_a_few_and_never_huge_ones() {
        let b = Buffers::default();
        let mut first = b.take();
        first.extend_from_slice(&[1; 4096]);
        let at = first.as_ptr();
        b.give(first);
        let again = b.take();
        assert_eq!((again.as_ptr(), again.len()), (at, 0), "the same memory, emptied");
        for _ in 0..KEPT + 3 {
            b.give(Vec::with_capacity(16));
        }
        assert_eq!(b.idle.lock().unwrap().len(), KEPT);
        let b = Buffers::default();
        b.give(Vec::with_capacity(KEPT_CAPACITY + 1));
        assert!(b.idle.lock().unwrap().is_empty());
    }
}
