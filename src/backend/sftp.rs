//! A repository on an SSH server, as `sftp:[user@]host[:port]/path`.
//!
//! The connection is the system's `ssh` client running the server's `sftp` subsystem, so
//! everything the user set up for ssh applies unchanged: Host aliases, IdentityFile, Port
//! and ProxyJump in ~/.ssh/config, the agent, and strict known_hosts checking. The SFTP
//! protocol over its pipes is spoken by `openssh-sftp-client` (async, on a small private
//! tokio runtime); this file only glues it to the blocking [`Backend`] trait.
//!
//! `CAIRN_SSH_COMMAND` replaces `ssh` (split on spaces, e.g. `ssh -F /etc/cairn/ssh_config`).
//! A path starting with `/~/` is relative to the login's home folder.
//!
//! Atomicity: an object is written to `.tmp-NAME-RANDOM` in its folder and renamed into
//! place (POSIX rename where the server offers it), so an interrupted upload never leaves
//! a partial object under its final name. A dropped connection is reopened on the next
//! call; the retry wrapper decides whether to make that call.

use super::local::TEMP_PREFIX;
use super::retry::transient;
use super::{check_name, object_path, Backend, FileType};
use crate::error::{Error, ErrorKind, Result};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::metadata::Permissions;
use openssh_sftp_client::{Sftp, SftpOptions};
use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Longest wait for one operation (one pack at a few hundred KB/s) before the connection
/// counts as dead; ssh's own keepalive notices a silent peer sooner.
const OP_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Uploads in flight over the one connection: SFTP pipelines requests, so overlapping
/// packs hides the round trips of their renames.
const PARALLEL_UPLOADS: usize = 8;
/// Pack fetches check --read-data and restore keep in flight.
const PARALLEL_READS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpLocation {
    pub user: Option<String>,
    /// A host name, address or ssh config Host alias.
    pub host: String,
    pub port: Option<u16>,
    /// The repository folder: absolute, or relative to the home folder.
    pub path: String,
}

impl SftpLocation {
    /// Parse what follows `sftp:`.
    pub fn parse(s: &str) -> Result<SftpLocation> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "'sftp:{s}' is not an SFTP location ({why}); write sftp:[USER@]HOST[:PORT]/PATH"
            ))
        };
        let slash = s.find('/').ok_or_else(|| bad("no path"))?;
        let (authority, path) = s.split_at(slash);
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?)),
            None => (hostport, None),
        };
        if host.is_empty()
            || host.starts_with('-')
            || user.as_deref().is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err(bad("no usable host or user"));
        }
        let path = match path.strip_prefix("/~/") {
            Some(rel) => rel.trim_end_matches('/').to_string(),
            None => path.trim_end_matches('/').to_string(),
        };
        if path.is_empty() || path == "/" {
            return Err(bad("the path is empty"));
        }
        Ok(SftpLocation { user, host: host.to_string(), port, path })
    }

    fn display(&self) -> String {
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let slash = if self.path.starts_with('/') { "" } else { "/~/" };
        format!("sftp:{user}{}{port}{slash}{}", self.host, self.path)
    }
}

/// One ssh process and the SFTP session over its pipes.
struct Connection {
    sftp: Sftp,
    /// Keeps the process: dropping it kills ssh.
    _child: tokio::process::Child,
}

