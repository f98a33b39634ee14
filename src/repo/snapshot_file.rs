//! Snapshot files as stored: the snapshot envelope, and in a repository with maintenance
//! the summary beside it (format-spec/maintenance-key.md). A full key reads the snapshot
//! and checks the summary agrees with it; a maintenance key reads only the summary.

use super::Repository;
use crate::crypto::keys::KeyKind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::envelope::{self, ObjectType, Opened, WrittenBy};
use crate::format::snapshot::Snapshot;
use crate::format::snapshot_file::{MaintenanceSummary, SnapshotFile};
use crate::id::{SnapshotId, TreeId};

/// The root tree of a snapshot as a maintenance key sees it ([`Repository::summary_view`]):
/// it does not learn the tree id, and no real tree has this one (a keyed hash).
pub const UNKNOWN_TREE: TreeId = TreeId([0; 32]);

/// Whether a full key opens and verifies the summary of a snapshot file it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    Skipped,
    Verified,
}

/// A stored snapshot file, opened as far as the key in use can.
pub struct OpenedSnapshotFile {
    /// The snapshot envelope opened (full keys only).
    pub snapshot: Option<Opened>,
    /// The summary, when the file has one and the key opens it (full and maintenance
    /// keys), and who wrote the snapshot as far as the summary tells: a full key when the
    /// envelope says so and the summary is attested, else a backup-only key.
    pub summary: Option<(MaintenanceSummary, WrittenBy)>,
    /// The hash of the snapshot envelope: files holding the same one are one snapshot.
    pub envelope_hash: [u8; 32],
}

impl Repository {
    /// Whether the snapshots this key writes carry a summary: a full key's in a repository
    /// with maintenance, and always a backup-only key's whose material carries the
    /// maintenance public key (it never takes it from the config).
    pub fn writes_summaries(&self) -> bool {
        match self.master.kind {
            KeyKind::Full => self.config.maintenance.is_some(),
            KeyKind::BackupOnly => self.keys.maintenance_public().is_some(),
            KeyKind::Maintenance => false,
        }
    }

    /// The stored bytes of a snapshot of `payload` written by `writer`: its envelope, with
    /// a summary where this key writes them.
    pub(crate) fn seal_snapshot_file(&self, payload: &[u8], writer: WrittenBy) -> Result<Vec<u8>> {
        let sealed = envelope::seal_as(&self.keys, ObjectType::Snapshot, payload, writer)?;
        if !self.writes_summaries() {
            if self.config.maintenance.is_some() {
                eprintln!(
                    "cairn: warning: this backup-only key carries no maintenance public key, so this snapshot has no summary and a maintenance key keeps it whatever the policy; replace the key with one from `cairn key add --backup-only`"
                );
            }
            return Ok(sealed);
        }
        let snap = Snapshot::decode(payload)?;
        let summary = self.summary_of(&snap, *blake3::hash(&sealed).as_bytes(), false)?;
        let summary = envelope::seal_as(&self.keys, ObjectType::Summary, &summary.encode(), writer)?;
        Ok(SnapshotFile::join(&sealed, &summary))
    }

    /// The summary of `snap`, whose envelope hashes to `envelope_hash`; with `older`, its
    /// paths keyed under the older content root (during a content key rotation).
    fn summary_of(
        &self,
        snap: &Snapshot,
        envelope_hash: [u8; 32],
        older: bool,
    ) -> Result<MaintenanceSummary> {
        let mut paths = snap
            .paths
            .iter()
            .map(|p| if older { self.keys.older_source_path_hash(p) } else { self.keys.source_path_hash(p) })
            .collect::<Option<Vec<[u8; 32]>>>()
            .ok_or_else(|| Error::new(ErrorKind::PermissionDenied, "this key cannot name source paths"))?;
        paths.sort_unstable();
        paths.dedup();
        Ok(MaintenanceSummary {
            snapshot: envelope_hash,
            time: snap.time,
            host: snap.host.clone(),
            paths,
            tags: snap.tags.clone(),
            labels: snap.labels.clone(),
            references: self.record_of(&snap.tree),
        })
    }

    /// Before snapshot `id` is stored anew with the same root tree (tag, a key rotation):
    /// take the root record its summary names, if it has a valid one, so the new summary
    /// names it too. The record is as trustworthy as the snapshot it came with: a record
    /// that lies can only make a maintenance prune drop what that snapshot alone uses.
    pub(crate) fn carry_record(&self, id: &SnapshotId) {
        if !self.writes_summaries() {
            return;
        }
        let Ok(opened) = self.read_snapshot_file(id, Summary::Verified) else { return };
        let (Some(snapshot), Some((summary, _))) = (opened.snapshot, opened.summary) else { return };
        if let (Ok(snap), Some(record)) = (Snapshot::decode(&snapshot.payload), summary.references) {
            if self.record_of(&snap.tree).is_none() {
                self.remember_record(snap.tree, record);
            }
        }
    }

