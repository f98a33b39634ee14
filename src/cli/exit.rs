//! Exit codes. They are part of the interface (README, `cairn --help`): keep them stable.

use cairn::ErrorKind;

pub const SUCCESS: i32 = 0;
/// Any error not listed below.
pub const ERROR: i32 = 1;
/// Bad arguments or input (also clap's code for usage errors).
pub const USAGE: i32 = 2;
/// Backup finished but some files could not be read; the snapshot is marked partial.
pub const PARTIAL: i32 = 3;
/// Damaged or missing data found: restore wrote everything else; check reports it. Also
/// `restore --verify` finding the target differs from the snapshot.
pub const DAMAGED: i32 = 4;
/// A drill restored and verified everything but missed its RTO or RPO limit.
pub const LIMIT_MISSED: i32 = 5;
/// A command cairn ran failed: a database dump, a job's hook, or a job step.
pub const COMMAND_FAILED: i32 = 6;
/// The repository does not exist at the given location.
pub const NO_REPOSITORY: i32 = 10;
/// The repository is locked by another process.
pub const LOCKED: i32 = 11;
/// Wrong password, or no usable key.
pub const WRONG_PASSWORD: i32 = 12;
/// The disk holding the repository or the restore target is full.
pub const NO_SPACE: i32 = 13;
/// Interrupted by SIGINT or SIGTERM; nothing half-written is left visible.
pub const INTERRUPTED: i32 = 130;

pub const HELP: &str = "\
Exit codes:
  0   success
  1   error (also refused credentials or host key, unreachable remote store)
  2   bad arguments or input
  3   backup incomplete: some files could not be read (snapshot marked partial)
  4   damaged or missing data found (restore wrote all intact files; check found damage),
      or restore --verify found the target differs from the snapshot (extra entries too)
  5   drill passed its checks but missed an RTO/RPO limit
  6   a command cairn ran failed (database dump, job hook) or a job failed
  10  no repository at the given location (or no such S3 bucket)
  11  repository locked by another process
  12  wrong password or key
  13  no space left on the repository or target disk
  130 interrupted (SIGINT/SIGTERM)

Example:
  CAIRN_REPOSITORY=/backups/gw cairn backup /opt/apigateway/conf --tag prod";

pub fn for_error(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotARepository => NO_REPOSITORY,
        ErrorKind::WrongPassword => WRONG_PASSWORD,
        ErrorKind::Locked => LOCKED,
        ErrorKind::InvalidInput => USAGE,
        ErrorKind::NoSpace => NO_SPACE,
        ErrorKind::Interrupted => INTERRUPTED,
        ErrorKind::CommandFailed => COMMAND_FAILED,
        _ => ERROR,
    }
}
