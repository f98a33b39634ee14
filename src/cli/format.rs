//! Human-readable output helpers: sizes, local times, tables.

use cairn::format::tree::{Node, NodeKind};
use cairn::format::Timespec;

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A time in the local time zone, to the second, with the zone ("2026-11-24 09:05:00 CET").
pub fn local_time(t: Timespec) -> String {
    match jiff::Timestamp::new(t.secs, t.nanos as i32) {
        Ok(ts) => {
            ts.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
        }
        Err(_) => format!("@{}", t.secs),
    }
}

/// An RFC 3339 time in UTC, for JSON.
pub fn rfc3339(t: Timespec) -> String {
    jiff::Timestamp::new(t.secs, t.nanos as i32).map(|ts| ts.to_string()).unwrap_or_default()
}

/// Parse "2026-01-31 23:00[:ss]" (local time) or an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Result<Timespec, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(Timespec { secs: ts.as_second(), nanos: ts.subsec_nanosecond() as u32 });
    }
    let dt: jiff::civil::DateTime = s
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|_| format!("'{s}' is not a time: use \"YYYY-MM-DD HH:MM[:SS]\" (local) or RFC 3339"))?;
    let z = dt.to_zoned_datetime(jiff::tz::TimeZone::system()).map_err(|e| format!("'{s}': {e}"))?;
    let ts = z.timestamp();
    Ok(Timespec { secs: ts.as_second(), nanos: ts.subsec_nanosecond() as u32 })
}

pub use cairn::units::{parse_duration, parse_size};

/// Seconds as "1h 02m 03s".
pub fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Print rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!("{}", "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    for r in rows {
        line(r.clone());
    }
}

/// `ls -l`'s type letter and permission bits: "drwxr-xr-x", with s/S and t/T.
pub fn mode_string(node: &Node) -> String {
    let kind = match node.kind {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
        NodeKind::Socket => 's',
    };
    let m = node.mode;
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (shift, special, set, unset) in [(6, 0o4000, 's', 'S'), (3, 0o2000, 's', 'S'), (0, 0o1000, 't', 'T')]
    {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// A file's size; 0 for everything else.
pub fn node_size(node: &Node) -> u64 {
    match node.kind {
        NodeKind::File { size, .. } => size,
        _ => 0,
    }
}

/// Owner as "name" when stored, else the number.
pub fn owner(name: &Option<String>, id: u32) -> String {
    name.clone().unwrap_or_else(|| id.to_string())
}

/// One entry in JSON, as `ls --json` and `find --json` print it.
pub fn node_json(path: &[u8], node: &Node) -> serde_json::Value {
    let mut v = serde_json::json!({
        "path": String::from_utf8_lossy(path),
        "type": node.kind.name(),
        "mode": format!("{:04o}", node.mode),
        "size": node_size(node),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "mtime": rfc3339(node.mtime),
        "links": node.links,
    });
    if let NodeKind::Symlink { target } = &node.kind {
        v["target"] = String::from_utf8_lossy(target).into();
    }
    v
}

/// One entry as `ls -l` prints it: mode, owner, group, size, mtime, path (-> target).
pub fn long_line(path: &[u8], node: &Node) -> String {
    let mut line = format!(
        "{} {:>8} {:>8} {:>12} {} {}",
        mode_string(node),
        owner(&node.user, node.uid),
        owner(&node.group, node.gid),
        node_size(node),
        local_time(node.mtime),
        String::from_utf8_lossy(path)
    );
    if let NodeKind::Symlink { target } = &node.kind {
        line.push_str(" -> ");
        line.push_str(&String::from_utf8_lossy(target));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_parse() {
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert!(parse_size("12X").is_err());
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(parse_time("2026-01-31T23:00:00Z").unwrap().secs, 1_769_900_400);
        assert!(parse_time("2026-01-31 23:00").is_ok());
        assert!(parse_time("yesterday-ish").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert!(parse_duration("15").is_err() && parse_duration("2x").is_err());
        assert_eq!(duration(75.0), "1m 15s");
    }

    #[test]
    fn modes_read_like_ls() {
        let mut n = cairn::browse::root_node(cairn::id::TreeId([0; 32]), Timespec::default());
        assert_eq!(mode_string(&n), "drwxr-xr-x");
        n.mode = 0o4754;
        n.kind = NodeKind::Fifo;
        assert_eq!(mode_string(&n), "prwsr-xr--");
        n.mode = 0o1640;
        assert_eq!(mode_string(&n), "prw-r----T");
    }
}
