//! compress::decode on arbitrary bytes: never panics, never returns more than the limit,
//! and what it returns survives encode -> decode.
#![no_main]

use cairn::compress::{decode, encode};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decode(data, LIMIT) {
        assert!(out.len() <= LIMIT);
        if data[0] == 0 {
            assert_eq!(out, &data[1..], "raw tag returns the payload");
        }
        // A limit one below the real size is refused.
        if !out.is_empty() {
            assert!(decode(data, out.len() - 1).is_err());
        }
        assert_eq!(decode(data, out.len()).expect("exact limit accepted"), out);
        let enc = encode(&out, 3);
        assert!(enc.len() <= out.len() + 1, "never grows by more than the tag");
        assert_eq!(decode(&enc, out.len()).expect("re-encoded decodes"), out);
    }
    // A small limit derived from the input must hold as well.
    let small = data.len() / 2;
    if let Ok(out) = decode(data, small) {
        assert!(out.len() <= small);
    }
    // Arbitrary data round-trips through both encodings.
    for level in [0, 3] {
        let enc = encode(data, level);
        assert_eq!(decode(&enc, data.len()).expect("own encoding decodes"), data);
    }
});
