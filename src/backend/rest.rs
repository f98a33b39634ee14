//! A repository on a `cairn serve` server, as `rest:http[s]://HOST[:PORT]/REPO` (the
//! protocol: format-spec/serve.md). Sent by the blocking HTTP client `ureq`.
//!
//! The token comes from what the command line registered for this location
//! ([`register_token`], e.g. copy's --from-token-file), else CAIRN_TOKEN, else the first
//! line of CAIRN_TOKEN_FILE. A server with a certificate of a private authority is
//! trusted through CAIRN_CA_CERT (a PEM file).
//!
//! The server refuses to replace an object; for a name that is a hash of the bytes (all
//! but the config) an existing object is the same object, so a retried upload whose first
//! answer was lost succeeds.

use super::retry::transient;
use super::{check_name, Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Uploads in flight during a backup: enough to hide a round trip per pack.
const PARALLEL_UPLOADS: usize = 4;
/// Pack fetches check --read-data and restore keep in flight.
const PARALLEL_READS: usize = 8;

/// Tokens given on the command line for particular locations.
fn registered() -> &'static Mutex<HashMap<String, Zeroizing<String>>> {
    static TOKENS: OnceLock<Mutex<HashMap<String, Zeroizing<String>>>> = OnceLock::new();
    TOKENS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Use `token` for the repository at `location` (as written, `rest:...`).
pub fn register_token(location: &str, token: Zeroizing<String>) {
    registered().lock().expect("token registry").insert(location.trim_end_matches('/').to_string(), token);
}

/// Read a token file: its first line, which must not be empty.
pub fn read_token_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read token file {}", path.display()), e))?,
    );
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(Error::invalid(format!("token file {} is empty", path.display())));
    }
    Ok(Zeroizing::new(line.to_string()))
}

fn token_for(location: &str) -> Result<Zeroizing<String>> {
    if let Some(t) = registered().lock().expect("token registry").get(location.trim_end_matches('/')) {
        return Ok(t.clone());
    }
    if let Some(t) = crate::repo::secrets::from_environment("CAIRN_TOKEN") {
        return Ok(Zeroizing::new(String::from_utf8_lossy(&t).trim().to_string()));
    }
    if let Ok(f) = std::env::var("CAIRN_TOKEN_FILE") {
        return read_token_file(std::path::Path::new(&f));
    }
    Err(Error::invalid(format!(
        "{location} needs a token: set CAIRN_TOKEN or CAIRN_TOKEN_FILE (cairn serve token add makes one)"
    )))
}

pub struct RestBackend {
    /// `http[s]://HOST[:PORT]/PATH`, without a trailing slash.
    url: String,
    location: String,
    token: Zeroizing<String>,
    agent: ureq::Agent,
    /// Arrival times the last listings gave, so `modified` costs no request after a list.
    arrivals: Mutex<HashMap<(FileType, String), SystemTime>>,
}

fn tls_roots() -> Result<Option<ureq::tls::RootCerts>> {
    let Ok(path) = std::env::var("CAIRN_CA_CERT") else { return Ok(None) };
    let pem = std::fs::read(&path).map_err(|e| Error::io(format!("cannot read CAIRN_CA_CERT {path}"), e))?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::invalid(format!("CAIRN_CA_CERT {path} holds no PEM certificate")));
    }
    Ok(Some(ureq::tls::RootCerts::Specific(Arc::new(certs))))
}

impl RestBackend {
    /// `rest` is what follows `rest:`.
    pub fn new(rest: &str) -> Result<RestBackend> {
        let location = format!("rest:{rest}");
        let url: url::Url = rest.parse().map_err(|_| bad_location(rest))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.path().trim_matches('/').is_empty()
        {
            return Err(bad_location(rest));
        }
        // The token would cross the network in clear text: only to this machine.
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !loopback {
            return Err(Error::invalid(format!(
                "{location}: plain http would send the token in clear text; use rest:https://... (plain http only to 127.0.0.1 or ::1)"
            )));
        }
        let token = token_for(&location)?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_send_body(Some(Duration::from_secs(600)))
            .timeout_recv_body(Some(Duration::from_secs(600)))
            .max_idle_connections_per_host(2 * PARALLEL_READS + 4);
        if let Some(roots) = tls_roots()? {
            config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
        }
        Ok(RestBackend {
            url: rest.trim_end_matches('/').to_string(),
            location,
            token,
            agent: ureq::Agent::new_with_config(config.build()),
            arrivals: Mutex::new(HashMap::new()),
        })
    }

