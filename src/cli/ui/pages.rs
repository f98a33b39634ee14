//! The pages, drawn from the JSON values of `data` (what the API answers).

use super::html::{action_button, esc, page, problem, q, table};
use super::plots::{figure, Plot};
use super::server::{Params, State};
use crate::cli::format;
use hyper::StatusCode;
use serde_json::Value;
use std::fmt::Write;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn size(v: &Value) -> String {
    v.as_u64().map(format::size).unwrap_or_default()
}

fn secs(v: &Value) -> String {
    v.as_f64().map(format::duration).unwrap_or_default()
}

/// A time as the server's local time (RFC 3339 in the title, for the exact value).
fn when(v: &Value) -> String {
    let text = s(v);
    let local = format::parse_time(&text).map(format::local_time).unwrap_or_else(|_| text.clone());
    format!("<time datetime=\"{}\">{}</time>", esc(&text), esc(&local))
}

fn outcome(v: &Value) -> String {
    let o = s(v);
    let class = match o.as_str() {
        "success" | "succeeded" => "good",
        "" => "",
        "running" => "busy",
        _ => "bad",
    };
    format!("<span class=\"outcome {class}\">{}</span>", esc(&o))
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cairn · {}</title>\
         <link rel=\"stylesheet\" href=\"/static/ui.css\"></head><body><main><h1>{}</h1>{}</main></body></html>\n",
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("error")),
        problem(message)
    )
}

fn link(path: &str, repo: usize, extra: &str, text: &str) -> String {
    format!("<a href=\"{path}?repo={repo}{extra}\">{}</a>", esc(text))
}

