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
/// forget, prune, repair or rewrite refused: a snapshot cannot be read and was not named
/// for removal; nothing was changed.
pub const UNREADABLE_SNAPSHOT: i32 = 7;
/// The repository does not exist at the given location.
pub const NO_REPOSITORY: i32 = 10;
/// The repository is locked by another process (or, for rewrite, tag and repair snapshots,
/// by a content key rotation under way).
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
  7   refused to delete: a snapshot cannot be read (damaged or newer); nothing changed
  10  no repository at the given location (or no such S3 bucket)
  11  repository locked by another process, or by a content key rotation under way
  12  wrong password or key
  13  no space left on the repository or target disk
  130 interrupted (SIGINT/SIGTERM)

Example:
  CAIRN_REPOSITORY=/backups/gw cairn backup /opt/apigateway/conf --tag prod";

/// What each code means in short, for the list under each command's help.
const MEANINGS: &[(i32, &str)] = &[
    (SUCCESS, "success"),
    (ERROR, "error"),
    (USAGE, "bad arguments or input"),
    (PARTIAL, "backup incomplete: some files could not be read (snapshot partial)"),
    (DAMAGED, "damaged or missing data found"),
    (LIMIT_MISSED, "an RTO or RPO limit was missed"),
    (UNREADABLE_SNAPSHOT, "refused: a snapshot cannot be read; nothing changed"),
    (COMMAND_FAILED, "a command cairn ran failed"),
    (NO_REPOSITORY, "no repository at the given location"),
    (LOCKED, "repository locked by another process (see --lock-wait)"),
    (WRONG_PASSWORD, "wrong password or key"),
    (NO_SPACE, "no space left on the repository or target disk"),
    (INTERRUPTED, "interrupted (SIGINT or SIGTERM)"),
];

/// The codes a command can return ("key add" for subcommands), with meanings of its own
/// where the general one says too little.
fn codes(command: &str) -> (&'static [i32], &'static [(i32, &'static str)]) {
    const READ: &[i32] = &[0, 1, 2, 4, 10, 11, 12, 130];
    const CHANGE: &[i32] = &[0, 1, 2, 10, 11, 12, 13, 130];
    const KEY: &[i32] = &[0, 1, 2, 10, 12, 13];
    // Commands that must see every snapshot before they delete or replace data.
    const CHANGE_ALL_SNAPSHOTS: &[i32] = &[0, 1, 2, 7, 10, 11, 12, 13, 130];
    match command {
        "init" => (&[0, 1, 2, 13, 130], &[(1, "error (also: a repository is already there)")]),
        "backup" => (
            &[0, 1, 2, 3, 6, 10, 11, 12, 13, 130],
            &[(6, "the --stdin-from-command command failed; no snapshot")],
        ),
        "snapshots" | "log" => {
            (&[0, 1, 2, 4, 10, 12], &[(4, "a damaged snapshot or log entry was found (the rest is listed)")])
        }
        "restore" => (
            &[0, 1, 2, 4, 10, 11, 12, 13, 130],
            &[(4, "damaged data (each damaged file named), or --verify found differences")],
        ),
        "dump" => (
            &[0, 1, 2, 4, 10, 11, 12, 13, 130],
            &[(4, "damaged data: every intact file was written, the damaged ones named")],
        ),
        "check" => (READ, &[(4, "damage found"), (1, "error: the check could not run")]),
        "copy" => (&[0, 1, 2, 4, 10, 11, 12, 13, 130], &[]),
        "drill" => (&[0, 1, 2, 4, 5, 10, 11, 12, 130], &[(4, "the restore was damaged or differs")]),
        "forget" | "prune" | "rewrite" | "repair snapshots" => (CHANGE_ALL_SNAPSHOTS, &[]),
        "tag" | "repair index" | "repair maintenance" => (CHANGE, &[]),
        "unlock" => (&[0, 1, 2, 10, 12], &[]),
        "import borg" => (
            &[0, 1, 2, 6, 10, 11, 12, 13, 130],
            &[(6, "borg failed to list or export an archive; what was imported before stays")],
        ),
        "import restic" => (
            &[0, 1, 2, 4, 10, 11, 12, 13, 130],
            &[
                (4, "damaged source data: each snapshot not imported is named; the others were"),
                (10, "no restic repository at SRC, or no cairn repository"),
                (12, "wrong password of the restic repository, or of this one"),
            ],
        ),
        "repair undelete" => (&[0, 1, 2, 10], &[(1, "error (also: the store keeps no deleted versions)")]),
        "mount" => (&[0, 1, 2, 10, 11, 12], &[(0, "unmounted (Ctrl-C, SIGTERM or umount)")]),
        "run" => (
            &[0, 2, 3, 6, 11, 130],
            &[
                (0, "every job succeeded"),
                (2, "the job file is invalid; nothing ran"),
                (6, "a job failed"),
                (11, "the job is already running"),
            ],
        ),
        "config check" => {
            (&[0, 2], &[(2, "mistakes found (each printed with its line, or its job with --deep)")])
        }
        "config example" => (&[0, 2], &[(2, "no such preset")]),
        "schedule install" | "schedule remove" => {
            (&[0, 1, 2], &[(1, "the units could not be written or removed")])
        }
        "schedule list" => (&[0, 1], &[(1, "the unit folder cannot be read")]),
        "key rotate" => (
            &[0, 1, 2, 7, 10, 11, 12, 13, 130],
            &[
                (2, "a version 1 key file must be upgraded or replaced first"),
                (130, "interrupted: every key still opens; run it again to finish"),
            ],
        ),
        c if c.starts_with("key ") => (KEY, &[]),
        "completion" => (&[0, 2], &[(2, "no such shell")]),
        "man" => (&[0, 1, 2], &[(1, "the folder or a page could not be written")]),
        "serve" => (
            &[0, 1, 2],
            &[
                (0, "stopped by SIGINT or SIGTERM"),
                (2, "bad options (plain HTTP off loopback, a bad certificate)"),
            ],
        ),
        c if c.starts_with("serve ") => (&[0, 1, 2], &[]),
        "ui" => (
            &[0, 1, 2, 10, 12],
            &[
                (0, "stopped by SIGINT or SIGTERM"),
                (2, "bad options (plain HTTP off loopback, a bad certificate or job file)"),
                (10, "a repository of the job file is not there"),
                (12, "wrong password for a repository of the job file"),
            ],
        ),
        _ => (READ, &[]),
    }
}

/// "Exit codes:" and one line per code `command` can return, for its help.
pub fn codes_help(command: &str) -> String {
    let (list, own) = codes(command);
    let mut out = String::from("Exit codes:");
    for code in list {
        let meaning = own.iter().chain(MEANINGS).find(|(c, _)| c == code).map_or("", |(_, m)| *m);
        out.push_str(&format!("\n  {code:<3} {meaning}"));
    }
    out
}

pub fn for_error(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotARepository => NO_REPOSITORY,
        ErrorKind::WrongPassword => WRONG_PASSWORD,
        ErrorKind::Locked => LOCKED,
        ErrorKind::InvalidInput => USAGE,
        ErrorKind::NoSpace => NO_SPACE,
        ErrorKind::Interrupted => INTERRUPTED,
        ErrorKind::CommandFailed => COMMAND_FAILED,
        ErrorKind::UnreadableSnapshot => UNREADABLE_SNAPSHOT,
        _ => ERROR,
    }
}
