//! One request: find the repository and object it names, check the token and what its
//! role allows, then do it. Every answer is logged (`report::AccessLog`).

use super::names::{parse_path, parse_range, ObjectName, Target};
use super::store::{Refusal, RepoStore};
use super::tokens::{Role, TokenEntry};
use super::State;
use crate::backend::FileType;
use crate::error::ErrorKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

/// What the server answers, before it becomes a response.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(body: impl Into<Bytes>, content_type: &'static str) -> Reply {
        Reply { status: StatusCode::OK, body: body.into(), content_type, headers: Vec::new() }
    }

    /// A refusal with a one-line reason the client shows.
    fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut m = message.into();
        m.push('\n');
        Reply { status, body: m.into(), content_type: "text/plain; charset=utf-8", headers: Vec::new() }
    }

    pub fn into_response(self, head: bool) -> Response<Full<Bytes>> {
        let len = self.body.len();
        let body = if head { Bytes::new() } else { self.body.clone() };
        let mut r = Response::builder().status(self.status).header("content-type", self.content_type);
        if !head {
            r = r.header("content-length", len);
        } else if !self.status.is_success() {
            // A HEAD answer has no body: its reason goes in a header, printable ASCII only.
            let reason: String = String::from_utf8_lossy(&self.body)
                .trim()
                .chars()
                .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
                .collect();
            r = r.header("x-cairn-error", reason);
        }
        for (k, v) in self.headers {
            r = r.header(k, v);
        }
        r.body(Full::new(body)).expect("headers are valid")
    }
}

/// The token of a request, checked: 401 without one or with an unknown one, 403 for
/// another repository.
fn authorize(state: &State, req: &Request<Incoming>, repo: &str) -> Result<TokenEntry, Reply> {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = given else {
        return Err(Reply::error(StatusCode::UNAUTHORIZED, "no token: send Authorization: Bearer TOKEN"));
    };
    match state.tokens.find(token) {
        Ok(Some(entry)) if entry.repo == repo => Ok(entry),
        Ok(Some(entry)) => Err(Reply::error(
            StatusCode::FORBIDDEN,
            format!("token '{}' is for repository '{}', not '{repo}'", entry.name, entry.repo),
        )),
        Ok(None) => Err(Reply::error(StatusCode::UNAUTHORIZED, "unknown token")),
        Err(e) => Err(Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Whether `role` may create an object of type `ft`.
pub fn may_create(role: Role, ft: FileType) -> bool {
    match role {
        Role::Admin => true,
        Role::Maintain | Role::Append => !matches!(ft, FileType::Config | FileType::Key),
        Role::Read => ft == FileType::Lock,
    }
}

/// Whether `role` may delete an object of type `ft`; `own_lock` is whether it is a lock
/// this token made.
pub fn may_delete(role: Role, ft: FileType, own_lock: bool) -> bool {
    match role {
        Role::Admin => true,
        Role::Maintain => !matches!(ft, FileType::Config | FileType::Key),
        Role::Append | Role::Read => ft == FileType::Lock && own_lock,
    }
}

fn forbidden(token: &TokenEntry, what: &str) -> Reply {
    Reply::error(
        StatusCode::FORBIDDEN,
        format!("token '{}' ({} role) may not {what}", token.name, token.role.name()),
    )
}

fn store_error(e: crate::Error) -> Reply {
    let status = match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Reply::error(status, e.to_string())
}

/// Run a blocking store call off the event loop.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("store calls do not panic")
}

fn arrival_secs(t: Option<std::time::SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

/// Answer one request; the access log line is written by the caller from `Logged`.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, logged: &mut Logged) -> Reply {
    let target = match parse_path(req.uri().path()) {
        Ok(t) => t,
        Err(m) => return Reply::error(StatusCode::BAD_REQUEST, m),
    };
    let method = req.method().clone();
    let repo_name = match &target {
        Target::StatusPage => {
            return Reply::ok(super::report::status_page(&state).await, "text/html; charset=utf-8")
        }
        Target::Metrics => {
            return Reply::ok(super::report::metrics(&state).await, "text/plain; version=0.0.4")
        }
        Target::Repository(r) | Target::Listing(r, _) | Target::Object(r, _) => r.clone(),
    };
    logged.repo = repo_name.clone();
    let token = match authorize(&state, &req, &repo_name) {
        Ok(t) => t,
        Err(r) => return r,
    };
    logged.token = token.name.clone();
    let store = match state.repos.get(&repo_name) {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    match target {
        Target::Repository(_) => {
            if method != Method::POST || req.uri().query() != Some("create=true") {
                return Reply::error(StatusCode::BAD_REQUEST, "POST /REPO/?create=true creates a repository");
            }
            logged.op = "create-repository";
            if token.role != Role::Admin {
                return forbidden(&token, "create a repository");
            }
            match blocking(move || store.create()).await {
                Ok(()) => Reply::ok("", "text/plain"),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Reply::error(StatusCode::CONFLICT, e.to_string())
                }
                Err(e) => store_error(e),
            }
        }
        Target::Listing(_, ft) => {
            logged.op = "list";
            logged.object = format!("{}/", ft.dir());
            if method != Method::GET {
                return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "listings are read with GET");
            }
            list(store, ft).await
        }
        Target::Object(_, name) => {
            logged.object = if name.ft == FileType::Config {
                "config".into()
            } else {
                format!("{}/{}", name.ft.dir(), name.name)
            };
            match method {
                Method::GET | Method::HEAD => {
                    logged.op = if method == Method::HEAD { "head" } else { "read" };
                    let range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(parse_range);
                    if let Some(None) = range {
                        return Reply::error(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            "ranges are bytes=A-B or bytes=A-",
                        );
                    }
                    read(store, name, range.flatten(), method == Method::HEAD).await
                }
                Method::POST => {
                    logged.op = "create";
                    if !may_create(token.role, name.ft) {
                        return forbidden(&token, &format!("create {}", logged.object));
                    }
                    create(&state, store, name, req, &token, logged).await
                }
                Method::DELETE => {
                    logged.op = "delete";
                    let own = name.ft == FileType::Lock
                        && store.lock_owner(&name.name).as_deref() == Some(&token.name);
                    if !may_delete(token.role, name.ft, own) {
                        // A lock that is gone is gone for everyone (a retried release of
                        // one's own lock must read as done, not as refused).
                        let (s, n) = (store.clone(), name.clone());
                        if name.ft == FileType::Lock
                            && matches!(blocking(move || s.stat(&n)).await, Err(e) if e.kind() == ErrorKind::NotFound)
                        {
                            return Reply::error(StatusCode::NOT_FOUND, format!("no {}", logged.object));
                        }
                        return forbidden(&token, &format!("delete {}", logged.object));
                    }
                    match blocking(move || store.delete(&name)).await {
                        Ok(()) => Reply::ok("", "text/plain"),
                        Err(e) => store_error(e),
                    }
                }
                _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, "objects take GET, HEAD, POST and DELETE"),
            }
        }
        Target::StatusPage | Target::Metrics => unreachable!("answered above"),
    }
}

