//! Command-line interface: one file per command. Global options, the password source and
//! the mapping of errors to exit codes live here.

mod backup;
mod cat;
mod check;
mod completion;
mod config;
mod copy;
mod diff;
mod drill;
mod dump;
mod exit;
mod find;
mod forget;
mod format;
mod import;
mod import_restic;
mod init;
mod key;
mod log;
mod ls;
mod man;
mod mount;
mod object_lock;
mod progress;
mod prune;
mod repair;
mod restore;
mod rewrite;
mod run;
mod schedule;
mod select;
mod serve;
mod snapshots;
mod stats;
mod tag;
mod ui;
mod unlock;

use cairn::repo::keys::given_password;
use cairn::repo::read_lock::{ReadLock, ReadLockPolicy};
use cairn::repo::KeySource;
use cairn::{Error, Repository, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Deduplicating, compressed and encrypted backups",
    after_help = exit::HELP,
    after_long_help = exit::HELP
)]
pub struct Cli {
    /// Repository location: a local path, sftp:[USER@]HOST[:PORT]/PATH,
    /// s3:https://HOST[:PORT]/BUCKET[/PREFIX] or rest:https://HOST[:PORT]/REPO (cairn serve)
    #[arg(
        short = 'r',
        long = "repo",
        env = "CAIRN_REPOSITORY",
        global = true,
        help_heading = "Global options"
    )]
    repo: Option<String>,
    /// Read the password from this file (first line)
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, help_heading = "Global options")]
    password_file: Option<PathBuf>,
    /// Run this command (sh -c) and use the first line it prints as the password, e.g.
    /// "pass show cairn/gw"
    #[arg(
        long,
        env = "CAIRN_PASSWORD_COMMAND",
        global = true,
        help_heading = "Global options",
        conflicts_with = "password_file"
    )]
    password_command: Option<String>,
    /// The token of a served repository (rest:), from this file (first line); or set
    /// CAIRN_TOKEN
    #[arg(long, env = "CAIRN_TOKEN_FILE", global = true, help_heading = "Global options")]
    token_file: Option<PathBuf>,
    /// The credentials of an S3 repository (s3:), from this file (AWS_ACCESS_KEY_ID=...,
    /// AWS_SECRET_ACCESS_KEY=... lines, or an AWS credentials file) instead of the environment
    #[arg(long, env = "CAIRN_S3_CREDENTIALS_FILE", global = true, help_heading = "Global options")]
    s3_credentials_file: Option<PathBuf>,
    /// Use this key file, kept apart from the repository, instead of the repository's keys
    #[arg(long, env = "CAIRN_KEY_FILE", global = true, help_heading = "Global options")]
    key_file: Option<PathBuf>,
    /// Machine-readable JSON output
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// Print only errors
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
    /// Wait this long (e.g. 10m) for a lock another process holds, instead of failing
    /// at once with exit 11
    #[arg(long, env = "CAIRN_LOCK_WAIT", global = true, help_heading = "Global options", value_name = "DURATION", value_parser = cairn::units::parse_duration)]
    lock_wait: Option<u64>,
    /// Send at most this many KiB/s to the repository's store
    #[arg(
        long,
        env = "CAIRN_LIMIT_UPLOAD",
        global = true,
        help_heading = "Global options",
        value_name = "KIB_PER_S"
    )]
    limit_upload: Option<u64>,
    /// Read at most this many KiB/s from the repository's store
    #[arg(
        long,
        env = "CAIRN_LIMIT_DOWNLOAD",
        global = true,
        help_heading = "Global options",
        value_name = "KIB_PER_S"
    )]
    limit_download: Option<u64>,
    /// Keep at most this many requests to the store in flight at once (uploads, reads)
    #[arg(long, env = "CAIRN_CONNECTIONS", global = true, help_heading = "Global options", value_name = "N")]
    connections: Option<usize>,
    /// Use this many threads for chunking, compressing, sealing and reading (default: one a core)
    #[arg(long, env = "CAIRN_THREADS", global = true, help_heading = "Global options", value_name = "N")]
    threads: Option<usize>,
    /// Commands that only read (snapshots, log, ls, cat, find, diff, dump, restore, check,
    /// mount, stats, drill): take no lock (for read-only storage; see format-spec/locks.md)
    #[arg(long, global = true)]
    no_lock: bool,
    /// Read every snapshot and index file from the store, keep no copies of them in the
    /// cache folder, and load the index into memory instead of mapping its cache file
    /// (both are kept there and checked on each use)
    #[arg(long, env = "CAIRN_NO_CACHE", global = true, help_heading = "Global options")]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Init(init::Args),
    Backup(backup::Args),
    Snapshots(snapshots::Args),
    Ls(ls::Args),
    Cat(cat::Args),
    Diff(diff::Args),
    Find(find::Args),
    Stats(stats::Args),
    Tag(tag::Args),
    Rewrite(rewrite::Args),
    Mount(mount::Args),
    Dump(dump::Args),
    Restore(restore::Args),
    Check(check::Args),
    Copy(copy::Args),
    #[command(subcommand)]
    Import(import::Command),
    #[command(subcommand)]
    Key(key::Command),
    Log(log::Args),
    Unlock(unlock::Args),
    Forget(forget::Args),
    Prune(prune::Args),
    Drill(drill::Args),
    Run(run::Args),
    #[command(subcommand)]
    Config(config::Command),
    #[command(subcommand)]
    Schedule(schedule::Command),
    #[command(subcommand)]
    Repair(repair::Command),
    Serve(serve::Args),
    Ui(ui::Args),
    Completion(completion::Args),
    Man(man::Args),
}

