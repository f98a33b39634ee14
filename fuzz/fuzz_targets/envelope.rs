//! Sealed file objects: envelope::open with fixed keys on arbitrary bytes, for every
//! object type, never panics (almost every input fails authentication there). To reach
//! what lies behind authentication, the input also becomes the body of a correctly sealed
//! envelope (first byte picks the type): open must then agree with compress::decode on
//! that body, and an object of one type is refused as any other. Finally seal -> open
//! round-trips that body as a payload.
#![no_main]

use cairn::compress;
use cairn::format::envelope::{self, ObjectType, MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;

const TYPES: [ObjectType; 5] =
    [ObjectType::Config, ObjectType::Index, ObjectType::Snapshot, ObjectType::Lock, ObjectType::Log];

fuzz_target!(|data: &[u8]| {
    let keys = cairn_fuzz::keys();
    for ty in TYPES {
        let _ = envelope::parse_header(ty, data);
        if let Ok(payload) = envelope::open(keys, ty, data) {
            assert!(payload.len() <= MAX_PAYLOAD);
        }
    }
    let _ = envelope::open_config(cairn_fuzz::master(), data);

    // A valid seal around a fuzzed (compress-encoded) body.
    if let Some((&sel, body)) = data.split_first() {
        let ty = TYPES[sel as usize % TYPES.len()];
        let sealed = cairn_fuzz::envelope_with_body(ty, body);
        let opened = envelope::open(keys, ty, &sealed);
        let direct = compress::decode(body, MAX_PAYLOAD);
        match (&opened, &direct) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "open and compress::decode disagree on a validly sealed body: {:?} vs {:?}",
                opened.as_ref().map(|v| v.len()).map_err(|e| e.to_string()),
                direct.as_ref().map(|v| v.len()).map_err(|e| e.to_string()),
            ),
        }
        if ty == ObjectType::Config {
            let via_master = envelope::open_config(cairn_fuzz::master(), &sealed);
            assert_eq!(via_master.is_ok(), opened.is_ok());
        }
        for other in TYPES {
            if other != ty {
                assert!(envelope::open(keys, other, &sealed).is_err());
            }
        }

        // seal -> open round trip of the body as a payload (kept short: sealing
        // compresses, and a sealed type costs two X25519 operations).
        if body.len() <= 4096 {
            let sealed = envelope::seal(keys, ty, body).expect("seal");
            assert_eq!(envelope::open(keys, ty, &sealed).expect("open own seal"), body);
        }
    }
});
