//! Retention: which snapshots a policy keeps, and why. Pure planning; deleting the
//! snapshot objects the plan drops is one call to [`remove_snapshots`].
//!
//! Snapshots are grouped (by default by host and paths) and each group is judged on its
//! own, newest first. `last N` keeps the N newest. `hourly/daily/weekly/monthly/yearly N`
//! keep the newest snapshot of each of the N most recent calendar periods that hold a
//! snapshot, in the local time zone (weeks are ISO weeks, starting on Monday). `within`
//! keeps every snapshot not older than the span before now. `tags` keeps every snapshot
//! carrying one of the tags. A snapshot is kept if any rule keeps it; the output names
//! every rule that did.
//!
//! Snapshot times are whatever their writer said, and a backup-only key (a compromised
//! host) can write snapshots with any time into any group. So (format-spec/retention.md):
//! - a snapshot dated after `now` is kept, reported, and counts toward no rule until its
//!   time comes (else one dated 2099 would be "the newest" for ever);
//! - so is one dated more than [`CLOCK_SKEW`] after it reached the store, where the store
//!   stamps arrivals by its own clock (`cairn serve`): its time is forged, for ever;
//! - the rules are applied twice: to every snapshot of the group, and to the snapshots a
//!   full key wrote (proven by their attestation) alone. A full-key snapshot is kept if
//!   either keeps it, so snapshots no full key wrote can never push one out.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::envelope::WrittenBy;
use crate::format::snapshot::Snapshot;
use crate::format::Timespec;
use crate::id::SnapshotId;
use crate::repo::Repository;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// How much later than its arrival at the store a snapshot may say it was made before it
/// counts as forged: the clocks of a host and of its server may differ this much.
pub const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

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
    /// Dated after the time of the plan, or forged: kept, and counted toward no rule.
    pub future: bool,
    /// Dated more than [`CLOCK_SKEW`] after it reached the store.
    pub forged: bool,
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

