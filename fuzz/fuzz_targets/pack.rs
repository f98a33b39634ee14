//! Pack decoding: parse_header, parse_trailer, decode_toc and reader::read_toc on
//! arbitrary bytes never panic, and what they accept is consistent.
//!
//! The input is used twice:
//! - as a whole pack: parse_header, the head of a moved-frames pack (origins), parse_trailer,
//!   read_toc with fixed keys (almost every input fails authentication there), and
//!   opening and moving each frame the table names; and as a plaintext table of each
//!   version and class for decode_toc;
//! - as `[u16 LE blob area length][table plaintext]`: the target seals the table into a
//!   pack with a valid header and trailer, so read_toc authenticates it and its result
//!   must equal decode_toc's on the same plaintext.
#![no_main]

use cairn::crypto::aead::TAG_LEN;
use cairn::format::pack::{
    decode_toc, encode_toc, head_len, parse_header, parse_origins, parse_trailer, Entry, FrameOrigins, Header,
    PackClass, HEADER_LEN, MAX_BLOB, ORIGIN_LEN, PREFIX_LEN, TRAILER_LEN, VERSION, VERSION_1, VERSION_2, VERSION_4,
    VERSION_5,
};
use cairn::id::BlobKind;
use cairn::pack::reader::{open_frame, read_toc, PackKey};
use libfuzzer_sys::fuzz_target;

fn header(version: u8, class: PackClass) -> Header {
    Header { version, epoch: 0, class, eph_pub: [0; 32] }
}

fn check_entries(entries: &[Entry], toc: &[u8], blob_area_end: usize, version: u8) {
    for (i, e) in entries.iter().enumerate() {
        assert!(e.offset as usize >= HEADER_LEN);
        assert!(e.length as usize > TAG_LEN);
        assert!(e.end() <= MAX_BLOB as usize);
        assert!(e.offset as usize + e.length as usize <= blob_area_end);
        // A frame's blobs follow each other; every other entry starts a frame.
        match i.checked_sub(1).map(|p| &entries[p]) {
            Some(p) if p.same_frame(e) => assert!(p.length == e.length && p.end() == e.start as usize),
            _ => assert_eq!(e.start, 0),
        }
    }
    if version != VERSION_1 {
        assert_eq!(encode_toc(entries), toc, "fixed-width table is canonical");
    } else {
        assert!(entries.iter().all(|e| e.start == 0), "version 1 entries have no start");
    }
}

fuzz_target!(|data: &[u8]| {
    // Whole pack.
    let tables = match parse_header(data) {
        Ok(h) => {
            assert_eq!(&h.eph_pub[..], &data[8..40]);
            assert!((VERSION_1..=VERSION_5).contains(&h.version));
            // Version 4 names a key epoch, never epoch 0; before it none; version 5 any.
            if h.version < VERSION_4 {
                assert_eq!(h.epoch, 0);
            }
            if h.version == VERSION_4 {
                assert_ne!(h.epoch, 0);
            }
            assert!(h.version == VERSION_5 || h.class == PackClass::Data);
            h.tables()
        }
        Err(_) => 1,
    };
    if let Ok(range) = parse_trailer(data, tables) {
        let n = data.len();
        assert_eq!(range.end, n - TRAILER_LEN);
        assert!(range.start >= HEADER_LEN + (tables - 1) * range.len(), "tables overlap the header");
        assert!(range.len() >= TAG_LEN + 4);
        let _ = &data[range];
    }
    // A moved-frames pack's head: its origins, each of a data pack version with frames.
    if let Ok(h) = parse_header(data) {
        if let Ok(len) = head_len(&h, data) {
            match h.class {
                PackClass::Moved => {
                    assert!(len >= HEADER_LEN + 4 + ORIGIN_LEN && (len - HEADER_LEN - 4) % ORIGIN_LEN == 0);
                    if let Ok(origins) = parse_origins(&h, data) {
                        assert_eq!(origins.len(), (len - HEADER_LEN - 4) / ORIGIN_LEN);
                        assert!(origins.iter().all(|o| (VERSION_2..=VERSION_5).contains(&o.version)));
                    }
                }
                _ => assert_eq!(len, HEADER_LEN),
            }
        }
    }
    if let Ok(entries) = read_toc(cairn_fuzz::keys(), data) {
        let range = parse_trailer(data, tables).expect("read_toc implies a trailer");
        let key = PackKey::of_header(cairn_fuzz::keys(), data).expect("read_toc implies a key");
        let origins = FrameOrigins::of_head(data).ok();
        for e in &entries {
            assert!(e.offset as usize + e.length as usize <= range.start);
            let sealed = &data[e.offset as usize..(e.offset + e.length) as usize];
            // Opening it (with a prefix that may lie) and taking its origin never panic.
            let _ = open_frame(&key, e, &mut sealed.to_vec());
            if let Some(Ok((_, _, body))) = origins.as_ref().map(|o| o.frame(e.offset, sealed)) {
                assert!(body.len() == sealed.len() || body.len() + PREFIX_LEN == sealed.len());
            }
        }
    }
    // Plaintext table, against the input's own length and against a huge area.
    for end in [data.len(), usize::MAX] {
        for h in [
            header(VERSION_1, PackClass::Data),
            header(VERSION, PackClass::Data),
            header(VERSION_5, PackClass::References),
            header(VERSION_5, PackClass::Moved),
        ] {
            if let Ok(entries) = decode_toc(data, end, &h) {
                check_entries(&entries, data, end, h.version);
                if h.class == PackClass::Moved {
                    assert!(entries.iter().all(|e| e.length as usize > PREFIX_LEN + TAG_LEN), "room for the prefix");
                }
                let references = entries.iter().filter(|e| e.id.kind() == BlobKind::References).count();
                let expected = if h.class == PackClass::References { entries.len() } else { 0 };
                assert_eq!(references, expected, "records in references packs only, and only they");
            }
        }
    }

    // Validly sealed pack around a fuzzed table.
    if data.len() < 2 {
        return;
    }
    let blob_area = u16::from_le_bytes([data[0], data[1]]) as usize;
    let toc = &data[2..];
    let built = cairn_fuzz::pack_with_toc(blob_area, toc);
    let blob_area_end = HEADER_LEN + blob_area;
    let direct = decode_toc(toc, blob_area_end, &header(VERSION, PackClass::Data));
    match read_toc(cairn_fuzz::keys(), &built) {
        Ok(entries) => {
            assert_eq!(Ok(&entries), direct.as_ref().map_err(|_| ()));
            check_entries(&entries, toc, blob_area_end, VERSION);
        }
        Err(e) => {
            // Either the table itself is refused, or the trailer cannot describe it
            // (a table shorter than 4 bytes plus tag).
            assert!(direct.is_err() || toc.len() < 4, "read_toc refused a table decode_toc accepts: {e}");
        }
    }
});
