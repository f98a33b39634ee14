//! A repository in a bucket of any S3-compatible store, as `s3:http[s]://host[:port]/bucket[/prefix]`.
//!
//! Requests are signed (SigV4, presigned URLs) by `rusty-s3` and sent by the blocking
//! HTTP client `ureq`; no protocol code lives here beyond mapping answers to error kinds.
//! Objects use the local layout under the prefix (`config`, `data/ab/abcd...`, ...), so a
//! repository can be moved between a folder and a bucket with any copying tool.
//!
//! Atomicity: an object is one PUT, which the store makes visible only complete, so an
//! interrupted upload leaves nothing under the final name.
//!
//! Credentials come from a file given for the location, else the environment:
//! AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional), and the region
//! from AWS_DEFAULT_REGION or AWS_REGION (default us-east-1); see `credentials.rs`.

use super::retry::transient;
use super::{check_name, object_path, Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod credentials;
mod lock;

pub use credentials::register_credentials_file;

/// How long a signed request stays valid: covers a slow upload of one pack.
const SIGNATURE_TTL: Duration = Duration::from_secs(3600);
/// Uploads in flight during a backup: enough to hide a round trip per pack.
const PARALLEL_UPLOADS: usize = 4;
/// Pack fetches check --read-data and restore keep in flight.
const PARALLEL_READS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// `http[s]://host[:port]`
    pub endpoint: String,
    pub bucket: String,
    /// Empty, or a path inside the bucket ending in `/`.
    pub prefix: String,
}

impl S3Location {
    /// Parse what follows `s3:`.
    pub fn parse(s: &str) -> Result<S3Location> {
        let bad = || {
            Error::invalid(format!(
                "'s3:{s}' is not an S3 location; write s3:https://HOST[:PORT]/BUCKET[/PREFIX]"
            ))
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        let path = path.trim_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if host.is_empty() || bucket.is_empty() {
            return Err(bad());
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3Location { endpoint: format!("{scheme}://{host}"), bucket: bucket.to_string(), prefix })
    }
}

pub struct S3Backend {
    loc: S3Location,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    /// Set once the bucket was seen to exist, so a missing object costs one request.
    bucket_seen: AtomicBool,
    /// The repository's Object Lock, once its config is read: every write is locked.
    lock: std::sync::OnceLock<crate::format::config::ObjectLockPolicy>,
}

impl S3Backend {
    /// The store at `loc`, with the credentials given for `location` (the whole `s3:...`
    /// text) or in the environment.
    pub fn new(loc: S3Location, location: &str) -> Result<S3Backend> {
        let (credentials, region) = credentials::for_location(location)?;
        let region = region.unwrap_or_else(|| "us-east-1".to_string());
        let endpoint: url::Url =
            loc.endpoint.parse().map_err(|e| Error::invalid(format!("{}: {e}", loc.endpoint)))?;
        // AWS itself prefers bucket-named hosts; other stores commonly serve paths only.
        let style =
            if loc.endpoint.ends_with(".amazonaws.com") { UrlStyle::VirtualHost } else { UrlStyle::Path };
        let bucket = Bucket::new(endpoint, style, loc.bucket.clone(), region)
            .map_err(|e| Error::invalid(format!("s3:{}/{}: {e}", loc.endpoint, loc.bucket)))?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_send_body(Some(Duration::from_secs(600)))
            .timeout_recv_body(Some(Duration::from_secs(600)))
            .max_idle_connections_per_host(2 * PARALLEL_UPLOADS + 4)
            .build();
        Ok(S3Backend {
            loc,
            bucket,
            credentials,
            agent: ureq::Agent::new_with_config(config),
            bucket_seen: AtomicBool::new(false),
            lock: std::sync::OnceLock::new(),
        })
    }

    fn key(&self, ft: FileType, name: &str) -> Result<String> {
        if ft != FileType::Config {
            check_name(name)?;
        }
        Ok(format!("{}{}", self.loc.prefix, object_path(ft, name)))
    }

