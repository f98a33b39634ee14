//! The retention plan (`cairn::ops::forget::plan`) against a plain reference written
//! from format-spec/retention.md and the README, on random snapshot sets: every rule
//! (last, hourly, daily, weekly, monthly, yearly, within, tags), time zones with and
//! without daylight saving (and a half-hour one), ISO weeks, equal timestamps,
//! snapshots dated after `now`, grouping, and the rule that snapshots no full key wrote
//! never push out one a full key wrote.
//!
//! The reference shares nothing with the code but the time zone database: it finds a
//! snapshot's local date and hour with jiff and does all calendar arithmetic (ISO
//! weeks, months back for `within`) itself, and it keeps "the newest snapshot of each
//! of the N most recent periods" by collecting periods, not by comparing neighbours.
//!
//! PROPTEST_CASES raises the number of cases (default 400).

mod common;

use cairn::format::envelope::WrittenBy;
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::Timespec;
use cairn::id::{SnapshotId, TreeId};
use cairn::ops::forget::{plan, GroupBy, RetentionPolicy, Within};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Instants near the edges retention must get right (UTC): year ends on ISO week 53 and
/// week 1, month ends, daylight saving changes in Europe and America, leap days.
const EDGES: [&str; 12] = [
    "2026-12-27T23:30:00Z", // Sunday: ISO week 52 of 2026 ends (in UTC)
    "2026-12-31T23:30:00Z", // already 2027 east of UTC, ISO week 53 of 2026
    "2027-01-03T22:59:59Z", // Sunday of ISO week 53 in UTC, Monday of week 1 in Berlin
    "2027-01-04T00:00:00Z", // Monday: ISO week 1 of 2027
    "2026-10-25T00:30:00Z", // Berlin falls back at 01:00 UTC
    "2026-10-25T01:30:00Z",
    "2026-03-29T00:59:59Z", // Berlin springs forward at 01:00 UTC
    "2026-11-01T05:30:00Z", // New York falls back at 06:00 UTC
    "2026-11-01T06:30:00Z",
    "2028-02-29T12:00:00Z", // leap day
    "2026-01-31T23:00:00Z", // a month end
    "2026-06-30T14:00:00Z",
];

const ZONES: [&str; 5] = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"];

#[derive(Clone, Debug)]
struct Snap {
    id: u8,
    time: Timestamp,
    host: &'static str,
    tags: Vec<String>,
    written_by: WrittenBy,
}

/// A time near one of the edges (often exactly on it, so several snapshots share it).
fn time_strategy() -> impl Strategy<Value = Timestamp> {
    (0..EDGES.len(), prop_oneof![3 => Just(0i64), 5 => -200_000i64..200_000, 1 => -40_000_000i64..40_000_000])
        .prop_map(|(e, off)| EDGES[e].parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(off))
}

fn snaps_strategy() -> impl Strategy<Value = Vec<Snap>> {
    proptest::collection::vec(
        (
            time_strategy(),
            prop_oneof![Just("gw1"), Just("gw2")],
            proptest::collection::vec(prop_oneof![Just("keep"), Just("x")], 0..2),
            prop_oneof![Just(WrittenBy::FullKey), Just(WrittenBy::BackupOnlyKey), Just(WrittenBy::Unknown)],
        ),
        0..24,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (time, host, tags, written_by))| Snap {
                id: i as u8,
                time,
                host,
                tags: tags.into_iter().map(String::from).collect(),
                written_by,
            })
            .collect()
    })
}

fn within_strategy() -> impl Strategy<Value = Option<Within>> {
    proptest::option::of(
        (0i64..2, 0i64..14, 0i64..3, 0i64..40, 0i64..50)
            .prop_map(|(years, months, weeks, days, hours)| Within { years, months, weeks, days, hours }),
    )
    .prop_map(|w| w.filter(|w| *w != Within::default()))
}

fn policy_strategy() -> impl Strategy<Value = RetentionPolicy> {
    (
        (0u32..4, 0u32..5, 0u32..6, 0u32..4),
        (0u32..4, 0u32..3),
        within_strategy(),
        proptest::collection::vec(prop_oneof![Just("keep".to_string()), Just("absent".to_string())], 0..2),
    )
        .prop_map(|((last, hourly, daily, weekly), (monthly, yearly), within, tags)| RetentionPolicy {
            last,
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
            within,
            tags,
        })
}

fn group_by_strategy() -> impl Strategy<Value = GroupBy> {
    (any::<bool>(), any::<bool>()).prop_map(|(host, tags)| GroupBy { host, paths: true, tags })
}

