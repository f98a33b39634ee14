//! `cairn man DIR`: manual pages for cairn and every subcommand (`cairn.1`,
//! `cairn-backup.1`, `cairn-key-add.1`, ...), made from the command line's own definition
//! (with each command's exit codes and examples), for packages to install.

use super::exit;
use cairn::{Error, Result};
use std::path::PathBuf;

/// Write manual pages for cairn and every subcommand into a folder
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cairn man /usr/share/man/man1\n  man cairn-backup")]
pub struct Args {
    /// The folder to write them into (created if missing)
    dir: PathBuf,
}

pub fn run(ctx: &super::Ctx, a: Args) -> Result<i32> {
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| Error::io(format!("cannot create {}", a.dir.display()), e))?;
    let mut root = super::command();
    // Global options then show on every page.
    root.build();
    let written = write_pages(root, "cairn", &a.dir)?;
    if !ctx.quiet {
        println!("{written} manual pages written to {}", a.dir.display());
    }
    Ok(exit::SUCCESS)
}

/// The page of `cmd` (named `name`, e.g. "cairn-key-add") and of each of its
/// subcommands; returns how many were written.
fn write_pages(cmd: clap::Command, name: &str, dir: &std::path::Path) -> Result<usize> {
    // The page's name, and `cairn key add` (not `add`) in its synopsis.
    let cmd = cmd.name(name.to_string()).bin_name(name.replace('-', " "));
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| Error::io(format!("cannot render {}", path.display()), e))?;
    std::fs::write(&path, page).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_pages(sub.clone(), &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