impl Command {
    /// The commands a maintenance key runs: they need summaries, the index, locks and the
    /// log only (format-spec/maintenance-key.md).
    fn runs_with_a_maintenance_key(&self) -> bool {
        matches!(
            self,
            Command::Snapshots(_)
                | Command::Forget(_)
                | Command::Prune(_)
                | Command::Check(_)
                | Command::Log(_)
                | Command::Unlock(_)
        )
    }

    /// Whether the command only reads the repository (it may then run without a lock).
    fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Snapshots(_)
                | Command::Ls(_)
                | Command::Cat(_)
                | Command::Diff(_)
                | Command::Find(_)
                | Command::Stats(_)
                | Command::Mount(_)
                | Command::Dump(_)
                | Command::Restore(_)
                | Command::Check(_)
                | Command::Drill(_)
                | Command::Log(_)
        )
    }
}

/// What every command gets: global options and the interrupt flag.
pub struct Ctx {
    repo: Option<String>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    pub key_file: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    no_lock: bool,
    pub interrupt: Arc<AtomicBool>,
    /// How long to wait for a lock (--lock-wait), in seconds.
    lock_wait: Option<u64>,
    /// Whether the command runs with a maintenance key (it reads no content, name or
    /// metadata, so only commands that need none take one).
    maintenance_key_runs: bool,
}

impl Ctx {
    pub fn location(&self) -> Result<&str> {
        self.repo
            .as_deref()
            .ok_or_else(|| Error::invalid("no repository given: use --repo PATH or set CAIRN_REPOSITORY"))
    }

    /// The password from CAIRN_PASSWORD, the password file, or a prompt on the terminal.
    pub fn password(&self, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(f) = &self.password_file {
            warn_if_exposed(f, "password file");
        }
        given_password("CAIRN_PASSWORD", self.password_command.as_deref(), self.password_file.as_deref()).unwrap_or_else(|| {
            ask_password(
                "repository password: ",
                confirm,
                "no password given: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND, or run on a terminal",
            )
        })
    }

    /// A new password (for key add / passwd): CAIRN_NEW_PASSWORD, a file, or asked twice.
    pub fn new_password(&self, file: Option<&std::path::Path>) -> Result<Zeroizing<Vec<u8>>> {
        given_password("CAIRN_NEW_PASSWORD", None, file).unwrap_or_else(|| {
            ask_password(
                "new password: ",
                true,
                "no new password given: set CAIRN_NEW_PASSWORD or --new-password-file, or run on a terminal",
            )
        })
    }

