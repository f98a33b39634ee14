//! `cairn import borg` and `cairn import restic`: another tool's repository, with its
//! history, as snapshots.

use super::{exit, Ctx};
use cairn::ops::backup::{backup, BackupOptions, ParentChoice, Source};
use cairn::ops::import_borg::{Borg, ARCHIVE_LABEL};
use cairn::ops::progress::Progress;
use cairn::repo::log::LogRecord;
use cairn::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[command(about = "Import another tool's repository with its history")]
pub enum Command {
    /// Every archive of a borg repository becomes a snapshot with the archive's time, host,
    /// user and name, oldest first, through the borg binary; a second run imports only
    /// archives it has not imported yet
    #[command(
        after_help = "Example:\n  CAIRN_FROM_PASSWORD_FILE=/etc/borg.pass cairn import borg --from-repo /backups/borg-gw"
    )]
    Borg(BorgArgs),
    /// Every snapshot of a restic repository (format version 1 or 2, in a folder, over SFTP
    /// or in S3) becomes a snapshot with the same time, host, user, paths, tags, contents
    /// and metadata, oldest first; every blob is checked against its restic id. A second
    /// run imports only snapshots it has not imported yet
    #[command(
        after_help = "Examples:\n  CAIRN_FROM_PASSWORD_FILE=/etc/restic.pass \\\n      cairn import restic --from-repo /backups/restic-gw\n  \
                      cairn import restic --from-repo sftp:backup@vault/srv/restic \\\n      --from-password-file /etc/restic.pass"
    )]
    Restic(super::import_restic::Args),
}

#[derive(clap::Args)]
pub struct BorgArgs {
    /// The borg repository (a folder, or ssh://... as borg takes it)
    #[arg(long, value_name = "SRC")]
    from_repo: String,
    /// Its passphrase, the first line of this file (else CAIRN_FROM_PASSWORD, else borg's
    /// own BORG_PASSPHRASE, BORG_PASSCOMMAND or prompt)
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Its passphrase, the first line this command prints
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND")]
    from_password_command: Option<String>,
    /// The borg program
    #[arg(long, default_value = "borg")]
    borg: PathBuf,
    /// List what would be imported, import nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Borg(a) => run_borg(ctx, a),
        Command::Restic(a) => super::import_restic::run(ctx, a),
    }
}

fn run_borg(ctx: &Ctx, a: BorgArgs) -> Result<i32> {
    if let Some(f) = &a.from_password_file {
        super::warn_if_exposed(f, "password file");
    }
    let passphrase = cairn::repo::keys::given_password(
        "CAIRN_FROM_PASSWORD",
        a.from_password_command.as_deref(),
        a.from_password_file.as_deref(),
    )
    .transpose()?;
    let borg = Borg { program: a.borg, repository: a.from_repo, passphrase };
    let archives = borg.archives()?;
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, false, "import borg")?;
    let seen: std::collections::HashSet<String> = repo
        .snapshots()?
        .into_iter()
        .filter_map(|(_, s)| s.labels.iter().find(|(k, _)| k == ARCHIVE_LABEL).map(|(_, v)| v.clone()))
        .collect();
    let new: Vec<_> = archives.iter().filter(|a| !seen.contains(&a.id)).collect();
    let mut imported = Vec::new();
    let mut failed = Vec::new();
    for archive in &new {
        stop_if_interrupted(ctx)?;
        if a.dry_run {
            if !ctx.json && !ctx.quiet {
                println!(
                    "would import {} ({}, {})",
                    archive.name,
                    archive.host,
                    super::format::rfc3339(archive.time)
                );
            }
            continue;
        }
        let opts = BackupOptions {
            parent: ParentChoice::None,
            host: Some(archive.host.clone()),
            user: Some(archive.user.clone()),
            time: Some(archive.time),
            tags: vec!["borg-import".into()],
            labels: vec![
                (ARCHIVE_LABEL.into(), archive.id.clone()),
                ("name".into(), archive.name.clone()),
                ("type".into(), "files".into()),
            ],
            ..BackupOptions::default()
        };
        let export = borg.export_tar(archive)?;
        let source = Source::TarCommand {
            name: format!("borg:{}", archive.name),
            command: export.command,
            inherited: export.passphrase_pipe,
        };
        // One archive borg cannot export (a damaged segment) does not stop the others.
        let out = match backup(&repo, source, &opts, &ctx.interrupt, &Progress::default()) {
            Ok(out) => out,
            Err(e) if e.kind() == cairn::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                eprintln!("cairn: borg archive {}: {e}", archive.name);
                failed.push(archive.name.clone());
                continue;
            }
        };
        for e in &out.errors {
            eprintln!("cairn: warning: borg archive {}: {e}", archive.name);
        }
        if !ctx.json && !ctx.quiet {
            println!(
                "imported {} as snapshot {} ({} files, {} added)",
                archive.name,
                out.id.short(),
                out.snapshot.summary.files,
                super::format::size(out.snapshot.summary.bytes_added)
            );
        }
        imported.push((archive.name.clone(), out.id.to_hex()));
    }
    if !a.dry_run {
        let rec = LogRecord::new("import borg", "success")
            .figure("source", &borg.repository)
            .figure("archives_imported", imported.len())
            .figure("archives_already_there", archives.len() - new.len())
            .figure("archives_failed", failed.len());
        super::record(&repo, rec);
    }
    if ctx.json {
        let list: Vec<_> =
            imported.iter().map(|(name, id)| serde_json::json!({"archive": name, "snapshot": id})).collect();
        println!(
            "{}",
            serde_json::json!({"dry_run": a.dry_run, "imported": list, "already_there": archives.len() - new.len(),
                               "to_import": new.len(), "failed": failed})
        );
    } else if !ctx.quiet {
        println!("{} archives imported, {} were already there", imported.len(), archives.len() - new.len());
    }
    if !failed.is_empty() {
        return Err(Error::new(
            cairn::ErrorKind::CommandFailed,
            format!(
                "{} borg archives could not be imported ({}); the others were; run the import again once borg can read them",
                failed.len(),
                failed.join(", ")
            ),
        ));
    }
    Ok(exit::SUCCESS)
}

/// Between two imported snapshots: stop on Ctrl-C, keeping what was imported.
pub(super) fn stop_if_interrupted(ctx: &Ctx) -> Result<()> {
    if ctx.interrupt.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::new(cairn::ErrorKind::Interrupted, "import interrupted; what was imported stays"));
    }
    Ok(())
}
