//! Tag: edit the tags and labels of snapshots. A snapshot's id is the hash of its record,
//! so an edited snapshot is a new object; it names the old one as its original (or keeps
//! the original the old one named) and is stored before the old one is deleted
//! ([`Repository::replace_snapshot`]), so a crash leaves both, never neither.
//!
//! What the edit does to one snapshot is pure ([`TagEdit::apply`]); the command and the
//! model tests share [`tag_snapshots`], which stores the results.

use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::rewrite::set_label;
use crate::repo::Repository;

/// The changes `cairn tag` makes, applied in this order: `set` replaces every tag (when
/// given; empty strings in it are dropped), then `remove`, then `add`; labels are removed,
/// then set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagEdit {
    pub set: Vec<String>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub remove_labels: Vec<String>,
}

impl TagEdit {
    /// Whether the edit changes nothing whatever it is applied to.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.labels.is_empty()
            && self.remove_labels.is_empty()
    }

    /// `snap` (stored as `id`) with the edit made, or None when its tags and labels stay
    /// as they are (nothing is then stored).
    pub fn apply(&self, id: SnapshotId, snap: &Snapshot) -> Option<Snapshot> {
        let mut new = snap.clone();
        if !self.set.is_empty() {
            new.tags = self.set.iter().filter(|t| !t.is_empty()).cloned().collect();
        }
        new.tags.retain(|t| !self.remove.contains(t));
        for t in &self.add {
            if !new.tags.contains(t) {
                new.tags.push(t.clone());
            }
        }
        new.labels.retain(|(k, _)| !self.remove_labels.contains(k));
        for (k, v) in &self.labels {
            set_label(&mut new, k, v.clone());
        }
        if new.tags == snap.tags && new.labels == snap.labels {
            return None;
        }
        new.original = snap.original.or(Some(id));
        Some(new)
    }
}

/// One snapshot the edit replaced.
#[derive(Clone, Debug)]
pub struct Retagged {
    pub old: SnapshotId,
    pub new: SnapshotId,
    pub snapshot: Snapshot,
}

/// Apply `edit` to each of `selected`, storing every changed snapshot in place of its
/// old one; `done` hears of each as soon as it is stored (the command logs it then, so an
/// error later on does not hide what was already changed).
pub fn tag_snapshots(
    repo: &Repository,
    selected: &[(SnapshotId, Snapshot)],
    edit: &TagEdit,
    mut done: impl FnMut(&Retagged),
) -> Result<Vec<Retagged>> {
    repo.require_full_key("edit snapshots")?;
    let mut out = Vec::new();
    for (old, snap) in selected {
        let Some(new) = edit.apply(*old, snap) else { continue };
        let id = repo.replace_snapshot(old, &new)?;
        let r = Retagged { old: *old, new: id, snapshot: new };
        done(&r);
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::format::Timespec;
    use crate::id::TreeId;

    fn snap(tags: &[&str]) -> Snapshot {
        Snapshot {
            time: Timespec::default(),
            host: "gw".into(),
            user: "root".into(),
            paths: vec![b"/opt/gw".to_vec()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: vec![],
            excludes: vec![],
            tree: TreeId([0; 32]),
            parent: None,
            original: None,
            summary: Summary::default(),
            program: String::new(),
            written_by: Default::default(),
        }
    }

    #[test]
    fn set_then_remove_then_add_and_no_change_stores_nothing() {
        let id = SnapshotId([1; 32]);
        let edit = TagEdit {
            set: vec!["a".into(), "".into(), "b".into()],
            remove: vec!["b".into()],
            add: vec!["c".into(), "a".into()],
            labels: vec![("owner".into(), "platform".into())],
            ..Default::default()
        };
        let new = edit.apply(id, &snap(&["old"])).unwrap();
        assert_eq!(new.tags, vec!["a", "c"]);
        assert_eq!(new.labels, vec![("owner".to_string(), "platform".to_string())]);
        assert_eq!(new.original, Some(id), "the edit names what it was made from");
        // An edit of an edit keeps the first original.
        let again = TagEdit { add: vec!["d".into()], ..Default::default() }.apply(SnapshotId([2; 32]), &new);
        assert_eq!(again.unwrap().original, Some(id));
        // Adding a tag that is there changes nothing: no new snapshot.
        assert!(TagEdit { add: vec!["x".into()], ..Default::default() }.apply(id, &snap(&["x"])).is_none());
        assert!(TagEdit::default().is_empty() && !edit.is_empty());
    }
}