    fn object_url(&self, ft: FileType, name: &str) -> Result<String> {
        if ft == FileType::Config {
            return Ok(format!("{}/config", self.url));
        }
        check_name(name)?;
        Ok(format!("{}/{}/{name}", self.url, ft.dir()))
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.as_str())
    }

    fn net_error(&self, what: &str, target: &str, e: ureq::Error) -> Error {
        let text = e.to_string();
        // A certificate no retry will make trusted.
        if matches!(e, ureq::Error::Tls(_) | ureq::Error::Rustls(_)) || text.contains("certificate") {
            return Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot {what} {target}: the server's TLS certificate is not trusted ({text}); \
                     if your own authority made it, name its PEM file in CAIRN_CA_CERT"
                ),
            );
        }
        transient(format!("cannot {what} {target}"), super::http::net_cause(&e))
    }

    /// Map a refusal to an error kind, with the server's one-line reason.
    fn status_error(&self, what: &str, target: &str, status: u16, body: &str) -> Error {
        let reason = body.lines().next().unwrap_or("").trim();
        let reason =
            if reason.is_empty() { format!("HTTP {status}") } else { format!("{reason} (HTTP {status})") };
        let msg = format!("cannot {what} {target}: the server said {reason}");
        match status {
            401 => Error::new(
                ErrorKind::PermissionDenied,
                format!("{msg}; check CAIRN_TOKEN or CAIRN_TOKEN_FILE"),
            ),
            403 => Error::new(ErrorKind::PermissionDenied, msg),
            404 => Error::new(ErrorKind::NotFound, msg),
            409 => Error::new(ErrorKind::AlreadyExists, msg),
            507 => Error::new(ErrorKind::NoSpace, msg),
            400 | 405 | 413 | 416 => Error::new(ErrorKind::InvalidInput, msg),
            // 5xx and anything unexpected: worth another try.
            _ => transient(msg, format!("HTTP {status}")),
        }
    }

    fn head(&self, ft: FileType, name: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let url = self.object_url(ft, name)?;
        let resp = self
            .agent
            .head(&url)
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| self.net_error("look up", &url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let reason = resp.headers().get("x-cairn-error").and_then(|v| v.to_str().ok()).unwrap_or("");
            return Err(self.status_error("look up", &url, status, reason));
        }
        Ok(resp)
    }

    fn get(&self, ft: FileType, name: &str, range: Option<(u64, u64)>, max: u64) -> Result<Vec<u8>> {
        let url = self.object_url(ft, name)?;
        let mut req = self.agent.get(&url).header("Authorization", self.auth());
        if let Some((offset, len)) = range {
            if len == 0 {
                return Ok(Vec::new());
            }
            req = req.header("Range", format!("bytes={offset}-{}", offset.saturating_add(len - 1)));
        }
        let mut resp = req.call().map_err(|e| self.net_error("read", &url, e))?;
        let status = resp.status().as_u16();
        if status == 416 && range.is_some() {
            return Ok(Vec::new());
        }
        // The server honours ranges, so a ranged answer is checked against its length too.
        let (body, read) = super::http::bounded_body(&mut resp, true, ft, name, max)?;
        if !(200..300).contains(&status) {
            return Err(self.status_error("read", &url, status, &String::from_utf8_lossy(&body)));
        }
        read.map_err(|e| transient(format!("cannot read {url}"), e))?;
        if body.len() as u64 > max {
            return Err(super::too_large(ft, name, body.len() as u64, max));
        }
        Ok(body)
    }
}

fn bad_location(s: &str) -> Error {
    Error::invalid(format!("'rest:{s}' is not a served repository; write rest:https://HOST[:PORT]/REPO"))
}