async fn list(store: Arc<RepoStore>, ft: FileType) -> Reply {
    let listed =
        blocking(move || store.exists().and_then(|e| if e { store.list(ft).map(Some) } else { Ok(None) }))
            .await;
    match listed {
        Ok(Some(entries)) => {
            let json: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| serde_json::json!({"name": e.name, "size": e.size, "arrived": arrival_secs(e.modified)}))
                .collect();
            Reply::ok(serde_json::to_vec(&json).expect("listing serializes"), "application/json")
        }
        Ok(None) => Reply::error(StatusCode::NOT_FOUND, "no such repository"),
        Err(e) => store_error(e),
    }
}

async fn read(store: Arc<RepoStore>, name: ObjectName, range: Option<(u64, u64)>, head: bool) -> Reply {
    let stat_name = name.clone();
    let stat_store = store.clone();
    let (size, arrived) = match blocking(move || stat_store.stat(&stat_name)).await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let mut headers = vec![("x-cairn-size", size.to_string())];
    if let Some(secs) = arrival_secs(arrived) {
        headers.push(("x-cairn-arrived", secs.to_string()));
    }
    if head {
        return Reply { headers, ..Reply::ok("", "application/octet-stream") };
    }
    if let Some((offset, _)) = range {
        if offset >= size && size > 0 || offset > size {
            return Reply {
                headers,
                ..Reply::error(StatusCode::RANGE_NOT_SATISFIABLE, "the range starts past the end")
            };
        }
    }
    // What is there, never more: a range may run past the end.
    let range = range.map(|(offset, len)| (offset, len.min(size - offset)));
    match blocking(move || store.read(&name, range)).await {
        Ok(bytes) => {
            let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
            if let Some((offset, _)) = range {
                let end = (offset + bytes.len() as u64).saturating_sub(1);
                headers.push(("content-range", format!("bytes {offset}-{end}/{size}")));
            }
            Reply { status, body: bytes.into(), content_type: "application/octet-stream", headers }
        }
        Err(e) => store_error(e),
    }
}