// ---------------------------------------------------------------------------------------
// Calendar arithmetic of the reference (proleptic Gregorian, days since 1970-01-01)
// ---------------------------------------------------------------------------------------

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
}

/// ISO 8601 week-numbering year and week: the week (Monday to Sunday) belongs to the
/// year its Thursday is in.
fn iso_week(y: i64, m: i64, d: i64) -> (i64, i64) {
    let days = days_from_civil(y, m, d);
    let monday_based = (days + 3).rem_euclid(7); // 1970-01-01 was a Thursday
    let thursday = days - monday_based + 3;
    let iso_year = civil_from_days(thursday).0;
    (iso_year, (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1)
}

/// Local (year, month, day, hour) of `t` in `tz`.
fn local(t: Timestamp, tz: &TimeZone) -> (i64, i64, i64, i64) {
    let dt = t.to_zoned_datetime(tz.clone()).datetime();
    (dt.year() as i64, dt.month() as i64, dt.day() as i64, dt.hour() as i64)
}

/// `now` minus `w` as the spec says: years, months, weeks and days on the local
/// calendar (the day clamped to the month's length, the wall time kept), then hours
/// as elapsed time.
fn within_cutoff(now: Timestamp, w: &Within, tz: &TimeZone) -> Timestamp {
    let dt = now.to_zoned_datetime(tz.clone()).datetime();
    let months = dt.year() as i64 * 12 + dt.month() as i64 - 1 - (w.years * 12 + w.months);
    let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    let d = (dt.day() as i64).min(days_in_month(y, m));
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) - w.weeks * 7 - w.days);
    let civil = jiff::civil::date(y as i16, m as i8, d as i8).to_datetime(dt.time());
    let back = tz.to_ambiguous_zoned_datetime(civil).compatible().unwrap().timestamp();
    back - jiff::SignedDuration::from_hours(w.hours)
}

// ---------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------

/// Reasons each of `members` (newest first) is kept by `p`, judged among them alone.
fn rules(members: &[&Snap], p: &RetentionPolicy, tz: &TimeZone, now: Timestamp) -> Vec<BTreeSet<String>> {
    let mut out = vec![BTreeSet::new(); members.len()];
    for (i, s) in members.iter().enumerate() {
        if (i as u32) < p.last {
            out[i].insert(format!("last {}", p.last));
        }
        if s.tags.iter().any(|t| p.tags.contains(t)) {
            out[i].insert("tag".to_string());
        }
        if p.within.is_some_and(|w| s.time >= within_cutoff(now, &w, tz)) {
            out[i].insert("within".to_string());
        }
    }
    type Period = fn((i64, i64, i64, i64)) -> (i64, i64, i64, i64);
    let periods: [(&str, u32, Period); 5] = [
        ("hourly", p.hourly, |l| l),
        ("daily", p.daily, |(y, m, d, _)| (y, m, d, 0)),
        ("weekly", p.weekly, |(y, m, d, _)| {
            let (wy, w) = iso_week(y, m, d);
            (wy, w, 0, 0)
        }),
        ("monthly", p.monthly, |(y, m, _, _)| (y, m, 0, 0)),
        ("yearly", p.yearly, |(y, _, _, _)| (y, 0, 0, 0)),
    ];
    for (name, n, period) in periods {
        let mut seen = HashSet::new();
        for (i, s) in members.iter().enumerate() {
            // Newest first: the first snapshot met in a period is its newest.
            if seen.len() < n as usize && seen.insert(period(local(s.time, tz))) {
                out[i].insert(format!("{name} {n}"));
            }
        }
    }
    out
}

/// Group key -> (snapshot id -> (kept reasons, dated in the future)).
type Verdicts = BTreeMap<Vec<String>, BTreeMap<u8, (BTreeSet<String>, bool)>>;