/// Apply `policy` to `snapshots` (any order) in time zone `tz`, at time `now`.
pub fn plan(
    snapshots: Vec<(SnapshotId, Snapshot)>,
    policy: &RetentionPolicy,
    group_by: GroupBy,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Vec<Group>> {
    plan_with_arrivals(snapshots, &HashMap::new(), policy, group_by, tz, now)
}

/// When each snapshot reached the store, where the store's own clock says so
/// ([`crate::backend::Backend::arrival_is_authoritative`]); empty elsewhere.
pub fn arrivals(repo: &Repository, ids: &[SnapshotId]) -> Result<HashMap<SnapshotId, Timestamp>> {
    let backend = repo.backend();
    let mut out = HashMap::new();
    if !backend.arrival_is_authoritative() {
        return Ok(out);
    }
    for id in ids {
        if let Some(t) = backend.modified(FileType::Snapshot, &id.to_hex())? {
            if let Ok(ts) = Timestamp::try_from(t) {
                out.insert(*id, ts);
            }
        }
    }
    Ok(out)
}

/// [`plan`], with the arrival times of snapshots at the store: a snapshot dated more than
/// [`CLOCK_SKEW`] after its arrival is forged, kept and counted toward no rule.
pub fn plan_with_arrivals(
    snapshots: Vec<(SnapshotId, Snapshot)>,
    arrivals: &HashMap<SnapshotId, Timestamp>,
    policy: &RetentionPolicy,
    group_by: GroupBy,
    tz: &TimeZone,
    now: Timestamp,
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
    groups.into_iter().map(|(key, list)| judge_group(key, list, arrivals, policy, tz, now)).collect()
}

fn judge_group(
    key: String,
    mut list: Vec<(SnapshotId, Snapshot)>,
    arrivals: &HashMap<SnapshotId, Timestamp>,
    policy: &RetentionPolicy,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Group> {
    list.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
    let time = |s: &Snapshot| Timestamp::new(s.time.secs, s.time.nanos as i32);
    let mut decisions: Vec<Decision> = list
        .into_iter()
        .map(|(id, snapshot)| {
            let t = time(&snapshot).ok();
            let forged = match (t, arrivals.get(&id)) {
                (Some(t), Some(arrived)) => arrived.checked_add(CLOCK_SKEW).is_ok_and(|limit| t > limit),
                _ => false,
            };
            let future = forged || t.is_none_or(|t| t > now);
            let reasons = match (forged, future) {
                (true, _) => vec!["dated after it reached the store".to_string()],
                (false, true) => vec!["dated in the future".to_string()],
                _ => Vec::new(),
            };
            Decision { id, snapshot, reasons, future, forged }
        })
        .collect();
    let current: Vec<usize> = (0..decisions.len()).filter(|&i| !decisions[i].future).collect();
    let by_full: Vec<usize> =
        current.iter().copied().filter(|&i| decisions[i].snapshot.written_by == WrittenBy::FullKey).collect();
    let all_reasons = apply_rules(&decisions, &current, policy, tz, now)?;
    let full_reasons = apply_rules(&decisions, &by_full, policy, tz, now)?;
    for (i, reasons) in current.iter().zip(all_reasons) {
        decisions[*i].reasons = reasons;
    }
    for (i, reasons) in by_full.iter().zip(full_reasons) {
        for r in reasons {
            let r = format!("{r} (full-key snapshots)");
            if !decisions[*i].reasons.iter().any(|have| r.starts_with(have.as_str())) {
                decisions[*i].reasons.push(r);
            }
        }
    }
    Ok(Group { key, decisions })
}

/// The reasons `policy` keeps each of the snapshots at `members` (positions in
/// `decisions`, newest first), judged among those snapshots alone.
fn apply_rules(
    decisions: &[Decision],
    members: &[usize],
    policy: &RetentionPolicy,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new(); members.len()];
    let snap = |k: usize| &decisions[members[k]].snapshot;
    let zoned =
        |t: Timespec| Timestamp::new(t.secs, t.nanos as i32).map(|ts| ts.to_zoned_datetime(tz.clone()));
    for (k, reasons) in out.iter_mut().enumerate() {
        if (k as u32) < policy.last {
            reasons.push(format!("last {}", policy.last));
        }
        if snap(k).tags.iter().any(|t| policy.tags.contains(t)) {
            reasons.push("tag".into());
        }
    }
    if let Some(w) = policy.within {
        let cutoff = now
            .to_zoned_datetime(tz.clone())
            .checked_sub(w.span()?)
            .map_err(|e| Error::invalid(format!("--keep-within: {e}")))?
            .timestamp();
        for (k, reasons) in out.iter_mut().enumerate() {
            let t = Timestamp::new(snap(k).time.secs, snap(k).time.nanos as i32);
            if t.is_ok_and(|t| t >= cutoff) {
                reasons.push("within".into());
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
        for (k, reasons) in out.iter_mut().enumerate() {
            if left == 0 {
                break;
            }
            let z = zoned(snap(k).time).map_err(|e| Error::invalid(format!("snapshot time: {e}")))?;
            let b = bucket(&z);
            // Newest first: the first snapshot of each new period is that period's newest.
            if last_bucket != Some(b) {
                last_bucket = Some(b);
                left -= 1;
                reasons.push(format!("{name} {count}"));
            }
        }
    }
    Ok(out)
}

/// Delete the snapshot objects of the dropped decisions. Data stays until `prune`.
pub fn remove_snapshots(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    let names: Vec<String> = ids.iter().map(|i| i.to_hex()).collect();
    crate::ops::object_lock::note_deleted(repo, FileType::Snapshot, &names)?;
    let Some((first, rest)) = names.split_first() else { return Ok(()) };
    repo.backend().remove(FileType::Snapshot, first)?;
    crate::failpoint::hit("forget:after-first-removal");
    // The others at once: each removal waits on a round trip (a remote store) or on its
    // folder's sync (a local one), and those overlap.
    crate::ops::read_pool::install_for_removals(repo, || {
        use rayon::prelude::*;
        rest.par_iter().try_for_each(|name| repo.backend().remove(FileType::Snapshot, name))
    })??;
    crate::failpoint::hit("forget:after-removals");
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
            written_by: Default::default(),
        };
        (SnapshotId([n; 32]), s)
    }

    fn at(rfc3339: &str) -> Timestamp {
        rfc3339.parse().unwrap()
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
            kept(&plan(snaps.clone(), &p, GroupBy::default(), &utc, at("2027-01-04T07:00:00Z")).unwrap())
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
    fn future_snapshots_are_kept_and_count_toward_no_rule_and_within_counts_from_now() {
        let snaps = vec![
            snap(1, "2026-11-01T10:00:00Z", &[]),
            snap(2, "2026-11-02T10:00:00Z", &[]),
            snap(3, "2099-01-01T00:00:00Z", &[]),
        ];
        let now = at("2026-11-03T00:00:00Z");
        let p = RetentionPolicy { last: 1, ..Default::default() };
        let groups = plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC, now).unwrap();
        assert_eq!(kept(&groups), vec![2, 3], "the 2099 snapshot does not take the one 'last' place");
        let d3 = groups[0].decisions.iter().find(|d| d.id.0[0] == 3).unwrap();
        assert!(d3.future && d3.keep());
        let p = RetentionPolicy { within: Some(Within::parse("36h").unwrap()), ..Default::default() };
        let groups = plan(snaps, &p, GroupBy::default(), &TimeZone::UTC, now).unwrap();
        assert_eq!(kept(&groups), vec![2, 3], "36 hours before now, not before the newest");
    }

    #[test]
    fn snapshots_dated_after_their_arrival_are_forged_and_count_toward_no_rule() {
        let snaps = vec![
            snap(1, "2026-11-01T10:00:00Z", &[]),
            snap(2, "2026-11-02T10:00:00Z", &[]),
            // Claims a time two hours after the server received it (still before now).
            snap(3, "2026-11-02T23:00:00Z", &[]),
            // Within the allowed clock skew of its arrival: honest.
            snap(4, "2026-11-02T12:10:00Z", &[]),
        ];
        let mut arrivals = HashMap::new();
        arrivals.insert(SnapshotId([3; 32]), at("2026-11-02T21:00:00Z"));
        arrivals.insert(SnapshotId([4; 32]), at("2026-11-02T12:00:00Z"));
        let now = at("2026-11-03T00:00:00Z");
        let p = RetentionPolicy { last: 1, ..Default::default() };
        let groups =
            plan_with_arrivals(snaps, &arrivals, &p, GroupBy::default(), &TimeZone::UTC, now).unwrap();
        assert_eq!(kept(&groups), vec![3, 4], "the forged snapshot does not take the one 'last' place");
        let d = |n: u8| groups[0].decisions.iter().find(|d| d.id.0[0] == n).unwrap().clone();
        assert!(d(3).forged && d(3).keep() && d(3).reasons == ["dated after it reached the store"]);
        assert!(!d(4).forged && d(4).reasons == ["last 1"]);
    }

    #[test]
    fn snapshots_no_full_key_wrote_never_push_out_a_full_key_snapshot() {
        let mut snaps = Vec::new();
        for (n, t) in [(1, "2026-11-01T10:00:00Z"), (2, "2026-11-02T10:00:00Z"), (3, "2026-11-03T10:00:00Z")]
        {
            let mut s = snap(n, t, &[]);
            s.1.written_by = WrittenBy::FullKey;
            snaps.push(s);
        }
        // A compromised host floods the group with backdated snapshots.
        for n in 0..10u8 {
            let mut s = snap(100 + n, &format!("2026-11-03T1{n}:30:00Z"), &[]);
            s.1.written_by = WrittenBy::BackupOnlyKey;
            snaps.push(s);
        }
        let now = at("2026-11-04T00:00:00Z");
        for p in [
            RetentionPolicy { last: 3, ..Default::default() },
            RetentionPolicy { daily: 3, ..Default::default() },
            RetentionPolicy { hourly: 5, ..Default::default() },
        ] {
            let groups = plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC, now).unwrap();
            let k = kept(&groups);
            for full in [1, 2, 3] {
                assert!(k.contains(&full), "{p:?}: full-key snapshot {full} dropped: {k:?}");
            }
            if p.daily == 0 {
                // The flood fills the newest places; snapshot 1 stays only by the rule
                // judged among full-key snapshots, and says so.
                let d = groups[0].decisions.iter().find(|d| d.id.0[0] == 1).unwrap();
                assert!(d.reasons.iter().any(|r| r.ends_with("(full-key snapshots)")), "{:?}", d.reasons);
            }
        }
        // Judged among all, the flood keeps what the policy keeps of it.
        let p = RetentionPolicy { last: 3, ..Default::default() };
        let k = kept(&plan(snaps, &p, GroupBy::default(), &TimeZone::UTC, now).unwrap());
        assert_eq!(k, vec![1, 2, 3, 107, 108, 109]);
    }

    #[test]
    fn local_time_zone_decides_the_day() {
        // 23:30 UTC on Dec 31 is already Jan 1 in Berlin: two different days there.
        let snaps = vec![snap(1, "2026-12-31T20:00:00Z", &[]), snap(2, "2026-12-31T23:30:00Z", &[])];
        let p = RetentionPolicy { daily: 5, ..Default::default() };
        assert_eq!(
            kept(
                &plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC, at("2027-06-01T00:00:00Z"))
                    .unwrap()
            ),
            vec![2]
        );
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(1)));
        assert_eq!(
            kept(&plan(snaps, &p, GroupBy::default(), &berlin, at("2027-06-01T00:00:00Z")).unwrap()),
            vec![1, 2]
        );
    }

    #[test]
    fn tags_groups_reasons_and_refusals() {
        let mut snaps =
            vec![snap(1, "2026-01-01T00:00:00Z", &["keep"]), snap(2, "2026-02-01T00:00:00Z", &[])];
        let mut other = snap(3, "2026-01-15T00:00:00Z", &[]);
        other.1.host = "other".into();
        snaps.push(other);
        let p = RetentionPolicy { last: 1, tags: vec!["keep".into()], ..Default::default() };
        let groups =
            plan(snaps.clone(), &p, GroupBy::default(), &TimeZone::UTC, at("2027-06-01T00:00:00Z")).unwrap();
        assert_eq!(groups.len(), 2, "two hosts, two groups");
        assert_eq!(kept(&groups), vec![1, 2, 3]);
        let d1 = groups.iter().flat_map(|g| &g.decisions).find(|d| d.id.0[0] == 1).unwrap();
        assert_eq!(d1.reasons, vec!["tag".to_string()]);
        let one =
            plan(snaps.clone(), &p, GroupBy::parse("").unwrap(), &TimeZone::UTC, at("2027-06-01T00:00:00Z"))
                .unwrap();
        assert_eq!(kept(&one), vec![1, 2], "one group: the other host's snapshot is not the newest");
        assert!(plan(
            snaps,
            &RetentionPolicy::default(),
            GroupBy::default(),
            &TimeZone::UTC,
            at("2027-06-01T00:00:00Z")
        )
        .is_err());
        assert!(Within::parse("3x").is_err() && Within::parse("12").is_err() && Within::parse("").is_err());
        assert_eq!(Within::parse("1y6m").unwrap(), Within { years: 1, months: 6, ..Default::default() });
        assert!(GroupBy::parse("host,size").is_err());
    }
}
