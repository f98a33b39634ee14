//! `cairn import restic`: a restic repository's snapshots, with their history, as
//! snapshots, read by cairn's own restic reader (`cairn::restic`).

use super::{exit, Ctx};
use cairn::id::SnapshotId;
use cairn::ops::backup::{backup, BackupOptions, ParentChoice, Source};
use cairn::ops::import_restic::{ResticSource, PARENT_LABEL, SNAPSHOT_LABEL};
use cairn::ops::progress::Progress;
use cairn::repo::log::LogRecord;
use cairn::restic::format::{id_hex, Snapshot};
use cairn::Result;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The restic repository: a folder, sftp:[user@]host[:port]/path or
    /// s3:http[s]://host[:port]/bucket[/prefix], as cairn's own repositories
    #[arg(long, value_name = "SRC")]
    from_repo: String,
    /// Its password, the first line of this file (else CAIRN_FROM_PASSWORD, else a prompt)
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Its password, the first line this command (sh -c) prints
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND", conflicts_with = "from_password_file")]
    from_password_command: Option<String>,
    /// The source's S3 credentials, if it is in a bucket (s3:), instead of the environment
    #[arg(long, env = "CAIRN_FROM_S3_CREDENTIALS_FILE")]
    from_s3_credentials_file: Option<PathBuf>,
    /// List what would be imported, import nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if let Some(f) = &a.from_password_file {
        super::warn_if_exposed(f, "password file");
    }
    if let Some(f) = &a.from_s3_credentials_file {
        super::warn_if_exposed(f, "S3 credentials file");
        cairn::backend::s3::register_credentials_file(&a.from_repo, f);
    }
    let password = cairn::repo::keys::given_password(
        "CAIRN_FROM_PASSWORD",
        a.from_password_command.as_deref(),
        a.from_password_file.as_deref(),
    )
    .unwrap_or_else(|| {
        super::ask_password(
            &format!("password of restic repository {}: ", a.from_repo),
            false,
            "no password for the restic repository: set CAIRN_FROM_PASSWORD or --from-password-file, \
             or run on a terminal",
        )
    })?;
    let started = std::time::Instant::now();
    let restic = cairn::restic::Repo::open(&a.from_repo, &password)?;
    drop(password);
    let (snapshots, unreadable) = restic.snapshots()?;
    let repo = ctx.open()?;
    let _lock = ctx.lock(&repo, false, "import restic")?;
    // restic snapshot id -> the cairn snapshot imported from it.
    let mut seen: HashMap<String, SnapshotId> = repo
        .snapshots()?
        .into_iter()
        .filter_map(|(id, s)| {
            s.labels.iter().find(|(k, _)| k == SNAPSHOT_LABEL).map(|(_, v)| (v.clone(), id))
        })
        .collect();
    let already = snapshots.iter().filter(|(id, _)| seen.contains_key(id)).count();
    let new: Vec<_> = snapshots.iter().filter(|(id, _)| !seen.contains_key(id)).cloned().collect();
    let source = Arc::new(ResticSource::new(restic));
    let mut imported = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for bad in &unreadable {
        eprintln!("cairn: restic snapshot {}: {}", short(&bad.id), bad.error);
        failed.push(short(&bad.id).to_string());
    }
    for (id, snap) in new {
        super::import::stop_if_interrupted(ctx)?;
        if a.dry_run {
            if !ctx.json && !ctx.quiet {
                println!(
                    "would import {} ({}, {}, {})",
                    short(&id),
                    snap.hostname,
                    super::format::rfc3339(snap.time),
                    snap.paths.join(" ")
                );
            }
            continue;
        }
        let opts = options(&id, &snap, &seen);
        // The parent restic recorded, if an earlier run imported it: its unchanged files are
        // not read again (what this run imported, it remembers anyway).
        let imported_parent = snap
            .parent
            .filter(|p| !imported.iter().any(|(r, _)| *r == id_hex(p)))
            .and_then(|p| Some((restic_tree(&snapshots, &p)?, seen.get(&id_hex(&p))?)))
            .and_then(|(tree, cairn_id)| Some((tree, repo.load_snapshot(cairn_id).ok()?.tree)));
        let from = Source::Restic { source: source.clone(), snapshot: snap.clone(), parent: imported_parent };
        // A snapshot whose data is damaged does not stop the others.
        let out = match backup(&repo, from, &opts, &ctx.interrupt, &Progress::default()) {
            Ok(out) => out,
            Err(e) if e.kind() == cairn::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                eprintln!("cairn: restic snapshot {}: {e}; not imported", short(&id));
                failed.push(short(&id).to_string());
                continue;
            }
        };
        for e in &out.errors {
            eprintln!("cairn: warning: restic snapshot {}: {e}", short(&id));
        }
        if !ctx.json && !ctx.quiet {
            println!(
                "imported restic snapshot {} as {} ({} files, {} added)",
                short(&id),
                out.id.short(),
                out.snapshot.summary.files,
                super::format::size(out.snapshot.summary.bytes_added)
            );
        }
        seen.insert(id.clone(), out.id);
        imported.push((id, out.id.to_hex()));
    }
    if !a.dry_run {
        let rec = LogRecord::new("import restic", if failed.is_empty() { "success" } else { "partial" })
            .figure("source", &a.from_repo)
            .figure("snapshots_imported", imported.len())
            .figure("snapshots_already_there", already)
            .figure("snapshots_failed", failed.len())
            .figure("duration_ms", started.elapsed().as_millis());
        super::record(&repo, rec);
    }
    let to_import = snapshots.len() - already;
    if ctx.json {
        let list: Vec<_> =
            imported.iter().map(|(r, c)| serde_json::json!({"restic_snapshot": r, "snapshot": c})).collect();
        println!(
            "{}",
            serde_json::json!({"dry_run": a.dry_run, "imported": list, "already_there": already,
                               "to_import": to_import, "failed": failed})
        );
    } else if !ctx.quiet {
        println!("{} restic snapshots imported, {already} were already there", imported.len());
    }
    if !failed.is_empty() {
        eprintln!(
            "cairn: {} restic snapshots could not be imported ({}); the others were; run the import again once the source is repaired",
            failed.len(),
            failed.join(", ")
        );
        return Ok(exit::DAMAGED);
    }
    Ok(exit::SUCCESS)
}

/// How the restic snapshot `id` is stored: its time, host, user and tags, its origin in
/// labels, and as parent the snapshot its restic parent was imported as.
fn options(id: &str, snap: &Snapshot, seen: &HashMap<String, SnapshotId>) -> BackupOptions {
    let mut labels = vec![(SNAPSHOT_LABEL.to_string(), id.to_string()), ("type".into(), "files".into())];
    let parent = snap.parent.map(|p| id_hex(&p));
    if let Some(p) = &parent {
        labels.push((PARENT_LABEL.into(), p.clone()));
    }
    BackupOptions {
        parent: ParentChoice::None,
        host: Some(snap.hostname.clone()),
        user: Some(snap.username.clone()),
        time: Some(snap.time),
        tags: snap.tags.clone(),
        labels,
        recorded_parent: parent.and_then(|p| seen.get(&p).copied()),
        ..BackupOptions::default()
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The tree of the restic snapshot `id`, if it is among `snapshots`.
fn restic_tree(snapshots: &[(String, Snapshot)], id: &[u8; 32]) -> Option<[u8; 32]> {
    let hex = id_hex(id);
    snapshots.iter().find(|(name, _)| *name == hex).map(|(_, s)| s.tree)
}