pub struct SftpBackend {
    loc: SftpLocation,
    rt: tokio::runtime::Runtime,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl SftpBackend {
    pub fn new(loc: SftpLocation) -> Result<SftpBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cairn-sftp")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the SFTP runtime".to_string(), e))?;
        Ok(SftpBackend { loc, rt, conn: Mutex::new(None) })
    }

    fn path(&self, ft: FileType, name: &str) -> Result<String> {
        if ft != FileType::Config {
            check_name(name)?;
        }
        Ok(format!("{}/{}", self.loc.path, object_path(ft, name)))
    }

    fn dir(&self, ft: FileType) -> String {
        match ft {
            FileType::Config => self.loc.path.clone(),
            _ => format!("{}/{}", self.loc.path, ft.dir()),
        }
    }

    /// The live connection, opening one if there is none.
    fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.conn.lock().expect("connection lock");
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.rt.block_on(self.connect())?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn connect(&self) -> Result<Connection> {
        let command = std::env::var("CAIRN_SSH_COMMAND").unwrap_or_else(|_| "ssh".to_string());
        let mut words = command.split_whitespace();
        let program = words.next().unwrap_or("ssh");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(words);
        if let Some(p) = self.loc.port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &self.loc.user {
            cmd.arg("-l").arg(u);
        }
        // Keepalives turn a vanished server into an error instead of a hang.
        cmd.args(["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "ConnectTimeout=20"]);
        cmd.args(["-s", "--", &self.loc.host, "sftp"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Error::invalid(format!("cannot run '{program}' to reach {}: {e}", self.loc.display()))
        })?;
        let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        let mut stderr = child.stderr.take().expect("piped");
        let started =
            tokio::time::timeout(CONNECT_TIMEOUT, Sftp::new(stdin, stdout, SftpOptions::new())).await;
        match started {
            Ok(Ok(sftp)) => {
                // ssh may still print warnings; drain them so it never blocks on a full pipe.
                tokio::spawn(async move {
                    let mut sink = Vec::new();
                    let _ = stderr.read_to_end(&mut sink).await;
                });
                Ok(Connection { sftp, _child: child })
            }
            other => {
                let _ = child.start_kill();
                let mut said = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_end(&mut said)).await;
                let cause = match other {
                    Err(_) => "no answer in time".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => unreachable!("handled above"),
                };
                Err(self.ssh_error(&String::from_utf8_lossy(&said), &cause))
            }
        }
    }

    /// Classify why ssh could not open a session, from what it printed.
    fn ssh_error(&self, stderr: &str, cause: &str) -> Error {
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
            .unwrap_or(cause)
            .to_string();
        let whom = self.loc.display();
        let has = |s: &str| stderr.contains(s);
        if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot connect to {whom}: the server's host key is not trusted ({last}); check known_hosts"),
            )
        } else if has("Permission denied") || has("Too many authentication failures") {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot log in to {whom} ({last}); check the ssh key, agent or ssh config"),
            )
        } else if has("Could not resolve hostname") {
            Error::new(ErrorKind::InvalidInput, format!("cannot connect to {whom}: {last}"))
        } else if has("subsystem request failed") {
            Error::new(ErrorKind::Unsupported, format!("{whom} offers no SFTP service ({last})"))
        } else {
            // Refused, timed out, reset: the server may come back.
            transient(format!("cannot connect to {whom}"), last)
        }
    }

    /// Run one operation on the connection with a time limit. A failure of the connection
    /// itself drops it, so the next call (a retry) opens a fresh one.
    fn run<T, F, Fut>(&self, what: &str, target: &str, op: F) -> Result<T>
    where
        F: FnOnce(Arc<Connection>) -> Fut,
        Fut: Future<Output = std::result::Result<T, openssh_sftp_client::Error>>,
    {
        let conn = self.connection()?;
        let result = self.rt.block_on(async { tokio::time::timeout(OP_TIMEOUT, op(conn.clone())).await });
        let err = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                self.drop_connection(&conn);
                return Err(transient(format!("cannot {what} {target}"), "no answer in time"));
            }
        };
        let context = format!("cannot {what} {}:{target}", self.loc.host);
        match &err {
            openssh_sftp_client::Error::SftpError(kind, msg) => {
                let kind = match kind {
                    SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
                    SftpErrorKind::PermDenied => ErrorKind::PermissionDenied,
                    SftpErrorKind::OpUnsupported => ErrorKind::Unsupported,
                    // OpenSSH reports most OS errors, a full disk included, as a generic
                    // failure: worth another try.
                    _ => ErrorKind::Io,
                };
                Err(Error::new(kind, format!("{context}: {msg}")))
            }
            _ => {
                self.drop_connection(&conn);
                Err(transient(context, format!("connection lost ({err})")))
            }
        }
    }

    fn drop_connection(&self, conn: &Arc<Connection>) {
        let mut slot = self.conn.lock().expect("connection lock");
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
    }

    fn mkdir_all(&self, dir: &str) -> Result<()> {
        let mut at = if dir.starts_with('/') { String::from("/") } else { String::new() };
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() && !at.ends_with('/') {
                at.push('/');
            }
            at.push_str(part);
            if part == "~" {
                continue;
            }
            let p = at.clone();
            let made = self.run("create folder", &at, |c| async move {
                let mut fs = c.sftp.fs();
                match fs.metadata(&p).await {
                    Ok(_) => Ok(()),
                    Err(_) => fs.dir_builder().permissions(Permissions::from(0o700)).create(&p).await,
                }
            });
            // A concurrent writer may have made it between the check and the create.
            if made.is_err() && self.exists_path(&at)? {
                continue;
            }
            made?;
        }
        Ok(())
    }

    /// Make each of `dirs` (mode 0700) whose parent exists, all at once over the
    /// connection; one that exists already, or that another writer makes meanwhile, is
    /// fine. `parent` names them in errors.
    fn make_dirs(&self, parent: &str, dirs: &[String]) -> Result<()> {
        let dirs = dirs.to_vec();
        self.run("create folders in", parent, |c| async move {
            let made: Vec<_> = dirs
                .into_iter()
                .map(|d| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let mut fs = c.sftp.fs();
                        match fs.dir_builder().permissions(Permissions::from(0o700)).create(&d).await {
                            Ok(()) => Ok(()),
                            Err(e) => match fs.metadata(&d).await {
                                Ok(m) if m.file_type().is_some_and(|t| t.is_dir()) => Ok(()),
                                _ => Err(e),
                            },
                        }
                    })
                })
                .collect();
            for one in made {
                one.await??;
            }
            Ok(())
        })
    }

    fn exists_path(&self, p: &str) -> Result<bool> {
        let p = p.to_string();
        match self.run("look up", &p.clone(), |c| async move { c.sftp.fs().metadata(p).await }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Names in `dir` (objects only, no temporaries) and whether each is a folder.
    fn list_dir(&self, dir: &str) -> Result<Vec<(String, bool)>> {
        Ok(self
            .list_dir_entries(dir)?
            .into_iter()
            .filter(|e| !e.name.starts_with(TEMP_PREFIX))
            .map(|e| (e.name, e.is_dir))
            .collect())
    }

    /// Everything in `dir` but `.` and `..`; a missing folder holds nothing.
    fn list_dir_entries(&self, dir: &str) -> Result<Vec<DirEntry>> {
        Ok(self.list_dirs_entries(dir, &[dir.to_string()])?.pop().unwrap_or_default())
    }

    /// [`Self::list_dir_entries`] of each of `dirs` (below `parent`, named in errors),
    /// read many at once over the connection: each listing waits a few round trips, so
    /// one folder after another took 160 ms a folder at 40 ms (256 pack folders, 41 s).
    fn list_dirs_entries(&self, parent: &str, dirs: &[String]) -> Result<Vec<Vec<DirEntry>>> {
        // Open folder handles at once on the server, at most: the pack folders and the
        // others of `leftovers` in one wave (OpenSSH's server keeps a descriptor each).
        const AT_ONCE: usize = 512;
        let dirs = dirs.to_vec();
        self.run("list", parent, |c| async move {
            let mut out = Vec::with_capacity(dirs.len());
            for wave in dirs.chunks(AT_ONCE) {
                let listings: Vec<_> =
                    wave.iter().map(|d| tokio::spawn(read_dir_entries(c.clone(), d.clone()))).collect();
                for listing in listings {
                    out.push(listing.await??);
                }
            }
            Ok(out)
        })
    }
}

/// Everything in `dir` but `.` and `..`; a missing folder holds nothing.
async fn read_dir_entries(c: Arc<Connection>, dir: String) -> SftpResult<Vec<DirEntry>> {
    let opened = match c.sftp.fs().open_dir(dir).await {
        // A folder that was never needed may not exist: it holds nothing.
        Err(openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) => return Ok(Vec::new()),
        other => other?,
    };
    let mut rd = Box::pin(opened.read_dir());
    let mut entries = Vec::new();
    while let Some(entry) = std::future::poll_fn(|cx| futures_core::Stream::poll_next(rd.as_mut(), cx)).await
    {
        let entry = entry?;
        let name = entry.filename().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let md = entry.metadata();
        entries.push(DirEntry {
            name,
            is_dir: entry.file_type().is_some_and(|t| t.is_dir()),
            size: md.len().unwrap_or(0),
            modified: md.modified().map(|t| t.as_system_time()),
        });
    }
    Ok(entries)
}

struct DirEntry {
    name: String,
    is_dir: bool,
    size: u64,
    modified: Option<std::time::SystemTime>,
}

type SftpResult<T> = std::result::Result<T, openssh_sftp_client::Error>;

/// The bytes of one read or write request: what OpenSSH's server takes at once (its
/// `limits` extension says 255 KiB; the client library keeps the figure to itself).
/// Against a server that takes less, the library splits each piece further, one part
/// after another: still correct, less overlapped.
const PIECE: std::num::NonZeroU32 = std::num::NonZeroU32::new(255 * 1024).expect("not zero");

/// Read `len` bytes at `offset` (fewer if the file ends first). SFTP answers each request
/// after a round trip and carries at most a [`PIECE`] in it, so one request after another
/// would wait a round trip per piece: every piece is asked for at once over clones of one
/// handle, and a read costs two round trips (open, the pieces) whatever its length. The
/// handle closes when dropped, without waiting for the answer.
async fn read_span(c: Arc<Connection>, path: String, offset: u64, len: u64) -> SftpResult<Vec<u8>> {
    let f = c.sftp.open(path).await?;
    read_pieces(&f, offset, len).await
}

/// A whole object, if it is at most `max` bytes long; else its size. Its size and its
/// first piece are asked for at once: most objects the store holds fit in one piece.
async fn read_whole(c: Arc<Connection>, path: String, max: u64) -> SftpResult<Result<Vec<u8>, u64>> {
    let f = c.sftp.open(path).await?;
    let piece = u64::from(PIECE.get());
    let mut first_f = f.clone();
    let first = tokio::spawn(async move { read_piece(&mut first_f, 0, piece).await });
    let size = f.clone().metadata().await?.len();
    let mut out = first.await??;
    let size = match size {
        Some(size) if size > max => return Ok(Err(size)),
        Some(size) => size,
        // A server that does not say: one piece after another, up to the limit.
        None => {
            let mut f = f.clone();
            while out.len() as u64 % piece == 0 && out.len() as u64 <= max {
                let more = read_piece(&mut f, out.len() as u64, piece).await?;
                if more.is_empty() {
                    break;
                }
                out.extend_from_slice(&more);
            }
            return Ok(if out.len() as u64 > max { Err(out.len() as u64) } else { Ok(out) });
        }
    };
    if size > out.len() as u64 && out.len() as u64 == piece {
        out.extend_from_slice(&read_pieces(&f, piece, size - piece).await?);
    }
    Ok(Ok(out))
}

/// [`read_span`] through an open handle.
async fn read_pieces(f: &openssh_sftp_client::file::File, offset: u64, len: u64) -> SftpResult<Vec<u8>> {
    let piece = u64::from(PIECE.get());
    let pieces: Vec<_> = (0..len.div_ceil(piece))
        .map(|i| {
            let (at, want) = (offset + i * piece, piece.min(len - i * piece));
            let mut f = f.clone();
            (want, tokio::spawn(async move { read_piece(&mut f, at, want).await }))
        })
        .collect();
    let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
    let mut ended = false;
    for (want, piece) in pieces {
        let bytes = piece.await??;
        // Past the end of the file the pieces come back short or empty.
        if !ended {
            out.extend_from_slice(&bytes);
            ended = (bytes.len() as u64) < want;
        }
    }
    Ok(out)
}

/// Read `want` bytes at `at` through `f` (fewer at the end of the file).
async fn read_piece(f: &mut openssh_sftp_client::file::File, at: u64, want: u64) -> SftpResult<Vec<u8>> {
    let mut out = Vec::with_capacity(want as usize);
    while (out.len() as u64) < want {
        // The client moves its offset by what was asked, not by what came back.
        seek(f, at + out.len() as u64)?;
        let ask = (want - out.len() as u64).min(u32::MAX as u64) as u32;
        match f.read(ask, bytes::BytesMut::new()).await? {
            Some(b) if !b.is_empty() => out.extend_from_slice(&b),
            _ => break,
        }
    }
    Ok(out)
}

/// Write all of `data` at offset 0 of `f`, every [`PIECE`] of it sent at once over
/// clones of the handle (as `read_span` reads), so a pack's upload waits for the link's
/// rate and a round trip, not a round trip per piece.
async fn write_pipelined(f: &openssh_sftp_client::file::File, data: bytes::Bytes) -> SftpResult<()> {
    let piece = PIECE.get() as usize;
    let pieces: Vec<_> = (0..data.len().div_ceil(piece))
        .map(|i| {
            let at = i * piece;
            let part = data.slice(at..(at + piece).min(data.len()));
            let mut f = f.clone();
            tokio::spawn(async move {
                seek(&mut f, at as u64)?;
                // Sent from `data` itself: a plain write would copy every piece into the
                // library's send buffer, a second copy of the object per upload in flight.
                f.write_all_zero_copy(&mut [part]).await
            })
        })
        .collect();
    for piece in pieces {
        piece.await??;
    }
    Ok(())
}

fn seek(f: &mut openssh_sftp_client::file::File, at: u64) -> SftpResult<()> {
    tokio::io::AsyncSeek::start_seek(std::pin::Pin::new(f), std::io::SeekFrom::Start(at))?;
    Ok(())
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // A weak suffix would only risk a clash between two temporary names.
    let _ = getrandom::fill(&mut b);
    crate::id::hex_encode(&b)
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.loc.display()
    }

    fn create(&self) -> Result<()> {
        let root = self.loc.path.clone();
        if self.exists_path(&format!("{root}/config"))? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} already holds a repository; choose another path", self.location()),
            ));
        }
        if !self.list_dir(&root)?.is_empty() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} is not empty; init needs a new or empty folder", self.location()),
            ));
        }
        self.mkdir_all(&root)?;
        let folders: Vec<String> = [
            FileType::Key,
            FileType::Index,
            FileType::Snapshot,
            FileType::Lock,
            FileType::Log,
            FileType::Pack,
        ]
        .into_iter()
        .map(|ft| self.dir(ft))
        .collect();
        self.make_dirs(&root, &folders)?;
        // The 256 pack subfolders at once (one after another they took 10 s at 40 ms; a
        // first backup that made each on first use waited 6 round trips a pack).
        let data = self.dir(FileType::Pack);
        self.make_dirs(&data, &(0..=255u8).map(|b| format!("{data}/{b:02x}")).collect::<Vec<_>>())
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        let p = self.path(ft, name)?;
        match self.run("read", &p.clone(), |c| read_whole(c, p, max))? {
            Ok(bytes) => Ok(bytes),
            Err(size) => Err(super::too_large(ft, name, size, max)),
        }
    }

    fn read_range(&self, ft: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(ft, name)?;
        self.run("read", &p.clone(), |c| read_span(c, p, offset, len))
    }

    fn write(&self, ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(ft, name)?;
        let dir = p.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        let tmp = format!("{dir}/{TEMP_PREFIX}{name}-{}", random_suffix());
        let upload = || {
            let (tmp, p) = (tmp.clone(), p.clone());
            let data = bytes::Bytes::copy_from_slice(bytes);
            self.run("write", &p.clone(), |c| async move {
                let mut f = c.sftp.options().write(true).create_new(true).open(&tmp).await?;
                // The mode is set while the data goes: one round trip fewer.
                let mut g = f.clone();
                let mode = tokio::spawn(async move { g.set_permissions(Permissions::from(0o600)).await });
                write_pipelined(&f, data).await?;
                mode.await??;
                // Locks are advisory and expire: they skip the round trip of a sync.
                if ft != FileType::Lock && c.sftp.support_fsync() {
                    f.sync_all().await?;
                }
                // The close and then the rename go out at once, a round trip fewer: the
                // data is synced already, OpenSSH's server takes requests in the order
                // sent, and one that would not still renames an open file on POSIX.
                let mut fs = c.sftp.fs();
                let (closed, renamed) = tokio::join!(biased; f.close(), fs.rename(&tmp, &p));
                closed?;
                renamed
            })
        };
        let result = match upload() {
            // A pack subfolder that is missing (a repository made before init made them
            // all, or one removed) is made on first use.
            Err(e) if e.kind() == ErrorKind::NotFound && ft == FileType::Pack => {
                self.make_dirs(&dir, std::slice::from_ref(&dir)).or_else(|_| self.mkdir_all(&dir))?;
                upload()
            }
            other => other,
        };
        if result.is_err() {
            let t = tmp.clone();
            let _ = self.run("delete", &tmp, |c| async move { c.sftp.fs().remove_file(t).await });
        }
        result
    }

    fn list(&self, ft: FileType) -> Result<Vec<String>> {
        match ft {
            FileType::Config => {
                let there = self.exists_path(&format!("{}/config", self.loc.path))?;
                Ok(if there { vec!["config".into()] } else { vec![] })
            }
            FileType::Pack => {
                // Every subfolder a pack may be in, without listing `data` first (a missing
                // one holds nothing): one wave of listings.
                let data = self.dir(ft);
                let subs: Vec<String> = (0..=255u8).map(|b| format!("{data}/{b:02x}")).collect();
                let listed = self.list_dirs_entries(&data, &subs)?;
                Ok(listed
                    .into_iter()
                    .flatten()
                    .filter(|e| !e.name.starts_with(TEMP_PREFIX))
                    .map(|e| e.name)
                    .collect())
            }
            _ => Ok(self.list_dir(&self.dir(ft))?.into_iter().map(|(n, _)| n).collect()),
        }
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let p = self.path(ft, name)?;
        let meta = self.run("look up", &p.clone(), |c| async move { c.sftp.fs().metadata(p).await })?;
        Ok(meta.len().unwrap_or(0))
    }

    fn modified(&self, ft: FileType, name: &str) -> Result<Option<std::time::SystemTime>> {
        let p = self.path(ft, name)?;
        let meta = self.run("look up", &p.clone(), |c| async move { c.sftp.fs().metadata(p).await })?;
        Ok(meta.modified().map(|t| t.as_system_time()))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let p = self.path(ft, name)?;
        self.run("delete", &p.clone(), |c| async move { c.sftp.fs().remove_file(p).await })
    }

    fn leftovers(&self, age: std::time::Duration) -> Result<Vec<super::Leftover>> {
        let dirs = super::object_dirs();
        let full: Vec<String> = dirs
            .iter()
            .map(
                |dir| if dir.is_empty() { self.loc.path.clone() } else { format!("{}/{dir}", self.loc.path) },
            )
            .collect();
        let mut out = Vec::new();
        for (dir, entries) in dirs.iter().zip(self.list_dirs_entries(&self.loc.path, &full)?) {
            for e in entries {
                let old = e.modified.and_then(|t| t.elapsed().ok()).is_some_and(|a| a >= age);
                if e.name.starts_with(TEMP_PREFIX) && !e.is_dir && old {
                    out.push(super::Leftover { path: super::in_dir(dir, &e.name), size: e.size });
                }
            }
        }
        Ok(out)
    }

    fn remove_leftover(&self, path: &str) -> Result<()> {
        if !super::is_leftover_path(path) {
            return Err(Error::invalid(format!("{path} is not a temporary file of the repository")));
        }
        let p = format!("{}/{path}", self.loc.path);
        self.run("delete", &p.clone(), |c| async move { c.sftp.fs().remove_file(p).await })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l = SftpLocation::parse("backup@nas:2222/srv/cairn/").unwrap();
        assert_eq!(l.user.as_deref(), Some("backup"));
        assert_eq!((l.host.as_str(), l.port, l.path.as_str()), ("nas", Some(2222), "/srv/cairn"));
        let l = SftpLocation::parse("offsite/~/repo").unwrap();
        assert_eq!(
            (l.user.as_deref(), l.host.as_str(), l.port, l.path.as_str()),
            (None, "offsite", None, "repo")
        );
        assert_eq!(l.display_for_test(), "sftp:offsite/~/repo");
        for bad in ["nas", "nas:x/p", "@nas/p", "-oProxyCommand=x/p", "nas/", "u@:22/p"] {
            assert_eq!(SftpLocation::parse(bad).unwrap_err().kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    impl SftpLocation {
        fn display_for_test(&self) -> String {
            self.display()
        }
    }
}
