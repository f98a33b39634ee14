//! Gathers blobs into frames, the unit a pack compresses and seals (format-spec/packs.md):
//! consecutive chunks of a file, or small files read one after another, share one zstd
//! context instead of each being compressed alone. Pure: no keys and no I/O, so the
//! writer and the stage benchmarks gather alike.

use crate::compress::{self, Encoding};
use crate::id::BlobId;

/// A frame is closed once the next blob would take it past this many plaintext bytes:
/// large enough that zstd finds most of what it would find in a whole file (a 200 MB SQL
/// dump compresses 5% smaller in 1 MiB pieces than in 64 KiB chunks), small enough that
/// reading one blob decompresses little else.
pub const FRAME_TARGET: usize = 1 << 20;

/// A complete frame: its blobs (id and plaintext length, in order) and their
/// concatenated plaintexts, compress-encoded. A blob stored as it is stays where its
/// caller holds it until the frame is written into a pack.
pub struct Frame<'a> {
    pub blobs: Vec<(BlobId, u32)>,
    pub encoded: Encoding<'a>,
}

/// The open frame of one writer.
pub struct Framer {
    level: i32,
    /// A frame is closed before this many plaintext bytes; a blob this large or larger
    /// gets a frame of its own ([`FRAME_TARGET`], or 0 for a frame per blob).
    target: usize,
    blobs: Vec<(BlobId, u32)>,
    plain: Vec<u8>,
}

impl Framer {
    /// A framer compressing at zstd `level` (0: store).
    pub fn new(level: i32) -> Self {
        Framer { level, target: FRAME_TARGET, blobs: Vec::new(), plain: Vec::new() }
    }

    /// A framer giving each blob a frame of its own: in a repository with maintenance, so
    /// that a maintenance key, which moves whole frames, can move exactly the blobs in use
    /// (format-spec/maintenance-key.md, *frames*).
    pub fn frame_per_blob(level: i32) -> Self {
        Framer { target: 0, ..Framer::new(level) }
    }

    /// Take a blob. Returns a frame that is complete now: the blob's own, if it fills a
    /// frame alone or its sample does not compress (compressing it with others would
    /// only cost time), or else the open frame, if the blob would take it past
    /// [`FRAME_TARGET`] (the blob then opens the next one).
    pub fn add<'a>(&mut self, id: BlobId, plaintext: &'a [u8]) -> Option<Frame<'a>> {
        let blob = (id, plaintext.len() as u32);
        // Stored as it is: at level 0, or when its sample does not compress.
        let stored = self.level == 0 || compress::looks_incompressible(plaintext);
        if plaintext.len() >= self.target || (stored && self.level != 0) {
            let encoded = match stored {
                true => Encoding::Stored(plaintext),
                false => Encoding::Encoded(compress::encode(plaintext, self.level)),
            };
            return Some(Frame { blobs: vec![blob], encoded });
        }
        let full = if self.plain.len() + plaintext.len() > self.target { self.finish() } else { None };
        self.blobs.push(blob);
        self.plain.extend_from_slice(plaintext);
        full
    }

    /// Close the open frame; `None` if it holds no blob.
    pub fn finish(&mut self) -> Option<Frame<'static>> {
        if self.blobs.is_empty() {
            return None;
        }
        let encoded = Encoding::Encoded(compress::encode(&self.plain, self.level));
        self.plain.clear();
        Some(Frame { blobs: std::mem::take(&mut self.blobs), encoded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    fn id(i: u8) -> BlobId {
        BlobId::Chunk(ChunkId([i; 32]))
    }

    fn bytes(e: &Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        e.append_to(&mut out);
        assert_eq!(out.len(), e.encoded_len());
        out
    }

    #[test]
    fn frames_close_at_the_target_and_odd_blobs_stand_alone() {
        let mut f = Framer::new(3);
        let text = b"<policy name='x'/>\n".repeat(20_000); // 380 KB
        assert!(f.add(id(1), &text).is_none());
        assert!(f.add(id(2), &text).is_none());
        let mut random = vec![0u8; 64 << 10];
        crate::crypto::keys::fill_random(&mut random).unwrap();
        let alone = f.add(id(3), &random).expect("random bytes get a frame at once");
        assert_eq!(alone.blobs, vec![(id(3), random.len() as u32)]);
        assert!(
            matches!(alone.encoded, Encoding::Stored(p) if p.as_ptr() == random.as_ptr()),
            "stored as it is, and not copied before it goes into a pack"
        );
        assert_eq!(compress::decode(&bytes(&alone.encoded), random.len()).unwrap(), random);
        // A third text blob would pass 1 MiB: the open frame closes, the blob opens the next.
        let closed = f.add(id(4), &text).expect("the open frame is full");
        assert_eq!(closed.blobs, vec![(id(1), text.len() as u32), (id(2), text.len() as u32)]);
        let closed_bytes = bytes(&closed.encoded);
        assert_eq!(compress::decode(&closed_bytes, 2 * text.len()).unwrap(), [&text[..], &text].concat());
        let big = vec![b'a'; FRAME_TARGET];
        assert_eq!(f.add(id(5), &big).unwrap().blobs, vec![(id(5), big.len() as u32)]);
        // A large blob that does not compress is not copied before its pack either.
        let mut big_random = vec![0u8; FRAME_TARGET];
        crate::crypto::keys::fill_random(&mut big_random).unwrap();
        let alone = f.add(id(6), &big_random).unwrap();
        assert!(matches!(alone.encoded, Encoding::Stored(p) if p.as_ptr() == big_random.as_ptr()));
        assert_eq!(f.finish().unwrap().blobs, vec![(id(4), text.len() as u32)]);
        assert!(f.finish().is_none());
    }
}