    /// Lock `repo` for `operation`, waiting as --lock-wait says.
    pub fn lock<'r>(
        &self,
        repo: &'r Repository,
        exclusive: bool,
        operation: &str,
    ) -> Result<cairn::repo::lock::LockGuard<'r>> {
        let wait = std::time::Duration::from_secs(self.lock_wait.unwrap_or(0));
        repo.lock_waiting(exclusive, operation, wait, &self.interrupt)
    }

    pub fn read_lock_policy(&self) -> ReadLockPolicy {
        if self.no_lock {
            ReadLockPolicy::Skip
        } else {
            ReadLockPolicy::Try
        }
    }

    /// The lock of a command that only reads: shared where the user may write to the
    /// repository, none (with one warning) where not, none at all with `--no-lock`.
    pub fn read_lock<'r>(&self, repo: &'r Repository, operation: &str) -> Result<ReadLock<'r>> {
        // Readers choose snapshots and read what the index says where it is.
        repo.will_list(cairn::repo::SNAPSHOTS_AND_INDEX);
        let wait = std::time::Duration::from_secs(self.lock_wait.unwrap_or(0));
        let lock = repo.lock_for_reading(operation, self.read_lock_policy(), wait, &self.interrupt)?;
        if let Some(w) = lock.warning() {
            eprintln!("cairn: warning: {w}");
        }
        Ok(lock)
    }

    pub fn open(&self) -> Result<Repository> {
        self.open_keeping_password().map(|(repo, _)| repo)
    }

    /// [`Ctx::open`], and the password it opened with (a command asks for it once).
    pub fn open_keeping_password(&self) -> Result<(Repository, Zeroizing<Vec<u8>>)> {
        let pw = self.password(false)?;
        Ok((self.open_with(&pw)?, pw))
    }

    /// Open the repository with a password already given.
    pub fn open_with(&self, pw: &[u8]) -> Result<Repository> {
        let source = match &self.key_file {
            Some(f) => KeySource::File(f.clone()),
            None => KeySource::Stored,
        };
        let repo = Repository::open(self.location()?, pw, &source)?;
        if repo.key_kind() == cairn::crypto::keys::KeyKind::Maintenance && !self.maintenance_key_runs {
            return Err(Error::new(
                cairn::ErrorKind::PermissionDenied,
                "a maintenance key runs only `snapshots`, `forget`, `prune`, `check`, `log` and `unlock`; use a full key for this",
            ));
        }
        Ok(repo)
    }
}

/// Append to the repository's activity log; a failure is reported, not fatal (the
/// operation itself is done).
pub fn record(repo: &Repository, rec: cairn::repo::log::LogRecord) {
    if let Err(e) = repo.append_log(rec) {
        eprintln!("cairn: warning: could not append to the activity log: {e}");
    }
}

/// Record a read of stored data (restore, dump, cat, mount) in the activity log: who read
/// which snapshot and which paths, where a restore wrote, and how it ended. Passes the
/// read's result through. On a repository this user cannot write, `record` warns instead.
pub fn record_read(
    repo: &Repository,
    operation: &str,
    snapshot: cairn::id::SnapshotId,
    paths: &[String],
    target: Option<&std::path::Path>,
    result: Result<i32>,
) -> Result<i32> {
    let outcome = match &result {
        Ok(0) => "success".to_string(),
        Ok(exit::DAMAGED) => "damaged".to_string(),
        Ok(code) => format!("exit {code}"),
        Err(e) if e.kind() == cairn::ErrorKind::Interrupted => "interrupted".to_string(),
        Err(_) => "failed".to_string(),
    };
    let mut rec = cairn::repo::log::LogRecord::new(operation, &outcome);
    rec.snapshot = Some(snapshot);
    rec = rec.figure("paths", if paths.is_empty() { "/".to_string() } else { paths.join(" ") });
    if let Some(t) = target {
        rec = rec.figure("target", t.display());
    }
    record(repo, rec);
    result
}

