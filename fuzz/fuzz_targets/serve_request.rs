//! What `cairn serve` makes of a request's path and Range header, on arbitrary text:
//! never panics; a path it accepts names only what the format writes (no way out of the
//! root), and a range it accepts is never empty.
#![no_main]

use cairn::serve::names::{parse_path, parse_range, Target};
use libfuzzer_sys::fuzz_target;

/// One path component that stays where it is: not `.` or `..`, no separator, no NUL,
/// and (the server's own folder starts with one) no leading dot.
fn plain(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains('/') && !s.contains('\0')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, range) = text.split_once('\n').unwrap_or((text, text));
    match parse_path(path) {
        Ok(Target::Repository(r)) | Ok(Target::Listing(r, _)) => assert!(plain(&r), "{path:?}"),
        Ok(Target::Object(r, name)) => {
            assert!(plain(&r), "{path:?}");
            assert!(plain(&name.name), "{path:?}");
            assert!(name.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{path:?}");
        }
        Ok(Target::StatusPage) | Ok(Target::Metrics) | Err(_) => {}
    }
    if let Some((start, len)) = parse_range(range) {
        assert!(len >= 1, "{range:?}");
        assert!(start.checked_add(len - 1).is_some(), "{range:?}");
    }
});
