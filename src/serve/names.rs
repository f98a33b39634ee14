//! Object names on the wire: which names each type allows, and the check that an
//! uploaded object's bytes hash to its name (every object but the config is named by the
//! BLAKE3 hash of its stored bytes, format-spec/layout.md). Nothing that fails here
//! reaches a path.

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
    pub fn matches(&self, bytes: &[u8]) -> bool {
        match self.promised_hash() {
            None => true,
            Some(h) => blake3::hash(bytes).to_hex().as_str() == h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
