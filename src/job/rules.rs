//! Checks on a job's values that their TOML types cannot express, each a pure function
//! that says what is wrong and how to fix it. They catch what used to pass
//! `config check` and fail at run time: paths that work only from the folder the check
//! ran in (not under cron or systemd), globs where they are not expanded, and spans
//! that do not parse.

/// Whether a repository location is a local path (not sftp: or s3:).
fn is_local(location: &str) -> bool {
    !location.starts_with("sftp:") && !location.starts_with("s3:")
}

/// A local repository must be an absolute path.
pub fn repository(location: &str) -> Option<String> {
    (is_local(location) && !location.starts_with('/')).then(|| {
        format!(
            "repository \"{location}\" is relative: it would depend on the folder cairn runs from (cron and systemd use another); give an absolute path"
        )
    })
}

/// Password files, key files and sources must be absolute paths.
pub fn absolute(what: &str, path: &str) -> Option<String> {
    (!path.starts_with('/')).then(|| {
        format!("{what} \"{path}\" is relative: it would depend on the folder cairn runs from; give an absolute path")
    })
}

/// A source may have glob characters in its last part only (that is where they are
/// expanded); it must be absolute.
pub fn source(pattern: &str) -> Option<String> {
    if let Some(problem) = absolute("source", pattern) {
        return Some(problem);
    }
    let parent = std::path::Path::new(pattern).parent().map(|p| p.to_string_lossy().into_owned());
    parent.filter(|p| p.contains(['*', '?', '['])).map(|_| {
        format!("source \"{pattern}\" has a glob before its last part; globs are expanded only in the last part (list each folder instead)")
    })
}

/// `keep-within` must be a span forget understands.
pub fn keep_within(span: &str) -> Option<String> {
    crate::ops::forget::Within::parse(span).err().map(|e| format!("keep-within: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_rule_says_what_is_wrong() {
        assert!(super::repository("backups/gw").unwrap().contains("relative"));
        assert_eq!(super::repository("/backups/gw"), None);
        assert_eq!(super::repository("sftp:host/srv/gw"), None);
        assert_eq!(super::repository("s3:https://s3.example/b"), None);
        assert!(super::absolute("password-file", "pass").unwrap().contains("password-file \"pass\""));
        assert_eq!(super::source("/etc/init.d/vshell-*"), None);
        assert!(super::source("/opt/*/conf").unwrap().contains("last part"));
        assert!(super::source("conf").unwrap().contains("relative"));
        assert!(super::keep_within("thirty days").unwrap().contains("30d"));
        assert_eq!(super::keep_within("30d"), None);
    }
}
