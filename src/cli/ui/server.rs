//! The dashboard's HTTP(S) server: login and sessions (`auth`), routing, and answers that
//! are pages, JSON, or verified file bytes streamed as they are read.

use super::actions::{Actions, Kind};
use super::auth::{self, Caller, LoginToken, Sessions};
use super::sources::Source;
use super::{data, pages};
use bytes::Bytes;
use cairn::{Error, ErrorKind};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub struct Options {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub sources: Vec<Source>,
    pub token: LoginToken,
}

pub struct State {
    pub sources: Vec<Source>,
    token: LoginToken,
    sessions: Sessions,
    pub actions: Actions,
    tls: bool,
    interrupt: Arc<AtomicBool>,
}

impl State {
    pub fn names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name()).collect()
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// The largest form or JSON body accepted.
const MAX_BODY: usize = 64 << 10;

/// Serve until `interrupt` is set. The first line on standard output is the login URL.
pub fn run(opts: Options, interrupt: Arc<AtomicBool>) -> cairn::Result<()> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(cairn::serve::tls_acceptor(cert, key)?),
        None => None,
    };
    let state = Arc::new(State {
        sources: opts.sources,
        token: opts.token,
        sessions: Sessions::default(),
        actions: Actions::default(),
        tls: tls.is_some(),
        interrupt: interrupt.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("cannot start the dashboard's runtime", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", opts.listen), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("cannot read the listening address", e))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        match &state.token.printable {
            Some(t) => println!("cairn ui: open {scheme}://{addr}/?token={}", t.as_str()),
            None => println!("cairn ui: open {scheme}://{addr}/?token=$CAIRN_UI_TOKEN"),
        }
        let _ = std::io::stdout().flush();
        cairn::serve::accept_until(&interrupt, listener, tls, move |_peer| {
            let state = state.clone();
            hyper::service::service_fn(move |req| answer(state.clone(), req))
        })
        .await;
        Ok(())
    })
}

/// Query or form parameters, in order.
pub struct Params(Vec<(String, String)>);

