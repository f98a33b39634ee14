//! `cairn key`: manage the keys that open a repository.

use super::{exit, format, Ctx};
use cairn::crypto::keys::{KdfParams, KeyKind};
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(about = "Manage keys: list, add, remove, change password, export for paper backup")]
pub enum Command {
    /// List the repository's keys
    #[command(after_help = "Example:\n  cairn key list")]
    List,
    /// Add a key with a new password (CAIRN_NEW_PASSWORD, --new-password-file, or prompt)
    #[command(
        after_help = "Examples:\n  cairn key add\n  cairn key add --backup-only --key-file /etc/cairn/backup.key\n  cairn key add --maintenance --to-file /etc/cairn/retention.key"
    )]
    Add(AddArgs),
    /// Remove a key (not the one in use)
    #[command(after_help = "Example:\n  cairn key remove 3f9a1c")]
    Remove { id: String },
    /// Change the password of the key in use
    #[command(after_help = "Example:\n  cairn key passwd")]
    Passwd(PasswdArgs),
    /// New key secrets: seal everything anew and give them to every key file
    #[command(
        long_about = "New key secrets: every pack, snapshot, index file and log entry is sealed anew under \
                      them and every key file in the repository is given them, so a key removed before, or a \
                      copy of a key file from before its password changed, opens nothing afterwards. Blob ids \
                      and chunk boundaries stay, so dedup and copies made with --copy-chunker-params-from keep \
                      working; --content-keys renews them too (every snapshot read back and stored anew; backups \
                      go on meanwhile). Holds the exclusive lock; stopped anywhere, every key still opens the \
                      repository and the next run finishes. Snapshot ids change. Key files kept apart \
                      (--key-file) other than the one in use, and paper copies (key export), no longer open \
                      the repository: it names each one made since the last rotation; make them again.",
        after_help = "Examples:\n  cairn key rotate\n  cairn key rotate --content-keys\n  cairn key rotate --content-keys --content-from /srv/backup/main"
    )]
    Rotate(RotateArgs),
    /// Print the key in use in a form to print on paper (still protected by its password)
    #[command(
        after_help = "Example:\n  cairn key export > key-paper.txt\nRecover with: cairn key from-paper key-paper.txt --output key.cairn"
    )]
    Export,
    /// Turn a paper backup back into a key file (then use it with --key-file)
    #[command(
        name = "from-paper",
        after_help = "Example:\n  cairn key from-paper key-paper.txt --output key.cairn"
    )]
    FromPaper {
        /// The typed-in or scanned text of `key export`
        input: PathBuf,
        /// Where to write the key file (must not exist)
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct RotateArgs {
    /// Renew the content keys too (chunk boundaries, chunk and tree ids): every snapshot is
    /// read back, cut and stored anew, so that an old key can no longer tell whether a
    /// plaintext it guesses is stored; the repository grows by its size until the end
    #[arg(long)]
    content_keys: bool,
    /// Take the content keys of this repository (a copy's source, after it renewed its
    /// own) instead of fresh ones, so the two dedup with each other again; needs its password
    #[arg(long, value_name = "SRC", requires = "content_keys")]
    content_from: Option<String>,
    /// With --content-keys: print what it would read and store, and the room it needs,
    /// changing nothing
    #[arg(long, requires = "content_keys")]
    dry_run: bool,
    #[command(flatten)]
    source_key: super::copy::SourceKey,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// A key for a backup host: can add snapshots and dedup, cannot read or delete anything
    #[arg(long, conflicts_with = "maintenance")]
    backup_only: bool,
    /// A key for a retention host: lists and forgets snapshots from their summaries, reads no
    /// file content, name or metadata, writes no data (the first one enables summaries)
    #[arg(long)]
    maintenance: bool,
    /// Write the new key to this file instead of the repository
    #[arg(long = "to-file")]
    to_file: Option<PathBuf>,
    /// Read the new password from this file
    #[arg(long)]
    new_password_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(clap::Args)]
pub struct PasswdArgs {
    /// Read the new password from this file
    #[arg(long)]
    new_password_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(clap::Args)]
pub struct KdfArgs {
    /// Argon2id memory for the new key (e.g. 64M, 1G); at least 64M
    #[arg(long, default_value = "64M", value_parser = format::parse_size)]
    kdf_memory: u64,
    /// Argon2id passes for the new key; at least 3
    #[arg(long, default_value_t = 3)]
    kdf_iterations: u32,
}

impl KdfArgs {
    fn params(&self) -> Result<KdfParams> {
        let memory_kib =
            u32::try_from(self.kdf_memory / 1024).map_err(|_| Error::invalid("--kdf-memory is too large"))?;
        let p = KdfParams {
            memory_kib,
            iterations: self.kdf_iterations,
            parallelism: KdfParams::DEFAULT.parallelism,
        };
        p.check_new()?;
        Ok(p)
    }
}

/// `key add --maintenance`: under the exclusive lock, enable summaries (the first time,
/// or finish what a killed run left), then write the maintenance key.
fn add_maintenance_key(
    ctx: &Ctx,
    repo: &cairn::Repository,
    pw: &[u8],
    kdf: KdfParams,
    to_file: Option<&std::path::Path>,
) -> Result<i32> {
    let _lock = ctx.lock(repo, true, "key add")?;
    let (enabled, done) = cairn::ops::maintenance::enable(repo)?;
    for p in &done.passed_over {
        eprintln!("cairn: warning: key file {p}: given nothing (no full key of this repository granted it)");
    }
    for w in &done.warnings {
        eprintln!("cairn: warning: {w}");
    }
    let id = enabled.add_key(pw, KeyKind::Maintenance, kdf, to_file)?;
    super::record(
        &enabled,
        LogRecord::new("key add", "success")
            .figure("key", id.short())
            .figure("kind", KeyKind::Maintenance.name())
            .figure("summaries_written", done.summaries_written)
            .figure("key_files_written", done.key_files_written),
    );
    say(
        ctx,
        serde_json::json!({
            "added": id.to_hex(),
            "kind": KeyKind::Maintenance.name(),
            "enabled_now": done.config_written,
            "key_files_written": done.key_files_written,
            "passed_over": done.passed_over,
            "summaries_written": done.summaries_written,
        }),
        &format!(
            "added maintenance key {}{}; {} snapshots given a summary, {} other key files given the maintenance public key",
            id.short(),
            if done.config_written { " (summaries enabled)" } else { "" },
            done.summaries_written,
            done.key_files_written
        ),
    );
    Ok(super::exit::SUCCESS)
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    match cmd {
        Command::FromPaper { input, output } => return from_paper(&input, &output),
        Command::List => list(ctx)?,
        Command::Add(a) => {
            let kdf = a.kdf.params()?;
            let repo = ctx.open()?;
            repo.require_full_key("manage keys")?;
            let pw = ctx.new_password(a.new_password_file.as_deref())?;
            if a.maintenance {
                return add_maintenance_key(ctx, &repo, &pw, kdf, a.to_file.as_deref());
            }
            let kind = if a.backup_only { KeyKind::BackupOnly } else { KeyKind::Full };
            let id = repo.add_key(&pw, kind, kdf, a.to_file.as_deref())?;
            super::record(
                &repo,
                LogRecord::new("key add", "success").figure("key", id.short()).figure("kind", kind.name()),
            );
            say(
                ctx,
                serde_json::json!({"added": id.to_hex(), "kind": kind.name()}),
                &format!("added {} key {}", kind.name(), id.short()),
            );
        }
        Command::Remove { id } => {
            let repo = ctx.open()?;
            repo.require_full_key("manage keys")?;
            let id = repo.find_key_id(&id)?;
            repo.remove_key(&id)?;
            super::record(&repo, LogRecord::new("key remove", "success").figure("key", id.short()));
            say(ctx, serde_json::json!({"removed": id.to_hex()}), &format!("removed key {}", id.short()));
        }
        Command::Passwd(a) => {
            let kdf = a.kdf.params()?;
            let mut repo = ctx.open()?;
            repo.require_full_key("manage keys")?;
            let pw = ctx.new_password(a.new_password_file.as_deref())?;
            let id = repo.change_password(&pw, kdf)?;
            super::record(&repo, LogRecord::new("key passwd", "success").figure("key", id.short()));
            say(
                ctx,
                serde_json::json!({"key": id.to_hex()}),
                &format!("password changed; the key is now {}", id.short()),
            );
        }
        Command::Rotate(a) => rotate(ctx, &a)?,
        Command::Export => {
            let repo = ctx.open()?;
            print!("{}", paper::encode(&repo.key_file_bytes()?, &repo.key_id().to_hex()));
            // A rotation cannot reach a paper copy: it warns of the ones the log names.
            super::record(
                &repo,
                LogRecord::new("key export", "success").figure("key", repo.key_id().short()),
            );
        }
    }
    Ok(exit::SUCCESS)
}

fn rotate(ctx: &Ctx, a: &RotateArgs) -> Result<()> {
    if a.dry_run {
        return plan_content_rotation(ctx);
    }
    let (repo, pw) = ctx.open_keeping_password()?;
    repo.require_full_key("rotate the keys")?;
    let from = a.content_from.as_deref().map(|src| a.source_key.open(src)).transpose()?;
    let content = if a.content_keys {
        cairn::ops::rotate::ContentKeys::Renewed { from: from.as_ref() }
    } else {
        cairn::ops::rotate::ContentKeys::Kept
    };
    let started = std::time::Instant::now();
    let report = {
        let lock = ctx.lock(&repo, true, "key rotate")?;
        let say = |step: &str| {
            if !ctx.quiet && !ctx.json {
                eprintln!("cairn: key rotate: {step}");
            }
        };
        cairn::ops::rotate::rotate(&repo, &lock, &pw, content, &say, &ctx.interrupt)
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            // The log is sealed under whichever epoch the config now names: open anew.
            if let Ok(now) = ctx.open_with(&pw) {
                super::record(&now, LogRecord::new("key rotate", "failed").figure("error", e.to_string()));
            }
            return Err(e);
        }
    };
    for p in &report.passed_over {
        eprintln!("cairn: warning: key rotate gave key file {p} nothing; it no longer opens the repository");
    }
    for k in &report.left_behind {
        eprintln!(
            "cairn: warning: {k}: made before this rotation, it no longer opens the repository; make it again (`cairn key add --to-file`, `cairn key export`)"
        );
    }
    for w in &report.warnings {
        eprintln!("cairn: warning: {w}");
    }
    let now = ctx.open_with(&pw)?;
    super::record(
        &now,
        LogRecord::new("key rotate", "success")
            .figure("epoch", report.epoch)
            .figure("resumed", report.resumed)
            .figure("snapshots", report.snapshots)
            .figure("log_entries", report.log_entries)
            .figure("packs", report.packs)
            .figure("key_files_written", report.key_files_written)
            .figure("content_keys_renewed", report.content_renewed)
            .figure("stored_anew", report.stored_anew.snapshots)
            .figure("bytes_read_anew", report.stored_anew.bytes_read)
            .figure("keys_left_behind", report.left_behind.len())
            .figure("duration_s", format!("{:.1}", started.elapsed().as_secs_f64())),
    );
    say(
        ctx,
        serde_json::json!({"epoch": report.epoch, "resumed": report.resumed, "snapshots": report.snapshots,
                           "log_entries": report.log_entries, "packs": report.packs,
                           "key_files_written": report.key_files_written, "keys_left_behind": report.left_behind,
                           "content_keys_renewed": report.content_renewed,
                           "stored_anew": report.stored_anew.snapshots,
                           "bytes_read_anew": report.stored_anew.bytes_read,
                           "bytes_stored_anew": report.stored_anew.bytes_stored,
                           "key": now.key_id().to_hex()}),
        &format!(
            "keys rotated{}: everything is sealed under key epoch {} ({} snapshots, {} log entries, {} packs sealed anew; snapshot ids changed); the key in use is now {}",
            if report.content_renewed {
                format!(
                    ", content keys too ({} snapshots stored anew, {} MB read)",
                    report.stored_anew.snapshots,
                    report.stored_anew.bytes_read >> 20
                )
            } else {
                String::new()
            },
            report.epoch,
            report.snapshots,
            report.log_entries,
            report.packs,
            now.key_id().short()
        ),
    );
    Ok(())
}

