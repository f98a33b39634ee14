//! How snapshots are named in a mounted repository: the fixed folders above the snapshots.
//!
//! ```text
//! ids/<short id>/            each snapshot's root folder
//! times/<local time>/        the same snapshots by time, YYYY-MM-DDTHH:MM:SS
//! hosts/<host>/<time>/       by host
//! tags/<tag>/<time>/         by tag (a snapshot with several tags is in several folders)
//! latest -> ids/<short id>   the newest snapshot
//! ```
//!
//! Snapshots with equal times (to the second) in one folder get "-1", "-2"... after the
//! time, in the order of their full time and id, so a name stays the same while the
//! repository does not change.

use crate::format::snapshot::Snapshot;
use crate::format::tree::valid_name;
use crate::format::Timespec;
use crate::id::SnapshotId;
use std::collections::{BTreeMap, HashMap};

/// One entry of the folders above the snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A folder with its entries, sorted by name.
    Dir(Vec<(Vec<u8>, Entry)>),
    /// The root folder of the snapshot at this index of the list given to [`layout`].
    Snapshot(usize),
    /// A symbolic link with this target.
    Link(Vec<u8>),
}

/// The root folder of the view of `snapshots` (oldest first, as
/// [`crate::Repository::snapshots`] lists them), times shown in `tz`.
pub fn layout(snapshots: &[(SnapshotId, Snapshot)], tz: &jiff::tz::TimeZone) -> Entry {
    let ids = id_names(snapshots);
    let all: Vec<usize> = (0..snapshots.len()).collect();
    let mut by_host: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    let mut by_tag: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (i, (_, s)) in snapshots.iter().enumerate() {
        by_host.entry(safe_name(&s.host)).or_default().push(i);
        for t in &s.tags {
            let group = by_tag.entry(safe_name(t)).or_default();
            if !group.contains(&i) {
                group.push(i);
            }
        }
    }
    let by_time = |group: &[usize]| Entry::Dir(time_names(snapshots, group, tz));
    let grouped = |groups: BTreeMap<Vec<u8>, Vec<usize>>| {
        Entry::Dir(groups.into_iter().map(|(name, group)| (name, by_time(&group))).collect())
    };
    let mut root = vec![
        (b"hosts".to_vec(), grouped(by_host)),
        (
            b"ids".to_vec(),
            Entry::Dir(ids.iter().cloned().enumerate().map(|(i, n)| (n, Entry::Snapshot(i))).collect()),
        ),
        (b"tags".to_vec(), grouped(by_tag)),
        (b"times".to_vec(), by_time(&all)),
    ];
    if let Some(newest) = ids.last() {
        let mut target = b"ids/".to_vec();
        target.extend_from_slice(newest);
        root.push((b"latest".to_vec(), Entry::Link(target)));
    }
    root.sort_by(|a, b| a.0.cmp(&b.0));
    Entry::Dir(root)
}

/// Each snapshot's short id; snapshots whose short ids collide get their full id.
fn id_names(snapshots: &[(SnapshotId, Snapshot)]) -> Vec<Vec<u8>> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for (id, _) in snapshots {
        *count.entry(id.short()).or_default() += 1;
    }
    snapshots
        .iter()
        .map(|(id, _)| if count[&id.short()] > 1 { id.to_hex() } else { id.short() }.into_bytes())
        .collect()
}

