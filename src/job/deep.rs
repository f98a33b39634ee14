//! `config check --deep`: what only this machine can tell about a job. Every password
//! and token file is read, every repository (the job's and each copy target's) opened with its own
//! key, and every source glob expanded, as a run would; nothing is written. Each problem
//! is one line naming the job part and what to do.

use super::config::Job;
use crate::repo::{KeySource, Repository};

/// Every problem a run of `job` would meet before doing any work.
pub fn deep_check(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    let mut open = |what: &str, to: &super::config::Access<'_>| {
        if let Err(e) = to.register_files() {
            problems.push(format!("{what} {}: {e}", to.repository));
        }
        let opened = super::run::password(to.password_file, to.password_command).and_then(|pw| {
            let source = to.key_file.map(|k| KeySource::File(k.to_path_buf())).unwrap_or(KeySource::Stored);
            Repository::open(to.repository, &pw, &source)
        });
        if let Err(e) = opened {
            problems.push(format!("{what} {}: {e}", to.repository));
        }
    };
    open("repository", &job.access());
    for c in &job.copies {
        open("copy target", &c.access());
    }
    if let Err(e) = super::steps::resolve_sources(job) {
        problems.push(e);
    }
    problems
}
