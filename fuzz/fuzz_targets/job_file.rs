//! job::config::parse on arbitrary text: never panics, and every mistake it reports points
//! at a line of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count().max(1) + 1;
    match cairn::job::config::parse(text) {
        Ok(file) => assert!(!file.jobs.is_empty(), "a valid file has a job"),
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {}", e.line, e.message);
            }
        }
    }
});
