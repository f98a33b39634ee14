//! `cairn copy`: copy snapshots from another repository into this one.

use super::{exit, format, Ctx};
use cairn::ops::copy::{check_distinct, copy};
use cairn::repo::log::LogRecord;
use cairn::repo::KeySource;
use cairn::{Repository, Result};
use std::path::PathBuf;

/// Copy snapshots from another repository (re-encrypted under this one's keys)
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cairn -r s3:https://s3.example.net/offsite/gw copy --from-repo /backups/gw --tag prod\n  \
                  CAIRN_FROM_PASSWORD_FILE=/etc/cairn/pass \\\n      cairn -r sftp:vault/srv/gw copy --from-repo /backups/gw latest"
)]
pub struct Args {
    /// Snapshots to copy (ids, id prefixes or 'latest'); all by default
    ids: Vec<String>,
    /// The repository to copy from
    #[arg(long, env = "CAIRN_FROM_REPOSITORY", value_name = "SRC")]
    from_repo: String,
    #[command(flatten)]
    source_key: SourceKey,
    #[command(flatten)]
    filter: super::select::FilterArgs,
}

/// How to open the other repository of `copy` or `init --copy-chunker-params-from`.
#[derive(clap::Args)]
pub struct SourceKey {
    /// Read the source repository's password from this file (first line); or set
    /// CAIRN_FROM_PASSWORD
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Run this command (sh -c) for the source repository's password (its first line)
    #[arg(long, env = "CAIRN_FROM_PASSWORD_COMMAND", conflicts_with = "from_password_file")]
    from_password_command: Option<String>,
    /// Use this key file for the source repository instead of its stored keys
    #[arg(long, env = "CAIRN_FROM_KEY_FILE")]
    from_key_file: Option<PathBuf>,
    /// The source's token, if it is a served repository (rest:)
    #[arg(long, env = "CAIRN_FROM_TOKEN_FILE")]
    from_token_file: Option<PathBuf>,
    /// The source's S3 credentials, if it is in a bucket (s3:), instead of the environment
    #[arg(long, env = "CAIRN_FROM_S3_CREDENTIALS_FILE")]
    from_s3_credentials_file: Option<PathBuf>,
}

impl SourceKey {
    /// Open the source repository at `location`.
    pub fn open(&self, location: &str) -> Result<Repository> {
        if let Some(f) = &self.from_password_file {
            super::warn_if_exposed(f, "password file");
        }
        if let Some(f) = &self.from_s3_credentials_file {
            super::warn_if_exposed(f, "S3 credentials file");
            cairn::backend::s3::register_credentials_file(location, f);
        }
        if let Some(f) = &self.from_token_file {
            super::warn_if_exposed(f, "token file");
            cairn::backend::rest::register_token(location, cairn::backend::rest::read_token_file(f)?);
        }
        let pw = cairn::repo::keys::given_password(
            "CAIRN_FROM_PASSWORD",
            self.from_password_command.as_deref(),
            self.from_password_file.as_deref(),
        )
        .unwrap_or_else(|| {
            super::ask_password(
                &format!("password of {location}: "),
                false,
                "no password for the source repository: set CAIRN_FROM_PASSWORD or \
                     --from-password-file, or run on a terminal",
            )
        })?;
        let source = match &self.from_key_file {
            Some(f) => KeySource::File(f.clone()),
            None => KeySource::Stored,
        };
        Repository::open(location, &pw, &source).map_err(|e| e.wrap(format!("source repository {location}")))
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let src = a.source_key.open(&a.from_repo)?;
    let dst = ctx
        .open()
        .map_err(|e| e.wrap(format!("target repository {}", ctx.location().unwrap_or_default())))?;
    check_distinct(&src, &dst)?;
    src.will_list(cairn::repo::SNAPSHOTS_AND_INDEX);
    let _src_lock = src.lock(false, "copy (source)")?;
    dst.will_list(cairn::repo::SNAPSHOTS_AND_INDEX);
    let _dst_lock = ctx.lock(&dst, false, "copy")?;
    let filter = a.filter.filter();
    let mut selected = if a.ids.is_empty() {
        src.snapshots()?
    } else {
        let found = a.ids.iter().map(|spec| cairn::repo::select::find(&src, spec, &filter));
        found.collect::<Result<Vec<_>>>()?
    };
    selected.retain(|(_, s)| filter.matches(s));
    selected.sort_by(|x, y| x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0)));
    selected.dedup_by_key(|s| s.0);
    let started = std::time::Instant::now();
    let out = copy(&src, &dst, &selected, &ctx.interrupt)?;
    let new = out.snapshots.iter().filter(|s| !s.already_there).count();
    let rec = LogRecord::new("copy", "success")
        .figure("snapshots", new)
        .figure("blobs_new", out.blobs_new)
        .figure("bytes_added", out.bytes_stored)
        .figure("duration_ms", started.elapsed().as_millis());
    super::record(&dst, rec);
    super::object_lock::upkeep(ctx, &dst, None, false);
    if ctx.json {
        let snaps: Vec<_> = out
            .snapshots
            .iter()
            .map(|s| {
                serde_json::json!({"source": s.source.to_hex(), "copy": s.copy.to_hex(), "already_there": s.already_there})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "snapshots": snaps, "copied": new, "same_ids": out.same_ids, "trees_read": out.trees_read, "chunks_read": out.chunks_read,
                "blobs_new": out.blobs_new, "bytes_added": out.bytes_stored,
            })
        );
    } else if !ctx.quiet {
        for s in &out.snapshots {
            if s.already_there {
                println!("snapshot {} already copied as {}", s.source.short(), s.copy.short());
            } else {
                println!("snapshot {} copied as {}", s.source.short(), s.copy.short());
            }
        }
        println!(
            "{new} of {} snapshots copied: {} blobs new, {} added{}",
            out.snapshots.len(),
            out.blobs_new,
            format::size(out.bytes_stored),
            if out.same_ids || new == 0 {
                ""
            } else {
                " (the repositories' ids differ: every chunk was read to re-hash it)"
            }
        );
    }
    Ok(exit::SUCCESS)
}