    /// Open the stored bytes of a snapshot file. A summary must name the envelope beside
    /// it, and be attested when the envelope says a full key wrote it; a full key also
    /// requires it to agree with the snapshot. Any of these failing is damage (*corrupt*).
    /// A full key opens the summary only with `Summary::Verified` (check, repair): what it
    /// decides it decides by the envelope, and opening every summary would double the
    /// key agreements of a listing.
    pub(crate) fn open_snapshot_file(&self, bytes: &[u8], summary: Summary) -> Result<OpenedSnapshotFile> {
        let parts = SnapshotFile::split(bytes)?;
        let envelope_hash = *blake3::hash(parts.envelope).as_bytes();
        let snapshot = match self.keys.can_read() {
            true => Some(envelope::open_attested(&self.keys, ObjectType::Snapshot, parts.envelope)?),
            false => None,
        };
        let opens_summary = match self.master.kind {
            KeyKind::Full => summary == Summary::Verified,
            KeyKind::BackupOnly => false,
            KeyKind::Maintenance => true,
        };
        let summary = match parts.summary {
            Some(sealed) if opens_summary => {
                let opened = envelope::open_attested(&self.keys, ObjectType::Summary, sealed)?;
                let summary = MaintenanceSummary::decode(&opened.payload)?;
                if summary.snapshot != envelope_hash {
                    return Err(Error::corrupt("its summary names another snapshot"));
                }
                // The envelope's writer byte is plaintext: a full key's snapshot needs a
                // full key's summary, which a backup-only key cannot attest. It is a full
                // key's snapshot only when both say so.
                let by_full_key = envelope::parse_header(ObjectType::Snapshot, parts.envelope).is_ok()
                    && parts.envelope[7] == 1;
                if by_full_key && opened.written_by != WrittenBy::FullKey {
                    return Err(Error::corrupt("a full key's snapshot with a summary no full key attested"));
                }
                let writer = if by_full_key { WrittenBy::FullKey } else { WrittenBy::BackupOnlyKey };
                Some((summary, writer))
            }
            _ => None,
        };
        if let (Some(opened), Some((summary, _))) = (&snapshot, &summary) {
            let snap = Snapshot::decode(&opened.payload)?;
            // The root record is checked apart (check): it takes every tree to compute.
            let agrees = |older| {
                self.summary_of(&snap, envelope_hash, older)
                    .is_ok_and(|s| MaintenanceSummary { references: summary.references, ..s } == *summary)
            };
            let agreed = agrees(false) || (self.keys.holds_older_content() && agrees(true));
            if !agreed {
                return Err(Error::corrupt("its summary does not agree with the snapshot"));
            }
        }
        Ok(OpenedSnapshotFile { snapshot, summary, envelope_hash })
    }

    /// Read the snapshot file `id` (checked to be that object) and open it.
    pub(crate) fn read_snapshot_file(&self, id: &SnapshotId, summary: Summary) -> Result<OpenedSnapshotFile> {
        let bytes = self.read_named_object(crate::backend::FileType::Snapshot, &id.0).map_err(|e| match e
            .kind()
        {
            ErrorKind::Corrupt => e.wrap(format!("snapshot {id} is damaged")),
            _ => e,
        })?;
        self.open_snapshot_file(&bytes, summary).map_err(|e| e.wrap(format!("snapshot {id}")))
    }

    /// What a maintenance key knows of snapshot `id` from its summary, as a snapshot:
    /// time, host, tags and labels as written, each source path as `#` and the hex of its
    /// keyed hash, nothing else. Its writer is a full key's only when the summary is
    /// attested; a file without a summary is an error (the key cannot tell what it is).
    /// Also returns the hash of the snapshot envelope.
    pub(crate) fn summary_view(&self, id: &SnapshotId) -> Result<(Snapshot, [u8; 32])> {
        let opened = self.read_snapshot_file(id, Summary::Verified)?;
        let Some((s, written_by)) = opened.summary else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("snapshot {id} has no summary (written before maintenance was enabled, or by a key without it); a full key's `cairn repair maintenance` gives it one"),
            ));
        };
        let view = Snapshot {
            time: s.time,
            host: s.host,
            user: String::new(),
            paths: s.paths.iter().map(|p| format!("#{}", crate::id::hex_encode(p)).into_bytes()).collect(),
            tags: s.tags,
            labels: s.labels,
            excludes: Vec::new(),
            tree: UNKNOWN_TREE,
            parent: None,
            original: None,
            summary: Default::default(),
            program: String::new(),
            written_by,
        };
        Ok((view, opened.envelope_hash))
    }

    /// [`Repository::snapshots_and_damage`] for a maintenance key: each file's summary,
    /// read as many at once as the store serves well. Files that hold the same snapshot
    /// envelope (only a forger makes them: cairn seals every snapshot anew) are all
    /// damaged to it: kept, reported, counted toward no rule.
    pub(crate) fn summaries_and_damage(&self, names: Vec<String>) -> Result<super::SnapshotsAndDamage> {
        use rayon::prelude::*;
        let loaded: Vec<Result<(SnapshotId, Snapshot, [u8; 32])>> =
            crate::ops::read_pool::install(self, || {
                names
                    .par_iter()
                    .map(|name| {
                        let id = SnapshotId::from_hex(name)?;
                        let (view, envelope) = self.summary_view(&id)?;
                        Ok((id, view, envelope))
                    })
                    .collect()
            })?;
        let mut seen: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
        for (_, _, envelope) in loaded.iter().flatten() {
            *seen.entry(*envelope).or_default() += 1;
        }
        let loaded = loaded
            .into_iter()
            .map(|l| match l {
                Ok((_, _, envelope)) if seen[&envelope] > 1 => {
                    Err(Error::corrupt("another snapshot file holds the same snapshot with its own summary"))
                }
                l => l.map(|(id, view, _)| (id, view)),
            })
            .collect();
        super::sorted_with_damage(names, loaded)
    }
}