/// The command line: the derived definition, with each command's exit codes added
/// below its own help text.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn add_codes(mut cmd: clap::Command, path: &str) -> clap::Command {
        if cmd.has_subcommands() {
            // A command that also runs on its own (serve) lists its codes too.
            let runs_alone = cmd.is_args_conflicts_with_subcommands_set();
            let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
            cmd = names.into_iter().fold(cmd, |cmd, name| {
                let path = format!("{path} {name}").trim().to_string();
                cmd.mut_subcommand(name, |sub| add_codes(sub, &path))
            });
            if !runs_alone {
                return cmd;
            }
        }
        let before = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        let text = match before.is_empty() {
            true => exit::codes_help(path),
            false => format!("{}\n\n{before}", exit::codes_help(path)),
        };
        cmd.after_help(text.clone()).after_long_help(text)
    }
    let cli = Cli::command();
    let names: Vec<String> = cli.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(cli, |cli, name| cli.mut_subcommand(name.clone(), |sub| add_codes(sub, &name)))
}

pub fn main() -> i32 {
    use clap::FromArgMatches;
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::SUCCESS };
            let _ = e.print();
            return code;
        }
    };
    // Test builds only: a failpoint name with a typo must not let a test pass unkilled.
    if let Err(e) = cairn::failpoint::check_env() {
        eprintln!("cairn: {e}");
        return exit::USAGE;
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while we wind down ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED, interrupt.clone());
        let _ = signal_hook::flag::register(sig, interrupt.clone());
    }
    if cli.no_lock && !cli.command.only_reads() {
        eprintln!(
            "cairn: --no-lock is for commands that only read (snapshots, log, ls, cat, find, diff, \
             dump, restore, check, mount, stats, drill); this one changes the repository and must lock it"
        );
        return exit::USAGE;
    }
    cairn::backend::limit::set(cairn::backend::limit::Limits {
        upload_kib: cli.limit_upload.filter(|&k| k > 0),
        download_kib: cli.limit_download.filter(|&k| k > 0),
        connections: cli.connections.filter(|&c| c > 0),
        interrupt: Some(interrupt.clone()),
    });
    if cli.no_cache {
        cairn::repo::object_cache::disable();
    }
    if let Some(n) = cli.threads.filter(|&n| n > 0) {
        // Every pool cairn sizes follows the global one (ops/read_pool.rs, pack/writer.rs).
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    if let (Some(f), Some(repo)) = (&cli.s3_credentials_file, &cli.repo) {
        warn_if_exposed(f, "S3 credentials file");
        cairn::backend::s3::register_credentials_file(repo, f);
    }
    if let (Some(f), Some(repo)) = (&cli.token_file, &cli.repo) {
        warn_if_exposed(f, "token file");
        match cairn::backend::rest::read_token_file(f) {
            Ok(t) => cairn::backend::rest::register_token(repo, t),
            Err(e) => {
                eprintln!("cairn: {e}");
                return exit::for_error(e.kind());
            }
        }
    }
    let ctx = Ctx {
        repo: cli.repo,
        password_file: cli.password_file,
        password_command: cli.password_command,
        key_file: cli.key_file,
        json: cli.json,
        quiet: cli.quiet,
        no_lock: cli.no_lock,
        interrupt,
        lock_wait: cli.lock_wait,
        maintenance_key_runs: cli.command.runs_with_a_maintenance_key(),
    };
    let result = match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Backup(a) => backup::run(&ctx, a),
        Command::Snapshots(a) => snapshots::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Check(a) => check::run(&ctx, a),
        Command::Copy(a) => copy::run(&ctx, a),
        Command::Import(c) => import::run(&ctx, c),
        Command::Key(c) => key::run(&ctx, c),
        Command::Log(a) => log::run(&ctx, a),
        Command::Ls(a) => ls::run(&ctx, a),
        Command::Cat(a) => cat::run(&ctx, a),
        Command::Diff(a) => diff::run(&ctx, a),
        Command::Find(a) => find::run(&ctx, a),
        Command::Stats(a) => stats::run(&ctx, a),
        Command::Tag(a) => tag::run(&ctx, a),
        Command::Rewrite(a) => rewrite::run(&ctx, a),
        Command::Mount(a) => mount::run(&ctx, a),
        Command::Dump(a) => dump::run(&ctx, a),
        Command::Unlock(a) => unlock::run(&ctx, a),
        Command::Forget(a) => forget::run(&ctx, a),
        Command::Prune(a) => prune::run(&ctx, a),
        Command::Drill(a) => drill::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Config(c) => config::run(&ctx, c),
        Command::Schedule(c) => schedule::run(&ctx, c),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Ui(a) => ui::run(&ctx, a),
        Command::Completion(a) => completion::run(a),
        Command::Man(a) => man::run(&ctx, a),
        Command::Repair(c) => repair::run(&ctx, c),
    };
    match result {
        Ok(code) => code,
        // `cairn ls | head`: the reader has what it wanted.
        Err(e) if closed_pipe(&e) => exit::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e}");
            exit::for_error(e.kind())
        }
    }
}

