//! What the dashboard runs: a job, a check, a drill or a restore, each as the cairn
//! command a person would type, pointed at its repository the way job steps are. The
//! command records itself in the activity log; the dashboard keeps its output as it comes,
//! for the action's page to show live.

use super::sources::Source;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// The most output lines kept per action (the newest).
const MAX_LINES: usize = 2000;

/// What to run.
pub enum Kind {
    Job,
    Check,
    Drill,
    /// Restore `path` of `snapshot` into `target` on this host.
    Restore {
        snapshot: String,
        path: String,
        target: PathBuf,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Check => "check",
            Kind::Drill => "drill",
            Kind::Restore { .. } => "restore",
        }
    }
}

#[derive(Default)]
struct Progress {
    lines: std::collections::VecDeque<String>,
    /// None while running; the exit code (or -1 for a signal) when done.
    exit: Option<i32>,
    finished: Option<String>,
}

pub struct Action {
    pub id: usize,
    kind: &'static str,
    repo: usize,
    command: String,
    started: String,
    progress: Mutex<Progress>,
}

impl Action {
    pub fn json(&self) -> Value {
        let p = self.progress.lock().expect("action lock");
        let state = match p.exit {
            None => "running",
            Some(0) => "succeeded",
            Some(_) => "failed",
        };
        json!({
            "id": self.id, "kind": self.kind, "repo": self.repo, "command": self.command,
            "started": self.started, "finished": p.finished, "state": state, "exit_code": p.exit,
            "output": p.lines.iter().collect::<Vec<_>>(),
        })
    }

    fn add_line(&self, line: String) {
        let mut p = self.progress.lock().expect("action lock");
        if p.lines.len() == MAX_LINES {
            p.lines.pop_front();
        }
        p.lines.push_back(line);
    }
}

/// Every action since the dashboard started.
#[derive(Default)]
pub struct Actions(Mutex<Vec<Arc<Action>>>);

/// The command for `kind` on `src`.
fn command(kind: &Kind, src: &Source, cairn: &std::path::Path) -> Command {
    let mut c = Command::new(cairn);
    match kind {
        Kind::Job => {
            // `cairn run` opens the job's repositories itself, from the job file.
            c.arg("run").arg(src.job.as_deref().unwrap_or_default());
            if let Some(f) = &src.job_file {
                c.arg("--config").arg(f);
            }
            use std::os::unix::ffi::OsStrExt;
            for var in ["CAIRN_PASSWORD", "CAIRN_TOKEN"] {
                if let Some(v) = cairn::repo::secrets::from_environment(var) {
                    c.env(var, std::ffi::OsStr::from_bytes(&v));
                }
            }
            return c;
        }
        Kind::Check => {
            c.arg("check");
        }
        Kind::Drill => {
            c.arg("drill");
            if let Some(j) = &src.job {
                c.arg("--label").arg(format!("job={j}"));
            }
            if let Some(m) = src.max_rto {
                c.arg("--max-rto").arg(format!("{m}s"));
            }
            c.arg("--max-rpo").arg(format!("{}s", src.rpo));
        }
        Kind::Restore { snapshot, path, target } => {
            c.args(["restore", snapshot, "--include", path]).arg("--target").arg(target);
        }
    }
    src.target.access().point(&mut c);
    c
}

impl Actions {
    pub fn get(&self, id: usize) -> Option<Arc<Action>> {
        self.0.lock().expect("actions lock").iter().find(|a| a.id == id).cloned()
    }

    pub fn list(&self) -> Vec<Value> {
        self.0.lock().expect("actions lock").iter().rev().map(|a| a.json()).collect()
    }

    /// Start `kind` on source `repo`; its output is collected by two threads, and a third
    /// waits for its end.
    pub fn start(&self, kind: Kind, repo: usize, src: &Source) -> cairn::Result<Arc<Action>> {
        let cairn =
            std::env::current_exe().map_err(|e| cairn::Error::io("cannot find the cairn binary", e))?;
        let mut cmd = command(&kind, src, &cairn);
        let shown: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| cairn::Error::io("cannot start cairn", e))?;
        let mut all = self.0.lock().expect("actions lock");
        let action = Arc::new(Action {
            id: all.len() + 1,
            kind: kind.name(),
            repo,
            command: format!("cairn {}", shown.join(" ")),
            started: jiff::Timestamp::now().to_string(),
            progress: Mutex::default(),
        });
        all.push(action.clone());
        let readers: Vec<std::thread::JoinHandle<()>> = [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|out| {
            let a = action.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    a.add_line(line);
                }
            })
        })
        .collect();
        let a = action.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            for r in readers {
                let _ = r.join();
            }
            let mut p = a.progress.lock().expect("action lock");
            p.exit = Some(status.ok().and_then(|s| s.code()).unwrap_or(-1));
            p.finished = Some(jiff::Timestamp::now().to_string());
        });
        Ok(action)
    }
}
