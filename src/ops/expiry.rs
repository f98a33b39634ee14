//! Until when a retention policy keeps a snapshot, for audits (`snapshots --retention`).
//!
//! Which rules keep a snapshot today is [`super::forget::plan`]'s answer; this module only
//! projects each rule forward, assuming backups go on at the same pace: `within S` keeps a
//! snapshot until its time plus S; `daily N` until N days after the start of its day (by
//! then N newer days hold a snapshot), and the same for hours, ISO weeks, months and
//! years; `last N` has no date (it ends after N newer snapshots); a kept tag never ends.
//! The latest end among the rules that keep it is the snapshot's expiry. It never decides
//! anything: forget does.

use super::forget::{RetentionPolicy, Within};
use crate::format::Timespec;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, ZonedDateTime};

/// When a kept snapshot is due to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Kept by a tag rule: until the tag is removed.
    Never,
    /// Kept by `last N` only: once N newer snapshots exist.
    AfterNewer(u32),
    At(Timestamp),
}

/// The expiry of a snapshot taken at `time` that `reasons` (the rule names of a forget
/// decision, such as "daily 7" or "within") keep under `policy`, in zone `tz`. `None` for
/// a snapshot nothing keeps.
pub fn expiry(time: Timespec, reasons: &[String], policy: &RetentionPolicy, tz: &TimeZone) -> Option<Expiry> {
    let zoned = Timestamp::new(time.secs, time.nanos as i32).ok()?.to_zoned_datetime(tz.clone());
    let mut latest: Option<Expiry> = None;
    for reason in reasons {
        let rule = reason.split_whitespace().next().unwrap_or_default();
        let end = match rule {
            "tag" => return Some(Expiry::Never),
            "last" => Expiry::AfterNewer(policy.last),
            "within" => match policy.within.and_then(|w| zoned.checked_add(span_of(w)).ok()) {
                Some(z) => Expiry::At(z.timestamp()),
                None => continue,
            },
            period => match period_end(&zoned, period, policy) {
                Some(t) => Expiry::At(t),
                None => continue,
            },
        };
        latest = Some(match (latest, end) {
            (Some(Expiry::At(a)), Expiry::At(b)) => Expiry::At(a.max(b)),
            (Some(Expiry::At(a)), Expiry::AfterNewer(_)) => Expiry::At(a),
            (_, e) => e,
        });
    }
    latest
}

fn span_of(w: Within) -> Span {
    Span::new().years(w.years).months(w.months).weeks(w.weeks).days(w.days).hours(w.hours)
}

/// The start of the snapshot's calendar period plus the rule's count of periods.
fn period_end(z: &ZonedDateTime, period: &str, p: &RetentionPolicy) -> Option<Timestamp> {
    let day = z.start_of_day().ok()?;
    let (start, span) = match period {
        "hourly" => {
            (z.with().minute(0).second(0).subsec_nanosecond(0).build().ok()?, i64::from(p.hourly).hours())
        }
        "daily" => (day, i64::from(p.daily).days()),
        "weekly" => {
            let back = i64::from(z.weekday().to_monday_zero_offset());
            (day.checked_sub(back.days()).ok()?, i64::from(p.weekly).weeks())
        }
        "monthly" => (day.first_of_month().ok()?, i64::from(p.monthly).months()),
        "yearly" => (day.first_of_year().ok()?, i64::from(p.yearly).years()),
        _ => return None,
    };
    start.checked_add(span).ok().map(|e| e.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timespec {
        let t: Timestamp = s.parse().unwrap();
        Timespec { secs: t.as_second(), nanos: 0 }
    }

    fn reasons(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_rule_is_projected_and_the_latest_end_wins() {
        let policy = RetentionPolicy {
            last: 3,
            daily: 7,
            weekly: 4,
            monthly: 2,
            within: Some(Within::parse("2d").unwrap()),
            ..Default::default()
        };
        let utc = TimeZone::UTC;
        // Wednesday 2026-11-25 10:30 UTC.
        let t = at("2026-11-25T10:30:00Z");
        let end = |r: &[&str]| expiry(t, &reasons(r), &policy, &utc);
        assert_eq!(end(&["daily 7"]), Some(Expiry::At("2026-12-02T00:00:00Z".parse().unwrap())));
        assert_eq!(end(&["within"]), Some(Expiry::At("2026-11-27T10:30:00Z".parse().unwrap())));
        // ISO weeks start on Monday (the 23rd).
        assert_eq!(end(&["weekly 4"]), Some(Expiry::At("2026-12-21T00:00:00Z".parse().unwrap())));
        assert_eq!(end(&["monthly 2"]), Some(Expiry::At("2027-01-01T00:00:00Z".parse().unwrap())));
        assert_eq!(
            end(&["last 3", "within", "daily 7", "monthly 2"]),
            Some(Expiry::At("2027-01-01T00:00:00Z".parse().unwrap()))
        );
        assert_eq!(end(&["last 3"]), Some(Expiry::AfterNewer(3)));
        assert_eq!(end(&["daily 7", "tag"]), Some(Expiry::Never));
        assert_eq!(end(&[]), None, "nothing keeps it");
        // In another zone the day starts elsewhere.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            expiry(t, &reasons(&["daily 1"]), &RetentionPolicy { daily: 1, ..Default::default() }, &tokyo),
            Some(Expiry::At("2026-11-25T15:00:00Z".parse().unwrap()))
        );
    }
}
