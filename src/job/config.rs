//! Job files: TOML that names jobs, each a repository, what to back up and what to do
//! around it. The whole file is checked before anything runs, and every mistake is
//! reported with its line and what was expected (unknown keys included), not just the
//! first one.

use crate::units::{parse_duration, parse_size};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One mistake in a job file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFile {
    /// In the order of the file.
    pub jobs: Vec<Job>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Job {
    pub name: String,
    pub repository: String,
    pub password_file: Option<PathBuf>,
    /// A command printing the password (a secret store).
    pub password_command: Option<String>,
    pub key_file: Option<PathBuf>,
    /// The token of a served repository (`rest:`).
    pub token_file: Option<PathBuf>,
    /// The credentials of an S3 repository (`s3:`), instead of the environment's.
    pub s3_credentials_file: Option<PathBuf>,
    /// KiB/s to and from the stores, for every step (--limit-upload, --limit-download).
    pub limit_upload: Option<u64>,
    pub limit_download: Option<u64>,
    /// Threads and requests in flight, for every step (--threads, --connections).
    pub threads: Option<u64>,
    pub connections: Option<u64>,
    pub host: Option<String>,
    /// Paths (shell globs allowed) that must exist.
    pub sources: Vec<String>,
    /// Paths (shell globs allowed) backed up when present, skipped when not.
    pub optional_sources: Vec<String>,
    pub excludes: Vec<String>,
    pub exclude_if_present: Vec<String>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub exclude_larger_than: Option<u64>,
    pub tags: Vec<String>,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
    /// Snapshot name template, e.g. "{application}-{environment}-{time:%Y%m%d-%H%M}-{kind}".
    pub snapshot_name: Option<String>,
    /// The type of the sources' snapshots (`type`: config, full, ...; default files).
    pub snapshot_type: Option<String>,
    /// The zone of the times in snapshot names (`name-time-zone`: "UTC" or a zone name;
    /// default the system's).
    pub name_time_zone: Option<String>,
    /// How long each step waits for a lock another host holds (`lock-wait`, e.g. "10m").
    pub lock_wait: Option<String>,
    /// Rotate the repository's keys when the last rotation (or the repository's creation)
    /// is this long ago, or a rotation is unfinished (`rotate-keys-every`).
    pub rotate_keys_every: Option<String>,
    pub dumps: Vec<Dump>,
    pub hooks: Hooks,
    pub retention: Option<Retention>,
    pub check: Option<CheckPlan>,
    pub drill: Option<DrillPlan>,
    pub copies: Vec<CopyTarget>,
    pub monitoring: Monitoring,
}

/// A command whose standard output is stored as one file (a database dump).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub name: String,
    pub command: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub on_error: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// (forget option without "--", count), e.g. ("keep-daily", 7).
    pub keep: Vec<(String, u32)>,
    pub keep_within: Option<String>,
    pub prune: bool,
    pub max_unused: Option<String>,
    /// Whether the rules run at the job's own repository (`at-repository = false`: one
    /// designated host prunes a shared repository; the copies still follow the rules).
    pub at_repository: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckPlan {
    /// Read one of this many parts of the data each run, in turn (by day).
    pub read_data_parts: Option<u32>,
    /// Read everything when the last full read is this many days old or more.
    pub full_read_every_days: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrillPlan {
    pub max_rto: Option<String>,
    pub max_rpo: Option<String>,
    pub random: bool,
    /// An application check run in the restored folder (`check-command`).
    pub check_command: Option<String>,
    /// Drill each copy target too, after its copy (`copies = true`).
    pub copies: bool,
    /// How often the job is scheduled (`schedule-every`): RPO is judged against it.
    pub schedule_every: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyTarget {
    pub repository: String,
    pub password_file: Option<PathBuf>,
    /// A command printing the password (a secret store).
    pub password_command: Option<String>,
    pub key_file: Option<PathBuf>,
    /// The token of a served repository (`rest:`).
    pub token_file: Option<PathBuf>,
    /// The credentials of an S3 repository (`s3:`), instead of the environment's.
    pub s3_credentials_file: Option<PathBuf>,
    /// Whether the job's retention also runs at the target (`retention = false`: another
    /// host prunes it, or the target's key is not allowed to delete).
    pub retention: bool,
}

/// A repository and what opens it, for the job's repository and each copy target alike.
pub struct Access<'a> {
    pub repository: &'a str,
    pub password_file: Option<&'a Path>,
    pub password_command: Option<&'a str>,
    pub key_file: Option<&'a Path>,
    pub token_file: Option<&'a Path>,
    pub s3_credentials_file: Option<&'a Path>,
}

impl Access<'_> {
    /// Make the token and S3 credentials files count for this repository in this process
    /// (the job runner opens repositories itself, besides its steps).
    pub fn register_files(&self) -> crate::error::Result<()> {
        if let Some(t) = self.token_file {
            crate::backend::rest::register_token(self.repository, crate::backend::rest::read_token_file(t)?);
        }
        if let Some(f) = self.s3_credentials_file {
            crate::backend::s3::register_credentials_file(self.repository, f);
        }
        Ok(())
    }

    /// Open the repository as its steps would: its token and credentials files, then its
    /// password (file, command, or the caller's environment) and key.
    pub fn open(&self) -> crate::error::Result<crate::Repository> {
        self.register_files()?;
        let pw = super::run::password(self.password_file, self.password_command)?;
        let source = match self.key_file {
            Some(f) => crate::repo::KeySource::File(f.to_path_buf()),
            None => crate::repo::KeySource::Stored,
        };
        crate::Repository::open(self.repository, &pw, &source)
    }

    /// Point a cairn command at this repository: its location and what opens it, in the
    /// command's environment (the way every job step gets it).
    pub fn point(&self, command: &mut std::process::Command) {
        super::steps::set_repository(command, self);
    }
}

impl Job {
    pub fn access(&self) -> Access<'_> {
        Access {
            repository: &self.repository,
            password_file: self.password_file.as_deref(),
            password_command: self.password_command.as_deref(),
            key_file: self.key_file.as_deref(),
            token_file: self.token_file.as_deref(),
            s3_credentials_file: self.s3_credentials_file.as_deref(),
        }
    }

    /// The job's own repository and what opens it, in the shape of a copy target (an
    /// owned `Access`), for whoever keeps it beyond the job file.
    pub fn own_target(&self) -> CopyTarget {
        CopyTarget {
            repository: self.repository.clone(),
            password_file: self.password_file.clone(),
            password_command: self.password_command.clone(),
            key_file: self.key_file.clone(),
            token_file: self.token_file.clone(),
            s3_credentials_file: self.s3_credentials_file.clone(),
            retention: self.retention.as_ref().is_some_and(|r| r.at_repository),
        }
    }
}