/// The overview: one row per repository.
pub fn overview(state: &State, rows: &Value, csrf: &str) -> String {
    let mut out = Vec::new();
    for r in rows.as_array().into_iter().flatten() {
        let i = r["repo"].as_u64().unwrap_or(0) as usize;
        let last = &r["last_backup"];
        let backup = if last.is_null() {
            "none yet".to_string()
        } else {
            format!(
                "{}<br>{} files, {} added, {}",
                when(&last["time"]),
                last["files"],
                size(&last["bytes_added"]),
                secs(&(last["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0).into())
            )
        };
        let run = &r["last_run"];
        let run = if run.is_null() {
            String::new()
        } else {
            format!("{} {}", esc(&s(&run["operation"])), outcome(&run["outcome"]))
        };
        let age = match r["age_seconds"].as_f64() {
            Some(a) => format!(
                "{} (RPO {})",
                format::duration(a),
                format::duration(r["rpo_seconds"].as_f64().unwrap_or(0.0))
            ),
            None => "no backup".into(),
        };
        let colour = s(&r["rpo_status"]);
        let check = &r["last_check"];
        let check = if check.is_null() {
            "never".into()
        } else {
            format!("{} {}", outcome(&check["outcome"]), when(&check["time"]))
        };
        let drill = &r["last_drill"];
        let drill = if drill.is_null() {
            "never".into()
        } else {
            let limit = drill["max_rto_seconds"]
                .as_f64()
                .map(|m| format!(" of {}", format::duration(m)))
                .unwrap_or_default();
            format!(
                "{} {}<br>RTO {}{limit}",
                outcome(&drill["outcome"]),
                when(&drill["time"]),
                secs(&drill["rto_seconds"])
            )
        };
        let copies = &r["copies"];
        let three = if copies.is_null() {
            "(a copy)".to_string()
        } else {
            let lacking: Vec<String> = copies["each"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["has_latest"] != true)
                .map(|e| esc(&s(&e["location"])))
                .collect();
            format!(
                "<span class=\"{}\" data-321=\"{}\">{} copies, {} kinds of storage, {} offsite</span>{}",
                if copies["met"] == true { "good" } else { "warn" },
                copies["met"],
                copies["copies"],
                copies["storage_kinds"],
                copies["offsite"],
                if lacking.is_empty() {
                    "<br>all have the newest snapshot".to_string()
                } else {
                    format!("<br>lacking the newest: {}", lacking.join(", "))
                }
            )
        };
        let mut buttons = String::new();
        if !csrf.is_empty() {
            if r["role"] == "primary" && !r["job"].is_null() {
                buttons.push_str(&action_button(csrf, "job", i, "Run job now"));
            }
            buttons.push_str(&action_button(csrf, "check", i, "Check"));
            buttons.push_str(&action_button(csrf, "drill", i, "Drill"));
        }
        out.push(format!(
            "<tr data-repo=\"{i}\" data-name=\"{}\"><td>{}<br><small>{}</small></td><td>{backup}<br>{run}</td>\
             <td class=\"rpo rpo-{colour}\" data-rpo=\"{colour}\">{age}</td><td>{}<br>+{} in 7 days<br>{} snapshots</td>\
             <td>{check}</td><td>{drill}</td><td>{three}</td><td>{buttons}</td></tr>",
            esc(&s(&r["name"])),
            link("/snapshots", i, "", &s(&r["name"])),
            esc(&s(&r["location"])),
            size(&r["stored_bytes"]),
            size(&r["growth_7d_bytes"]),
            r["snapshots"],
        ));
    }
    let body = table(
        "overview",
        &["Repository", "Last backup", "Age", "Size", "Last check", "Last drill", "3-2-1", "Actions"],
        &out,
    );
    page("Overview", "/", 0, &state.names(), &body)
}

/// The snapshots with their filter form.
pub fn snapshots(state: &State, repo: usize, p: &Params, list: &Value) -> String {
    let field = |name: &str, label: &str, hint: &str| {
        format!(
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{hint}\"></label>",
            esc(p.get(name).unwrap_or(""))
        )
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/snapshots\" class=\"filters\"><input type=\"hidden\" name=\"repo\" value=\"{repo}\">{}{}{}{}{}{}<button type=\"submit\">Filter</button></form>",
        field("host", "Host", "gw1"),
        field("tag", "Tag", "prod"),
        field("label", "Label", "job=apigateway"),
        field("path", "Path", "/opt/apigateway"),
        field("from", "From", "2026-12-01"),
        field("to", "Before", "2026-12-31"),
    );
    let retention = list.as_array().into_iter().flatten().any(|v| v.get("kept_by").is_some());
    let rows: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .map(|v| {
            let kept = match retention {
                true => {
                    let by: Vec<String> = v["kept_by"].as_array().into_iter().flatten().map(s).collect();
                    let until = match &v["expires"] {
                        Value::Null if v.get("kept_by").is_some() => "next forget".to_string(),
                        other => s(other),
                    };
                    format!("<td class=\"kept\">{}</td><td>{}</td>", esc(&by.join(", ")), esc(&until))
                }
                false => String::new(),
            };
            let id = s(&v["id"]);
            let name = s(&v["labels"]["name"]);
            let tags: Vec<String> = v["tags"].as_array().into_iter().flatten().map(s).collect();
            let paths: Vec<String> = v["paths"].as_array().into_iter().flatten().map(s).collect();
            format!(
                "<tr data-id=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{kept}</tr>",
                esc(&id),
                link("/browse", repo, &format!("&snap={}", q(&id)), &id[..id.len().min(8)]),
                esc(&name),
                when(&v["time"]),
                esc(&s(&v["host"])),
                esc(&s(&v["type"])),
                esc(&tags.join(", ")),
                v["summary"]["files"],
                size(&v["summary"]["total_bytes"]),
                size(&v["summary"]["bytes_added"]),
                esc(&paths.join(" ")),
            )
        })
        .collect();
    let _ = write!(body, "<p>{} snapshots, newest first.</p>", rows.len());
    let mut header = vec!["ID", "Name", "Time", "Host", "Type", "Tags", "Files", "Size", "Added", "Paths"];
    if retention {
        header.extend(["Kept by", "Expires"]);
    }
    body.push_str(&table("snapshots", &header, &rows));
    page("Snapshots", "/snapshots", repo, &state.names(), &body)
}

/// A folder's entries, or a file's details, with downloads and the restore form.
pub fn browse(state: &State, repo: usize, l: &Value, csrf: &str) -> String {
    let snap = s(&l["snapshot"]);
    let node = &l["node"];
    let path = s(&node["path"]);
    let sq = format!("&snap={}", q(&snap));
    let mut crumbs = link("/browse", repo, &sq, "/");
    let mut so_far = String::new();
    for part in path.split('/').filter(|c| !c.is_empty()) {
        so_far = format!("{so_far}/{part}");
        let _ = write!(crumbs, " {} /", link("/browse", repo, &format!("{sq}&path={}", q(&so_far)), part));
    }
    let mut body = format!(
        "<p>Snapshot <code id=\"snapshot-id\">{}</code> {} {}</p><p class=\"crumbs\">{crumbs}</p>",
        esc(&snap),
        esc(&s(&l["name"])),
        when(&l["time"])
    );
    let details = |n: &Value| {
        format!(
            "{} {} {}:{} {}",
            esc(&s(&n["mode"])),
            esc(&s(&n["type"])),
            esc(&s(if n["user"].is_null() { &n["uid"] } else { &n["user"] })),
            esc(&s(if n["group"].is_null() { &n["gid"] } else { &n["group"] })),
            when(&n["mtime"])
        )
    };
    let here = format!("{sq}&path={}", q(&path));
    if node["type"] == "dir" {
        let rows: Vec<String> = l["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let p = s(&e["path"]);
                let name = p.rsplit('/').next().unwrap_or("").to_string();
                let at = format!("{sq}&path={}", q(&p));
                let (shown, get) = match e["type"].as_str() {
                    Some("dir") => (link("/browse", repo, &at, &format!("{name}/")), String::new()),
                    Some("file") => {
                        (link("/browse", repo, &at, &name), link("/download", repo, &at, "download"))
                    }
                    _ => {
                        (esc(&name), esc(&e["target"].as_str().map(|t| format!("→ {t}")).unwrap_or_default()))
                    }
                };
                format!(
                    "<tr data-path=\"{}\"><td>{shown}</td><td>{}</td><td>{}</td><td>{get}</td></tr>",
                    esc(&p),
                    size(&e["size"]),
                    details(e)
                )
            })
            .collect();
        let _ = write!(
            body,
            "<p>Download this folder as {} or {}.</p>",
            link("/archive", repo, &format!("{here}&format=tar"), "tar"),
            link("/archive", repo, &format!("{here}&format=zip"), "zip")
        );
        body.push_str(&table("entries", &["Name", "Size", "Details", ""], &rows));
    } else {
        let _ = write!(
            body,
            "<table id=\"file\"><tr><th>Size</th><td>{}</td></tr><tr><th>Details</th><td>{}</td></tr><tr><th>Links</th><td>{}</td></tr></table>",
            size(&node["size"]),
            details(node),
            node["links"]
        );
        if node["type"] == "file" {
            let _ = write!(body, "<p>{}</p>", link("/download", repo, &here, "Download this file"));
        }
    }
    if !csrf.is_empty() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/actions\" class=\"restore\"><h2>Restore to this host</h2>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"kind\" value=\"restore\">\
             <input type=\"hidden\" name=\"repo\" value=\"{repo}\"><input type=\"hidden\" name=\"snap\" value=\"{}\">\
             <input type=\"hidden\" name=\"path\" value=\"{}\"><label>Target folder <input name=\"target\" placeholder=\"/var/tmp/restore\" required></label>\
             <button type=\"submit\">Restore…</button></form>",
            esc(csrf),
            esc(&snap),
            esc(&path)
        );
    }
    page("Browse", "/browse", repo, &state.names(), &body)
}

