//! Enabling the maintenance key (`cairn key add --maintenance`), and giving snapshots
//! without a summary one (`cairn repair maintenance`). See format-spec/maintenance-key.md.

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Config;
use crate::format::snapshot::Snapshot;
use crate::id::{RefsId, SnapshotId, TreeId};
use crate::index::Index;
use crate::pack::BlobWriter;
use crate::repo::log::LogRecord;
use crate::repo::snapshot_file::Summary;
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
    /// What went wrong without stopping it.
    pub warnings: Vec<String>,
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
            let (replaced, passed_over) = enabled.rewrap_other_keys(enabled.master(), enabled.keys())?;
            done.key_files_written = replaced.len();
            done.passed_over = passed_over;
            // Each file now has another id: the log says so, or a later rotation would
            // take the old ids for keys kept apart.
            for id in replaced {
                let rewrapped = LogRecord::new("key rewrap", "success").figure("key", id.short());
                if let Err(e) = enabled.append_log(rewrapped) {
                    done.warnings.push(format!("the activity log did not take a key file's new id: {e}"));
                }
            }
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

/// Rewrite every data pack written before maintenance (pack versions 1 to 4, which have
/// no maintenance table) through prune, in rounds as a key rotation reseals packs: its
/// used blobs go into packs of version 5 with a maintenance table and a blob per frame,
/// so a maintenance key's prune can judge and move them as it does every newer pack.
/// Needs a full key. Returns how many packs were rewritten.
pub fn repack_older_packs(
    repo: &Repository,
    say: &dyn Fn(&str),
    interrupt: &std::sync::atomic::AtomicBool,
) -> Result<usize> {
    if !repo.writes_summaries() {
        return Err(Error::invalid(
            "this repository has no maintenance key yet: run `cairn key add --maintenance` first",
        ));
    }
    let older = crate::ops::rotate::packs_where(repo, |h, _| h.version < crate::format::pack::VERSION_5)?;
    if !older.is_empty() {
        crate::ops::rotate::repack_in_rounds(repo, &older, say, interrupt)?;
    }
    Ok(older.len())
}

