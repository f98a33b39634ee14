//! The lock upkeep that backup, copy and prune do on a repository with S3 Object Lock.

use super::Ctx;
use cairn::ops::object_lock::{purge_expired, renew};
use cairn::Repository;
use std::collections::HashSet;

/// Renew the locks that are running out (of `packs` only, when given), and after a prune
/// delete for good what cairn deleted and is no longer locked. The command's own work is
/// done by now, so what fails here is a warning: the next run tries again.
pub fn upkeep(ctx: &Ctx, repo: &Repository, packs: Option<&HashSet<String>>, purge: bool) {
    if repo.config().object_lock.is_none() || repo.backend().object_lock().is_none() {
        return;
    }
    let say = !ctx.json && !ctx.quiet;
    match renew(repo, packs) {
        Ok(r) => {
            for f in &r.failed {
                eprintln!("cairn: warning: cannot renew the lock of {f}");
            }
            if say && r.renewed > 0 {
                println!("renewed the lock of {} objects for another period", r.renewed);
            }
        }
        Err(e) => eprintln!("cairn: warning: locks not renewed: {e}"),
    }
    if !purge {
        return;
    }
    match purge_expired(repo) {
        Ok(r) => {
            for f in &r.failed {
                eprintln!("cairn: warning: cannot delete {f}");
            }
            if say && (r.versions_removed > 0 || r.still_locked > 0) {
                println!(
                    "deleted {} objects for good whose locks had ended; {} deleted objects stay until their locks end",
                    r.versions_removed, r.still_locked
                );
            }
        }
        Err(e) => eprintln!("cairn: warning: deleted objects whose locks ended were not purged: {e}"),
    }
}
