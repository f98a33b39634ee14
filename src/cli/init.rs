//! `cairn init`: create a repository.

use super::{exit, format, Ctx};
use cairn::chunker::ChunkerParams;
use cairn::crypto::keys::KdfParams;
use cairn::format::config::{LockMode, ObjectLockPolicy};
use cairn::{Error, InitOptions, Repository, Result};

/// Create a new repository
#[derive(clap::Args)]
#[command(after_help = "Example:\n  CAIRN_PASSWORD_FILE=/etc/cairn/pass cairn init -r /backups/gw")]
pub struct Args {
    /// zstd compression level for new data (0 = store raw)
    #[arg(long, default_value_t = 3)]
    compression: i32,
    /// Target pack file size
    #[arg(long, default_value = "8M", value_parser = format::parse_size)]
    pack_size: u64,
    /// Chunk sizes as MIN,AVG,MAX (e.g. 16K,64K,256K)
    #[arg(long, default_value = "16K,64K,256K")]
    chunk_sizes: String,
    /// Argon2id memory for the key (e.g. 64M, 1G); at least 64M
    #[arg(long, default_value = "64M", value_parser = format::parse_size)]
    kdf_memory: u64,
    /// Argon2id passes for the key; at least 3
    #[arg(long, default_value_t = 3)]
    kdf_iterations: u32,
    /// Chunk and name data exactly as this repository does (its chunk sizes and id keys),
    /// so copies from it and backups made here deduplicate; needs its password
    #[arg(long, value_name = "SRC", conflicts_with = "chunk_sizes")]
    copy_chunker_params_from: Option<String>,
    #[command(flatten)]
    source_key: super::copy::SourceKey,
    /// Lock every object against deletion and overwrite for this long (e.g. 30d), renewed
    /// while kept snapshots need it; an S3 bucket made with Object Lock enabled only
    #[arg(long, value_name = "DURATION", value_parser = cairn::units::parse_duration)]
    object_lock: Option<u64>,
    /// governance: a user with the bypass permission can still delete;
    /// compliance: nobody can, the account's root user included, until the lock ends
    #[arg(long, value_enum, default_value = "governance", requires = "object_lock")]
    object_lock_mode: LockModeArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LockModeArg {
    Governance,
    Compliance,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let sizes: Vec<u64> =
        a.chunk_sizes.split(',').map(format::parse_size).collect::<Result<_, _>>().map_err(Error::invalid)?;
    let [min, avg, max] = sizes[..] else {
        return Err(Error::invalid("--chunk-sizes needs three sizes: MIN,AVG,MAX"));
    };
    let u32_of =
        |v: u64, what: &str| u32::try_from(v).map_err(|_| Error::invalid(format!("{what} is too large")));
    let opts = InitOptions {
        chunker: ChunkerParams {
            min_size: u32_of(min, "MIN")?,
            avg_size: u32_of(avg, "AVG")?,
            max_size: u32_of(max, "MAX")?,
        },
        compression_level: a.compression,
        pack_size: u32_of(a.pack_size, "--pack-size")?,
        kdf: KdfParams {
            memory_kib: u32_of(a.kdf_memory / 1024, "--kdf-memory")?,
            iterations: a.kdf_iterations,
            parallelism: KdfParams::DEFAULT.parallelism,
        },
        object_lock: a.object_lock.map(|period_secs| ObjectLockPolicy {
            period_secs,
            mode: match a.object_lock_mode {
                LockModeArg::Governance => LockMode::Governance,
                LockModeArg::Compliance => LockMode::Compliance,
            },
        }),
    };
    opts.kdf.check_new()?;
    opts.chunker.check()?;
    let location = ctx.location()?;
    let pw = ctx.password(true)?;
    if pw.is_empty() {
        return Err(Error::invalid("the password is empty; choose a password"));
    }
    let repo = match &a.copy_chunker_params_from {
        Some(src) => {
            let src = a.source_key.open(src)?;
            Repository::init_sharing_ids(location, &pw, &opts, ctx.key_file.as_deref(), &src)?
        }
        None => Repository::init(location, &pw, &opts, ctx.key_file.as_deref())?,
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"repository": location, "id": cairn::id::hex_encode(&repo.config().repo_id), "key": repo.key_id().to_hex()})
        );
    } else if !ctx.quiet {
        println!("created repository {} at {location}", cairn::id::hex_encode(&repo.config().repo_id[..4]));
        println!("keep the password safe: without it the data cannot be read");
    }
    Ok(exit::SUCCESS)
}
