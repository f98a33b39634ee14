//! Which snapshots a command works on: the filter (host, tag, label, path) every command
//! shares, and what `latest` means under it.
//!
//! `latest` is the newest snapshot that passes the filter, so in a repository shared by
//! several hosts or jobs `restore latest --host gw1` never picks another host's backup.
//! An id prefix or a name names one snapshot whatever the filter says: the filter only
//! narrows what `latest` and "all snapshots" mean. This module loads nothing itself
//! beyond the snapshot list; it must not learn about any one command.

use super::Repository;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;

/// A snapshot passes when it matches every part given: any of `hosts`, any of `tags`,
/// all of `labels`, any of `paths` (a backed-up path, exactly). An empty filter passes
/// every snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// Only the snapshots a job labelled as its own (label `job`).
    pub fn job(name: &str) -> SnapshotFilter {
        SnapshotFilter { labels: vec![("job".into(), name.into())], ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.labels.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && (self.tags.is_empty() || s.tags.iter().any(|t| self.tags.contains(t)))
            && self.labels.iter().all(|l| s.labels.contains(l))
            && (self.paths.is_empty() || s.paths.iter().any(|p| self.paths.iter().any(|q| q.as_bytes() == p)))
    }

    /// The filter as the options that give it ("--host gw1 --label job=gw"), for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.hosts.iter().map(|h| format!("--host {h}")));
        parts.extend(self.tags.iter().map(|t| format!("--tag {t}")));
        parts.extend(self.labels.iter().map(|(k, v)| format!("--label {k}={v}")));
        parts.extend(self.paths.iter().map(|p| format!("--path {p}")));
        parts.join(" ")
    }

    /// The snapshots that pass, oldest first.
    pub fn apply(&self, all: Vec<(SnapshotId, Snapshot)>) -> Vec<(SnapshotId, Snapshot)> {
        all.into_iter().filter(|(_, s)| self.matches(s)).collect()
    }
}

/// A snapshot's type: its label `type` (set by `backup --type` or a job's `type`), else
/// `dump` for a stream stored by name (standard input, a dump command), else `files`;
/// `-` where only its summary is known (a maintenance key cannot tell a name from a path).
pub fn snapshot_type(s: &Snapshot) -> &str {
    match s.labels.iter().find(|(k, _)| k == "type") {
        Some((_, t)) => t,
        None if s.tree == super::snapshot_file::UNKNOWN_TREE => "-",
        None if s.paths.iter().any(|p| !p.starts_with(b"/")) => "dump",
        None => "files",
    }
}

/// Every readable snapshot that passes `filter`, oldest first.
pub fn matching(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(filter.apply(repo.snapshots()?))
}

/// The snapshot `spec` names: `latest` is the newest one passing `filter`; an id prefix
/// or a name is resolved as [`Repository::find_snapshot`] does, whatever the filter.
pub fn find(repo: &Repository, spec: &str, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
    if spec != "latest" || filter.is_empty() {
        return repo.find_snapshot(spec);
    }
    // A snapshot that cannot be read cannot be filtered either: it may be the one meant.
    let (good, damaged) = repo.snapshots_and_damage()?;
    super::latest_is_decidable(&damaged)?;
    newest(filter.apply(good), filter)
}

/// The newest of `matching` (oldest first), or an error that names the filter.
pub fn newest(
    mut matching: Vec<(SnapshotId, Snapshot)>,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Snapshot)> {
    matching.pop().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "no snapshot matches {}; `cairn snapshots {}` lists what does",
                filter.describe(),
                filter.describe()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Timespec;

    fn snap(host: &str, tags: &[&str], labels: &[(&str, &str)], path: &str) -> Snapshot {
        Snapshot {
            time: Timespec { secs: 0, nanos: 0 },
            host: host.into(),
            user: "root".into(),
            paths: vec![path.as_bytes().to_vec()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            excludes: Vec::new(),
            tree: crate::id::TreeId([0; 32]),
            parent: None,
            original: None,
            summary: Default::default(),
            program: String::new(),
            written_by: Default::default(),
        }
    }

    #[test]
    fn every_part_given_must_match() {
        let s = snap("gw1", &["prod"], &[("job", "gw"), ("env", "p")], "/opt/gw");
        let f = |hosts: &[&str], tags: &[&str], labels: &[(&str, &str)], paths: &[&str]| SnapshotFilter {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        };
        assert!(SnapshotFilter::default().matches(&s));
        assert!(f(&["gw2", "gw1"], &[], &[], &[]).matches(&s), "any host");
        assert!(!f(&["gw2"], &[], &[], &[]).matches(&s));
        assert!(f(&[], &["test", "prod"], &[], &[]).matches(&s), "any tag");
        assert!(!f(&[], &["test"], &[], &[]).matches(&s));
        assert!(f(&[], &[], &[("job", "gw"), ("env", "p")], &[]).matches(&s), "all labels");
        assert!(!f(&[], &[], &[("job", "gw"), ("env", "t")], &[]).matches(&s));
        assert!(f(&[], &[], &[], &["/opt/gw"]).matches(&s));
        assert!(!f(&[], &[], &[], &["/opt"]).matches(&s), "a path matches exactly");
        assert!(!f(&["gw1"], &["test"], &[], &[]).matches(&s), "every part");
        assert!(SnapshotFilter::job("gw").matches(&s) && !SnapshotFilter::job("kong").matches(&s));
        assert_eq!(f(&["gw1"], &[], &[("job", "gw")], &[]).describe(), "--host gw1 --label job=gw");
    }
}
