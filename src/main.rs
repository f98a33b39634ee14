//! The `cairn` command: parses arguments, runs a command from `cli/`, prints, and maps
//! errors to the documented exit codes. All work happens in the library.

#![forbid(unsafe_code)]

mod cli;

fn main() {
    std::process::exit(cli::main());
}