impl CopyTarget {
    pub fn access(&self) -> Access<'_> {
        Access {
            repository: &self.repository,
            password_file: self.password_file.as_deref(),
            password_command: self.password_command.as_deref(),
            key_file: self.key_file.as_deref(),
            token_file: self.token_file.as_deref(),
            s3_credentials_file: self.s3_credentials_file.as_deref(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Monitoring {
    pub ping_start: Option<String>,
    pub ping_success: Option<String>,
    pub ping_failure: Option<String>,
    /// Seconds a ping may take before it is given up.
    pub ping_timeout: u64,
}

const JOB_KEYS: &[&str] = &[
    "repository",
    "password-file",
    "password-command",
    "key-file",
    "token-file",
    "s3-credentials-file",
    "limit-upload",
    "limit-download",
    "threads",
    "connections",
    "host",
    "sources",
    "optional-sources",
    "excludes",
    "exclude-if-present",
    "exclude-caches",
    "one-file-system",
    "exclude-larger-than",
    "tags",
    "labels",
    "snapshot-name",
    "type",
    "name-time-zone",
    "lock-wait",
    "rotate-keys-every",
    "dumps",
    "hooks",
    "retention",
    "check",
    "drill",
    "copy",
    "monitoring",
];
const KEEP_KEYS: &[&str] =
    &["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"];

/// Parse and check a job file; every problem found is returned.
pub fn parse(text: &str) -> Result<JobFile, Vec<ConfigError>> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut r = Reader { text, errors: Vec::new() };
    for e in syntax {
        let line = e.span().map_or(1, |s| r.line(s.start));
        r.errors.push(ConfigError { line, message: e.message().trim().to_string() });
    }
    let mut file = JobFile::default();
    let root = doc.get_ref();
    for (key, value) in root.iter() {
        if key.get_ref() != "jobs" {
            r.unknown(key, "the top level", &["jobs"]);
            continue;
        }
        let Some(jobs) = r.table(value, "[jobs]: a table of jobs, e.g. [jobs.gateway]") else { continue };
        for (name, job) in jobs.iter() {
            if let Some(job) = r.job(name, job) {
                file.jobs.push(job);
            }
        }
    }
    if file.jobs.is_empty() && r.errors.is_empty() {
        r.errors.push(ConfigError {
            line: 1,
            message: "no jobs: add a [jobs.NAME] table (`cairn config example` prints one)".into(),
        });
    }
    r.errors.sort_by_key(|e| e.line);
    if r.errors.is_empty() {
        Ok(file)
    } else {
        Err(r.errors)
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Reader<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        let line = self.line(span.start);
        self.errors.push(ConfigError { line, message });
    }

    fn unknown(&mut self, key: &Spanned<std::borrow::Cow<'_, str>>, place: &str, allowed: &[&str]) {
        self.error(
            key.span(),
            format!("unknown key `{}` in {place}; expected one of: {}", key.get_ref(), allowed.join(", ")),
        );
    }

    fn table<'a, 'i>(&mut self, v: &'a Value<'i>, expected: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(v.span(), format!("expected {expected}, found {}", other.type_str()));
                None
            }
        }
    }

