//! zstd compression with a self-describing tag byte, and raw storage where zstd does not
//! make the data smaller (already-compressed archives, random bytes).
//!
//! Encoded form: one tag byte, then the payload. Tag 0: the payload is the data. Tag 1: the
//! payload is one zstd frame that declares its content size, and nothing after it.
//! Decoding checks the declared size against the caller's limit before allocating, so
//! hostile input cannot make us allocate more than the limit.

use crate::error::{Error, Result};
use std::cell::RefCell;

const TAG_RAW: u8 = 0;
const TAG_ZSTD: u8 = 1;

thread_local! {
    // One context per thread and level: creating a zstd context costs more than
    // compressing a small config file.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Below this size a chunk is compressed without first probing it.
const PROBE_MIN: usize = 16 * 1024;
const PROBE_PART: usize = 2048;

/// Whether a sample of `data` (its start, middle and end) looks like bytes no coder can
/// shrink (archives, media, encrypted files): then compressing the whole would only burn
/// time. The test is the sample's byte entropy, which costs a count of its bytes where
/// compressing it at zstd's fastest level cost ten times more; random or compressed bytes
/// score close to 8 bits a byte in a sample this size, text 4 to 6, base64 6.
pub fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < PROBE_MIN {
        return false;
    }
    let mid = data.len() / 2 - PROBE_PART / 2;
    let mut counts = [0u32; 256];
    for part in [&data[..PROBE_PART], &data[mid..mid + PROBE_PART], &data[data.len() - PROBE_PART..]] {
        for &b in part {
            counts[b as usize] += 1;
        }
    }
    let n = (3 * PROBE_PART) as f64;
    let bits: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum();
    bits >= INCOMPRESSIBLE_BITS
}

/// Bits of entropy a byte from which a sample counts as incompressible: entropy coding
/// alone could then save at most 1.5%.
const INCOMPRESSIBLE_BITS: f64 = 7.88;

/// The default level, whose tables [`compressor`] sizes for frames.
pub const DEFAULT_LEVEL: i32 = 3;

/// zstd's level 3 sizes its match tables for inputs of many MiB (a hash table of 2^17
/// entries, a chain table of 2^16): 768 KiB, more than a core's L2 cache, for frames of
/// at most 1 MiB (`pack::frames`). Tables of 2^15 and 2^13 entries compress the gateway
/// corpus's text 25% faster in 1 MiB pieces for 0.8% more output (benches/RESULTS.md,
/// "zstd tables sized for frames"). Other levels are zstd's own: a user who picks one
/// gets what zstd documents for it.
fn compressor(level: i32) -> Option<zstd::bulk::Compressor<'static>> {
    use zstd::zstd_safe::CParameter;
    let mut z = zstd::bulk::Compressor::new(level).ok()?;
    if level == DEFAULT_LEVEL {
        z.set_parameter(CParameter::HashLog(15)).ok()?;
        z.set_parameter(CParameter::ChainLog(13)).ok()?;
    }
    Some(z)
}

/// Encode `data` at zstd `level`; level 0 stores raw.
pub fn encode(data: &[u8], level: i32) -> Vec<u8> {
    if level != 0 && !looks_incompressible(data) {
        let compressed = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().map(|(l, _)| *l) != Some(level) {
                *c = compressor(level).map(|z| (level, z));
            }
            let (_, z) = c.as_mut()?;
            z.include_contentsize(true).ok()?;
            // Compressed right after the tag byte, so the output is not copied again.
            let mut out = Vec::with_capacity(1 + zstd::zstd_safe::compress_bound(data.len()));
            out.push(TAG_ZSTD);
            let mut at_tag_end = std::io::Cursor::new(out);
            at_tag_end.set_position(1);
            z.compress_to_buffer(data, &mut at_tag_end).ok()?;
            Some(at_tag_end.into_inner())
        });
        if let Some(out) = compressed {
            if out.len() < data.len() + 1 {
                return out;
            }
        }
    }
    store(data)
}

/// Encode `data` as stored bytes, without trying to compress it.
pub fn store(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    Encoding::Stored(data).append_to(&mut out);
    out
}

/// An encoding about to be written into a larger buffer (a pack): bytes already encoded,
/// or data to store as it is, which is then copied once, into that buffer, and not first
/// into an encoding of its own.
pub enum Encoding<'a> {
    Encoded(Vec<u8>),
    Stored(&'a [u8]),
}

impl Encoding<'_> {
    /// Bytes of the encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Encoding::Encoded(e) => e.len(),
            Encoding::Stored(d) => 1 + d.len(),
        }
    }

    /// Append the encoding to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Encoding::Encoded(e) => out.extend_from_slice(e),
            Encoding::Stored(d) => {
                out.push(TAG_RAW);
                out.extend_from_slice(d);
            }
        }
    }
}