/// `key rotate --content-keys --dry-run`: what the rotation would read and store.
fn plan_content_rotation(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open()?;
    let _lock = ctx.read_lock(&repo, "key rotate --dry-run")?;
    let plan = cairn::ops::rotate::plan_content_rotation(&repo)?;
    let mb = |b: u64| b.div_ceil(1 << 20);
    let room = match plan.free_bytes {
        Some(free) if free < plan.pack_bytes => {
            format!("; the disk has {} MB free: too little, the rotation would refuse to start", mb(free))
        }
        Some(free) => format!("; the disk has {} MB free", mb(free)),
        None => String::new(),
    };
    say(
        ctx,
        serde_json::json!({"dry_run": true, "snapshots": plan.snapshots, "file_bytes": plan.file_bytes,
                           "pack_bytes": plan.pack_bytes, "free_bytes": plan.free_bytes}),
        &format!(
            "would store {} snapshots anew: read back, cut and store {} MB of file content; the repository grows by about its packs' size ({} MB) until the old data goes{room}",
            plan.snapshots,
            mb(plan.file_bytes),
            mb(plan.pack_bytes)
        ),
    );
    Ok(())
}

fn say(ctx: &Ctx, json: serde_json::Value, human: &str) {
    if ctx.json {
        println!("{json}");
    } else if !ctx.quiet {
        println!("{human}");
    }
}