/// The second step of a restore to the host: what will be written where, and a yes.
pub fn confirm_restore(
    state: &State,
    repo: usize,
    snap: &str,
    path: &str,
    target: &str,
    csrf: &str,
) -> String {
    let body = format!(
        "<p class=\"warn\">This writes <code>{}</code> of snapshot <code>{}</code> into <code>{}</code> on this host, \
         replacing files of the same names there.</p>\
         <form method=\"post\" action=\"/actions\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"kind\" value=\"restore\"><input type=\"hidden\" name=\"repo\" value=\"{repo}\">\
         <input type=\"hidden\" name=\"snap\" value=\"{}\"><input type=\"hidden\" name=\"path\" value=\"{}\">\
         <input type=\"hidden\" name=\"target\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button type=\"submit\" id=\"confirm-restore\">Yes, restore</button></form><p>{}</p>",
        esc(path),
        esc(snap),
        esc(target),
        esc(csrf),
        esc(snap),
        esc(path),
        esc(target),
        link("/browse", repo, &format!("&snap={}&path={}", q(snap), q(path)), "No, go back")
    );
    page("Confirm the restore", "/browse", repo, &state.names(), &body)
}

/// The diff form, and the changes when two snapshots are chosen.
pub fn diff(state: &State, repo: usize, p: &Params, list: &Value, d: Option<&Value>) -> String {
    let snaps: Vec<&Value> = list.as_array().into_iter().flatten().rev().collect();
    let select = |name: &str, default: usize| {
        let chosen = p.get(name).map(str::to_string);
        let mut out = format!("<select name=\"{name}\" id=\"diff-{name}\">");
        for (i, v) in snaps.iter().enumerate() {
            let id = s(&v["id"]);
            let sel = match &chosen {
                Some(c) => id.starts_with(c.as_str()),
                None => i == default,
            };
            let _ = write!(
                out,
                "<option value=\"{}\"{}>{} {} {}</option>",
                esc(&id),
                if sel { " selected" } else { "" },
                esc(&id[..id.len().min(8)]),
                esc(&s(&v["labels"]["name"])),
                esc(&s(&v["time"]))
            );
        }
        out.push_str("</select>");
        out
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/diff\" class=\"filters\"><input type=\"hidden\" name=\"repo\" value=\"{repo}\">\
         <label>Older {}</label><label>Newer {}</label><label>Path <input name=\"path\" value=\"{}\"></label>\
         <button type=\"submit\">Compare</button></form>",
        select("a", 1),
        select("b", 0),
        esc(p.get("path").unwrap_or("/"))
    );
    if let Some(d) = d {
        let t = &d["summary"];
        let _ = write!(
            body,
            "<p id=\"diff-summary\">{} added, {} removed, {} modified, {} metadata only; {} added, {} removed</p>",
            t["added"], t["removed"], t["modified"], t["metadata"], size(&t["bytes_added"]), size(&t["bytes_removed"])
        );
        body.push_str("<ul id=\"changes\">");
        for c in d["changes"].as_array().into_iter().flatten() {
            let fields: Vec<String> = c["fields"].as_array().into_iter().flatten().map(s).collect();
            let _ = write!(
                body,
                "<li data-change=\"{}\"><span class=\"change {}\">{}</span> <code>{}</code> {}",
                esc(&s(&c["change"])),
                esc(&s(&c["change"])),
                esc(&s(&c["change"])),
                esc(&s(&c["path"])),
                esc(&fields.join(", "))
            );
            if let Some(text) = c["content"].as_str() {
                body.push_str("<pre class=\"diff\">");
                for line in text.lines() {
                    let class = match line.chars().next() {
                        Some('+') if !line.starts_with("+++") => "add",
                        Some('-') if !line.starts_with("---") => "del",
                        Some('@') => "hunk",
                        _ => "",
                    };
                    let _ = writeln!(body, "<span class=\"{class}\">{}</span>", esc(line));
                }
                body.push_str("</pre>");
            }
            body.push_str("</li>");
        }
        body.push_str("</ul>");
    }
    page("Diff", "/diff", repo, &state.names(), &body)
}