fn reference(snaps: &[Snap], p: &RetentionPolicy, g: GroupBy, tz: &TimeZone, now: Timestamp) -> Verdicts {
    let mut groups: BTreeMap<Vec<String>, Vec<&Snap>> = BTreeMap::new();
    for s in snaps {
        let mut key = Vec::new();
        if g.host {
            key.push(s.host.to_string());
        }
        if g.tags {
            let mut t = s.tags.clone();
            t.sort();
            key.push(t.join(","));
        }
        groups.entry(key).or_default().push(s);
    }
    let mut out = Verdicts::new();
    for (key, mut members) in groups {
        // Newest first; equal times: the larger id first (the order is total, so the
        // outcome does not depend on listing order).
        members.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let mut verdict = BTreeMap::new();
        let current: Vec<&Snap> = members.iter().copied().filter(|s| s.time <= now).collect();
        for s in members.iter().filter(|s| s.time > now) {
            verdict.insert(s.id, (BTreeSet::from(["dated in the future".to_string()]), true));
        }
        let by_all = rules(&current, p, tz, now);
        for (s, reasons) in current.iter().zip(by_all) {
            verdict.insert(s.id, (reasons, false));
        }
        let full: Vec<&Snap> =
            current.iter().copied().filter(|s| s.written_by == WrittenBy::FullKey).collect();
        for (s, reasons) in full.iter().zip(rules(&full, p, tz, now)) {
            let have = &mut verdict.get_mut(&s.id).unwrap().0;
            let extra: Vec<String> = reasons
                .iter()
                .filter(|r| !have.contains(*r))
                .map(|r| format!("{r} (full-key snapshots)"))
                .collect();
            have.extend(extra);
        }
        out.insert(key, verdict);
    }
    out
}

fn code(snaps: &[Snap], p: &RetentionPolicy, g: GroupBy, tz: &TimeZone, now: Timestamp) -> Option<Verdicts> {
    let input: Vec<(SnapshotId, Snapshot)> = snaps
        .iter()
        .map(|s| {
            let snap = Snapshot {
                time: Timespec { secs: s.time.as_second(), nanos: s.time.subsec_nanosecond() as u32 },
                host: s.host.into(),
                user: "root".into(),
                paths: vec![b"/opt/gw".to_vec()],
                tags: s.tags.clone(),
                labels: vec![],
                excludes: vec![],
                tree: TreeId([0; 32]),
                parent: None,
                original: None,
                summary: Summary::default(),
                program: String::new(),
                written_by: s.written_by,
            };
            (SnapshotId([s.id; 32]), snap)
        })
        .collect();
    let groups = plan(input, p, g, tz, now).ok()?;
    let mut out = Verdicts::new();
    for group in groups {
        let first = group.decisions.first().expect("no empty group");
        let mut key = Vec::new();
        if g.host {
            key.push(first.snapshot.host.clone());
        }
        if g.tags {
            let mut t = first.snapshot.tags.clone();
            t.sort();
            key.push(t.join(","));
        }
        let verdict = group
            .decisions
            .iter()
            .map(|d| (d.id.0[0], (d.reasons.iter().cloned().collect::<BTreeSet<_>>(), d.future)))
            .collect();
        assert!(out.insert(key, verdict).is_none(), "two groups with one key");
    }
    Some(out)
}

fn zone(name: &str) -> Option<TimeZone> {
    let tz = TimeZone::get(name).ok();
    common::require(tz.is_some(), &format!("time zone {name} in the system's time zone database"))
        .then_some(())?;
    tz
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_keeps_what_the_reference_keeps(
        snaps in snaps_strategy(),
        policy in policy_strategy(),
        group_by in group_by_strategy(),
        zone_at in 0..ZONES.len(),
        now in time_strategy(),
    ) {
        let Some(tz) = zone(ZONES[zone_at]) else { return Ok(()) };
        let got = code(&snaps, &policy, group_by, &tz, now);
        if policy.is_empty() {
            prop_assert!(got.is_none(), "an empty policy is refused");
            return Ok(());
        }
        let want = reference(&snaps, &policy, group_by, &tz, now);
        prop_assert_eq!(got.expect("a policy with rules plans"), want);
    }
}

/// The reference's own calendar against dates whose ISO weeks are known.
#[test]
fn the_reference_calendar_knows_iso_weeks_and_month_lengths() {
    assert_eq!(iso_week(2026, 12, 28), (2026, 53));
    assert_eq!(iso_week(2027, 1, 3), (2026, 53));
    assert_eq!(iso_week(2027, 1, 4), (2027, 1));
    assert_eq!(iso_week(2024, 12, 30), (2025, 1));
    assert_eq!(iso_week(2021, 1, 3), (2020, 53));
    assert_eq!(days_in_month(2028, 2), 29);
    assert_eq!(days_in_month(2100, 2), 28);
    assert_eq!(civil_from_days(days_from_civil(2026, 3, 31)), (2026, 3, 31));
    let one_month = Within { months: 1, ..Default::default() };
    assert_eq!(
        within_cutoff("2026-03-31T10:00:00Z".parse().unwrap(), &one_month, &TimeZone::UTC),
        "2026-02-28T10:00:00Z".parse::<Timestamp>().unwrap(),
        "a month before March 31 is the last day of February"
    );
}