fn list(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open()?;
    let keys = repo.list_keys()?;
    if ctx.json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id.to_hex(), "kind": k.kind.name(), "in_use": k.in_use, "version": k.version,
                    "host": k.header.host, "user": k.header.user, "created": format::rfc3339(k.header.created),
                    "kdf": {"memory_kib": k.header.kdf.memory_kib, "iterations": k.header.kdf.iterations,
                            "parallelism": k.header.kdf.parallelism},
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                format!("{}{}", if k.in_use { "*" } else { " " }, k.id.short()),
                k.kind.name().to_string(),
                k.header.user.clone(),
                k.header.host.clone(),
                format::local_time(k.header.created),
                format!("{} MiB, {} passes", k.header.kdf.memory_kib / 1024, k.header.kdf.iterations),
                // Version 1 files cannot be given new keys by a rotation (key rotate says why).
                if k.version == 1 { "1 (old)".into() } else { k.version.to_string() },
            ]
        })
        .collect();
    format::table(&[" ID", "Kind", "User", "Host", "Created", "Argon2id", "Format"], &rows);
    Ok(())
}

fn from_paper(input: &std::path::Path, output: &std::path::Path) -> Result<i32> {
    let text = std::fs::read_to_string(input).map_err(|e| {
        Error::with_source(cairn::ErrorKind::InvalidInput, format!("cannot read {}", input.display()), e)
    })?;
    let bytes = paper::decode(&text).map_err(Error::invalid)?;
    cairn::format::keyfile::KeyFile::decode(&bytes)?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(output).map_err(|e| {
            Error::with_source(
                cairn::ErrorKind::InvalidInput,
                format!("cannot create {}", output.display()),
                e,
            )
        })?;
    f.write_all(&bytes).map_err(|e| Error::io(format!("cannot write {}", output.display()), e))?;
    println!("wrote key file {}; use it with --key-file", output.display());
    Ok(exit::SUCCESS)
}

