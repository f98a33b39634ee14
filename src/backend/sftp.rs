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
const PARALLEL_UPLOADS: usize = 4;
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
        let d = dir.to_string();
        let listed = self.run("list", dir, |c| async move {
            let mut rd = Box::pin(c.sftp.fs().open_dir(d).await?.read_dir());
            let mut entries = Vec::new();
            loop {
                let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(rd.as_mut(), cx)).await;
                match next {
                    None => return Ok(entries),
                    Some(entry) => {
                        let entry = entry?;
                        let md = entry.metadata();
                        entries.push(DirEntry {
                            name: entry.filename().to_string_lossy().into_owned(),
                            is_dir: entry.file_type().is_some_and(|t| t.is_dir()),
                            size: md.len().unwrap_or(0),
                            modified: md.modified().map(|t| t.as_system_time()),
                        });
                    }
                }
            }
        });
        match listed {
            // A folder that was never needed may not exist: it holds nothing.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            other => Ok(other?.into_iter().filter(|e| e.name != "." && e.name != "..").collect()),
        }
    }
}

struct DirEntry {
    name: String,
    is_dir: bool,
    size: u64,
    modified: Option<std::time::SystemTime>,
}

/// Bytes read by one task when a whole object is read.
const READ_SPAN: u64 = 1 << 20;

/// Read `len` bytes at `offset` (fewer if the file ends first) through one file handle.
async fn read_span(
    c: Arc<Connection>,
    path: String,
    offset: u64,
    len: u64,
) -> std::result::Result<Vec<u8>, openssh_sftp_client::Error> {
    let mut f = c.sftp.open(path).await?;
    let seek = |f: &mut openssh_sftp_client::file::File, at: u64| {
        tokio::io::AsyncSeek::start_seek(std::pin::Pin::new(f), std::io::SeekFrom::Start(at))
    };
    seek(&mut f, offset)?;
    let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
    while (out.len() as u64) < len {
        let want = (len - out.len() as u64).min(u32::MAX as u64) as u32;
        match f.read(want, bytes::BytesMut::new()).await? {
            Some(b) if !b.is_empty() => {
                out.extend_from_slice(&b);
                // The client moves its offset by what was asked, not by what came back.
                seek(&mut f, offset + out.len() as u64)?;
            }
            _ => break,
        }
    }
    f.close().await?;
    Ok(out)
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
        // Pack subfolders are made on first use: 256 round trips would slow init on a far server.
        for ft in [
            FileType::Key,
            FileType::Index,
            FileType::Snapshot,
            FileType::Lock,
            FileType::Log,
            FileType::Pack,
        ] {
            self.mkdir_all(&self.dir(ft))?;
        }
        Ok(())
    }

    fn read(&self, ft: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
        let size = self.size(ft, name)?;
        if size > max {
            return Err(super::too_large(ft, name, size, max));
        }
        let p = self.path(ft, name)?;
        self.run("read", &p.clone(), |c| async move {
            // One request at a time waits a round trip per 256 KiB: a large object is read
            // as several spans at once over the same connection.
            let spans: Vec<_> = (0..size.div_ceil(READ_SPAN).max(1))
                .map(|i| {
                    let (c, p) = (c.clone(), p.clone());
                    let len = READ_SPAN.min(size - (i * READ_SPAN).min(size));
                    tokio::spawn(read_span(c, p, i * READ_SPAN, len))
                })
                .collect();
            let mut out = Vec::with_capacity(size as usize);
            for span in spans {
                out.extend_from_slice(&span.await??);
            }
            Ok(out)
        })
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
                f.set_permissions(Permissions::from(0o600)).await?;
                f.write_all(&data).await?;
                // Locks are advisory and expire: they skip the round trip of a sync.
                if ft != FileType::Lock && c.sftp.support_fsync() {
                    f.sync_all().await?;
                }
                f.close().await?;
                c.sftp.fs().rename(&tmp, &p).await
            })
        };
        let result = match upload() {
            // The pack's subfolder is made on its first use.
            Err(e) if e.kind() == ErrorKind::NotFound && ft == FileType::Pack => {
                self.mkdir_all(&dir)?;
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
                let data = self.dir(ft);
                let mut names = Vec::new();
                for (sub, is_dir) in self.list_dir(&data)? {
                    if is_dir {
                        names.extend(self.list_dir(&format!("{data}/{sub}"))?.into_iter().map(|(n, _)| n));
                    }
                }
                Ok(names)
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
        let mut out = Vec::new();
        for dir in super::object_dirs() {
            let full =
                if dir.is_empty() { self.loc.path.clone() } else { format!("{}/{dir}", self.loc.path) };
            for e in self.list_dir_entries(&full)? {
                let old = e.modified.and_then(|t| t.elapsed().ok()).is_some_and(|a| a >= age);
                if e.name.starts_with(TEMP_PREFIX) && !e.is_dir && old {
                    out.push(super::Leftover { path: super::in_dir(&dir, &e.name), size: e.size });
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