async fn create(
    state: &Arc<State>,
    store: Arc<RepoStore>,
    name: ObjectName,
    req: Request<Incoming>,
    token: &TokenEntry,
    logged: &mut Logged,
) -> Reply {
    let limit = if name.ft == FileType::Pack {
        state.opts.max_pack.min(name.ft.size_limit())
    } else {
        name.ft.size_limit()
    };
    let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limit) {
        return Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a {} object may have at most {limit} bytes", name.ft.dir()),
        );
    }
    // The quota is checked once the body is in (create_object): refused before it, a
    // client still sending would meet a closed connection instead of the 507, and retry.
    // Memory for the body is reserved first (the whole limit when no length is declared).
    let mib = declared.unwrap_or(limit).div_ceil(1 << 20).max(1) as u32;
    let Ok(_reserved) = state.upload_budget.acquire_many(mib).await else {
        return Reply::error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    // Received whole before anything is stored: a dropped connection leaves nothing. The
    // buffer starts at a block boundary, so a pack reaches the disk past the page cache
    // as the local store writes it (crate::direct_io), not copied through it.
    let mut stream = Limited::new(req.into_body(), limit as usize);
    let mut buf = state.buffers.take();
    let start = crate::direct_io::align_empty(&mut buf, declared.unwrap_or(0) as usize);
    let mut check = name.check();
    while let Some(frame) = stream.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    check.update(&data);
                    buf.extend_from_slice(&data);
                }
            }
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a {} object may have at most {limit} bytes", name.ft.dir()),
                )
            }
            Err(e) => return Reply::error(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")),
        }
    }
    if declared.is_some_and(|d| d != (buf.len() - start) as u64) {
        return Reply::error(StatusCode::BAD_REQUEST, "the upload ended before its Content-Length");
    }
    logged.bytes = (buf.len() - start) as u64;
    if !check.matches() {
        state.buffers.give(buf);
        return Reply::error(
            StatusCode::BAD_REQUEST,
            format!("the bytes sent do not hash to the name {}: refused", name.name),
        );
    }
    let quota = state.opts.quota;
    let owner = token.name.clone();
    // Only an admin token replaces anything: the config, which a key rotation seals anew.
    let replace_config = token.role == Role::Admin;
    let pool = state.clone();
    let result = blocking(move || {
        let stored = store.create_object(&name, &buf[start..], quota, &owner, replace_config);
        pool.buffers.give(buf);
        match stored {
            Ok(Ok(())) => Ok(name.ft),
            Ok(Err(Refusal::Exists)) => Err(Reply::error(
                StatusCode::CONFLICT,
                format!("{} exists; objects are never replaced", name.name),
            )),
            Ok(Err(Refusal::OverQuota { used, quota })) => Err(over_quota(used, quota)),
            Ok(Err(Refusal::NotARepository)) => {
                Err(Reply::error(StatusCode::NOT_FOUND, "no such repository"))
            }
            Err(e) => Err(store_error(e)),
        }
    })
    .await;
    match result {
        Ok(ft) => {
            if ft == FileType::Snapshot {
                state.record_snapshot(&logged.repo, &token.name);
            }
            Reply { status: StatusCode::CREATED, ..Reply::ok("", "text/plain") }
        }
        Err(r) => r,
    }
}

fn over_quota(used: u64, quota: u64) -> Reply {
    Reply::error(
        StatusCode::INSUFFICIENT_STORAGE,
        format!("over quota: the repository holds {used} of its {quota} bytes; prune it or raise --quota"),
    )
}

/// What the access log records of a request beyond method, path and status.
#[derive(Default)]
pub struct Logged {
    pub repo: String,
    pub token: String,
    pub op: &'static str,
    pub object: String,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_spec_says() {
        use FileType::*;
        for ft in [Pack, Index, Snapshot, Lock, Log] {
            assert!(may_create(Role::Append, ft) && may_create(Role::Maintain, ft));
            assert!(!may_delete(Role::Append, ft, false));
            assert!(may_delete(Role::Maintain, ft, false));
        }
        for ft in [Config, Key] {
            assert!(
                !may_create(Role::Append, ft)
                    && !may_create(Role::Maintain, ft)
                    && may_create(Role::Admin, ft)
            );
            assert!(!may_delete(Role::Maintain, ft, false) && may_delete(Role::Admin, ft, false));
        }
        assert!(may_create(Role::Read, Lock) && !may_create(Role::Read, Pack));
        assert!(may_delete(Role::Read, Lock, true) && !may_delete(Role::Read, Lock, false));
        assert!(may_delete(Role::Append, Lock, true) && !may_delete(Role::Append, Snapshot, true));
    }
}
