//! S3 Object Lock for the S3 store: retain-until dates on writes, their extension, and
//! the versions a locked bucket keeps. Requests are the store's own (`PutObjectRetention`,
//! `ListObjectVersions`, versioned `HEAD` and `DELETE`), signed like every other.

use super::{transient, xml_field, S3Backend, SIGNATURE_TTL};
use crate::backend::object_lock::{ObjectLock, Version};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::ObjectLockPolicy;
use base64::Engine;
use md5::Digest;
use rusty_s3::S3Action;
use std::time::{SystemTime, UNIX_EPOCH};

/// The headers that lock an object written now, with the checksum S3 demands of a locked
/// upload; none for lock files, which their command deletes at its end.
pub(super) fn write_headers(
    policy: Option<&ObjectLockPolicy>,
    ft: FileType,
    bytes: &[u8],
) -> Vec<(&'static str, String)> {
    let Some(policy) = policy.filter(|_| ft != FileType::Lock) else { return Vec::new() };
    let until = SystemTime::now() + policy.period();
    vec![
        ("content-md5", content_md5(bytes)),
        ("x-amz-object-lock-mode", policy.mode.s3_name().to_string()),
        ("x-amz-object-lock-retain-until-date", s3_date(until)),
    ]
}

fn content_md5(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

/// A time as S3 writes dates, in whole seconds, rounded up so a lock is never shorter
/// than asked.
fn s3_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    jiff::Timestamp::from_second(secs as i64).map(|ts| ts.to_string()).unwrap_or_default()
}

fn parse_s3_date(s: &str) -> Option<SystemTime> {
    let ts: jiff::Timestamp = s.trim().parse().ok()?;
    SystemTime::try_from(ts).ok()
}

impl S3Backend {
    /// The store-relative path of a key below the prefix; keys outside it are not ours.
    fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.loc.prefix.as_str())
    }

    fn full_key(&self, path: &str) -> Result<String> {
        // Paths come from listings of this prefix; still, none may climb out of it.
        if path.is_empty() || path.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(Error::invalid(format!("'{path}' is not an object path")));
        }
        Ok(format!("{}{path}", self.loc.prefix))
    }

    /// Send a request made by `action` with `headers` (also signed) and an optional body;
    /// the status and body of a successful answer.
    fn send_lock_request(
        &self,
        method: &str,
        url: url::Url,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
        what: &str,
        key: &str,
    ) -> Result<(ureq::http::Response<ureq::Body>, String)> {
        let uri = url.as_str();
        let result = match (method, body) {
            ("PUT", Some(b)) => {
                let mut r = self.agent.put(uri);
                for (k, v) in headers {
                    r = r.header(*k, v);
                }
                r.send(b)
            }
            ("GET", _) => self.agent.get(uri).call(),
            ("HEAD", _) => self.agent.head(uri).call(),
            ("DELETE", _) => self.agent.delete(uri).call(),
            _ => unreachable!("no other request is made here"),
        };
        let mut resp = result.map_err(|e| self.net_error(what, key, e))?;
        let status = resp.status().as_u16();
        let text = if method == "HEAD" {
            String::new()
        } else {
            resp.body_mut().read_to_string().unwrap_or_default()
        };
        if !(200..300).contains(&status) {
            return Err(self.status_error(what, key, status, &text));
        }
        Ok((resp, text))
    }

    fn head_retention(&self, key: &str, version_id: Option<&str>) -> Result<Option<SystemTime>> {
        let mut action = self.bucket.head_object(Some(&self.credentials), key);
        if let Some(v) = version_id {
            action.query_mut().insert("versionId", v.to_string());
        }
        let url = action.sign(SIGNATURE_TTL);
        let (resp, _) = self.send_lock_request("HEAD", url, &[], None, "look up the lock of", key)?;
        let until = resp.headers().get("x-amz-object-lock-retain-until-date").and_then(|v| v.to_str().ok());
        Ok(until.and_then(parse_s3_date))
    }

    fn policy(&self) -> Result<ObjectLockPolicy> {
        self.lock.get().copied().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("{} is not a repository with Object Lock", self.location()),
            )
        })
    }
}

use crate::backend::Backend;

impl ObjectLock for S3Backend {
    fn set_policy(&self, policy: ObjectLockPolicy) {
        let _ = self.lock.set(policy);
    }