fn secs_to_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        let url = format!("{}/?create=true", self.url);
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", self.auth())
            .send_empty()
            .map_err(|e| self.net_error("create", &self.url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(self.status_error("create", &self.url, status, &body));
        }
        Ok(())
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        self.get(ft, name, None, max)
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.get(ft, name, Some((offset, len)), len)
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let url = self.object_url(ft, name)?;
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", self.auth())
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| self.net_error("write", &url, e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) || (status == 409 && ft != FileType::Config) {
            return Ok(());
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Err(self.status_error("write", &url, status, &body))
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        if ft == FileType::Config {
            return Ok(if self.exists(ft, "config")? { vec!["config".into()] } else { vec![] });
        }
        Ok(self.list_detailed(ft)?.into_iter().map(|e| e.name).collect())
    }

    /// One request: the server's listing gives sizes and arrival times.
    fn list_detailed(&self, ft: FileType) -> Result<Vec<super::Listed>> {
        if ft == FileType::Config {
            return super::list_by_looking(self, ft);
        }
        let url = format!("{}/{}/", self.url, ft.dir());
        let mut resp = self
            .agent
            .get(&url)
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| self.net_error("list", &url, e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let read = resp.body_mut().as_reader().take(1 << 30).read_to_end(&mut body);
        if !(200..300).contains(&status) {
            return Err(self.status_error("list", &url, status, &String::from_utf8_lossy(&body)));
        }
        read.map_err(|e| transient(format!("cannot list {url}"), e))?;
        let entries: Vec<Listed> = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Unsupported,
                format!("cannot list {url}: the server's answer is not a listing ({e})"),
            )
        })?;
        let mut arrivals = self.arrivals.lock().expect("arrivals lock");
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let modified = e.arrived.map(secs_to_time);
            if let Some(t) = modified {
                arrivals.insert((ft, e.name.clone()), t);
            }
            out.push(super::Listed { name: e.name, size: e.size, modified });
        }
        Ok(out)
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let resp = self.head(ft, name)?;
        resp.headers().get("x-cairn-size").and_then(|v| v.to_str().ok()?.parse().ok()).ok_or_else(|| {
            transient(format!("cannot look up {}", self.object_url(ft, name).unwrap_or_default()), "no size")
        })
    }

    /// When the object reached the server, by the server's clock: a client cannot set it.
    fn modified(&self, ft: FileType, name: &str) -> Result<Option<SystemTime>> {
        if let Some(t) = self.arrivals.lock().expect("arrivals lock").get(&(ft, name.to_string())) {
            return Ok(Some(*t));
        }
        let resp = self.head(ft, name)?;
        Ok(resp
            .headers()
            .get("x-cairn-arrived")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(secs_to_time))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let url = self.object_url(ft, name)?;
        let mut resp = self
            .agent
            .delete(&url)
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| self.net_error("delete", &url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(self.status_error("delete", &url, status, &body));
        }
        self.arrivals.lock().expect("arrivals lock").remove(&(ft, name.to_string()));
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

    fn arrival_is_authoritative(&self) -> bool {
        true
    }
}

/// One entry of the server's listing (format-spec/serve.md).
#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    size: u64,
    arrived: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_need_a_token() {
        register_token("rest:http://127.0.0.1:9/gw", Zeroizing::new("t".into()));
        let b = RestBackend::new("http://127.0.0.1:9/gw/").unwrap();
        assert_eq!(b.object_url(FileType::Config, "config").unwrap(), "http://127.0.0.1:9/gw/config");
        assert!(b.object_url(FileType::Pack, "../x").is_err());
        let e = RestBackend::new("http://vault.example.net:8000/gw").err().unwrap();
        assert!(e.to_string().contains("clear text"), "{e}");
        register_token("rest:http://[::1]:9/gw", Zeroizing::new("t".into()));
        RestBackend::new("http://[::1]:9/gw").unwrap();
        for bad in ["127.0.0.1/gw", "ftp://h/gw", "http://h", "http://h/"] {
            assert_eq!(RestBackend::new(bad).err().map(|e| e.kind()), Some(ErrorKind::InvalidInput), "{bad}");
        }
    }
}
