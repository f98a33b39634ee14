//! What a backup leaves out: gitignore-style patterns, marker files, cache folders,
//! other filesystems and large files.
//!
//! Patterns follow gitignore's rules, applied to absolute paths:
//! - a pattern containing a '/' (other than a trailing one) matches the whole path;
//!   one without matches an entry's name at any depth;
//! - `*` and `?` stay within one path component, `**` crosses components, `[...]` is a
//!   class, `\` escapes;
//! - a trailing '/' makes the pattern match folders only;
//! - a leading '!' re-includes what an earlier pattern excluded; the last matching
//!   pattern decides.
//!
//! An excluded folder is not entered, so nothing below it is backed up.

use crate::error::{Error, IoContext, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

/// The signature that marks a cache folder (the Cache Directory Tagging convention).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

#[derive(Clone, Debug, Default)]
pub struct ExcludeOptions {
    pub patterns: Vec<String>,
    /// Files with more patterns, one a line; blank lines and lines starting '#' skipped.
    pub pattern_files: Vec<std::path::PathBuf>,
    /// Leave out folders holding a file of one of these names.
    pub if_present: Vec<String>,
    /// Leave out folders holding a valid CACHEDIR.TAG.
    pub caches: bool,
    /// Do not cross into other filesystems below a source.
    pub one_file_system: bool,
    /// Leave out files larger than this many bytes.
    pub larger_than: Option<u64>,
}

struct Rule {
    negated: bool,
    dirs_only: bool,
}

pub struct Excludes {
    rules: Vec<Rule>,
    by_path: GlobSet,
    by_name: GlobSet,
    /// Rule index of each glob in the two sets.
    path_rules: Vec<usize>,
    name_rules: Vec<usize>,
    opts: ExcludeOptions,
}

impl Excludes {
    pub fn new(opts: &ExcludeOptions) -> Result<Self> {
        let mut patterns = opts.patterns.clone();
        for f in &opts.pattern_files {
            let text =
                std::fs::read_to_string(f).ctx(|| format!("cannot read exclude file {}", f.display()))?;
            patterns.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let (mut by_path, mut by_name) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut path_rules, mut name_rules, mut rules) = (Vec::new(), Vec::new(), Vec::new());
        for p in &patterns {
            let (negated, body) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            let dirs_only = body.ends_with('/');
            let body = body.trim_end_matches('/');
            if body.is_empty() {
                return Err(Error::invalid(format!("exclude pattern '{p}' is empty")));
            }
            let by_path_rule = body.contains('/');
            let glob = GlobBuilder::new(body)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid(format!("exclude pattern '{p}' is not a valid glob: {e}")))?;
            if by_path_rule {
                by_path.add(glob);
                path_rules.push(rules.len());
            } else {
                by_name.add(glob);
                name_rules.push(rules.len());
            }
            rules.push(Rule { negated, dirs_only });
        }
        let build =
            |b: GlobSetBuilder| b.build().map_err(|e| Error::invalid(format!("exclude patterns: {e}")));
        Ok(Excludes {
            rules,
            by_path: build(by_path)?,
            by_name: build(by_name)?,
            path_rules,
            name_rules,
            opts: opts.clone(),
        })
    }

    /// Whether the patterns exclude `path` (an absolute path; `is_dir` for trailing-'/' rules).
    pub fn excludes_path(&self, path: &Path, is_dir: bool) -> bool {
        let mut last: Option<usize> = None;
        let mut consider = |rule: usize| {
            let r = &self.rules[rule];
            if (!r.dirs_only || is_dir) && last.is_none_or(|l| rule > l) {
                last = Some(rule);
            }
        };
        for i in self.by_path.matches(path) {
            consider(self.path_rules[i]);
        }
        if let Some(name) = path.file_name() {
            for i in self.by_name.matches(Path::new(name)) {
                consider(self.name_rules[i]);
            }
        }
        last.is_some_and(|r| !self.rules[r].negated)
    }

    /// Whether a folder is left out because of a marker file inside it.
    pub fn excludes_folder_contents(&self, dir: &Path) -> bool {
        if self.opts.if_present.iter().any(|name| dir.join(name).symlink_metadata().is_ok()) {
            return true;
        }
        self.opts.caches
            && std::fs::read(dir.join("CACHEDIR.TAG")).is_ok_and(|b| b.starts_with(CACHEDIR_SIGNATURE))
    }

    pub fn excludes_size(&self, size: u64) -> bool {
        self.opts.larger_than.is_some_and(|max| size > max)
    }

    pub fn one_file_system(&self) -> bool {
        self.opts.one_file_system
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        Excludes::new(&ExcludeOptions {
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn path_and_name_patterns() {
        let e = ex(&["/opt/gw/conf/opsdb.d", "*.log", "/tmp/**/cache"]);
        assert!(e.excludes_path(Path::new("/opt/gw/conf/opsdb.d"), true));
        assert!(!e.excludes_path(Path::new("/opt/gw/conf/opsdb.dx"), true));
        assert!(e.excludes_path(Path::new("/var/trace/a.log"), false));
        assert!(!e.excludes_path(Path::new("/var/trace/a.log.1"), false));
        assert!(e.excludes_path(Path::new("/tmp/a/b/cache"), true));
        assert!(Excludes::new(&ExcludeOptions { patterns: vec!["[".into()], ..Default::default() }).is_err());
    }

    #[test]
    fn negation_and_folder_only_rules() {
        let e = ex(&["*.log", "!keep.log", "build/"]);
        assert!(e.excludes_path(Path::new("/a/x.log"), false));
        assert!(!e.excludes_path(Path::new("/a/keep.log"), false));
        assert!(e.excludes_path(Path::new("/a/build"), true));
        assert!(!e.excludes_path(Path::new("/a/build"), false));
        // Order matters: a later exclude wins over an earlier re-include.
        let e = ex(&["!keep.log", "*.log"]);
        assert!(e.excludes_path(Path::new("/a/keep.log"), false));
    }

    #[test]
    fn markers_caches_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExcludeOptions {
            if_present: vec![".nobackup".into()],
            caches: true,
            larger_than: Some(10),
            ..Default::default()
        };
        let e = Excludes::new(&opts).unwrap();
        assert!(!e.excludes_folder_contents(dir.path()));
        std::fs::write(dir.path().join("CACHEDIR.TAG"), b"not the signature").unwrap();
        assert!(!e.excludes_folder_contents(dir.path()));
        std::fs::write(dir.path().join("CACHEDIR.TAG"), [CACHEDIR_SIGNATURE, b"\n"].concat()).unwrap();
        assert!(e.excludes_folder_contents(dir.path()));
        std::fs::remove_file(dir.path().join("CACHEDIR.TAG")).unwrap();
        std::fs::write(dir.path().join(".nobackup"), b"").unwrap();
        assert!(e.excludes_folder_contents(dir.path()));
        assert!(e.excludes_size(11) && !e.excludes_size(10));
    }
}
