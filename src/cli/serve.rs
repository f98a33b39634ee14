//! `cairn serve`: store repositories for other hosts over HTTP(S), with tokens that say
//! what each host may do; `serve token` manages them and `serve undelete` brings deleted
//! objects back from the quarantine.

use super::{exit, Ctx};
use cairn::serve::tokens::{Role, TokenFile};
use cairn::{Error, Result};
use std::path::PathBuf;

/// Serve repositories over HTTP(S); append tokens make backups that the backed-up host
/// cannot delete
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  cairn serve --root /srv/cairn --listen 0.0.0.0:8443 \\\n    --tls-cert /etc/cairn/cert.pem --tls-key /etc/cairn/key.pem --keep-deleted 14d\n  cairn serve token add gw1 --root /srv/cairn --repo gw --role append"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the repositories are, one folder each: a local folder, or a bucket
    /// (s3:https://HOST/BUCKET[/PREFIX], credentials as for an S3 repository)
    #[arg(long, required = true)]
    root: Option<String>,
    /// The server's own folder: tokens, arrivals, access log [default: ROOT/.cairn-serve;
    /// needed with a remote ROOT]
    #[arg(long)]
    state: Option<PathBuf>,
    /// Address to listen on; plain HTTP only on a loopback address
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The most one repository may hold (e.g. 500G); uploads beyond it get 507
    #[arg(long, value_parser = cairn::units::parse_size)]
    quota: Option<u64>,
    /// Keep deleted objects this long in the quarantine (serve undelete brings them back)
    #[arg(long, default_value = "14d", value_parser = cairn::units::parse_duration)]
    keep_deleted: u64,
    /// Report (status page, metrics) whether each repository's newest snapshot is younger
    #[arg(long, value_parser = cairn::units::parse_duration)]
    rpo: Option<u64>,
    /// Access log, one JSON line per request ("-": standard output) [default: STATE/access.log]
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// The largest pack accepted
    #[arg(long, default_value = "512M", value_parser = cairn::units::parse_size)]
    max_pack: u64,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(subcommand)]
    Token(TokenCommand),
    Undelete(UndeleteArgs),
}

/// Manage the tokens of a server root
#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Make a token (printed once; only its hash is kept). The repository is --repo's value
    #[command(
        after_help = "Roles:\n  read      list and read; its own locks\n  append    read, and create objects that do not exist yet\n  maintain  append, and delete (forget, prune); deletes go to the quarantine\n  admin     everything: create the repository, keys, config\n\nExample:\n  cairn serve token add gw1 --root /srv/cairn --repo gw --role append \\\n    > /etc/cairn/gw.token"
    )]
    Add {
        name: String,
        #[command(flatten)]
        at: ServerAt,
        /// read, append, maintain or admin
        #[arg(long)]
        role: String,
    },
    /// List tokens: name, repository, role, when made (never the tokens)
    #[command(after_help = "Example:\n  cairn serve token list --root /srv/cairn")]
    List {
        #[command(flatten)]
        at: ServerAt,
    },
    /// Remove a token; it stops working at once
    #[command(after_help = "Example:\n  cairn serve token remove gw1 --root /srv/cairn")]
    Remove {
        name: String,
        #[command(flatten)]
        at: ServerAt,
    },
}

/// Which server's tokens: its root, and its state folder where that is not inside the root.
#[derive(clap::Args)]
struct ServerAt {
    /// The server's --root
    #[arg(long)]
    root: String,
    /// The server's --state, if it was given one
    #[arg(long)]
    state: Option<PathBuf>,
}

impl ServerAt {
    fn tokens(&self) -> Result<TokenFile> {
        Ok(TokenFile::new(&cairn::serve::tokens::state_dir(&self.root, self.state.as_deref())?))
    }
}

/// Bring back objects deleted from a repository (within --since, else all quarantined)
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cairn serve undelete gw --root /srv/cairn --since 2d")]
struct UndeleteArgs {
    repository: String,
    /// The server's --root
    #[arg(long)]
    root: String,
    /// Only objects deleted this recently (e.g. 2d)
    #[arg(long, value_parser = cairn::units::parse_duration)]
    since: Option<u64>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    match a.command {
        Some(Command::Token(t)) => token(ctx, t),
        Some(Command::Undelete(u)) => {
            let since = u.since.map(std::time::Duration::from_secs);
            let n = cairn::serve::undelete(&u.root, &u.repository, since)?;
            if ctx.json {
                println!("{}", serde_json::json!({ "restored": n }));
            } else if !ctx.quiet {
                println!("{n} objects brought back into {}", u.repository);
                if n > 0 {
                    // A prune's index files supersede the ones it deleted: only a new index
                    // made from the packs themselves names everything that came back.
                    println!("now run `cairn repair index` on the repository, so that its index names every pack brought back");
                }
            }
            Ok(exit::SUCCESS)
        }
        None => {
            let root = a.root.expect("clap requires --root");
            let state = cairn::serve::tokens::state_dir(&root, a.state.as_deref())?;
            let opts = cairn::serve::ServeOptions {
                root,
                state,
                listen: a.listen,
                tls: a.tls_cert.zip(a.tls_key),
                quota: a.quota,
                keep_deleted: std::time::Duration::from_secs(a.keep_deleted),
                rpo: a.rpo.map(std::time::Duration::from_secs),
                access_log: a.access_log,
                max_pack: a.max_pack,
            };
            cairn::serve::run(opts, ctx.interrupt.clone())?;
            Ok(exit::SUCCESS)
        }
    }
}

fn token(ctx: &Ctx, t: TokenCommand) -> Result<i32> {
    match t {
        TokenCommand::Add { name, at, role } => {
            let repo = ctx
                .location()
                .map_err(|_| Error::invalid("token add needs the repository's name: --repo NAME"))?;
            let token = at.tokens()?.add(&name, repo, Role::parse(&role)?)?;
            // The token alone on standard output, so it can go straight into a file.
            println!("{}", token.as_str());
            Ok(exit::SUCCESS)
        }
        TokenCommand::List { at } => {
            let entries = at.tokens()?.load()?;
            if ctx.json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"name": e.name, "repo": e.repo, "role": e.role.name(), "created": e.created}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for e in &entries {
                    println!("{:<20} {:<20} {:<9} {}", e.name, e.repo, e.role.name(), e.created);
                }
            }
            Ok(exit::SUCCESS)
        }
        TokenCommand::Remove { name, at } => {
            at.tokens()?.remove(&name)?;
            if !ctx.quiet {
                println!("removed token {name}");
            }
            Ok(exit::SUCCESS)
        }
    }
}
