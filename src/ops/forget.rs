//! Retention: which snapshots a policy keeps, and why. Pure planning; deleting the
//! snapshot objects the plan drops is one call to [`remove_snapshots`].
//!
//! Snapshots are grouped (by default by host and paths) and each group is judged on its
//! own, newest first. `last N` keeps the N newest. `hourly/daily/weekly/monthly/yearly N`
//! keep the newest snapshot of each of the N most recent calendar periods that hold a
//! snapshot, in the local time zone (weeks are ISO weeks, starting on Monday). `within`
//! keeps every snapshot not older than the span before the group's newest snapshot.
//! `tags` keeps every snapshot carrying one of the tags. A snapshot is kept if any rule
//! keeps it; the output names every rule that did.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::Timespec;
use crate::id::SnapshotId;
use crate::repo::Repository;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Within>,
    pub tags: Vec<String>,
}

/// A calendar span such as "30d" or "1y6m".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub weeks: i64,
    pub days: i64,
    pub hours: i64,
}

impl Within {
    /// Parse "30d", "2w", "6m", "1y", "12h" and sums like "1y6m".
    pub fn parse(s: &str) -> Result<Within> {
        let bad = || Error::invalid(format!("'{s}' is not a span: use e.g. 30d, 2w, 6m, 1y, 12h or 1y6m"));
        let mut w = Within::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'w' => w.weeks += n,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || w == Within::default() {
            return Err(bad());
        }
        Ok(w)
    }

    fn span(&self) -> Result<Span> {
        let out = || Error::invalid("the --keep-within span is too large");
        Span::new()
            .try_years(self.years)
            .and_then(|s| s.try_months(self.months))
            .and_then(|s| s.try_weeks(self.weeks))
            .and_then(|s| s.try_days(self.days))
            .and_then(|s| s.try_hours(self.hours))
            .map_err(|_| out())
    }
}

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// What snapshots are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl GroupBy {
    /// Parse "host,paths,tags" (any subset; empty: one group).
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(Error::invalid(format!(
                        "--group-by takes host, paths and tags, not '{part}'"
                    )))
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &Snapshot) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push(format!("host {}", s.host));
        }
        if self.paths {
            let p: Vec<String> = s.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            parts.push(format!("paths {}", p.join(" ")));
        }
        if self.tags {
            let mut t = s.tags.clone();
            t.sort();
            parts.push(format!("tags {}", t.join(",")));
        }
        parts.join(", ")
    }
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// The rules that keep it; empty means it is forgotten.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// A group of snapshots and the decision for each, newest first.
#[derive(Clone, Debug)]
pub struct Group {
    pub key: String,
    pub decisions: Vec<Decision>,
}

/// Apply `policy` to `snapshots` (any order) in time zone `tz`.
pub fn plan(
    snapshots: Vec<(SnapshotId, Snapshot)>,
    policy: &RetentionPolicy,
    group_by: GroupBy,
    tz: &TimeZone,
) -> Result<Vec<Group>> {
    if policy.is_empty() {
        return Err(Error::invalid(
            "no retention rule given: add --keep-last, --keep-daily, ... (forget never removes everything by default)",
        ));
    }
    let mut groups: BTreeMap<String, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snapshots {
        groups.entry(group_by.key(&s)).or_default().push((id, s));
    }
    groups.into_iter().map(|(key, list)| judge_group(key, list, policy, tz)).collect()
}

fn judge_group(
    key: String,
    mut list: Vec<(SnapshotId, Snapshot)>,
    policy: &RetentionPolicy,
    tz: &TimeZone,
) -> Result<Group> {
    list.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
    let mut decisions: Vec<Decision> =
        list.into_iter().map(|(id, snapshot)| Decision { id, snapshot, reasons: Vec::new() }).collect();
    let zoned =
        |t: Timespec| Timestamp::new(t.secs, t.nanos as i32).map(|ts| ts.to_zoned_datetime(tz.clone()));
    for (i, d) in decisions.iter_mut().enumerate() {
        if (i as u32) < policy.last {
            d.reasons.push(format!("last {}", policy.last));
        }
        if d.snapshot.tags.iter().any(|t| policy.tags.contains(t)) {
            d.reasons.push("tag".into());
        }
    }
    if let (Some(w), Some(newest)) = (policy.within, decisions.first().map(|d| d.snapshot.time)) {
        let cutoff = zoned(newest)
            .map_err(|e| Error::invalid(format!("snapshot time: {e}")))?
            .checked_sub(w.span()?)
            .map_err(|e| Error::invalid(format!("--keep-within: {e}")))?
            .timestamp();
        for d in decisions.iter_mut() {
            let t = Timestamp::new(d.snapshot.time.secs, d.snapshot.time.nanos as i32);
            if t.is_ok_and(|t| t >= cutoff) {
                d.reasons.push("within".into());
            }
        }
    }
    type Bucket = fn(&jiff::ZonedDateTime) -> (i32, i32, i32, i32);
    let rules: [(&str, u32, Bucket); 5] = [
        ("hourly", policy.hourly, |z| (z.year() as i32, z.month() as i32, z.day() as i32, z.hour() as i32)),
        ("daily", policy.daily, |z| (z.year() as i32, z.month() as i32, z.day() as i32, 0)),
        ("weekly", policy.weekly, |z| {
            let w = z.iso_week_date();
            (w.year() as i32, w.week() as i32, 0, 0)
        }),
        ("monthly", policy.monthly, |z| (z.year() as i32, z.month() as i32, 0, 0)),
        ("yearly", policy.yearly, |z| (z.year() as i32, 0, 0, 0)),
    ];
    for (name, count, bucket) in rules {
        let mut left = count;
        let mut last_bucket = None;
        for d in decisions.iter_mut() {
            if left == 0 {
                break;
            }
            let z = zoned(d.snapshot.time).map_err(|e| Error::invalid(format!("snapshot time: {e}")))?;
            let b = bucket(&z);
            // Newest first: the first snapshot of each new period is that period's newest.
            if last_bucket != Some(b) {
                last_bucket = Some(b);
                left -= 1;
                d.reasons.push(format!("{name} {count}"));
            }
        }
    }
    Ok(Group { key, decisions })
}