    fn describe(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.loc.endpoint, self.loc.bucket)
    }

    /// Map a non-success answer to an error kind; a 404 is checked against the bucket, so
    /// a missing bucket is reported as such and not as a missing object.
    fn status_error(&self, what: &str, key: &str, status: u16, body: &str) -> Error {
        let code = xml_field(body, "Code").unwrap_or_default();
        let message = xml_field(body, "Message").unwrap_or_default();
        let detail = if code.is_empty() { format!("HTTP {status}") } else { format!("{code}: {message}") };
        let target = self.describe(key);
        match status {
            404 if code == "NoSuchBucket" || (code.is_empty() && !self.bucket_exists().unwrap_or(true)) => {
                self.missing_bucket()
            }
            404 => Error::new(ErrorKind::NotFound, format!("cannot {what} {target}: no such object")),
            401 | 403 => Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the S3 store refused access to {target} ({detail}); check AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION"
                ),
            ),
            400 | 405 | 411 | 413 => Error::new(
                ErrorKind::InvalidInput,
                format!("cannot {what} {target}: the store said {detail}"),
            ),
            // 5xx, throttling (429, 503 SlowDown), timeouts: worth another try.
            _ => transient(format!("cannot {what} {target}"), detail),
        }
    }

    fn missing_bucket(&self) -> Error {
        Error::new(
            ErrorKind::NotARepository,
            format!(
                "bucket '{}' does not exist at {}; create it first or check the location",
                self.loc.bucket, self.loc.endpoint
            ),
        )
    }

    fn net_error(&self, what: &str, key: &str, e: ureq::Error) -> Error {
        transient(format!("cannot {what} {}", self.describe(key)), super::http::net_cause(&e))
    }

    fn bucket_exists(&self) -> Result<bool> {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign(SIGNATURE_TTL);
        let resp = self.agent.head(url.as_str()).call().map_err(|e| self.net_error("reach", "", e))?;
        match resp.status().as_u16() {
            200..=299 => {
                self.bucket_seen.store(true, Ordering::Relaxed);
                Ok(true)
            }
            404 => Ok(false),
            s => Err(self.status_error("reach", "", s, "")),
        }
    }

    /// GET an object, or a byte range of it.
    /// GET an object or a range of it; at most `max` bytes of the body are read (a store
    /// that ignores Range sends the whole object: the part before the range end suffices).
    fn get(&self, ft: FileType, name: &str, range: Option<(u64, u64)>, max: u64) -> Result<Vec<u8>> {
        let key = self.key(ft, name)?;
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNATURE_TTL);
        let mut req = self.agent.get(url.as_str());
        if let Some((offset, len)) = range {
            if len == 0 {
                return Ok(Vec::new());
            }
            req = req.header("Range", format!("bytes={offset}-{}", offset + len - 1));
        }
        let mut resp = req.call().map_err(|e| self.net_error("read", &key, e))?;
        let status = resp.status().as_u16();
        if status == 416 {
            // The range starts at or past the end: fewer bytes, here none.
            return Ok(Vec::new());
        }
        let (mut body, read) = super::http::bounded_body(&mut resp, range.is_none(), ft, name, max)?;
        if !(200..300).contains(&status) {
            return Err(self.status_error("read", &key, status, &String::from_utf8_lossy(&body)));
        }
        read.map_err(|e| transient(format!("cannot read {}", self.describe(&key)), e))?;
        if range.is_none() && body.len() as u64 > max {
            return Err(super::too_large(ft, name, body.len() as u64, max));
        }
        if let (Some((_, len)), 200) = (range, status) {
            // A store that ignores Range sends the whole object; take the part asked for.
            let (offset, _) = range.expect("matched");
            let start = (offset as usize).min(body.len());
            let end = start.saturating_add(len as usize).min(body.len());
            body = body[start..end].to_vec();
        }
        Ok(body)
    }

    /// HEAD an object: its key and the successful answer.
    fn head(&self, ft: FileType, name: &str) -> Result<(String, ureq::http::Response<ureq::Body>)> {
        let key = self.key(ft, name)?;
        let url = self.bucket.head_object(Some(&self.credentials), &key).sign(SIGNATURE_TTL);
        let resp = self.agent.head(url.as_str()).call().map_err(|e| self.net_error("look up", &key, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.status_error("look up", &key, status, ""));
        }
        Ok((key, resp))
    }

    fn list_keys(&self, prefix: &str, max: Option<usize>) -> Result<Vec<ListedKey>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(m) = max {
                action.with_max_keys(m);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            let mut resp =
                self.agent.get(url.as_str()).call().map_err(|e| self.net_error("list", prefix, e))?;
            let status = resp.status().as_u16();
            let mut body = String::new();
            let read = resp.body_mut().as_reader().read_to_string(&mut body);
            if !(200..300).contains(&status) {
                return Err(self.status_error("list", prefix, status, &body));
            }
            read.map_err(|e| transient(format!("cannot list {}", self.describe(prefix)), e))?;
            self.bucket_seen.store(true, Ordering::Relaxed);
            let (keys, next) = parse_listing(&body).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("cannot list {}: the store's answer is not a listing", self.describe(prefix)),
                )
            })?;
            out.extend(keys);
            match next {
                Some(t) if max.is_none() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }
}

