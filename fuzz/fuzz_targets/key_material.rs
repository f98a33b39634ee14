//! MasterKey::from_bytes (key material of versions 2 to 4, what a key file's slot seals)
//! on arbitrary bytes: never panics, and what it accepts encodes back to the same bytes,
//! with an older content root exactly when byte 33 says so.
#![no_main]

use cairn::crypto::keys::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = MasterKey::from_bytes(data) else {
        return;
    };
    assert_eq!(&key.to_bytes()[..], data, "accepted material re-encodes to other bytes");
    assert_eq!(key.holds_older_content(), data[33] & 0x10 == 0x10);
    assert!((1..=2).contains(&key.epoch_numbers().len()));
});
