//! `cairn serve`: an HTTP server that stores repositories for many hosts and enforces
//! what each token may do. It never holds a repository key: it sees objects, names,
//! sizes and arrival times, and checks every object's bytes against its name.
//! format-spec/serve.md is the protocol; format-spec/threat-model.md says what it stops.
//!
//! Layout of a root: `ROOT/REPO/...` one repository each, in the layout of a local one
//! (so a served repository can also be opened as a folder on the server), and
//! `ROOT/.cairn-serve/` the server's own: token hashes, the quarantine that deletes go
//! to, the last snapshot arrival per token, and the access log.

mod buffers;
mod handler;
pub mod names;
mod report;
pub mod store;
pub mod tokens;

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ServeOptions {
    /// Where the repositories are: a local folder, or a remote store such as a bucket.
    pub root: String,
    /// The server's own folder (tokens, arrivals, access log); `tokens::state_dir`.
    pub state: PathBuf,
    pub listen: SocketAddr,
    /// Certificate chain and private key, PEM. Without them only loopback is served.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The most bytes one repository may hold.
    pub quota: Option<u64>,
    /// How long deleted objects stay in the quarantine.
    pub keep_deleted: Duration,
    /// The newest snapshot should be younger than this (metrics and status page).
    pub rpo: Option<Duration>,
    /// Where the access log goes ("-": standard output); default STATE/access.log.
    pub access_log: Option<PathBuf>,
    /// The largest pack accepted.
    pub max_pack: u64,
}

/// Everything a request may need.
pub struct State {
    pub opts: ServeOptions,
    tokens: tokens::TokenCache,
    repos: store::Repos,
    access: report::AccessLog,
    /// Repository -> token name -> when it last stored a snapshot (seconds).
    arrivals: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// MiB of upload bodies that may be held in memory at once, over all requests: each
    /// upload takes its size's worth before it is received, so many large uploads at
    /// once wait instead of exhausting memory.
    upload_budget: tokio::sync::Semaphore,
    /// Upload buffers kept warm between requests.
    buffers: buffers::Buffers,
}

/// The most upload bytes held at once, in MiB (at least two of the largest packs).
fn upload_budget_mib(max_pack: u64) -> usize {
    let largest = max_pack.div_ceil(1 << 20) as usize;
    (2 * largest).max(1024)
}

impl State {
    fn arrivals_path(&self) -> PathBuf {
        self.opts.state.join("arrivals.json")
    }

    /// The repositories tokens name that exist.
    fn repo_names(&self) -> Vec<String> {
        self.tokens
            .repos()
            .into_iter()
            .filter(|r| self.repos.get(r).and_then(|s| s.exists()).unwrap_or(false))
            .collect()
    }

    fn arrivals(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.arrivals.lock().expect("arrivals lock").clone()
    }

    fn record_snapshot(&self, repo: &str, token: &str) {
        let mut a = self.arrivals.lock().expect("arrivals lock");
        a.entry(repo.to_string()).or_default().insert(token.to_string(), report::now_secs());
        let json = serde_json::to_vec(&*a).expect("arrivals serialize");
        // Figures for the page only; a failed write loses nothing stored.
        let _ = crate::sys::write_private_file(&self.arrivals_path(), &json);
    }
}

/// Open the root (created 0700 if missing) and check the options.
fn open_state(opts: ServeOptions) -> Result<State> {
    if opts.tls.is_none() && !opts.listen.ip().is_loopback() {
        return Err(Error::invalid(format!(
            "{} is not a loopback address: plain HTTP is served only on 127.0.0.1 or ::1; give --tls-cert and --tls-key",
            opts.listen
        )));
    }
    let dir = opts.state.clone();
    crate::sys::create_private_dir(&dir)?;
    let token_file = tokens::TokenFile::new(&dir);
    tokens::check_private(token_file.path())?;
    let access = report::AccessLog::open(&opts.access_log.clone().unwrap_or_else(|| dir.join("access.log")))?;
    let arrivals = std::fs::read(dir.join("arrivals.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(State {
        upload_budget: tokio::sync::Semaphore::new(upload_budget_mib(opts.max_pack)),
        buffers: buffers::Buffers::default(),
        tokens: tokens::TokenCache::new(&dir),
        repos: store::Repos::new(&opts.root, Some(&dir)),
        access,
        arrivals: Mutex::new(arrivals),
        opts,
    })
}

pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect())
            .map_err(|e| Error::invalid(format!("{}: not a PEM certificate chain: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!("{}: no certificate in it", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::invalid(format!("{}: not a PEM private key: {e}", key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::invalid(format!("the TLS certificate and key do not work: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serve until `interrupt` is set. The first line on standard output says where.
pub fn run(opts: ServeOptions, interrupt: Arc<AtomicBool>) -> Result<()> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let state = Arc::new(open_state(opts)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("cannot start the server's runtime", e))?;
    spawn_expiry(state.clone(), interrupt.clone());
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(state.opts.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", state.opts.listen), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("cannot read the listening address", e))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("cairn serve: listening on {scheme}://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        accept_until(&interrupt, listener, tls, move |peer| {
            let state = state.clone();
            hyper::service::service_fn(move |req| answer(state.clone(), peer, req))
        })
        .await;
        Ok(())
    })
}

/// Take connections on `listener` until `interrupt` is set, each served by the service
/// `make` gives for its peer, over TLS when `tls` is given (the dashboard serves this way
/// too). A client that sends its headers slowly gives up its connection; a connection that
/// breaks off ends there.
pub async fn accept_until<S, B>(
    interrupt: &AtomicBool,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    make: impl Fn(SocketAddr) -> S,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    while !interrupt.load(Ordering::Relaxed) {
        let Ok(accepted) = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await else {
            continue;
        };
        let Ok((stream, peer)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let service = make(peer);
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(s), service).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

async fn answer(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut logged = handler::Logged::default();
    let reply = handler::handle(state.clone(), req, &mut logged).await;
    state.access.record(&serde_json::json!({
        "time": jiff::Timestamp::now().to_string(),
        "peer": peer.to_string(),
        "method": method.as_str(),
        "path": path,
        "repo": logged.repo,
        "token": logged.token,
        "op": logged.op,
        "object": logged.object,
        "bytes": logged.bytes,
        "status": reply.status.as_u16(),
        "ms": started.elapsed().as_millis() as u64,
    }));
    Ok(reply.into_response(method == hyper::Method::HEAD))
}

/// Delete quarantined objects older than --keep-deleted, at start and then hourly.
fn spawn_expiry(state: Arc<State>, interrupt: Arc<AtomicBool>) {
    std::thread::spawn(move || loop {
        for name in state.repo_names() {
            if let Err(e) = state.repos.get(&name).and_then(|s| s.expire(state.opts.keep_deleted)) {
                eprintln!("cairn serve: cannot expire the quarantine of {name}: {e}");
            }
        }
        for _ in 0..3600 {
            if interrupt.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

/// Bring back objects of `repo` deleted within `since` (all quarantined ones if None).
pub fn undelete(root: &str, repo: &str, since: Option<Duration>) -> Result<u64> {
    tokens::check_repo_name(repo)?;
    store::Repos::new(root, None).get(repo)?.undelete(since)
}
