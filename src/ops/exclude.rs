//! Exclude patterns. A pattern with a '/' matches the whole absolute path (and, by prefix,
//! everything under a matched folder, since the walk does not enter it); a pattern without
//! one matches an entry's name anywhere. Glob syntax: `*`, `?`, `[...]`, `**`.

use crate::error::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

pub struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
    patterns: Vec<String>,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid(format!("exclude pattern '{p}' is not a valid glob: {e}")))?;
            if trimmed.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build =
            |b: GlobSetBuilder| b.build().map_err(|e| Error::invalid(format!("exclude patterns: {e}")));
        Ok(Excludes { by_path: build(by_path)?, by_name: build(by_name)?, patterns: patterns.to_vec() })
    }

    pub fn is_excluded(&self, path: &Path) -> bool {
        self.by_path.is_match(path) || path.file_name().is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_name_patterns() {
        let ex =
            Excludes::new(&["/opt/gw/conf/opsdb.d".into(), "*.log".into(), "/tmp/**/cache".into()]).unwrap();
        assert!(ex.is_excluded(Path::new("/opt/gw/conf/opsdb.d")));
        assert!(!ex.is_excluded(Path::new("/opt/gw/conf/opsdb.dx")));
        assert!(ex.is_excluded(Path::new("/var/trace/a.log")));
        assert!(!ex.is_excluded(Path::new("/var/trace/a.log.1")));
        assert!(ex.is_excluded(Path::new("/tmp/a/b/cache")));
        assert!(Excludes::new(&["[".into()]).is_err());
    }
}
