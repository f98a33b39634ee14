//! What the HTTP stores (S3, served) share in reading answers: one line for what went
//! wrong on the wire, and bodies read no further than the caller allows.

use super::FileType;
use crate::error::Result;
use std::io::Read;

/// What went wrong on the wire, in one line.
pub fn net_cause(e: &ureq::Error) -> String {
    match e {
        ureq::Error::ConnectionFailed => "connection refused or unreachable".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// The body of an answer, for an object of at most `max` bytes. With `whole` (the answer
/// is the object itself, not a range a store may have ignored), a success that declares a
/// larger length is refused before a byte is read; in any case at most one byte past
/// `max` is read (an error's body is short). Returns the bytes and how the read went, so
/// the caller can report a refusal by its body even when reading broke off.
pub fn bounded_body(
    resp: &mut ureq::http::Response<ureq::Body>,
    whole: bool,
    ft: FileType,
    name: &str,
    max: u64,
) -> Result<(Vec<u8>, std::io::Result<usize>)> {
    if whole && resp.status().is_success() {
        let declared =
            resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(size) = declared.filter(|&s| s > max) {
            return Err(super::too_large(ft, name, size, max));
        }
    }
    let mut body = Vec::new();
    let read = resp.body_mut().as_reader().take(max.saturating_add(1)).read_to_end(&mut body);
    Ok((body, read))
}