impl Params {
    fn parse(s: &str) -> Params {
        Params(url::form_urlencoded::parse(s.as_bytes()).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn without(&self, name: &str) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| k != name) {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// An answer before it becomes a response.
pub enum Reply {
    Html(StatusCode, String),
    Json(StatusCode, Value),
    Redirect(String, Option<String>),
    Asset(&'static str, &'static str),
    Stream { content_type: &'static str, file_name: String, length: Option<u64>, body: ChannelBody },
}

fn status_of(e: &Error) -> StatusCode {
    match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

impl Reply {
    fn error(api: bool, status: StatusCode, message: &str) -> Reply {
        if api {
            Reply::Json(status, serde_json::json!({ "error": message }))
        } else {
            Reply::Html(status, pages::error_page(status, message))
        }
    }

    fn into_response(self, tls: bool) -> Response<Body> {
        let mut r = Response::builder();
        let (status, body) = match self {
            Reply::Html(s, h) => {
                r = r.header("content-type", "text/html; charset=utf-8");
                (s, full(h))
            }
            Reply::Json(s, v) => {
                r = r.header("content-type", "application/json");
                (s, full(v.to_string()))
            }
            Reply::Redirect(to, cookie) => {
                r = r.header("location", to);
                if let Some(id) = cookie {
                    let secure = if tls { "; Secure" } else { "" };
                    r = r.header(
                        "set-cookie",
                        format!("{}={id}; HttpOnly; SameSite=Strict; Path=/{secure}", auth::COOKIE),
                    );
                }
                (StatusCode::SEE_OTHER, full(Bytes::new()))
            }
            Reply::Asset(t, text) => {
                r = r.header("content-type", t);
                (StatusCode::OK, full(text))
            }
            Reply::Stream { content_type, file_name, length, body } => {
                r = r.header("content-type", content_type);
                let safe: String = file_name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
                    .collect();
                r = r.header("content-disposition", format!("attachment; filename=\"{safe}\""));
                if let Some(n) = length {
                    r = r.header("content-length", n);
                }
                (StatusCode::OK, body.boxed())
            }
        };
        let mut resp = r.status(status).body(body).expect("headers are valid");
        let h = resp.headers_mut();
        // Nothing from elsewhere, no framing, no sniffing, no caching. The referrer stays
        // on this site: its forms then carry their true Origin (with no referrer at all a
        // browser sends `Origin: null`, which the check below must refuse), and no address
        // leaves for another site.
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("cache-control", HeaderValue::from_static("no-store"));
        resp
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let tls = state.tls;
    Ok(route(state, req).await.into_response(tls))
}

/// Who is asking: a valid bearer token, or a live session cookie.
fn caller(state: &State, req: &Request<Incoming>) -> Option<Caller> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(given) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        return state.token.matches(given).then_some(Caller::Bearer);
    }
    let id = header("cookie").and_then(|c| auth::cookie(c, auth::COOKIE))?;
    state.sessions.csrf(id).map(|csrf| Caller::Session { csrf })
}

/// Whether a request's Origin, when it names one, is this dashboard.
fn same_origin(req: &Request<Incoming>, tls: bool) -> bool {
    let Some(origin) = req.headers().get("origin") else { return true };
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    let scheme = if tls { "https" } else { "http" };
    origin.to_str().is_ok_and(|o| o == format!("{scheme}://{host}"))
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let params = Params::parse(req.uri().query().unwrap_or(""));
    let api = path.starts_with("/api/");
    if let Some(given) = params.get("token").filter(|_| req.method() == Method::GET) {
        if !state.token.matches(given) {
            return Reply::error(api, StatusCode::UNAUTHORIZED, "wrong token: open the URL cairn ui printed");
        }
        return match state.sessions.start() {
            Ok(id) => {
                let rest = params.without("token");
                let to = if rest.is_empty() { path } else { format!("{path}?{rest}") };
                Reply::Redirect(to, Some(id))
            }
            Err(e) => Reply::error(api, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    let Some(who) = caller(&state, &req) else {
        return Reply::error(
            api,
            StatusCode::UNAUTHORIZED,
            "log in first: open the URL cairn ui printed, or send Authorization: Bearer TOKEN",
        );
    };
    let csrf = match &who {
        Caller::Session { csrf } => csrf.clone(),
        Caller::Bearer => String::new(),
    };
    let repo = match params.get("repo").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n < state.sources.len() => n,
        Some(_) => return Reply::error(api, StatusCode::NOT_FOUND, "no such repository on this dashboard"),
    };
    if req.method() == Method::POST {
        if let Caller::Session { csrf } = &who {
            if !same_origin(&req, state.tls) {
                return Reply::error(
                    api,
                    StatusCode::FORBIDDEN,
                    "refused: the request came from another site",
                );
            }
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(r) => return r,
            };
            if !auth::csrf_ok(csrf, form.get("csrf")) {
                return Reply::error(
                    api,
                    StatusCode::FORBIDDEN,
                    "refused: the form's CSRF token is missing or wrong",
                );
            }
            return post(&state, &path, &form, csrf, api);
        }
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        return post(&state, &path, &form, "", api);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Reply::error(api, StatusCode::METHOD_NOT_ALLOWED, "only GET and POST");
    }
    get(state, &path, params, repo, csrf, api).await
}

async fn read_form(req: Request<Incoming>) -> Result<Params, Reply> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(Params::parse(&String::from_utf8_lossy(&b.to_bytes()))),
        Err(_) => Err(Reply::error(true, StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")),
    }
}

/// Run `f` off the event loop; its error becomes the answer.
async fn blocking(api: bool, f: impl FnOnce() -> cairn::Result<Reply> + Send + 'static) -> Reply {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Reply::error(api, status_of(&e), &e.to_string()),
        Err(_) => {
            Reply::error(api, StatusCode::INTERNAL_SERVER_ERROR, "the request failed inside the dashboard")
        }
    }
}

fn owned(p: &Params, name: &str) -> Option<String> {
    p.get(name).map(str::to_string)
}

async fn get(state: Arc<State>, path: &str, p: Params, repo: usize, csrf: String, api: bool) -> Reply {
    let s = state.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["static", "ui.css"] => Reply::Asset("text/css; charset=utf-8", include_str!("assets/ui.css")),
        ["static", "ui.js"] => Reply::Asset("text/javascript; charset=utf-8", include_str!("assets/ui.js")),
        [""] => blocking(api, move || Ok(Reply::Html(StatusCode::OK, pages::overview(&s, &data::overview(&s.sources)?, &csrf)))).await,
        ["api", "overview"] => blocking(api, move || Ok(Reply::Json(StatusCode::OK, data::overview(&s.sources)?))).await,
        ["api", "repos"] => Reply::Json(
            StatusCode::OK,
            serde_json::json!(state
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| serde_json::json!({"repo": i, "name": s.name(), "location": s.target.repository, "job": s.job}))
                .collect::<Vec<_>>()),
        ),
        ["snapshots"] | ["api", "snapshots"] => {
            let page = segments[0] == "snapshots";
            blocking(api, move || {
                let q = snapshot_query(&p)?;
                let list = data::snapshots(&s.sources[repo], &q)?;
                Ok(match page {
                    true => Reply::Html(StatusCode::OK, pages::snapshots(&s, repo, &p, &list)),
                    false => Reply::Json(StatusCode::OK, list),
                })
            })
            .await
        }
        ["browse"] => blocking(api, move || {
            let snap = p.get("snap").unwrap_or("latest");
            let at = p.get("path").unwrap_or("/");
            let listing = data::listing(&s.sources[repo], snap, at)?;
            Ok(Reply::Html(StatusCode::OK, pages::browse(&s, repo, &listing, &csrf)))
        })
        .await,
        ["api", "snapshots", id, "ls"] => {
            let id = id.to_string();
            blocking(api, move || {
                Ok(Reply::Json(StatusCode::OK, data::listing(&s.sources[repo], &id, p.get("path").unwrap_or("/"))?))
            })
            .await
        }
        ["download"] | ["api", "snapshots", _, "file"] => {
            let snap = if segments[0] == "download" { owned(&p, "snap") } else { Some(segments[2].to_string()) };
            let (Some(snap), Some(at)) = (snap, owned(&p, "path")) else {
                return Reply::error(api, StatusCode::BAD_REQUEST, "give the snapshot and path=ABSOLUTE_PATH");
            };
            blocking(api, move || send_file(&s, repo, &snap, &at)).await
        }
        ["archive"] | ["api", "snapshots", _, "archive"] => {
            let snap = if segments[0] == "archive" { owned(&p, "snap") } else { Some(segments[2].to_string()) };
            let format = match p.get("format").unwrap_or("tar") {
                "tar" => cairn::ops::dump::ArchiveFormat::Tar,
                "zip" => cairn::ops::dump::ArchiveFormat::Zip,
                other => return Reply::error(api, StatusCode::BAD_REQUEST, &format!("format '{other}': give tar or zip")),
            };
            let Some(snap) = snap else {
                return Reply::error(api, StatusCode::BAD_REQUEST, "give the snapshot");
            };
            let at = p.get("path").unwrap_or("/").to_string();
            blocking(api, move || send_archive(&s, repo, &snap, &at, format)).await
        }
        ["diff"] | ["api", "diff"] => {
            let page = segments[0] == "diff";
            blocking(api, move || {
                let at = p.get("path").unwrap_or("/");
                let d = match (p.get("a"), p.get("b")) {
                    (Some(a), Some(b)) => Some(data::diff(&s.sources[repo], a, b, at)?),
                    _ if page => None,
                    _ => return Err(Error::invalid("give a=SNAPSHOT and b=SNAPSHOT")),
                };
                Ok(match (page, d) {
                    (true, d) => {
                        let list = data::snapshots(&s.sources[repo], &data::SnapshotQuery::default())?;
                        Reply::Html(StatusCode::OK, pages::diff(&s, repo, &p, &list, d.as_ref()))
                    }
                    (false, d) => Reply::Json(StatusCode::OK, d.unwrap_or_default()),
                })
            })
            .await
        }
        ["plots"] | ["api", "series"] => {
            let page = segments[0] == "plots";
            blocking(api, move || {
                let series = data::series(&s.sources[repo])?;
                Ok(match page {
                    true => Reply::Html(StatusCode::OK, pages::plots(&s, repo, &series)),
                    false => Reply::Json(StatusCode::OK, series),
                })
            })
            .await
        }
        ["log"] | ["api", "log"] => {
            let page = segments[0] == "log";
            blocking(api, move || {
                let log = data::log(&s.sources[repo], p.get("q"))?;
                Ok(match page {
                    true => Reply::Html(StatusCode::OK, pages::log(&s, repo, p.get("q"), &log)),
                    false => Reply::Json(StatusCode::OK, log),
                })
            })
            .await
        }
        ["actions"] => Reply::Html(StatusCode::OK, pages::actions(&state, repo, &state.actions.list())),
        ["api", "actions"] => Reply::Json(StatusCode::OK, Value::Array(state.actions.list())),
        ["actions", n] | ["api", "actions", n] => match n.parse().ok().and_then(|n| state.actions.get(n)) {
            Some(a) if api => Reply::Json(StatusCode::OK, a.json()),
            Some(a) => Reply::Html(StatusCode::OK, pages::action(&state, &a.json())),
            None => Reply::error(api, StatusCode::NOT_FOUND, "no such action"),
        },
        _ => Reply::error(api, StatusCode::NOT_FOUND, "no such page"),
    }
}

fn snapshot_query(p: &Params) -> cairn::Result<data::SnapshotQuery> {
    let mut q = data::SnapshotQuery::default();
    let f = &mut q.filter;
    f.hosts.extend(owned(p, "host"));
    f.tags.extend(owned(p, "tag"));
    f.paths.extend(owned(p, "path"));
    if let Some(l) = p.get("label") {
        let (k, v) =
            l.split_once('=').ok_or_else(|| Error::invalid(format!("label '{l}': give KEY=VALUE")))?;
        f.labels.push((k.to_string(), v.to_string()));
    }
    q.from = p.get("from").map(data::parse_time).transpose()?;
    q.to = p.get("to").map(data::parse_time).transpose()?;
    Ok(q)
}

/// Start an action (a form, from a page or the API).
fn post(state: &State, path: &str, form: &Params, csrf: &str, api: bool) -> Reply {
    if path != "/actions" && path != "/api/actions" {
        return Reply::error(api, StatusCode::NOT_FOUND, "no such action endpoint");
    }
    let repo = match form.get("repo").unwrap_or("0").parse::<usize>() {
        Ok(n) if n < state.sources.len() => n,
        _ => return Reply::error(api, StatusCode::NOT_FOUND, "no such repository on this dashboard"),
    };
    let src = &state.sources[repo];
    let kind = match form.get("kind") {
        Some("job") if src.job.is_some() && src.copy_of.is_none() => Kind::Job,
        Some("check") => Kind::Check,
        Some("drill") => Kind::Drill,
        Some("restore") => {
            let (Some(snap), Some(at), Some(target)) =
                (form.get("snap"), form.get("path"), form.get("target"))
            else {
                return Reply::error(api, StatusCode::BAD_REQUEST, "a restore needs snap, path and target");
            };
            if let Err(e) = data::checked_path(at) {
                return Reply::error(api, StatusCode::BAD_REQUEST, &e.to_string());
            }
            if !target.starts_with('/') {
                return Reply::error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "the target must be an absolute folder on this host",
                );
            }
            // Writing to this host's disks is asked twice: the confirmation page repeats
            // what will be written where, and only its own form says yes.
            if form.get("confirm") != Some("yes") {
                return Reply::Html(
                    StatusCode::OK,
                    pages::confirm_restore(state, repo, snap, at, target, csrf),
                );
            }
            Kind::Restore { snapshot: snap.to_string(), path: at.to_string(), target: PathBuf::from(target) }
        }
        Some(other) => {
            return Reply::error(
                api,
                StatusCode::BAD_REQUEST,
                &format!("no action '{other}' for this repository"),
            )
        }
        None => return Reply::error(api, StatusCode::BAD_REQUEST, "give kind=job|check|drill|restore"),
    };
    match state.actions.start(kind, repo, src) {
        Ok(a) if api => Reply::Json(StatusCode::ACCEPTED, a.json()),
        Ok(a) => Reply::Redirect(format!("/actions/{}", a.id), None),
        Err(e) => Reply::error(api, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A response body fed from a blocking thread through a channel; an error ends the
/// connection without a clean end, so no client takes a broken download for whole.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// The writing end of a [`ChannelBody`], buffered.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const SEND_SIZE: usize = 256 << 10;

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= SEND_SIZE {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// What a download's thread says before its body: the file name and, when known, the
/// length; or why it cannot start.
type Head = cairn::Result<(String, Option<u64>)>;

/// Stream a download from a thread of its own. `work` looks up what to send (opening the
/// index once, for the lookup and the body), calls `start` with the file name and length,
/// then writes the body. An error before `start` is the answer (404, 400); one after it
/// breaks the connection off, so no client takes a broken download for whole.
fn stream(
    content_type: &'static str,
    work: impl FnOnce(&mut dyn FnMut(String, Option<u64>), &mut ChannelWriter) -> cairn::Result<()>
        + Send
        + 'static,
) -> cairn::Result<Reply> {
    let (head_tx, head_rx) = std::sync::mpsc::sync_channel::<Head>(1);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut w = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(SEND_SIZE) };
        let mut started = false;
        let mut start = |name: String, length: Option<u64>| {
            started = true;
            let _ = head_tx.send(Ok((name, length)));
        };
        let done = work(&mut start, &mut w).and_then(|()| w.flush().map_err(|e| Error::io("cannot send", e)));
        match done {
            Err(e) if started => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            Err(e) => {
                let _ = head_tx.send(Err(e));
            }
            Ok(()) => {}
        }
    });
    let (file_name, length) =
        head_rx.recv().map_err(|_| Error::new(ErrorKind::Io, "the download stopped before it started"))??;
    Ok(Reply::Stream { content_type, file_name, length, body: ChannelBody(rx) })
}

/// A shared lock while data is read, so a prune waits; none, without a word, where this
/// user may not write to the repository (a read-only store still serves downloads).
fn read_lock<'r>(
    repo: &'r cairn::Repository,
    operation: &str,
    interrupt: &AtomicBool,
) -> cairn::Result<cairn::repo::read_lock::ReadLock<'r>> {
    repo.lock_for_reading(operation, cairn::repo::read_lock::ReadLockPolicy::Try, Duration::ZERO, interrupt)
}

