//! KeyFile::decode on arbitrary bytes: never panics, and what it accepts is consistent.
//! `unwrap` runs Argon2id (>= 8 MiB per call), far too slow per input, so it is called
//! only when the header's KDF parameters are out of bounds: then it must fail fast with an
//! error, before any Argon2id work.
#![no_main]

use cairn::crypto::aead::TAG_LEN;
use cairn::format::keyfile::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(kf) = KeyFile::decode(data) else {
        return;
    };
    assert!(data.len() >= 12 + TAG_LEN);
    assert_eq!(&data[..4], cairn::format::keyfile::MAGIC);
    assert_eq!(kf.kind as u8, data[5]);
    let again = KeyFile::decode(data).expect("decoding is deterministic");
    assert_eq!(again.header, kf.header);
    assert_eq!(again.kind, kf.kind);
    if kf.header.kdf.check().is_err() {
        assert!(kf.unwrap(b"pw").is_err());
    }
});
