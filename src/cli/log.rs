//! `cairn log`: the activity log of the repository.

use super::{exit, format, Ctx};
use cairn::Result;

/// Show what was done to the repository: backups, checks, key changes
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cairn log --last 20\n  cairn log --json")]
pub struct Args {
    /// Only the newest N entries
    #[arg(long)]
    last: Option<usize>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open()?;
    let report = repo.read_log()?;
    let skip = a.last.map(|n| report.entries.len().saturating_sub(n)).unwrap_or(0);
    let entries = &report.entries[skip..];
    if ctx.json {
        println!("{}", json(entries, &report.problems));
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    format::local_time(e.time),
                    format!("{}@{} ({})", e.user, e.host, e.written_by.name()),
                    e.operation.clone(),
                    e.outcome.clone(),
                    e.snapshot.map(|s| s.short()).unwrap_or_default(),
                    e.figures.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
                ]
            })
            .collect();
        format::table(&["#", "Time", "By", "Operation", "Outcome", "Snapshot", "Figures"], &rows);
        for p in &report.problems {
            eprintln!("damaged: log: {p}");
        }
    }
    Ok(if report.problems.is_empty() { exit::SUCCESS } else { exit::DAMAGED })
}

/// Log entries as `log --json` prints them (and the dashboard's API answers).
pub(super) fn json(entries: &[cairn::format::log::LogEntry], problems: &[String]) -> serde_json::Value {
    let list: Vec<_> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "seq": e.seq, "time": format::rfc3339(e.time), "host": e.host, "user": e.user,
                "key": e.key.to_hex(), "written_by": e.written_by.name(),
                "operation": e.operation, "outcome": e.outcome,
                "snapshot": e.snapshot.map(|s| s.to_hex()),
                "figures": e.figures.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    serde_json::json!({"entries": list, "problems": problems})
}
