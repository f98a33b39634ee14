//! `cairn completion SHELL`: a tab-completion script for a shell, made from the command
//! line's own definition, so it never falls behind it.

use super::exit;
use cairn::Result;

/// Print a tab-completion script for a shell
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cairn completion bash > /etc/bash_completion.d/cairn\n  cairn completion zsh > \"${fpath[1]}/_cairn\"\n  cairn completion fish > ~/.config/fish/completions/cairn.fish"
)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell
    shell: clap_complete::Shell,
}

pub fn run(a: Args) -> Result<i32> {
    let mut cmd = super::command();
    clap_complete::generate(a.shell, &mut cmd, "cairn", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}
