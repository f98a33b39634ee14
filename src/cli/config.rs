//! `cairn config`: check a job file, or print an example one.

use super::run::ConfigFile;
use super::{exit, Ctx};
use cairn::job::presets::{example, PRESETS};
use cairn::{Error, Result};

#[derive(clap::Subcommand)]
#[command(about = "Check a job file, or print a commented example")]
pub enum Command {
    /// Check the job file and report every mistake with its line
    #[command(after_help = "Example:\n  cairn config check --deep --config /etc/cairn/cairn.toml")]
    Check {
        /// Also read each password file, open each repository and copy target with its
        /// own key, and expand each source glob, as a run would (writes nothing)
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        file: ConfigFile,
    },
    /// Print a commented example job file for a kind of installation
    #[command(
        after_help = "Example:\n  cairn config example --preset axway-apigateway > /etc/cairn/cairn.toml"
    )]
    Example {
        /// axway-apigateway, axway-apigateway-full, axway-analytics, kong or files
        #[arg(long, default_value = "files")]
        preset: String,
    },
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Check { deep, file } => {
            let jobs = file.load()?;
            if deep {
                let mut count = 0;
                for j in &jobs.jobs {
                    for p in cairn::job::deep::deep_check(j) {
                        eprintln!("cairn: job {}: {p}", j.name);
                        count += 1;
                    }
                }
                if count > 0 {
                    return Err(Error::invalid(format!(
                        "{}: the deep check found {count} problems; a run would fail",
                        file.config.display()
                    )));
                }
            }
            if !ctx.quiet {
                for j in &jobs.jobs {
                    println!(
                        "job {}: {} sources, {} dumps -> {}",
                        j.name,
                        j.sources.len(),
                        j.dumps.len(),
                        j.repository
                    );
                }
                let how = if deep {
                    " (deep: repositories opened, password files read, globs expanded)"
                } else {
                    ""
                };
                println!("{}: {} jobs, no mistakes{how}", file.config.display(), jobs.jobs.len());
            }
            Ok(exit::SUCCESS)
        }
        Command::Example { preset } => {
            let text = example(&preset).ok_or_else(|| {
                let names: Vec<String> = PRESETS.iter().map(|(n, what)| format!("{n} ({what})")).collect();
                Error::invalid(format!("no preset '{preset}'; there are: {}", names.join("; ")))
            })?;
            print!("{text}");
            Ok(exit::SUCCESS)
        }
    }
}