    fn string(&mut self, v: &Value<'_>, what: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) if !s.is_empty() => Some(s.to_string()),
            DeValue::String(_) => {
                self.error(v.span(), format!("{what} is empty"));
                None
            }
            other => {
                self.error(v.span(), format!("{what} must be a string, found {}", other.type_str()));
                None
            }
        }
    }

    fn strings(&mut self, v: &Value<'_>, what: &str) -> Vec<String> {
        match v.get_ref() {
            DeValue::Array(items) => items.iter().filter_map(|item| self.string(item, what)).collect(),
            other => {
                self.error(v.span(), format!("{what} must be a list of strings, found {}", other.type_str()));
                Vec::new()
            }
        }
    }

    fn bool(&mut self, v: &Value<'_>, what: &str) -> bool {
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                self.error(v.span(), format!("{what} must be true or false, found {}", other.type_str()));
                false
            }
        }
    }

    fn count(&mut self, v: &Value<'_>, what: &str) -> Option<u32> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        if n.is_none_or(|n| n == 0) {
            self.error(v.span(), format!("{what} must be a whole number from 1 up"));
            return None;
        }
        n
    }

    fn duration(&mut self, v: &Value<'_>, what: &str) -> Option<String> {
        let s = self.string(v, what)?;
        match parse_duration(&s) {
            Ok(_) => Some(s),
            Err(e) => {
                self.error(v.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    /// Report what a rule of `rules.rs` found wrong with `v`, if anything.
    fn rule(&mut self, v: &Value<'_>, problem: Option<String>) {
        if let Some(p) = problem {
            self.error(v.span(), p);
        }
    }

    /// An absolute path (password and key files).
    fn path(&mut self, v: &Value<'_>, what: &str) -> Option<PathBuf> {
        let s = self.string(v, what)?;
        self.rule(v, super::rules::absolute(what, &s));
        Some(PathBuf::from(s))
    }

    /// Source paths: absolute, globs in the last part only.
    fn sources(&mut self, v: &Value<'_>, what: &str) -> Vec<String> {
        let list = self.strings(v, what);
        for s in &list {
            self.rule(v, super::rules::source(s));
        }
        list
    }

    /// The entries of a sub-table, after reporting its unknown keys.
    fn section<'a, 'i>(
        &mut self,
        v: &'a Value<'i>,
        place: &str,
        allowed: &[&str],
    ) -> Vec<(&'a str, &'a Value<'i>)> {
        let Some(t) = self.table(v, &format!("a table for {place}")) else { return Vec::new() };
        let mut out = Vec::new();
        for (k, v) in t.iter() {
            if allowed.contains(&k.get_ref().as_ref()) {
                out.push((k.get_ref().as_ref(), v));
            } else {
                self.unknown(k, place, allowed);
            }
        }
        out
    }

    fn job(&mut self, name: &Spanned<std::borrow::Cow<'_, str>>, v: &Value<'_>) -> Option<Job> {
        let place = format!("[jobs.{}]", name.get_ref());
        let valid_name = !name.get_ref().is_empty()
            && name.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid_name {
            self.error(
                name.span(),
                format!("job name `{}` may hold only letters, digits, '-', '_' and '.'", name.get_ref()),
            );
        }
        let mut job = Job { name: name.get_ref().to_string(), ..Default::default() };
        job.monitoring.ping_timeout = 10;
        let mut has_repo = false;
        let mut name_at = None;
        let entries = self.section(v, &place, JOB_KEYS);
        let names_sources = entries.iter().any(|(k, _)| ["sources", "optional-sources", "dumps"].contains(k));
        for (key, value) in entries {
            match key {
                "repository" => {
                    has_repo = true;
                    job.repository = self.string(value, "repository").unwrap_or_default();
                    self.rule(value, super::rules::repository(&job.repository));
                }
                "password-file" => job.password_file = self.path(value, key),
                "password-command" => job.password_command = self.string(value, key),
                "key-file" => job.key_file = self.path(value, key),
                "token-file" => job.token_file = self.path(value, key),
                "s3-credentials-file" => job.s3_credentials_file = self.path(value, key),
                "limit-upload" => job.limit_upload = self.count(value, key).map(u64::from),
                "limit-download" => job.limit_download = self.count(value, key).map(u64::from),
                "threads" => job.threads = self.count(value, key).map(u64::from),
                "connections" => job.connections = self.count(value, key).map(u64::from),
                "host" => job.host = self.string(value, key),
                "sources" => job.sources = self.sources(value, key),
                "optional-sources" => job.optional_sources = self.sources(value, key),
                "excludes" => job.excludes = self.strings(value, key),
                "exclude-if-present" => job.exclude_if_present = self.strings(value, key),
                "exclude-caches" => job.exclude_caches = self.bool(value, key),
                "one-file-system" => job.one_file_system = self.bool(value, key),
                "exclude-larger-than" => {
                    job.exclude_larger_than = self.string(value, key).and_then(|s| match parse_size(&s) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            self.error(value.span(), format!("{key}: {e}"));
                            None
                        }
                    })
                }
                "tags" => job.tags = self.strings(value, key),
                "labels" => {
                    if let Some(t) =
                        self.table(value, "a table of labels, e.g. labels = { environment = \"prod\" }")
                    {
                        for (k, v) in t.iter() {
                            if let Some(s) = self.string(v, &format!("label {}", k.get_ref())) {
                                job.labels.push((k.get_ref().to_string(), s));
                            }
                        }
                    }
                }
                "snapshot-name" => {
                    job.snapshot_name = self.string(value, key);
                    name_at = Some(value.span());
                }
                "type" => {
                    job.snapshot_type = self.string(value, key).filter(|t| {
                        let ok = t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                        if !ok {
                            self.error(
                                value.span(),
                                format!("type `{t}` may hold only letters, digits, '-', '_' and '.'"),
                            );
                        }
                        ok
                    })
                }
                "name-time-zone" => {
                    job.name_time_zone = self.string(value, key).filter(|z| {
                        let found = jiff::tz::TimeZone::get(z);
                        if let Err(e) = &found {
                            self.error(
                                value.span(),
                                format!(
                                    "name-time-zone: {e}; use \"UTC\" or a zone such as \"Europe/Paris\""
                                ),
                            );
                        }
                        found.is_ok()
                    })
                }
                "lock-wait" => job.lock_wait = self.duration(value, key),
                "rotate-keys-every" => job.rotate_keys_every = self.duration(value, key),
                "dumps" => job.dumps = self.dumps(value, &place),
                "hooks" => job.hooks = self.hooks(value, &place),
                "retention" => job.retention = Some(self.retention(value, &place)),
                "check" => job.check = Some(self.check(value, &place)),
                "drill" => job.drill = Some(self.drill(value, &place)),
                "copy" => job.copies = self.copies(value, &place),
                "monitoring" => job.monitoring = self.monitoring(value, &place),
                _ => unreachable!("key listed in JOB_KEYS"),
            }
        }
        job.labels.sort();
        if !has_repo {
            self.error(name.span(), format!("{place} has no `repository`; add repository = \"/backups/gw\""));
        } else if job.password_file.is_some() && job.password_command.is_some() {
            self.error(name.span(), format!("{place} gives password-file and password-command: keep one"));
        } else if job.repository.starts_with("rest:") && job.token_file.is_none() {
            // Jobs run from timers, where no CAIRN_TOKEN is set.
            self.error(
                name.span(),
                format!("{place} uses a served repository: add token-file = \"/etc/cairn/gw.token\""),
            );
        }
        if !names_sources {
            self.error(
                name.span(),
                format!("{place} backs up nothing: give `sources` or a [[jobs.{}.dumps]]", job.name),
            );
        }
        if let (Some(template), Some(span)) = (&job.snapshot_name, name_at) {
            if let Err(e) = super::template::check(template, &job.labels) {
                self.error(span, format!("snapshot-name: {e}"));
            }
        }
        Some(job)
    }

    fn dumps(&mut self, v: &Value<'_>, place: &str) -> Vec<Dump> {
        let DeValue::Array(items) = v.get_ref() else {
            self.error(v.span(), format!("dumps in {place} must be a list of tables: [[jobs.NAME.dumps]]"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let mut d = Dump::default();
            for (key, value) in self.section(item, &format!("{place} dumps"), &["name", "command"]) {
                match key {
                    "name" => d.name = self.string(value, "dump name").unwrap_or_default(),
                    _ => d.command = self.string(value, "dump command").unwrap_or_default(),
                }
            }
            if d.name.is_empty() || d.command.is_empty() {
                self.error(
                    item.span(),
                    "a dump needs `name` (a file name such as gwdb.sql) and `command`".into(),
                );
            } else if !crate::format::tree::valid_name(d.name.as_bytes()) {
                self.error(item.span(), format!("dump name `{}` must be a plain file name (no '/')", d.name));
            } else {
                out.push(d);
            }
        }
        out
    }

    fn hooks(&mut self, v: &Value<'_>, place: &str) -> Hooks {
        let mut h = Hooks::default();
        for (key, value) in self.section(v, &format!("{place} hooks"), &["before", "after", "on-error"]) {
            let list = self.strings(value, key);
            match key {
                "before" => h.before = list,
                "after" => h.after = list,
                _ => h.on_error = list,
            }
        }
        h
    }

    fn retention(&mut self, v: &Value<'_>, place: &str) -> Retention {
        let mut allowed = KEEP_KEYS.to_vec();
        allowed.extend(["keep-within", "prune", "max-unused", "at-repository"]);
        let mut r = Retention { prune: true, at_repository: true, ..Default::default() };
        let entries = self.section(v, &format!("{place} retention"), &allowed);
        let names_a_rule = entries.iter().any(|(k, _)| k.starts_with("keep-"));
        for (key, value) in entries {
            match key {
                "keep-within" => {
                    r.keep_within = self.string(value, key);
                    self.rule(value, r.keep_within.as_deref().and_then(super::rules::keep_within));
                }
                "prune" => r.prune = self.bool(value, key),
                "at-repository" => r.at_repository = self.bool(value, key),
                "max-unused" => r.max_unused = self.string(value, key),
                _ => {
                    if let Some(n) = self.count(value, key) {
                        r.keep.push((key.to_string(), n));
                    }
                }
            }
        }
        if !names_a_rule {
            self.error(v.span(), format!("{place} retention keeps nothing: give keep-daily = 7 or the like"));
        }
        r
    }

    fn check(&mut self, v: &Value<'_>, place: &str) -> CheckPlan {
        let mut c = CheckPlan::default();
        for (key, value) in
            self.section(v, &format!("{place} check"), &["read-data-parts", "full-read-every-days"])
        {
            match key {
                "read-data-parts" => c.read_data_parts = self.count(value, key),
                _ => c.full_read_every_days = self.count(value, key),
            }
        }
        c
    }

    fn drill(&mut self, v: &Value<'_>, place: &str) -> DrillPlan {
        let mut d = DrillPlan::default();
        let allowed = ["max-rto", "max-rpo", "random", "check-command", "copies", "schedule-every"];
        for (key, value) in self.section(v, &format!("{place} drill"), &allowed) {
            match key {
                "max-rto" => d.max_rto = self.duration(value, key),
                "max-rpo" => d.max_rpo = self.duration(value, key),
                "check-command" => d.check_command = self.string(value, key),
                "copies" => d.copies = self.bool(value, key),
                "schedule-every" => d.schedule_every = self.duration(value, key),
                _ => d.random = self.bool(value, key),
            }
        }
        d
    }

    fn copies(&mut self, v: &Value<'_>, place: &str) -> Vec<CopyTarget> {
        let DeValue::Array(items) = v.get_ref() else {
            self.error(v.span(), format!("copy in {place} must be a list of tables: [[jobs.NAME.copy]]"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let mut c = CopyTarget { retention: true, ..Default::default() };
            let allowed = [
                "repository",
                "password-file",
                "password-command",
                "key-file",
                "token-file",
                "s3-credentials-file",
                "retention",
            ];
            for (key, value) in self.section(item, &format!("{place} copy"), &allowed) {
                match key {
                    "repository" => c.repository = self.string(value, key).unwrap_or_default(),
                    "password-file" => c.password_file = self.path(value, key),
                    "password-command" => c.password_command = self.string(value, key),
                    "token-file" => c.token_file = self.path(value, key),
                    "s3-credentials-file" => c.s3_credentials_file = self.path(value, key),
                    "retention" => c.retention = self.bool(value, key),
                    _ => c.key_file = self.path(value, key),
                }
            }
            if c.repository.is_empty() {
                self.error(item.span(), "a copy target needs `repository`".into());
            } else if c.repository.starts_with("rest:") && c.token_file.is_none() {
                self.error(
                    item.span(),
                    format!("copy target {} is served: it needs a token-file", c.repository),
                );
            } else if c.password_file.is_some() && c.password_command.is_some() {
                self.error(
                    item.span(),
                    format!(
                        "copy target {} gives password-file and password-command: keep one",
                        c.repository
                    ),
                );
            } else if c.password_file.is_none() && c.password_command.is_none() && c.key_file.is_none() {
                // Without one the copy would open the target with the job's password.
                self.error(
                    item.span(),
                    format!(
                        "copy target {} needs its own password-file, password-command or key-file",
                        c.repository
                    ),
                );
            } else {
                out.push(c);
            }
        }
        out
    }

    fn monitoring(&mut self, v: &Value<'_>, place: &str) -> Monitoring {
        let mut m = Monitoring { ping_timeout: 10, ..Default::default() };
        let allowed = ["ping-start", "ping-success", "ping-failure", "ping-timeout"];
        for (key, value) in self.section(v, &format!("{place} monitoring"), &allowed) {
            if key == "ping-timeout" {
                if let Some(d) = self.duration(value, key) {
                    m.ping_timeout = parse_duration(&d).unwrap_or(10);
                }
                continue;
            }
            let url = self.string(value, key).filter(|u| {
                let ok = u.starts_with("http://") || u.starts_with("https://");
                if !ok {
                    self.error(value.span(), format!("{key} must be an http:// or https:// URL"));
                }
                ok
            });
            match key {
                "ping-start" => m.ping_start = url,
                "ping-success" => m.ping_success = url,
                _ => m.ping_failure = url,
            }
        }
        m
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
