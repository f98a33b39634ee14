//! Import from borg: each archive of a borg repository becomes a snapshot with the
//! archive's time, host, user and name, through the `borg` binary the user already has
//! (`borg info --json` for the archives, `borg export-tar` for each one's contents,
//! stored by `backup --stdin-tar`'s reader). Imported snapshots carry the label
//! `borg-archive=ID`, so a second import adds only archives it has not seen.
//!
//! What arrives is what `export-tar` writes: borg 1.4 and later write pax
//! (`--tar-format=PAX`: nanosecond times, xattrs); borg 1.2 writes GNU tar, which carries
//! times in whole seconds and no extended attributes.

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::Timespec;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use zeroize::Zeroizing;

/// The label that names the borg archive a snapshot was imported from.
pub const ARCHIVE_LABEL: &str = "borg-archive";

/// How to run borg on one repository.
pub struct Borg {
    pub program: PathBuf,
    pub repository: String,
    /// The repository's passphrase, given to borg through a pipe (BORG_PASSPHRASE_FD);
    /// without it borg asks or uses BORG_PASSPHRASE or BORG_PASSCOMMAND itself.
    pub passphrase: Option<Zeroizing<Vec<u8>>>,
}

/// A borg command, and the read end of the pipe that holds its passphrase: open, and
/// inherited by the program, until it has started.
pub struct BorgCommand {
    pub command: Command,
    pub passphrase_pipe: Option<OwnedFd>,
}

/// One archive, as `borg info --json` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    pub name: String,
    pub id: String,
    pub host: String,
    pub user: String,
    pub time: Timespec,
}

impl Borg {
    /// The passphrase goes through a pipe, not the environment: a child's environment
    /// stays readable in /proc for its whole life and passes to the programs it starts
    /// (ssh for a remote repository), and a copy in `Command` is never wiped. The
    /// environment names only the descriptor, and any passphrase the user's own
    /// environment holds for borg is taken out, as borg would prefer it.
    fn command(&self) -> Result<BorgCommand> {
        let mut command = Command::new(&self.program);
        let Some(p) = &self.passphrase else { return Ok(BorgCommand { command, passphrase_pipe: None }) };
        let pipe = passphrase_pipe(p)?;
        command
            .env_remove("BORG_PASSPHRASE")
            .env_remove("BORG_PASSCOMMAND")
            .env("BORG_PASSPHRASE_FD", pipe.as_raw_fd().to_string());
        Ok(BorgCommand { command, passphrase_pipe: Some(pipe) })
    }

