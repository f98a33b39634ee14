//! `cairn dump`: files of a snapshot as a tar or zip archive, to standard output or a file.

use super::{exit, format, Ctx};
use cairn::browse::Browser;
use cairn::ops::dump::{dump, ArchiveFormat};
use cairn::{Error, ErrorKind, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Archive {
    /// POSIX pax tar: keeps modes (setuid/setgid/sticky too), owners (ids and names),
    /// mtimes to the nanosecond, symlinks, hard links, fifos, devices, xattrs and holes
    Tar,
    /// deflate, or stored where the data does not compress: keeps contents, rwx
    /// permission bits, mtimes and symlinks; no owners,
    /// xattrs, setuid/setgid/sticky bits, hard links (copies instead), fifos or devices
    Zip,
}

/// Write files of a snapshot as a tar or zip archive, every chunk verified
#[derive(clap::Args)]
#[command(after_help = "\
tar keeps everything `tar -xp` can give back: extract as root with
  tar -xpf gw.tar --xattrs --xattrs-include='*'    (--numeric-owner: ids, not names)
zip cannot hold owners, xattrs, setuid/setgid/sticky bits or hard links (a second link
becomes a copy); fifos and devices are left out, names that are not UTF-8 get U+FFFD, each
with a warning. Neither format holds sockets (left out with a warning).

Examples:
  cairn dump latest /opt/apigateway/conf /opt/apigateway/groups \\
      --archive tar --output gw.tar
  cairn dump 3f9a1c /opt/apigateway/conf/nodemanager.xml --archive zip > nodemanager.zip
  cairn dump latest --archive tar \\
      | ssh standby 'tar -xpf - -C / --xattrs --xattrs-include=\"*\"'")]
pub struct Args {
    /// Snapshot id prefix, name, or 'latest' (the newest one the filter passes)
    snapshot: String,
    /// Absolute paths in the snapshot: files or folders (default: the whole snapshot)
    #[arg(default_value = "/")]
    paths: Vec<String>,
    /// Archive format
    #[arg(long, value_enum)]
    archive: Archive,
    /// Write the archive to this file (mode 0600, complete or not at all) instead of
    /// standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if a.output.is_none() && rustix::termios::isatty(std::io::stdout()) {
        return Err(Error::invalid(
            "refusing to write an archive to a terminal: redirect standard output or use --output FILE",
        ));
    }
    if let Some(file) = a.output.as_ref().filter(|f| f.is_dir()) {
        return Err(Error::invalid(format!("--output {} is a folder: give a file name", file.display())));
    }
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "dump")?;
    let (id, snap) = cairn::repo::select::find(&repo, &a.snapshot, &a.filter.filter())?;
    let done = dump_and_report(ctx, &repo, &a, id, &snap);
    super::record_read(&repo, "dump", id, &a.paths, a.output.as_deref(), done)
}

/// Write the archive and print what went into it; the exit code.
fn dump_and_report(
    ctx: &Ctx,
    repo: &cairn::Repository,
    a: &Args,
    id: cairn::id::SnapshotId,
    snap: &cairn::format::snapshot::Snapshot,
) -> Result<i32> {
    let browser = Browser::open(repo)?;
    let paths: Vec<Vec<u8>> = a.paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    let archive = match a.archive {
        Archive::Tar => ArchiveFormat::Tar,
        Archive::Zip => ArchiveFormat::Zip,
    };
    let result = match &a.output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(256 << 10, stdout.lock());
            dump(&browser, snap, &paths, archive, &mut out, &ctx.interrupt)
        }
        Some(file) => to_file(file, |out| dump(&browser, snap, &paths, archive, out, &ctx.interrupt)),
    };
    let out = match result {
        Ok(out) => out,
        // Damaged data gets its own exit code, as in restore; nothing was written as complete.
        Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
            eprintln!("cairn: {e}; no complete archive was written");
            return Ok(exit::DAMAGED);
        }
        Err(e) => return Err(e),
    };
    for w in &out.warnings {
        eprintln!("cairn: warning: {w}");
    }
    if let Some(file) = a.output.as_ref().filter(|_| !ctx.quiet || ctx.json) {
        if ctx.json {
            println!(
                "{}",
                serde_json::json!({
                    "snapshot": id.to_hex(), "output": file.display().to_string(),
                    "files": out.files, "dirs": out.dirs, "others": out.others, "links": out.links,
                    "bytes": out.bytes, "sparse": out.sparse, "warnings": out.warnings,
                })
            );
        } else {
            println!(
                "dumped snapshot {} to {}: {} files ({}), {} folders, {} other entries, {} hard links",
                id.short(),
                file.display(),
                out.files,
                format::size(out.bytes),
                out.dirs,
                out.others,
                out.links
            );
        }
    }
    Ok(exit::SUCCESS)
}

/// Write through `write` to a temporary file beside `file`, created 0600, and rename it to
/// `file` once complete and on disk; on any error the temporary file is removed.
fn to_file<T>(file: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = file.file_name().ok_or_else(|| {
        Error::invalid(format!("--output {} is a folder: give a file name", file.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".cairn-dump-{}", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let written = (|| {
        let mut out = std::io::BufWriter::with_capacity(256 << 10, &f);
        let value = write(&mut out)?;
        out.flush().map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        drop(out);
        f.sync_all().map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, file)
            .map_err(|e| Error::io(format!("cannot rename into {}", file.display()), e))?;
        Ok(value)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