    fn bucket_lock_enabled(&self) -> Result<bool> {
        let mut action = self.bucket.get_object(Some(&self.credentials), "");
        action.query_mut().insert("object-lock", "");
        let url = action.sign(SIGNATURE_TTL);
        match self.send_lock_request("GET", url, &[], None, "read the Object Lock setting of", "") {
            Ok((_, body)) => Ok(xml_field(&body, "ObjectLockEnabled").is_some_and(|v| v.trim() == "Enabled")),
            // The store's answer when the bucket has no Object Lock configuration.
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::InvalidInput => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn retain_until(&self, ft: FileType, name: &str) -> Result<Option<SystemTime>> {
        let key = self.key(ft, name)?;
        self.head_retention(&key, None)
    }

    fn extend(&self, ft: FileType, name: &str, until: SystemTime) -> Result<()> {
        let policy = self.policy()?;
        let key = self.key(ft, name)?;
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            policy.mode.s3_name(),
            s3_date(until)
        );
        let headers = vec![("content-md5", content_md5(body.as_bytes()))];
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        action.query_mut().insert("retention", "");
        for (k, v) in &headers {
            action.headers_mut().insert(*k, v.clone());
        }
        let url = action.sign(SIGNATURE_TTL);
        self.send_lock_request("PUT", url, &headers, Some(body.as_bytes()), "extend the lock of", &key)?;
        Ok(())
    }

    fn versions(&self) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut action = self.bucket.get_object(Some(&self.credentials), "");
            let q = action.query_mut();
            q.insert("versions", "");
            q.insert("prefix", self.loc.prefix.clone());
            if let Some((key, version)) = &markers {
                q.insert("key-marker", key.clone());
                q.insert("version-id-marker", version.clone());
            }
            let url = action.sign(SIGNATURE_TTL);
            let (_, body) =
                self.send_lock_request("GET", url, &[], None, "list the versions in", &self.loc.prefix)?;
            if !body.contains("<ListVersionsResult") {
                return Err(transient(
                    format!("cannot list the versions in {}", self.describe(&self.loc.prefix)),
                    "the store's answer is not a version listing",
                ));
            }
            for (item, delete_marker) in version_items(&body) {
                let Some(key) = xml_field(item, "Key") else { continue };
                let Some(path) = self.relative(&key) else { continue };
                out.push(Version {
                    path: path.to_string(),
                    version_id: xml_field(item, "VersionId").unwrap_or_default(),
                    delete_marker,
                    latest: xml_field(item, "IsLatest").is_some_and(|v| v.trim() == "true"),
                    modified: xml_field(item, "LastModified").and_then(|t| parse_s3_date(&t)),
                });
            }
            let truncated = xml_field(&body, "IsTruncated").is_some_and(|t| t.trim() == "true");
            let next = (xml_field(&body, "NextKeyMarker"), xml_field(&body, "NextVersionIdMarker"));
            match next {
                (Some(k), Some(v)) if truncated && markers.as_ref() != Some(&(k.clone(), v.clone())) => {
                    markers = Some((k, v))
                }
                _ if truncated => {
                    return Err(transient(
                        format!("cannot list the versions in {}", self.describe(&self.loc.prefix)),
                        "the store's listing does not go on",
                    ))
                }
                _ => return Ok(out),
            }
        }
    }

    fn version_retain_until(&self, path: &str, version_id: &str) -> Result<Option<SystemTime>> {
        let key = self.full_key(path)?;
        self.head_retention(&key, Some(version_id))
    }

    fn remove_version(&self, path: &str, version_id: &str) -> Result<()> {
        let key = self.full_key(path)?;
        let mut action = self.bucket.delete_object(Some(&self.credentials), &key);
        action.query_mut().insert("versionId", version_id.to_string());
        let url = action.sign(SIGNATURE_TTL);
        self.send_lock_request("DELETE", url, &[], None, "delete a version of", &key)?;
        Ok(())
    }
}

/// What the version-listing and date parsers find in `body` (for the fuzz target).
pub(super) fn parse_answers_for_fuzzing(body: &str) -> usize {
    let items = version_items(body).into_iter().filter(|(item, _)| xml_field(item, "Key").is_some()).count();
    items + usize::from(parse_s3_date(body).is_some())
}

/// The `<Version>` and `<DeleteMarker>` elements of a version listing, in order, each
/// with whether it is a delete marker.
fn version_items(body: &str) -> Vec<(&str, bool)> {
    let mut items = Vec::new();
    let mut rest = body;
    loop {
        let v = rest.find("<Version>");
        let d = rest.find("<DeleteMarker>");
        let (start, open, close, marker) = match (v, d) {
            (Some(v), Some(d)) if d < v => (d, "<DeleteMarker>", "</DeleteMarker>", true),
            (Some(v), _) => (v, "<Version>", "</Version>", false),
            (None, Some(d)) => (d, "<DeleteMarker>", "</DeleteMarker>", true),
            (None, None) => return items,
        };
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { return items };
        items.push((&after[..end], marker));
        rest = &after[end + close.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_listings_parse_in_order() {
        let body = "<ListVersionsResult><Version><Key>p/data/ab/ab1</Key><VersionId>v1</VersionId>\
                    <IsLatest>false</IsLatest><LastModified>2026-12-05T21:07:55.000Z</LastModified></Version>\
                    <DeleteMarker><Key>p/data/ab/ab1</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest>\
                    </DeleteMarker><Version><Key>p/config</Key><VersionId>v2</VersionId></Version></ListVersionsResult>";
        let items = version_items(body);
        assert_eq!(items.len(), 3);
        assert_eq!((items[0].1, items[1].1, items[2].1), (false, true, false));
        assert_eq!(xml_field(items[1].0, "VersionId").as_deref(), Some("m1"));
        assert!(parse_s3_date("2026-12-05T21:07:55.000Z").is_some());
    }

    #[test]
    fn dates_round_up_to_whole_seconds() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(s3_date(t), "1970-01-01T00:00:02Z");
        assert_eq!(parse_s3_date(&s3_date(t)), Some(UNIX_EPOCH + std::time::Duration::from_secs(2)));
    }

    #[test]
    fn lock_files_and_unlocked_repositories_get_no_lock_headers() {
        use crate::format::config::LockMode;
        let p = ObjectLockPolicy { period_secs: 60, mode: LockMode::Governance };
        assert!(write_headers(None, FileType::Pack, b"x").is_empty());
        assert!(write_headers(Some(&p), FileType::Lock, b"x").is_empty());
        let h = write_headers(Some(&p), FileType::Pack, b"x");
        assert_eq!(h[1], ("x-amz-object-lock-mode", "GOVERNANCE".to_string()));
        // The MD5 of "x" in base64, as S3 wants it (printf x | openssl md5 -binary | base64).
        assert_eq!(h[0].1, "ndTkYSaMgDT1yFZOFVxnpg==");
    }
}