/// Delete the snapshot objects of the dropped decisions. Data stays until `prune`.
pub fn remove_snapshots(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    for id in ids {
        repo.backend().remove(FileType::Snapshot, &id.to_hex())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::id::TreeId;

    fn snap(n: u8, rfc3339: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        let ts: Timestamp = rfc3339.parse().unwrap();
        let s = Snapshot {
            time: Timespec { secs: ts.as_second(), nanos: 0 },
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
        };
        (SnapshotId([n; 32]), s)
    }

    fn kept(groups: &[Group]) -> Vec<u8> {
        let mut k: Vec<u8> =
            groups.iter().flat_map(|g| &g.decisions).filter(|d| d.keep()).map(|d| d.id.0[0]).collect();
        k.sort();
        k
    }

    #[test]
    fn daily_weekly_monthly_across_month_year_and_iso_week_boundaries() {
        // Hand-computed: times in UTC. 2026-12-28 is a Monday (ISO week 53 of 2026);
        // 2027-01-03 is Sunday of that same ISO week; 2027-01-04 starts week 1 of 2027.
        let snaps = vec![
            snap(1, "2026-11-30T10:00:00Z", &[]), // Nov, week 49
            snap(2, "2026-11-30T22:00:00Z", &[]), // same day, newer: the day's keeper
            snap(3, "2026-12-27T09:00:00Z", &[]), // Sun, week 52
            snap(4, "2026-12-28T09:00:00Z", &[]), // Mon, week 53
            snap(5, "2026-12-31T23:00:00Z", &[]), // Thu, week 53, last of December
            snap(6, "2027-01-01T08:00:00Z", &[]), // Fri, week 53 of 2026, January 2027
            snap(7, "2027-01-03T20:00:00Z", &[]), // Sun, week 53: the week's newest
            snap(8, "2027-01-04T07:00:00Z", &[]), // Mon, week 1 of 2027
        ];
        let utc = TimeZone::UTC;
        let p = |f: fn(&mut RetentionPolicy)| {
            let mut p = RetentionPolicy::default();
            f(&mut p);
            kept(&plan(snaps.clone(), &p, GroupBy::default(), &utc).unwrap())
        };
        assert_eq!(p(|p| p.daily = 3), vec![6, 7, 8]);
        assert_eq!(p(|p| p.daily = 30), vec![2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p(|p| p.weekly = 3), vec![3, 7, 8]);
        assert_eq!(p(|p| p.weekly = 10), vec![2, 3, 7, 8]);
        assert_eq!(p(|p| p.monthly = 3), vec![2, 5, 8]);
        assert_eq!(p(|p| p.yearly = 5), vec![5, 8]);
        assert_eq!(p(|p| p.last = 2), vec![7, 8]);
        assert_eq!(p(|p| p.within = Some(Within::parse("4d").unwrap())), vec![5, 6, 7, 8]);
        assert_eq!(
            p(|p| {
                p.daily = 1;
                p.monthly = 2
            }),
            vec![5, 8]
        );
    }

    #[test]
    fn local_time_zone_decides_the_day() {
        // 23:30 UTC on Dec 31 is already Jan 1 in Berlin: two different days there.
        let snaps = vec![snap(1, "2026-12-31T20:00:00Z", &[]), snap(2, "2026-12-31T23:30:00Z", &[])];
        let p = RetentionPolicy { daily: 5, ..Default::default() };
        assert_eq!(kept(&plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC).unwrap()), vec![2]);
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(1)));
        assert_eq!(kept(&plan(snaps, &p, GroupBy::default(), &berlin).unwrap()), vec![1, 2]);
    }

    #[test]
    fn tags_groups_reasons_and_refusals() {
        let mut snaps =
            vec![snap(1, "2026-01-01T00:00:00Z", &["keep"]), snap(2, "2026-02-01T00:00:00Z", &[])];
        let mut other = snap(3, "2026-01-15T00:00:00Z", &[]);
        other.1.host = "other".into();
        snaps.push(other);
        let p = RetentionPolicy { last: 1, tags: vec!["keep".into()], ..Default::default() };
        let groups = plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC).unwrap();
        assert_eq!(groups.len(), 2, "two hosts, two groups");
        assert_eq!(kept(&groups), vec![1, 2, 3]);
        let d1 = groups.iter().flat_map(|g| &g.decisions).find(|d| d.id.0[0] == 1).unwrap();
        assert_eq!(d1.reasons, vec!["tag".to_string()]);
        let one = plan(snaps.clone(), &p, GroupBy::parse("").unwrap(), &TimeZone::UTC).unwrap();
        assert_eq!(kept(&one), vec![1, 2], "one group: the other host's snapshot is not the newest");
        assert!(plan(snaps, &RetentionPolicy::default(), GroupBy::default(), &TimeZone::UTC).is_err());
        assert!(Within::parse("3x").is_err() && Within::parse("12").is_err() && Within::parse("").is_err());
        assert_eq!(Within::parse("1y6m").unwrap(), Within { years: 1, months: 6, ..Default::default() });
        assert!(GroupBy::parse("host,size").is_err());
    }
}