    /// Every archive, oldest first.
    pub fn archives(&self) -> Result<Vec<Archive>> {
        let BorgCommand { mut command, passphrase_pipe } = self.command()?;
        let out = command
            .args(["info", "--json", "--glob-archives", "*"])
            .arg(&self.repository)
            .stdin(std::process::Stdio::null())
            .output()
            .ctx(|| format!("cannot run {}; install borg or give --borg PATH", self.program.display()))?;
        drop(passphrase_pipe);
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            return Err(Error::new(
                ErrorKind::CommandFailed,
                format!("borg cannot list the archives of {}: {why}", self.repository),
            ));
        }
        parse_archives(&out.stdout)
    }

    /// The command that writes an archive as a tar stream to its standard output.
    pub fn export_tar(&self, archive: &Archive) -> Result<BorgCommand> {
        // Asked first: the pipe made next is inherited by whatever program starts.
        let pax = self.writes_pax();
        let mut c = self.command()?;
        c.command.arg("export-tar");
        if pax {
            c.command.arg("--tar-format=PAX");
        }
        c.command.arg(format!("{}::{}", self.repository, archive.name)).arg("-");
        Ok(c)
    }

    /// Whether this borg writes pax tar streams (1.4 and later), which keep what GNU
    /// streams lose.
    fn writes_pax(&self) -> bool {
        Command::new(&self.program)
            .args(["export-tar", "--help"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--tar-format"))
    }
}

/// A pipe holding `passphrase`, its write end closed; the read end returned is a
/// duplicate without close-on-exec, so the next program started inherits it.
fn passphrase_pipe(passphrase: &[u8]) -> Result<OwnedFd> {
    // Written before any reader: what a pipe holds without one is at least a page.
    if passphrase.len() > 4096 {
        return Err(Error::invalid(
            "the borg passphrase is longer than 4,096 bytes; cairn passes no longer one",
        ));
    }
    let fail = |e: rustix::io::Errno| Error::io("cannot make a pipe for the borg passphrase", e.into());
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(fail)?;
    let mut left = passphrase;
    while !left.is_empty() {
        let n = rustix::io::write(&write, left).map_err(fail)?;
        left = &left[n..];
    }
    drop(write);
    rustix::io::dup(&read).map_err(fail)
}

/// Archives from `borg info --json` output, oldest first.
fn parse_archives(json: &[u8]) -> Result<Vec<Archive>> {
    let bad =
        |what: &str| Error::corrupt(format!("borg info --json gave an answer cairn cannot read: {what}"));
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
    let list = v["archives"].as_array().ok_or_else(|| bad("no archives list"))?;
    let mut out = Vec::new();
    for a in list {
        let text = |k: &str| {
            a[k].as_str().map(str::to_string).ok_or_else(|| bad(&format!("an archive without {k}")))
        };
        let start = text("start")?;
        out.push(Archive {
            name: text("name")?,
            id: text("id")?,
            host: text("hostname")?,
            user: text("username")?,
            time: local_time(&start).ok_or_else(|| bad(&format!("the time '{start}'")))?,
        });
    }
    out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// borg's times: local time without a zone ("2026-12-05T22:17:57.000000"), or with one.
fn local_time(s: &str) -> Option<Timespec> {
    let ts = match s.parse::<jiff::Timestamp>() {
        Ok(ts) => ts,
        Err(_) => {
            let dt: jiff::civil::DateTime = s.parse().ok()?;
            dt.to_zoned_datetime(jiff::tz::TimeZone::system()).ok()?.timestamp()
        }
    };
    Some(Timespec { secs: ts.as_second(), nanos: ts.subsec_nanosecond() as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_pipe_holds_it_and_is_inherited_and_a_long_one_is_refused() {
        let pipe = passphrase_pipe(b"pipe secret").unwrap();
        let flags = rustix::io::fcntl_getfd(&pipe).unwrap();
        assert!(!flags.contains(rustix::io::FdFlags::CLOEXEC), "a child would not inherit it");
        let mut held = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(pipe), &mut held).unwrap();
        assert_eq!(held, "pipe secret", "the write end is closed, so the read ends there");
        let err = passphrase_pipe(&[b'x'; 4097]).expect_err("a passphrase over 4,096 bytes");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(passphrase_pipe(&[b'x'; 4096]).is_ok());
    }

    #[test]
    fn archives_come_oldest_first_with_their_origin() {
        let json = br#"{"archives": [
            {"name": "b", "id": "22", "hostname": "gw2", "username": "root", "start": "2026-12-05T22:18:05.500000+00:00"},
            {"name": "a", "id": "11", "hostname": "gw1", "username": "axway", "start": "2026-12-05T22:17:57.000000+00:00"}
        ]}"#;
        let a = parse_archives(json).unwrap();
        assert_eq!(a.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((a[0].host.as_str(), a[0].user.as_str(), a[0].id.as_str()), ("gw1", "axway", "11"));
        assert_eq!(a[1].time.nanos, 500_000_000);
        assert!(parse_archives(b"{}").is_err());
        assert!(parse_archives(br#"{"archives": [{"name": "x"}]}"#).is_err());
        assert!(local_time("2026-12-05T22:17:57.000000").is_some());
    }
}