fn points(list: &Value, y: &str) -> Vec<(f64, f64)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["time"].as_f64()?, v[y].as_f64()?)))
        .collect()
}

/// The plots of one repository.
pub fn plots(state: &State, repo: usize, series: &Value) -> String {
    let bytes = |v: f64| format::size(v.max(0.0) as u64);
    let seconds = |v: f64| format::duration(v);
    let ratio = |v: f64| format!("{v:.2}x");
    let b = &series["backups"];
    let all = [
        Plot {
            id: "plot-size",
            title: "Repository size (stored bytes, as the log records writes and prunes)",
            points: points(&series["size"], "stored_bytes"),
            unit: bytes,
            limit: None,
        },
        Plot {
            id: "plot-added",
            title: "Bytes added per backup",
            points: points(b, "bytes_added"),
            unit: bytes,
            limit: None,
        },
        Plot {
            id: "plot-duration",
            title: "Backup duration",
            points: points(b, "duration_s"),
            unit: seconds,
            limit: None,
        },
        Plot {
            id: "plot-ratio",
            title: "Dedup and compression: bytes read per byte stored",
            points: points(b, "data_ratio"),
            unit: ratio,
            limit: None,
        },
        Plot {
            id: "plot-rto",
            title: "RTO per drill",
            points: points(&series["drills"], "rto_seconds"),
            unit: seconds,
            limit: series["max_rto_seconds"].as_f64(),
        },
        Plot {
            id: "plot-rpo",
            title: "RPO per drill",
            points: points(&series["drills"], "rpo_seconds"),
            unit: seconds,
            limit: series["rpo_seconds"].as_f64(),
        },
    ];
    let body: String = all.iter().map(figure).collect();
    page("Plots", "/plots", repo, &state.names(), &format!("<div class=\"plots\">{body}</div>"))
}

