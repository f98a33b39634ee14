//! Object names on the wire: which names each type allows, and the check that an
//! uploaded object's bytes hash to its name (every object but the config is named by the
//! BLAKE3 hash of its stored bytes, format-spec/layout.md). Nothing that fails here
//! reaches a path.

use super::tokens::check_repo_name;
use crate::backend::FileType;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    pub ft: FileType,
    pub name: String,
}

/// The type whose folder is `dir` on the wire (`config` is not a folder).
pub fn type_of_dir(dir: &str) -> Option<FileType> {
    FileType::ALL.into_iter().find(|ft| *ft != FileType::Config && ft.dir() == dir)
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ObjectName {
    /// A name as the format writes it for its type, or why not.
    pub fn parse(ft: FileType, name: &str) -> Result<ObjectName, String> {
        let ok = match ft {
            FileType::Config => name == "config",
            FileType::Log => name.split_once('-').is_some_and(|(seq, hash)| {
                seq.len() == 16 && seq.bytes().all(|b| b.is_ascii_digit()) && is_hash(hash)
            }),
            _ => is_hash(name),
        };
        if ok {
            Ok(ObjectName { ft, name: name.to_string() })
        } else {
            Err(format!(
                "'{name}' is not a name of a {} object",
                if ft == FileType::Config { "config" } else { ft.dir() }
            ))
        }
    }

    /// The hash the name promises, if the type is named by one.
    fn promised_hash(&self) -> Option<&str> {
        match self.ft {
            FileType::Config => None,
            FileType::Log => self.name.split_once('-').map(|(_, h)| h),
            _ => Some(&self.name),
        }
    }

    /// Whether `bytes` are what the name promises.
    #[cfg(test)]
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut check = self.check();
        check.update(bytes);
        check.matches()
    }

    /// A check of the bytes as they arrive, piece by piece: each piece is hashed while
    /// it is still in the processor's cache, and the hash is ready when the upload ends.
    pub fn check(&self) -> NameCheck<'_> {
        NameCheck { promised: self.promised_hash(), hasher: blake3::Hasher::new() }
    }
}

/// The hash of an upload so far, against the hash its name promises.
pub struct NameCheck<'n> {
    promised: Option<&'n str>,
    hasher: blake3::Hasher,
}

impl NameCheck<'_> {
    pub fn update(&mut self, piece: &[u8]) {
        if self.promised.is_some() {
            self.hasher.update(piece);
        }
    }

    /// Whether all the bytes given are what the name promises.
    pub fn matches(&self) -> bool {
        self.promised.is_none_or(|h| self.hasher.finalize().to_hex().as_str() == h)
    }
}

/// What a request asked for, once its path is understood (format-spec/serve.md).
pub enum Target {
    StatusPage,
    Metrics,
    Repository(String),
    Listing(String, FileType),
    Object(String, ObjectName),
}

/// The target of a request path, or why it names none (a 400).
pub fn parse_path(path: &str) -> Result<Target, String> {
    let bad = |m: String| Err(m);
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let repo = |r: &str| check_repo_name(r).map(|_| r.to_string()).map_err(|e| e.to_string());
    match parts.as_slice() {
        [""] => Ok(Target::StatusPage),
        ["metrics"] => Ok(Target::Metrics),
        [r] | [r, ""] => Ok(Target::Repository(repo(r)?)),
        [r, "config"] => {
            Ok(Target::Object(repo(r)?, ObjectName::parse(FileType::Config, "config").expect("valid")))
        }
        [r, dir, rest @ ..] => {
            let Some(ft) = type_of_dir(dir) else { return bad(format!("'{dir}' is not an object type")) };
            match rest {
                [""] => Ok(Target::Listing(repo(r)?, ft)),
                [name] => match ObjectName::parse(ft, name) {
                    Ok(n) => Ok(Target::Object(repo(r)?, n)),
                    Err(m) => bad(m),
                },
                _ => bad(format!("'{path}' names no object")),
            }
        }
        _ => bad(format!("'{path}' names no object")),
    }
}

/// The byte range a `Range: bytes=A-B` or `bytes=A-` header asks for, as (offset, length).
pub fn parse_range(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    // A range to the end asks for all there is; the reader clamps it to the object's size.
    let len = if b.is_empty() {
        (u64::MAX - start).max(1)
    } else {
        b.parse::<u64>().ok()?.checked_sub(start)?.checked_add(1)?
    };
    Some((start, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_or_are_refused() {
        let h = blake3::hash(b"x").to_hex().to_string();
        assert!(matches!(parse_path("/"), Ok(Target::StatusPage)));
        assert!(matches!(parse_path("/gw/"), Ok(Target::Repository(r)) if r == "gw"));
        assert!(matches!(parse_path("/gw/data/"), Ok(Target::Listing(_, FileType::Pack))));
        assert!(
            matches!(parse_path(&format!("/gw/snapshots/{h}")), Ok(Target::Object(_, n)) if n.ft == FileType::Snapshot)
        );
        assert!(matches!(parse_path("/gw/config"), Ok(Target::Object(_, n)) if n.ft == FileType::Config));
        for bad in ["/../data/", "/gw/../x", "/gw/data/..", "/.cairn-serve/data/", "/gw/data/a/b", "/gw/etc/"]
        {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=10-19"), Some((10, 10)));
        assert_eq!(parse_range("bytes=5-"), Some((5, u64::MAX - 5)));
        assert_eq!(parse_range("bytes=9-3"), None);
        assert_eq!(parse_range("items=1-2"), None);
        // Found by the fuzzer: a last byte at the very end of the u64 range overflowed.
        assert_eq!(parse_range("bytes=0-18446744073709551615"), None);
        assert_eq!(parse_range(&format!("bytes={}-", u64::MAX)), Some((u64::MAX, 1)));
    }

    #[test]
    fn only_names_the_format_writes_pass() {
        let h = blake3::hash(b"x").to_hex().to_string();
        assert!(ObjectName::parse(FileType::Pack, &h).is_ok());
        assert!(ObjectName::parse(FileType::Log, &format!("0000000000000003-{h}")).is_ok());
        assert!(ObjectName::parse(FileType::Config, "config").is_ok());
        for bad in ["..", "../config", "a/b", "", &h.to_uppercase(), &h[1..], "config"] {
            assert!(ObjectName::parse(FileType::Pack, bad).is_err(), "{bad}");
        }
        assert!(ObjectName::parse(FileType::Log, &format!("3-{h}")).is_err());
        assert!(ObjectName::parse(FileType::Config, "other").is_err());
        assert_eq!(type_of_dir("data"), Some(FileType::Pack));
        assert_eq!(type_of_dir(""), None, "the config is not a folder");
        assert_eq!(type_of_dir(".."), None);
    }

    #[test]
    fn bytes_must_hash_to_the_name() {
        let h = blake3::hash(b"pack bytes").to_hex().to_string();
        let n = ObjectName::parse(FileType::Pack, &h).unwrap();
        assert!(n.matches(b"pack bytes"));
        assert!(!n.matches(b"other bytes"));
        let log = ObjectName::parse(FileType::Log, &format!("0000000000000001-{h}")).unwrap();
        assert!(log.matches(b"pack bytes") && !log.matches(b""));
        assert!(ObjectName::parse(FileType::Config, "config").unwrap().matches(b"anything"));
    }
}