/// Give every snapshot a summary that names its root references record, with every
/// record of its trees stored: each tree is read once and its record made unless stored.
/// A file without a summary, or whose summary names no root record or another one, is
/// sealed anew (keeping its writer's kind) and stored before it is removed; a file whose
/// payload a good file already holds (a run killed between the two) is only removed.
/// Snapshot ids change, as in a key rotation. Returns how many files were replaced.
pub fn give_summaries(repo: &Repository) -> Result<usize> {
    repo.require_full_key("give snapshots summaries")?;
    if repo.config().maintenance.is_none() {
        return Err(Error::invalid(
            "this repository has no maintenance key; `cairn key add --maintenance` makes one",
        ));
    }
    let mut files = Vec::new();
    for name in repo.list_named_objects(FileType::Snapshot)? {
        let id = SnapshotId::from_hex(&name)?;
        let opened = repo.read_snapshot_file(&id, Summary::Verified).map_err(|e| {
            e.wrap(format!(
                "snapshot {} cannot be read, so it cannot be given a summary; `cairn check` tells more, `cairn forget {}` removes it",
                id.short(),
                id.short()
            ))
        })?;
        let snapshot = opened.snapshot.expect("a full key opens snapshots");
        let tree = Snapshot::decode(&snapshot.payload)?.tree;
        let named = opened.summary.map(|(s, _)| s.references);
        files.push((id, snapshot, tree, named));
    }
    let roots: Vec<TreeId> = files.iter().map(|f| f.2).collect();
    let (made, _) = BlobWriter::run(repo, Index::load(repo)?, |writer| writer.repair_records(&roots))?;
    let made = made?;
    let good = |named: &Option<Option<RefsId>>, made: &Option<RefsId>| {
        made.is_some() && named.as_ref() == Some(made)
    };
    let mut done: HashSet<[u8; 32]> = files
        .iter()
        .zip(&made)
        .filter(|(f, m)| good(&f.3, m))
        .map(|(f, _)| *blake3::hash(&f.1.payload).as_bytes())
        .collect();
    let mut replaced = 0;
    for ((id, snapshot, _, named), made) in files.iter().zip(&made) {
        if good(named, made) {
            continue;
        }
        if done.insert(*blake3::hash(&snapshot.payload).as_bytes()) {
            let writer = crate::ops::rotate::kept_writer(snapshot.written_by);
            let bytes = repo.seal_snapshot_file(&snapshot.payload, writer)?;
            repo.store_sealed(FileType::Snapshot, &bytes)?;
            crate::failpoint::hit("maintenance:after-summary");
        }
        crate::ops::object_lock::note_deleted(repo, FileType::Snapshot, &[id.to_hex()])?;
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::keys::{KdfParams, KeyKind};
    use crate::format::envelope::{self, ObjectType, WrittenBy};
    use crate::format::pack::PackClass;
    use crate::format::snapshot_file::MaintenanceSummary;
    use crate::format::snapshot_file::SnapshotFile;
    use crate::ops::backup::tests::back_up;
    use crate::repo::{InitOptions, KeySource};
    use std::path::Path;

    /// A repository with maintenance: snapshots from a full key and from a backup-only key
    /// made before it was enabled. Returns the full, backup-only and maintenance keys'
    /// handles and the source folder.
    pub(crate) fn with_maintenance(dir: &Path) -> (Repository, Repository, Repository, std::path::PathBuf) {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("conf")).unwrap();
        std::fs::write(src.join("conf/nodemanager.xml"), b"<secret-name/>").unwrap();
        let loc = dir.join("r");
        let loc = loc.to_str().unwrap();
        let full = Repository::init(loc, b"full", &InitOptions::default(), None).unwrap();
        back_up(&full, &src);
        full.add_key(b"writer", KeyKind::BackupOnly, KdfParams::NEW_KEY_FLOOR, None).unwrap();
        let (full, done) = {
            let _lock = full.lock(true, "key add").unwrap();
            enable(&full).unwrap()
        };
        assert_eq!((done.summaries_written, done.key_files_written, done.config_written), (1, 1, true));
        full.add_key(b"keeper", KeyKind::Maintenance, KdfParams::NEW_KEY_FLOOR, None).unwrap();
        let writer = Repository::open(loc, b"writer", &KeySource::Stored).unwrap();
        assert!(writer.writes_summaries(), "enabling gave the backup-only key the maintenance public key");
        std::fs::write(src.join("dump.sql"), b"INSERT INTO secrets").unwrap();
        back_up(&writer, &src);
        let keeper = Repository::open(loc, b"keeper", &KeySource::Stored).unwrap();
        assert_eq!(keeper.key_kind(), KeyKind::Maintenance);
        (full, writer, keeper, src)
    }

    /// The maintenance key opens the config, index files, locks, log entries and
    /// summaries, and nothing else: no pack (so no chunk or tree), no snapshot envelope,
    /// no key grant. The full key opens every one (so the check can fail).
    ///
    /// Packs: what opens of a data pack is its maintenance table (and its table of
    /// contents, and a frame); of a references pack, its table of contents and a frame.
    fn pack_opens(keys: &crate::crypto::keys::RepoKeys, bytes: &[u8]) -> (bool, bool) {
        use crate::pack::reader::{blob_of_frame, open_frame, read_table, read_toc, PackKey, Table};
        let frame_opens = || -> Result<()> {
            let key = PackKey::of_header(keys, bytes)?;
            let e = read_toc(keys, bytes)?[0];
            let mut sealed = bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
            blob_of_frame(keys, &e, &open_frame(&key, &e, &mut sealed)?).map(|_| ())
        };
        match crate::format::pack::parse_header(bytes).unwrap().class {
            PackClass::References | PackClass::Moved => {
                (read_toc(keys, bytes).is_ok(), frame_opens().is_ok())
            }
            PackClass::Data => {
                let table = PackKey::of_maintenance_table(keys, bytes).and_then(|k| match k {
                    Some(k) => read_table(bytes, &k, Table::Maintenance).map(|_| ()),
                    None => Err(Error::corrupt("a pack from before enabling has no maintenance table")),
                });
                (table.is_ok(), read_toc(keys, bytes).is_ok() && frame_opens().is_ok())
            }
        }
    }

    #[test]
    fn a_maintenance_key_opens_summaries_and_shared_objects_and_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let (full, _writer, keeper, src) = with_maintenance(dir.path());
        full.append_log(crate::repo::log::LogRecord::new("backup", "success")).unwrap();
        let _lock = keeper.lock(false, "test").unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for ft in FileType::ALL {
            let names = if ft == FileType::Config {
                vec!["config".to_string()]
            } else {
                full.backend().list(ft).unwrap()
            };
            for name in names {
                let bytes = full.backend().read(ft, &name, u64::MAX).unwrap();
                let opens = |repo: &Repository| -> (bool, bool) {
                    let keys = repo.keys();
                    match ft {
                        FileType::Config => (envelope::open_config(repo.master(), &bytes).is_ok(), false),
                        FileType::Key => {
                            let file = crate::format::keyfile::KeyFile::decode(&bytes).unwrap();
                            (envelope::open_attested(keys, ObjectType::KeyGrant, file.grant()).is_ok(), false)
                        }
                        FileType::Pack => pack_opens(keys, &bytes),
                        FileType::Snapshot => {
                            let parts = SnapshotFile::split(&bytes).unwrap();
                            let summary = parts.summary.expect("every snapshot has a summary");
                            (
                                envelope::open_attested(keys, ObjectType::Summary, summary).is_ok(),
                                envelope::open_attested(keys, ObjectType::Snapshot, parts.envelope).is_ok(),
                            )
                        }
                        FileType::Index => {
                            (envelope::open_attested(keys, ObjectType::Index, &bytes).is_ok(), false)
                        }
                        FileType::Lock => {
                            (envelope::open_attested(keys, ObjectType::Lock, &bytes).is_ok(), false)
                        }
                        FileType::Log => {
                            (envelope::open_attested(keys, ObjectType::Log, &bytes).is_ok(), false)
                        }
                    }
                };
                let pack = (ft == FileType::Pack).then(|| crate::format::pack::parse_header(&bytes).unwrap());
                let pack = pack.map(|h| (h.version, h.class));
                let by_full = opens(&full);
                let full_expected = match pack {
                    Some((3, _)) => (false, true),
                    Some(_) | None if ft == FileType::Snapshot || pack.is_some() => (true, true),
                    _ => (true, false),
                };
                assert_eq!(by_full, full_expected, "the full key on {ft:?} {name}");
                let by_keeper = opens(&keeper);
                let expected = match (ft, pack) {
                    (FileType::Key, _) | (_, Some((3, _))) => (false, false),
                    // A references pack whole; a data pack's maintenance table only.
                    (_, Some((_, PackClass::References))) => (true, true),
                    _ => (true, false),
                };
                if let Some(p) = pack {
                    *seen.entry(format!("{p:?}")).or_insert(0) += 1;
                }
                assert_eq!(by_keeper, expected, "maintenance key on {ft:?} {name}");
                *seen.entry(format!("{ft:?}")).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), FileType::ALL.len() + 3, "every kind of object was tried: {seen:?}");
        // What it learns of a snapshot: time, host, tags, labels, keyed path hashes; no
        // name, user or tree.
        let (views, damaged) = keeper.snapshots_and_damage().unwrap();
        assert!(damaged.is_empty() && views.len() == 2);
        let src_bytes = src.to_str().unwrap().as_bytes();
        for (_, v) in &views {
            assert!(v
                .paths
                .iter()
                .all(|p| p.starts_with(b"#") && !p.windows(3).any(|w| src_bytes.starts_with(w))));
            assert!(v.user.is_empty() && v.tree.0 == [0; 32] && v.parent.is_none());
        }
        assert_eq!(views[0].1.paths, views[1].1.paths, "one source path, one hash");
        assert_eq!(
            views.iter().map(|(_, v)| v.written_by).collect::<Vec<_>>(),
            vec![WrittenBy::FullKey, WrittenBy::BackupOnlyKey]
        );
    }

    /// Summaries a backup-only key holder forges are damage: one beside a full key's
    /// snapshot (it cannot attest), one naming another envelope, one disagreeing with its
    /// snapshot (a full key tells), and a second summary of a backup-only snapshot, which
    /// makes both files count toward no rule for a maintenance key.
    #[test]
    fn forged_summaries_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (full, writer, keeper, _src) = with_maintenance(dir.path());
        let (mut by_full, mut by_writer) = (None, None);
        for name in full.backend().list(FileType::Snapshot).unwrap() {
            let bytes = full.backend().read(FileType::Snapshot, &name, u64::MAX).unwrap();
            let opened = full.open_snapshot_file(&bytes, Summary::Verified).unwrap();
            match opened.snapshot.unwrap().written_by {
                WrittenBy::FullKey => by_full = Some((bytes, opened.summary.unwrap().0)),
                _ => by_writer = Some((bytes, opened.summary.unwrap().0)),
            }
        }
        let ((full_file, full_summary), (writer_file, writer_summary)) =
            (by_full.unwrap(), by_writer.unwrap());
        let envelope_of = |file: &[u8]| SnapshotFile::split(file).unwrap().envelope.to_vec();
        let forge = |envelope: &[u8], summary: &MaintenanceSummary| {
            SnapshotFile::join(
                envelope,
                &envelope::seal(writer.keys(), ObjectType::Summary, &summary.encode()).unwrap(),
            )
        };
        let later = crate::format::Timespec { secs: full_summary.time.secs + 86400, ..full_summary.time };
        let cases = [
            ("unattested beside a full key's snapshot", forge(&envelope_of(&full_file), &full_summary)),
            (
                "naming another envelope",
                forge(
                    &envelope_of(&writer_file),
                    &MaintenanceSummary { snapshot: [7; 32], ..writer_summary.clone() },
                ),
            ),
            (
                "disagreeing with its snapshot",
                forge(
                    &envelope_of(&writer_file),
                    &MaintenanceSummary { time: later, ..writer_summary.clone() },
                ),
            ),
        ];
        for (what, bytes) in &cases {
            assert_eq!(
                full.open_snapshot_file(bytes, Summary::Verified).err().map(|e| e.kind()),
                Some(ErrorKind::Corrupt),
                "{what}"
            );
        }
        for (what, bytes) in &cases[..2] {
            assert_eq!(
                keeper.open_snapshot_file(bytes, Summary::Skipped).err().map(|e| e.kind()),
                Some(ErrorKind::Corrupt),
                "{what}"
            );
        }
        // The maintenance key cannot tell the third from the real one: both holding one
        // envelope, neither counts toward a rule.
        let planted = full.store_sealed(FileType::Snapshot, &cases[2].1).unwrap();
        let (views, damaged) = keeper.snapshots_and_damage().unwrap();
        assert_eq!(views.len(), 1, "only the full key's snapshot is judged");
        assert_eq!(views[0].1.written_by, WrittenBy::FullKey);
        assert_eq!(damaged.len(), 2);
        assert!(damaged.iter().any(|(n, _)| *n == crate::id::hex_encode(&planted)));
        // A full key decides by the envelopes: the forgery holds up none of its commands,
        // and its check names the forged file alone.
        let (listed, damaged) = full.snapshots_and_damage().unwrap();
        assert!(damaged.is_empty() && listed.len() == 3, "{damaged:?}");
        let report = crate::ops::check::check(&full, &Default::default(), &Default::default()).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].object.contains(&crate::id::hex_encode(&planted)));
    }
}