/// A drill's go-live report, from its log entry.
fn drill_report(e: &Value, open: bool) -> String {
    let f = &e["figures"];
    let num = |k: &str| f[k].as_str().and_then(|v| v.parse::<f64>().ok());
    format!(
        "<details class=\"report\"{}><summary>Go-live report</summary><dl>\
         <dt>Verdict</dt><dd>{}</dd><dt>Snapshot</dt><dd><code>{}</code></dd><dt>Restored and verified</dt><dd>{} files</dd>\
         <dt>RTO (restore and verify)</dt><dd>{}</dd><dt>RPO (age of the data)</dt><dd>{}</dd><dt>Problems found</dt><dd>{}</dd></dl></details>",
        if open { " open" } else { "" },
        if e["outcome"] == "success" { "ready: the data came back whole within the limits" } else { "NOT ready: see the problems and limits" },
        esc(&s(&e["snapshot"])),
        esc(&s(&f["files"])),
        num("rto_s").map(format::duration).unwrap_or_default(),
        num("rpo_s").map(format::duration).unwrap_or_default(),
        esc(&s(&f["problems"])),
    )
}

/// The activity log with its search box.
pub fn log(state: &State, repo: usize, search: Option<&str>, log: &Value) -> String {
    let mut body = format!(
        "<form method=\"get\" action=\"/log\" class=\"filters\"><input type=\"hidden\" name=\"repo\" value=\"{repo}\">\
         <label>Search <input name=\"q\" value=\"{}\" placeholder=\"drill, failed, gw1\"></label><button type=\"submit\">Search</button></form>",
        esc(search.unwrap_or(""))
    );
    for p in log["problems"].as_array().into_iter().flatten() {
        body.push_str(&problem(&format!("damaged: {}", s(p))));
    }
    let mut newest_drill = true;
    let rows: Vec<String> = log["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .map(|e| {
            let figures: Vec<String> = e["figures"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{}={}", esc(k), esc(&s(v))))
                .collect();
            // The newest drill's report is open: it is what an auditor asks for.
            let report = match e["operation"] == "drill" {
                true => drill_report(e, std::mem::replace(&mut newest_drill, false)),
                false => String::new(),
            };
            let snap = s(&e["snapshot"]);
            format!(
                "<tr data-operation=\"{}\"><td>{}</td><td>{}</td><td>{}@{} ({})</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}{report}</td></tr>",
                esc(&s(&e["operation"])),
                e["seq"],
                when(&e["time"]),
                esc(&s(&e["user"])),
                esc(&s(&e["host"])),
                esc(&s(&e["written_by"])),
                esc(&s(&e["operation"])),
                outcome(&e["outcome"]),
                esc(&snap[..snap.len().min(8)]),
                figures.join(" "),
            )
        })
        .collect();
    body.push_str(&table("log", &["#", "Time", "By", "Operation", "Outcome", "Snapshot", "Figures"], &rows));
    page("Activity log", "/log", repo, &state.names(), &body)
}

/// Every action started from the dashboard.
pub fn actions(state: &State, repo: usize, list: &[Value]) -> String {
    let names = state.names();
    let rows: Vec<String> = list
        .iter()
        .map(|a| {
            let r = a["repo"].as_u64().unwrap_or(0) as usize;
            format!(
                "<tr><td><a href=\"/actions/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                a["id"],
                a["id"],
                esc(&s(&a["kind"])),
                esc(names.get(r).map(String::as_str).unwrap_or("")),
                when(&a["started"]),
                outcome(&a["state"])
            )
        })
        .collect();
    let body = if rows.is_empty() {
        "<p>No action yet: the overview has buttons that run a job, a check or a drill.</p>".to_string()
    } else {
        table("actions", &["#", "Kind", "Repository", "Started", "State"], &rows)
    };
    page("Actions", "/actions", repo, &names, &body)
}

/// One action, its output updated live by ui.js while it runs.
pub fn action(state: &State, a: &Value) -> String {
    let repo = a["repo"].as_u64().unwrap_or(0) as usize;
    let lines: Vec<String> = a["output"].as_array().into_iter().flatten().map(|l| esc(&s(l))).collect();
    let body = format!(
        "<p><code>{}</code></p><p>State: <span id=\"action-state\" data-action-id=\"{}\" data-state=\"{}\">{}</span> \
         exit code <span id=\"action-exit\">{}</span></p><pre id=\"action-output\">{}</pre>",
        esc(&s(&a["command"])),
        a["id"],
        esc(&s(&a["state"])),
        esc(&s(&a["state"])),
        esc(&s(&a["exit_code"])),
        lines.join("\n")
    );
    page(&format!("Action {}: {}", a["id"], s(&a["kind"])), "/actions", repo, &state.names(), &body)
}