/// Every parser of the store's answers on one body, for the fuzz target `s3_answer`: none
/// may panic, whatever a hostile store sends. The count is of what they found.
#[doc(hidden)]
pub fn parse_answers_for_fuzzing(body: &str) -> usize {
    let listed = parse_listing(body).map_or(0, |(keys, _)| keys.len());
    listed + lock::parse_answers_for_fuzzing(body) + usize::from(xml_field(body, "Code").is_some())
}

/// The text of the first `<tag>...</tag>` in an S3 answer, with XML escapes undone.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// One key of a listing: its name, size and modification time.
type ListedKey = (String, u64, Option<std::time::SystemTime>);

/// Keys with their sizes and times, and the continuation token if the listing goes on.
type Listing = (Vec<ListedKey>, Option<String>);

/// Keys with sizes and the continuation token of a ListObjectsV2 answer. Only the fields
/// cairn uses are read: stores differ in which of the others they send (some omit ETag,
/// which stricter parsers require).
fn parse_listing(body: &str) -> Option<Listing> {
    if !body.contains("<ListBucketResult") {
        return None;
    }
    let mut keys = Vec::new();
    for item in body.split("<Contents>").skip(1) {
        let item = item.split("</Contents>").next()?;
        let size = xml_field(item, "Size").and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let modified = xml_field(item, "LastModified")
            .and_then(|t| t.trim().parse::<jiff::Timestamp>().ok())
            .and_then(|t| std::time::SystemTime::try_from(t).ok());
        keys.push((xml_field(item, "Key")?, size, modified));
    }
    let truncated = xml_field(body, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = xml_field(body, "NextContinuationToken").filter(|_| truncated);
    Some((keys, next))
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        format!("s3:{}/{}/{}", self.loc.endpoint, self.loc.bucket, self.loc.prefix)
    }

    fn create(&self) -> Result<()> {
        if !self.bucket_exists()? {
            return Err(self.missing_bucket());
        }
        if !self.list_keys(&self.loc.prefix, Some(1))?.is_empty() {
            let what = if self.exists(FileType::Config, "config")? {
                "already holds a repository; choose another prefix"
            } else {
                "is not empty; init needs a new or empty prefix"
            };
            return Err(Error::new(ErrorKind::AlreadyExists, format!("{} {what}", self.location())));
        }
        Ok(())
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.get(ft, name, None, max)
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.get(ft, name, Some((offset, len)), offset.saturating_add(len))
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let key = self.key(ft, name)?;
        let lock_headers = lock::write_headers(self.lock.get(), ft, bytes);
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        for (k, v) in &lock_headers {
            action.headers_mut().insert(*k, v.clone());
        }
        let url = action.sign(SIGNATURE_TTL);
        let mut req = self.agent.put(url.as_str());
        for (k, v) in &lock_headers {
            req = req.header(*k, v);
        }
        let mut resp = req.send(bytes).map_err(|e| self.net_error("write", &key, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(self.status_error("write", &key, status, &body));
        }
        Ok(())
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        if ft == FileType::Config {
            return Ok(if self.exists(ft, "config")? { vec!["config".into()] } else { vec![] });
        }
        Ok(self.list_detailed(ft)?.into_iter().map(|e| e.name).collect())
    }

    fn list_detailed(&self, ft: FileType) -> Result<Vec<super::Listed>> {
        if ft == FileType::Config {
            return super::list_by_looking(self, ft);
        }
        let prefix = format!("{}{}/", self.loc.prefix, ft.dir());
        Ok(self
            .list_keys(&prefix, None)?
            .into_iter()
            .filter_map(|(k, size, modified)| {
                Some(super::Listed { name: k.rsplit('/').next()?.to_string(), size, modified })
            })
            .collect())
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let (key, resp) = self.head(ft, name)?;
        resp.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| transient(format!("cannot look up {}", self.describe(&key)), "no Content-Length"))
    }

    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        let (_, resp) = self.head(ft, name)?;
        let stamp = resp.headers().get("last-modified").and_then(|v| v.to_str().ok());
        let secs = stamp.and_then(|s| jiff::fmt::rfc2822::parse(s).ok()).map(|z| z.timestamp().as_second());
        Ok(secs
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        // S3 deletes succeed for missing keys; the contract wants NotFound, so look first.
        self.size(ft, name)?;
        let key = self.key(ft, name)?;
        let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(SIGNATURE_TTL);
        let mut resp =
            self.agent.delete(url.as_str()).call().map_err(|e| self.net_error("delete", &key, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(self.status_error("delete", &key, status, &body));
        }
        Ok(())
    }

    fn write_parallelism(&self) -> usize {
        PARALLEL_UPLOADS
    }

    fn read_parallelism(&self) -> usize {
        PARALLEL_READS
    }
    fn is_remote(&self) -> bool {
        true
    }

    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l = S3Location::parse("http://127.0.0.1:9000/bk/some/prefix/").unwrap();
        assert_eq!(l.endpoint, "http://127.0.0.1:9000");
        assert_eq!(l.bucket, "bk");
        assert_eq!(l.prefix, "some/prefix/");
        let l = S3Location::parse("https://s3.example.org/bk").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bk", ""));
        for bad in ["127.0.0.1/bk", "ftp://h/bk", "http://h", "http://h/", "http:///bk"] {
            assert_eq!(S3Location::parse(bad).unwrap_err().kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn error_documents_give_their_code() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("gone"));
        assert_eq!(xml_field("", "Code"), None);
    }

    #[test]
    fn listings_parse_without_optional_fields() {
        let body = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/keys/ab</Key>\
                    <Size>12</Size></Contents><Contents><Key>p/keys/cd</Key><ETag>\"x\"</ETag><Size>3</Size>\
                    </Contents><NextContinuationToken>t&amp;1</NextContinuationToken></ListBucketResult>";
        let (keys, next) = parse_listing(body).unwrap();
        assert_eq!(keys, vec![("p/keys/ab".to_string(), 12, None), ("p/keys/cd".to_string(), 3, None)]);
        assert_eq!(next.as_deref(), Some("t&1"));
        let done = body.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_listing(&done).unwrap().1, None);
        assert!(parse_listing("<Error><Code>x</Code></Error>").is_none());
    }
}