/// Decode an encoded buffer whose data must not exceed `limit` bytes.
pub fn decode(encoded: &[u8], limit: usize) -> Result<Vec<u8>> {
    let (&tag, payload) = encoded.split_first().ok_or_else(|| Error::corrupt("empty compressed payload"))?;
    match tag {
        TAG_RAW => {
            if payload.len() > limit {
                return Err(Error::corrupt(format!(
                    "payload of {} bytes exceeds limit {limit}",
                    payload.len()
                )));
            }
            Ok(payload.to_vec())
        }
        TAG_ZSTD => {
            let size = zstd::zstd_safe::get_frame_content_size(payload)
                .ok()
                .flatten()
                .ok_or_else(|| Error::corrupt("zstd frame without a content size"))?;
            if size > limit as u64 {
                return Err(Error::corrupt(format!("zstd frame declares {size} bytes, limit is {limit}")));
            }
            // Exactly one frame: a second (even an empty or skippable one) would be bytes
            // the writer never wrote, hidden behind a valid first frame.
            match zstd::zstd_safe::find_frame_compressed_size(payload) {
                Ok(n) if n == payload.len() => {}
                Ok(_) => return Err(Error::corrupt("bytes follow the zstd frame")),
                Err(_) => return Err(Error::corrupt("zstd frame is malformed")),
            }
            DECOMPRESSOR.with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new().map_err(|e| Error::io("zstd context", e))?);
                }
                let d = d.as_mut().expect("set above");
                let out =
                    d.decompress(payload, size as usize).map_err(|e| Error::corrupt(format!("zstd: {e}")))?;
                if out.len() as u64 != size {
                    return Err(Error::corrupt("zstd frame shorter than its declared size"));
                }
                Ok(out)
            })
        }
        _ => Err(Error::corrupt(format!("unknown compression tag {tag}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_data_shrinks_and_round_trips() {
        let data = b"<entity type=\"Policy\"/>\n".repeat(500);
        let enc = encode(&data, 3);
        assert_eq!(enc[0], TAG_ZSTD);
        assert!(enc.len() < data.len() / 10);
        assert_eq!(decode(&enc, data.len()).unwrap(), data);
    }

    #[test]
    fn the_default_level_uses_tables_sized_for_frames() {
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("<policy id='{}'/>\n", i * 7919 % 100_003).into_bytes())
            .collect();
        let enc = encode(&text, DEFAULT_LEVEL);
        let mut sized = zstd::bulk::Compressor::new(3).unwrap();
        sized.set_parameter(zstd::zstd_safe::CParameter::HashLog(15)).unwrap();
        sized.set_parameter(zstd::zstd_safe::CParameter::ChainLog(13)).unwrap();
        sized.include_contentsize(true).unwrap();
        assert_eq!(enc[1..], sized.compress(&text).unwrap()[..]);
        assert_ne!(
            enc[1..],
            zstd::bulk::compress(&text, 3).unwrap()[..],
            "zstd's own tables would give other bytes"
        );
        assert_eq!(decode(&enc, text.len()).unwrap(), text);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut data = vec![0u8; 4096];
        crate::crypto::keys::fill_random(&mut data).unwrap();
        let enc = encode(&data, 3);
        assert_eq!(enc[0], TAG_RAW);
        assert_eq!(decode(&enc, 4096).unwrap(), data);
        assert_eq!(encode(b"abc", 0)[0], TAG_RAW);
    }

    #[test]
    fn the_probe_skips_random_and_compressed_data_but_not_text_or_base64() {
        let mut random = vec![0u8; 64 * 1024];
        crate::crypto::keys::fill_random(&mut random).unwrap();
        assert!(looks_incompressible(&random));
        let mut mixed = b"<policy name=\"x\"/>\n".repeat(4000);
        mixed[..PROBE_PART].copy_from_slice(&random[..PROBE_PART]);
        assert!(!looks_incompressible(&mixed));
        assert_eq!(encode(&mixed, 3)[0], TAG_ZSTD);
        // Already compressed: what zstd made of varied text.
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| {
                format!("<entity id='{}' name='p{}'/>\n", i.wrapping_mul(2_654_435_761), i % 977).into_bytes()
            })
            .collect();
        let packed = zstd::bulk::compress(&text, 19).unwrap();
        assert!(packed.len() > PROBE_MIN && looks_incompressible(&packed), "{} bytes", packed.len());
        // Base64 of random bytes: 6 bits a byte, which entropy coding shrinks by a quarter.
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let base64: Vec<u8> = random.iter().map(|b| B64[(b & 63) as usize]).collect();
        assert!(!looks_incompressible(&base64));
        assert!(encode(&base64, 3).len() < base64.len() * 80 / 100);
    }

    #[test]
    fn limits_and_garbage_are_refused() {
        let data = vec![b'a'; 10_000];
        let enc = encode(&data, 3);
        assert!(decode(&enc, 9_999).is_err());
        assert!(decode(&[], 10).is_err());
        assert!(decode(&[7, 1, 2], 10).is_err());
        assert!(decode(&[TAG_ZSTD, 1, 2, 3], 10).is_err());
        assert!(decode(&[TAG_RAW, 1, 2, 3], 2).is_err());
    }

    #[test]
    fn bytes_after_the_zstd_frame_are_refused() {
        let data = b"<entity/>".repeat(100);
        let enc = encode(&data, 3);
        assert_eq!(decode(&enc, 1 << 20).unwrap(), data);
        let empty_frame = &encode(&[], 3);
        let empty_frame = zstd::bulk::compress(&[], 3).unwrap_or_else(|_| empty_frame[1..].to_vec());
        // A second frame that adds nothing, a skippable frame, and stray bytes.
        let skippable = [0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, 0xEE];
        for tail in [&empty_frame[..], &skippable[..], &[0u8][..]] {
            let mut bad = enc.clone();
            bad.extend_from_slice(tail);
            assert!(decode(&bad, 1 << 20).is_err(), "tail {tail:?} accepted");
        }
    }
}