/// The snapshots of `group` named by local time, sorted by name; equal names get "-N".
fn time_names(
    snapshots: &[(SnapshotId, Snapshot)],
    group: &[usize],
    tz: &jiff::tz::TimeZone,
) -> Vec<(Vec<u8>, Entry)> {
    let mut order = group.to_vec();
    order.sort_by(|&a, &b| {
        let (x, y) = (&snapshots[a], &snapshots[b]);
        x.1.time.cmp(&y.1.time).then(x.0.cmp(&y.0))
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(Vec<u8>, Entry)> = order
        .into_iter()
        .map(|i| {
            let base = local_time(snapshots[i].1.time, tz);
            let n = seen.entry(base.clone()).or_default();
            let name = if *n == 0 { base } else { format!("{base}-{n}") };
            *n += 1;
            (name.into_bytes(), Entry::Snapshot(i))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// "YYYY-MM-DDTHH:MM:SS" in `tz`.
pub fn local_time(t: Timespec, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::new(t.secs, 0) {
        Ok(ts) => ts.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        Err(_) => format!("@{}", t.secs),
    }
}

/// A host or tag as one file name: '/' and NUL become '_'; an empty name, "." and ".."
/// get a leading '_'.
fn safe_name(s: &str) -> Vec<u8> {
    let mut name: Vec<u8> = s.bytes().map(|b| if b == b'/' || b == 0 { b'_' } else { b }).collect();
    if !valid_name(&name) {
        name.insert(0, b'_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::id::TreeId;

    fn snap(id: u8, secs: i64, host: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        let mut raw = [0u8; 32];
        raw[0] = id;
        (
            SnapshotId(raw),
            Snapshot {
                time: Timespec { secs, nanos: 0 },
                host: host.into(),
                user: "u".into(),
                paths: vec![],
                tags: tags.iter().map(|t| t.to_string()).collect(),
                labels: vec![],
                excludes: vec![],
                tree: TreeId([0; 32]),
                parent: None,
                original: None,
                summary: Summary::default(),
                program: String::new(),
                written_by: Default::default(),
            },
        )
    }

    fn dir<'a>(e: &'a Entry, name: &str) -> &'a Entry {
        let Entry::Dir(entries) = e else { panic!("not a folder: {e:?}") };
        &entries.iter().find(|(n, _)| n == name.as_bytes()).unwrap_or_else(|| panic!("no {name}")).1
    }

    fn names(e: &Entry) -> Vec<String> {
        let Entry::Dir(entries) = e else { panic!("not a folder: {e:?}") };
        entries.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect()
    }

    #[test]
    fn snapshots_are_named_by_id_time_host_and_tag() {
        let utc = jiff::tz::TimeZone::UTC;
        // 2026-01-31T23:00:00Z twice (different sub-second times), then a day later.
        let mut b = snap(2, 1_769_900_400, "gw1", &["prod", "prod"]);
        b.1.time.nanos = 5;
        let snaps = vec![
            snap(1, 1_769_900_400, "gw1", &["prod"]),
            b,
            snap(3, 1_769_986_800, "a/b", &["..", "daily"]),
        ];
        let root = layout(&snaps, &utc);
        assert_eq!(names(&root), ["hosts", "ids", "latest", "tags", "times"]);
        assert_eq!(names(dir(&root, "ids")), ["01000000", "02000000", "03000000"]);
        assert_eq!(*dir(&root, "latest"), Entry::Link(b"ids/03000000".to_vec()));
        let times = dir(&root, "times");
        assert_eq!(names(times), ["2026-01-31T23:00:00", "2026-01-31T23:00:00-1", "2026-02-01T23:00:00"]);
        assert_eq!(*dir(times, "2026-01-31T23:00:00-1"), Entry::Snapshot(1));
        assert_eq!(names(dir(&root, "hosts")), ["a_b", "gw1"]);
        assert_eq!(names(dir(dir(&root, "hosts"), "gw1")), ["2026-01-31T23:00:00", "2026-01-31T23:00:00-1"]);
        assert_eq!(names(dir(&root, "tags")), ["_..", "daily", "prod"]);
        assert_eq!(names(dir(dir(&root, "tags"), "prod")).len(), 2, "a repeated tag lists a snapshot once");
        assert_eq!(*dir(dir(dir(&root, "tags"), "daily"), "2026-02-01T23:00:00"), Entry::Snapshot(2));
    }

    #[test]
    fn colliding_short_ids_get_full_ids_and_an_empty_repository_has_no_latest() {
        let mut a = snap(1, 0, "h", &[]);
        let mut b = snap(1, 0, "h", &[]);
        a.0 .0[31] = 1;
        b.0 .0[31] = 2;
        let root = layout(&[a.clone(), b], &jiff::tz::TimeZone::UTC);
        let ids = names(dir(&root, "ids"));
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], a.0.to_hex());
        let empty = layout(&[], &jiff::tz::TimeZone::UTC);
        assert_eq!(names(&empty), ["hosts", "ids", "tags", "times"]);
    }
}
