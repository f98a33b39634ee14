//! `cairn ui`: a web dashboard of every repository of a job file (its copies included) or
//! of the repository given. Pages are rendered on the server from the same JSON the API
//! answers with (`data`), so a page never shows what `/api/...` would not.
//!
//! - `sources`: the repositories, opened once at start, and what their jobs promise (RPO).
//! - `data`: each page's data as JSON, in the shapes of the CLI's `--json`.
//! - `pages` and `html`: the pages; `plots`: the SVG plots; `assets/`: one stylesheet and
//!   one script, served by the dashboard itself (it works offline).
//! - `auth`: the login token, sessions, CSRF; `server`: HTTP(S) and routing;
//!   `actions`: jobs, checks, drills and restores run as cairn commands, watched live.

mod actions;
mod auth;
mod data;
mod html;
mod pages;
mod plots;
mod server;
mod sources;

use super::{exit, Ctx};
use cairn::{Error, Result};
use std::path::PathBuf;

/// Serve a web dashboard of a job file's repositories (or of --repo): health, history,
/// files, diffs, plots, the activity log, and buttons that run jobs, checks and drills
#[derive(clap::Args)]
#[command(after_help = "\
The dashboard needs a login: the token in CAIRN_UI_TOKEN, or one made at start. The first
line printed is a login URL with it; opening it sets a session cookie. The JSON API under
/api/ takes the same token as `Authorization: Bearer TOKEN`. Plain HTTP is served only on
a loopback address; elsewhere give --tls-cert and --tls-key.

Examples:
  cairn ui --config /etc/cairn/cairn.toml
  cairn ui --repo /srv/backup/gw --listen 127.0.0.1:9000")]
pub struct Args {
    /// Address to listen on; plain HTTP only on a loopback address
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Show every job of this job file, with its copies (default: --repo only)
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// The backup age that is still fresh for a repository without a job's drill limits
    /// (green up to it, amber up to twice it, red beyond)
    #[arg(long, default_value = "1d", value_parser = cairn::units::parse_duration)]
    rpo: u64,
    /// TLS certificate chain (PEM)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if a.tls_cert.is_none() && !a.listen.ip().is_loopback() {
        return Err(Error::invalid(format!(
            "{} is not a loopback address: plain HTTP is served only on 127.0.0.1 or ::1; give --tls-cert and --tls-key",
            a.listen
        )));
    }
    let sources = match &a.config {
        Some(file) => {
            let jobs = super::run::ConfigFile { config: file.clone() }.load()?;
            sources::from_jobs(&jobs, file, a.rpo)?
        }
        None => sources::from_ctx(ctx, a.rpo)?,
    };
    let token = auth::LoginToken::from_env_or_new()?;
    let tls = a.tls_cert.zip(a.tls_key);
    server::run(server::Options { listen: a.listen, tls, sources, token }, ctx.interrupt.clone())?;
    Ok(exit::SUCCESS)
}
