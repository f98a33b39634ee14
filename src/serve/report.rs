//! What the server tells about itself: the keyless status page, the Prometheus metrics
//! and the access log (one JSON line per request).

use super::store::Usage;
use super::State;
use crate::backend::FileType;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// One repository's figures for the page and the metrics.
struct RepoFigures {
    name: String,
    usage: Option<Usage>,
    /// Seconds since the newest snapshot arrived.
    age: Option<u64>,
}

async fn figures(state: &std::sync::Arc<State>) -> Vec<RepoFigures> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        state
            .repo_names()
            .into_iter()
            .map(|name| {
                let usage = state.repos.get(&name).and_then(|s| s.usage()).ok();
                let age = usage
                    .and_then(|u| u.newest_snapshot)
                    .map(|t| SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs()));
                RepoFigures { name, usage, age }
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

fn rpo_met(state: &State, age: Option<u64>) -> Option<bool> {
    state.opts.rpo.map(|rpo| age.is_some_and(|a| a <= rpo.as_secs()))
}

/// Prometheus text exposition of every repository's figures.
pub async fn metrics(state: &std::sync::Arc<State>) -> String {
    let repos = figures(state).await;
    let mut out = String::new();
    let mut family = |name: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    family(
        "cairn_serve_repository_bytes",
        "Bytes the repository's objects hold.",
        repos
            .iter()
            .filter_map(|r| Some((format!("repo=\"{}\"", r.name), r.usage?.bytes.to_string())))
            .collect(),
    );
    let mut objects = Vec::new();
    for r in &repos {
        if let Some(u) = r.usage {
            for (i, ft) in FileType::ALL.iter().enumerate() {
                let t = if *ft == FileType::Config { "config" } else { ft.dir() };
                objects.push((format!("repo=\"{}\",type=\"{t}\"", r.name), u.objects[i].to_string()));
            }
        }
    }
    family("cairn_serve_objects", "Objects of each type in the repository.", objects);
    family(
        "cairn_serve_newest_snapshot_age_seconds",
        "Seconds since the repository's newest snapshot arrived.",
        repos.iter().filter_map(|r| Some((format!("repo=\"{}\"", r.name), r.age?.to_string()))).collect(),
    );
    family(
        "cairn_serve_rpo_met",
        "1 when the newest snapshot is younger than the --rpo the server was given.",
        repos
            .iter()
            .filter_map(|r| {
                Some((format!("repo=\"{}\"", r.name), u8::from(rpo_met(state, r.age)?).to_string()))
            })
            .collect(),
    );
    let arrivals = state.arrivals();
    family(
        "cairn_serve_last_snapshot_timestamp_seconds",
        "When each token last stored a snapshot (name tokens after their hosts).",
        arrivals
            .iter()
            .flat_map(|(repo, tokens)| {
                tokens.iter().map(move |(token, secs)| {
                    (format!("repo=\"{repo}\",token=\"{token}\""), secs.to_string())
                })
            })
            .collect(),
    );
    if let Some(q) = state.opts.quota {
        family(
            "cairn_serve_quota_bytes",
            "The most bytes a repository may hold.",
            repos.iter().map(|r| (format!("repo=\"{}\"", r.name), q.to_string())).collect(),
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A page anyone who reaches the server may read: sizes and ages, never a name or byte
/// of what is stored (those are encrypted, and the server holds no key).
pub async fn status_page(state: &std::sync::Arc<State>) -> String {
    let repos = figures(state).await;
    let arrivals = state.arrivals();
    let mut rows = String::new();
    for r in &repos {
        let (bytes, snaps) = r.usage.map_or((String::from("?"), String::from("?")), |u| {
            (u.bytes.to_string(), u.objects[4].to_string())
        });
        let age = r.age.map_or("never".to_string(), |a| format!("{a} s ago"));
        let rpo = match rpo_met(state, r.age) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        let hosts: Vec<String> =
            arrivals.get(&r.name).map(|t| t.keys().map(|tok| escape(tok)).collect()).unwrap_or_default();
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{bytes}</td><td>{snaps}</td><td>{age}</td><td>{rpo}</td><td>{}</td></tr>",
            escape(&r.name),
            hosts.join(", ")
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cairn serve</title></head><body>\
         <h1>cairn serve</h1><table><tr><th>repository</th><th>bytes</th><th>snapshots</th>\
         <th>newest snapshot</th><th>RPO</th><th>writers</th></tr>\n{rows}</table></body></html>\n"
    )
}

/// Where each request is recorded.
pub struct AccessLog {
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl AccessLog {
    /// Append to `path` (created 0600), or write to standard output for "-".
    pub fn open(path: &Path) -> crate::Result<AccessLog> {
        let out: Box<dyn std::io::Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            Box::new(
                std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(
                    |e| crate::Error::io(format!("cannot open the access log {}", path.display()), e),
                )?,
            )
        };
        Ok(AccessLog { out: Mutex::new(out) })
    }

    pub fn record(&self, line: &serde_json::Value) {
        let mut out = self.out.lock().expect("access log lock");
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
