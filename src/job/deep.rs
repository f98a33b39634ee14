//! `config check --deep`: what only this machine can tell about a job. Every password
//! and token file is read, every repository (the job's and each copy target's) opened with its own
//! key, and every source glob expanded, as a run would; nothing is written. Each problem
//! is one line naming the job part and what to do.

use super::config::Job;
use crate::repo::{KeySource, Repository};
use std::path::{Path, PathBuf};

/// Every problem a run of `job` would meet before doing any work.
pub fn deep_check(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    let mut open =
        |what: &str, location: &str, password: Option<&Path>, key: Option<&PathBuf>, token: Option<&Path>| {
            if let Some(t) = token {
                match crate::backend::rest::read_token_file(t) {
                    Ok(t) => crate::backend::rest::register_token(location, t),
                    Err(e) => problems.push(format!("{what} {location}: {e}")),
                }
            }
            let opened = super::run::password(password).and_then(|pw| {
                let source = key.cloned().map(KeySource::File).unwrap_or(KeySource::Stored);
                Repository::open(location, &pw, &source)
            });
            if let Err(e) = opened {
                problems.push(format!("{what} {location}: {e}"));
            }
        };
    open(
        "repository",
        &job.repository,
        job.password_file.as_deref(),
        job.key_file.as_ref(),
        job.token_file.as_deref(),
    );
    for c in &job.copies {
        open(
            "copy target",
            &c.repository,
            c.password_file.as_deref(),
            c.key_file.as_ref(),
            c.token_file.as_deref(),
        );
    }
    if let Err(e) = super::steps::resolve_sources(job) {
        problems.push(e);
    }
    problems
}
