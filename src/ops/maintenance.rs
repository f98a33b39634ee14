//! Enabling the maintenance key (`cairn key add --maintenance`), and giving snapshots
//! without a summary one (`cairn repair maintenance`). See format-spec/maintenance-key.md.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Config;
use crate::format::snapshot_file::SnapshotFile;
use crate::id::SnapshotId;
use crate::repo::Repository;
use std::collections::HashSet;

/// What enabling did.
#[derive(Debug, Default)]
pub struct Enabled {
    /// Whether this run wrote the config with the maintenance public key (false: it was
    /// there already).
    pub config_written: bool,
    /// Key files given material for a repository with maintenance (backup-only keys now
    /// carry the maintenance public key).
    pub key_files_written: usize,
    /// Key files no full key of this repository granted: given nothing.
    pub passed_over: Vec<String>,
    /// Snapshots given a summary.
    pub summaries_written: usize,
}

/// Make the repository one with maintenance, under the exclusive lock, with a full key:
/// every other key file re-wrapped (backup-only ones then carry the maintenance public
/// key), the config written with it (field 11), then every snapshot given a summary.
/// Returns the repository opened with the new config. Run again, it changes nothing but
/// what a killed run left undone.
pub fn enable(repo: &Repository) -> Result<(Repository, Enabled)> {
    repo.require_full_key("enable the maintenance key")?;
    if repo.rotation_unfinished() {
        return Err(Error::new(
            ErrorKind::Locked,
            "a key rotation is under way; finish it with `cairn key rotate`, then add the maintenance key",
        ));
    }
    if repo.config().object_lock.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the maintenance key is not offered on a repository with S3 Object Lock: its snapshots could not be given summaries while their locks last",
        ));
    }
    let mut done = Enabled::default();
    let enabled = match repo.config().maintenance {
        Some(_) => repo.with_material(repo.master().duplicate(), repo.config().clone(), repo.key_id())?,
        None => {
            crate::ops::rotate::refuse_version_1_keys(repo)?;
            let public = repo.keys().maintenance_public().expect("a full key derives it");
            let config = Config { maintenance: Some(public), ..repo.config().clone() };
            let enabled = repo.with_material(repo.master().duplicate(), config, repo.key_id())?;
            // Key files first: a backup-only key that carries the maintenance public key
            // writes summaries whatever the config says, so none is missed once the
            // config names it.
            let (n, passed_over) = enabled.rewrap_other_keys(enabled.master(), enabled.keys())?;
            done.key_files_written = n;
            done.passed_over = passed_over;
            crate::failpoint::hit("maintenance:after-key-files");
            enabled.write_config()?;
            done.config_written = true;
            crate::failpoint::hit("maintenance:after-config");
            enabled
        }
    };
    done.summaries_written = give_summaries(&enabled)?;
    Ok((enabled, done))
}

/// Give every snapshot without a summary one: its payload sealed anew in a snapshot file
/// with a summary (keeping its writer's kind), stored before the bare file is removed.
/// A bare file whose payload a file with a summary already holds (a run killed between
/// the two) is only removed. Snapshot ids change, as in a key rotation.
pub fn give_summaries(repo: &Repository) -> Result<usize> {
    repo.require_full_key("give snapshots summaries")?;
    if repo.config().maintenance.is_none() {
        return Err(Error::invalid(
            "this repository has no maintenance key; `cairn key add --maintenance` makes one",
        ));
    }
    let mut summarized: HashSet<[u8; 32]> = HashSet::new();
    let mut bare = Vec::new();
    for name in repo.list_named_objects(FileType::Snapshot)? {
        let id = SnapshotId::from_hex(&name)?;
        let bytes = repo.read_named_object(FileType::Snapshot, &id.0)?;
        let opened = repo.open_snapshot_file(&bytes).map_err(|e| {
            e.wrap(format!(
                "snapshot {} cannot be read, so it cannot be given a summary; `cairn check` tells more, `cairn forget {}` removes it",
                id.short(),
                id.short()
            ))
        })?;
        let has_summary = SnapshotFile::split(&bytes)?.summary.is_some();
        let snapshot = opened.snapshot.expect("a full key opens snapshots");
        if has_summary {
            summarized.insert(*blake3::hash(&snapshot.payload).as_bytes());
        } else {
            bare.push((id, snapshot));
        }
    }
    for (id, snapshot) in &bare {
        if summarized.insert(*blake3::hash(&snapshot.payload).as_bytes()) {
            let writer = crate::ops::rotate::kept_writer(snapshot.written_by);
            let bytes = repo.seal_snapshot_file(&snapshot.payload, writer)?;
            repo.store_sealed(FileType::Snapshot, &bytes)?;
            crate::failpoint::hit("maintenance:after-summary");
        }
        crate::ops::object_lock::note_deleted(repo, FileType::Snapshot, &[id.to_hex()])?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
    }
    Ok(bare.len())
}