/// The paper form: the key file in lowercase hex, 32 bytes a line, each line numbered and
/// followed by a 4-digit check code, so a typo is found on its line.
mod paper {
    pub fn encode(bytes: &[u8], id: &str) -> String {
        let mut out = format!(
            "cairn key {id}\n\
             Protected by its password; keep this page apart from the repository.\n\
             Recover: type the lines below into a file, then run\n  \
             cairn key from-paper FILE --output key.cairn\n\n"
        );
        for (n, line) in bytes.chunks(32).enumerate() {
            let hex = cairn::id::hex_encode(line);
            out += &format!("{:03} {} {}\n", n + 1, group(&hex), check(n, &hex));
        }
        out
    }

    fn group(hex: &str) -> String {
        hex.as_bytes().chunks(8).map(|c| std::str::from_utf8(c).expect("hex")).collect::<Vec<_>>().join(" ")
    }

    fn check(n: usize, hex: &str) -> String {
        let h = blake3::Hasher::new().update(&(n as u32).to_le_bytes()).update(hex.as_bytes()).finalize();
        cairn::id::hex_encode(&h.as_bytes()[..2])
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut expect = 1;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(num) = words.first().and_then(|w| w.parse::<usize>().ok()) else { continue };
            if words.len() < 3 || words[0].len() != 3 {
                continue;
            }
            if num != expect {
                return Err(format!("line {expect} is missing (found line {num})"));
            }
            let hex: String = words[1..words.len() - 1].concat().to_ascii_lowercase();
            if check(num - 1, &hex) != words[words.len() - 1].to_ascii_lowercase() {
                return Err(format!("line {num} has a typo (its check code does not match)"));
            }
            out.extend(cairn::id::hex_decode(&hex).map_err(|e| format!("line {num}: {e}"))?);
            expect += 1;
        }
        if out.is_empty() {
            return Err("no key lines found".into());
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trip_and_typos() {
            let bytes: Vec<u8> = (0..150u8).collect();
            let text = super::encode(&bytes, "abcd");
            assert_eq!(super::decode(&text).unwrap(), bytes);
            let typo = text.replacen("0001", "0011", 1);
            assert!(super::decode(&typo).unwrap_err().contains("line 1"));
            let missing: String =
                text.lines().filter(|l| !l.starts_with("002")).map(|l| format!("{l}\n")).collect();
            assert!(super::decode(&missing).unwrap_err().contains("line 2"));
        }
    }
}