fn base_name(path: &[u8]) -> String {
    let name = path.rsplit(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(b"snapshot");
    String::from_utf8_lossy(name).into_owned()
}

/// One file's bytes, each chunk decrypted and checked against its id on the way; the read
/// is recorded in the activity log, as `cat` records it.
fn send_file(state: &Arc<State>, repo: usize, snap: &str, at: &str) -> cairn::Result<Reply> {
    let (state, snap, at) = (state.clone(), snap.to_string(), at.to_string());
    stream("application/octet-stream", move |start, out| {
        let repo = &state.sources[repo].repo;
        let _lock = read_lock(repo, "ui download", &state.interrupt)?;
        let browser = cairn::browse::Browser::open(repo)?;
        let (id, path, size, chunks) = data::file_node(&browser, &snap, &at)?;
        start(base_name(&path), Some(size));
        let sent = (|| {
            let mut file = browser.reader(&chunks);
            while let Some(chunk) = file.next_chunk()? {
                out.write_all(&chunk).map_err(|e| Error::io("cannot send", e))?;
            }
            Ok(0)
        })();
        let shown = vec![String::from_utf8_lossy(&path).into_owned()];
        crate::cli::record_read(repo, "ui download", id, &shown, None, sent).map(|_| ())
    })
}

/// A folder (or the whole snapshot) as tar or zip, as `dump` writes it.
fn send_archive(
    state: &Arc<State>,
    repo: usize,
    snap: &str,
    at: &str,
    format: cairn::ops::dump::ArchiveFormat,
) -> cairn::Result<Reply> {
    let path = data::checked_path(at)?;
    let (ext, content_type) = match format {
        cairn::ops::dump::ArchiveFormat::Tar => ("tar", "application/x-tar"),
        cairn::ops::dump::ArchiveFormat::Zip => ("zip", "application/zip"),
    };
    let (state, snap) = (state.clone(), snap.to_string());
    stream(content_type, move |start, out| {
        let repo = &state.sources[repo].repo;
        let _lock = read_lock(repo, "ui archive", &state.interrupt)?;
        let (id, snapshot) =
            cairn::repo::select::find(repo, &snap, &cairn::repo::select::SnapshotFilter::default())?;
        let browser = cairn::browse::Browser::open(repo)?;
        // Looked up before the answer starts: a wrong path is a 404, not a broken download.
        browser.lookup(&snapshot, &path)?;
        start(
            format!("{}-{}.{ext}", id.short(), if path == b"/" { "all".into() } else { base_name(&path) }),
            None,
        );
        let written = cairn::ops::dump::dump(
            &browser,
            &snapshot,
            std::slice::from_ref(&path),
            format,
            out,
            &state.interrupt,
        );
        let shown = vec![String::from_utf8_lossy(&path).into_owned()];
        crate::cli::record_read(repo, "ui archive", id, &shown, None, written.map(|_| 0)).map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_is_taken_out_of_the_redirect() {
        let p = super::Params::parse("token=abc&repo=1&path=%2Fa+b");
        assert_eq!(p.get("token"), Some("abc"));
        assert_eq!(p.without("token"), "repo=1&path=%2Fa+b");
    }
}