/// The snapshots a command that changes snapshots names: the given ones (each once, in
/// order), or all with `--all`; neither is an error so that nothing is edited by accident.
pub fn select_snapshots(
    repo: &Repository,
    specs: &[String],
    all: bool,
) -> Result<Vec<(cairn::id::SnapshotId, cairn::format::snapshot::Snapshot)>> {
    if all {
        return repo.snapshots();
    }
    if specs.is_empty() {
        return Err(Error::invalid(
            "no snapshot given: name snapshots (id prefixes or 'latest') or use --all",
        ));
    }
    let mut out: Vec<(cairn::id::SnapshotId, cairn::format::snapshot::Snapshot)> = Vec::new();
    for spec in specs {
        let found = repo.find_snapshot(spec)?;
        if !out.iter().any(|(id, _)| *id == found.0) {
            out.push(found);
        }
    }
    Ok(out)
}

/// Warn when a password file is readable by every user: it is still used (a backup that
/// stops over it would protect nothing), but whoever reads it can read every backup.
pub fn warn_if_exposed(path: &std::path::Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path).is_ok_and(|md| md.permissions().mode() & 0o004 != 0) {
        eprintln!(
            "cairn: warning: {what} {} is readable by every user; run `chmod o-rwx {}`",
            path.display(),
            path.display()
        );
    }
}

/// Ask for a password on the terminal (twice with `confirm`); `missing` is the error when
/// there is no terminal to ask on.
pub fn ask_password(prompt: &str, confirm: bool, missing: &str) -> Result<Zeroizing<Vec<u8>>> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .map_err(|_| Error::invalid(missing))
    };
    let first = ask(prompt)?;
    if confirm && *ask(&format!("repeat {prompt}"))? != *first {
        return Err(Error::invalid("the passwords differ"));
    }
    Ok(first)
}

/// Writing to standard output failed.
pub fn stdout_error(e: std::io::Error) -> Error {
    Error::io("cannot write to standard output", e)
}

fn closed_pipe(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// Every command, subcommands included, with its path ("key add").
    fn every_command() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{prefix}{}", sub.get_name()).trim().to_string();
                if sub.has_subcommands() {
                    walk(&format!("{name} "), sub, out);
                } else {
                    out.push((name, sub.clone()));
                }
            }
        }
        let mut cli = super::command();
        cli.build();
        let mut out = Vec::new();
        walk("", &cli, &mut out);
        out
    }

    #[test]
    fn every_help_names_its_exit_codes_and_shows_its_own_options_first() {
        let commands = every_command();
        assert!(commands.len() > 30, "{}", commands.len());
        let mut long = Vec::new();
        for (name, mut cmd) in commands {
            let help = cmd.render_long_help().to_string();
            assert!(help.contains("Exit codes:"), "`cairn {name} --help` names no exit codes:\n{help}");
            let own = help.find("Options:").unwrap_or_else(|| panic!("{name}: no options heading\n{help}"));
            let global =
                help.find("Global options:").unwrap_or_else(|| panic!("{name}: no global heading\n{help}"));
            assert!(own < global, "`cairn {name} --help` shows global options first:\n{help}");
            let after =
                cmd.get_after_long_help().or(cmd.get_after_help()).map(|h| h.to_string()).unwrap_or_default();
            // clap would wrap a longer line where it likes: a long example is split with \ instead.
            long.extend(after.lines().filter(|l| l.chars().count() > 90).map(|l| format!("{name}: {l}")));
        }
        assert!(long.is_empty(), "lines clap would wrap:\n{}", long.join("\n"));
    }
}
