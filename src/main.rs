//! The `cairn` command: parses arguments, runs a command from `cli/`, prints, and maps
//! errors to the documented exit codes. All work happens in the library.

#![forbid(unsafe_code)]

mod cli;

fn main() {
    // While the process has one thread: secrets leave the environment before any command
    // cairn runs could inherit them (src/repo/secrets.rs).
    cairn::repo::secrets::take_from_environment();
    std::process::exit(cli::main());
}
