//! Access tokens of `cairn serve`: each names one repository and one role. Only a hash of
//! each token is stored (`ROOT/.cairn-serve/tokens.json`, mode 0600), so reading the file
//! gives no token; a token is shown once, when it is made.

use crate::error::{Error, ErrorKind, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What a token may do in its repository (format-spec/serve.md has the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// List and read, and create and delete its own locks.
    Read,
    /// As read, and create objects that do not exist yet (no keys, no config).
    Append,
    /// As append, and delete packs, index files, snapshots, locks and log entries.
    Maintain,
    /// Everything: create the repository, write keys and the config, delete anything.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "read" => Ok(Role::Read),
            "append" => Ok(Role::Append),
            "maintain" => Ok(Role::Maintain),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::invalid(format!("'{s}' is not a role: use read, append, maintain or admin"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Append => "append",
            Role::Maintain => "maintain",
            Role::Admin => "admin",
        }
    }
}

/// One stored token: its name (for logs and listings), repository, role and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub repo: String,
    pub role: Role,
    /// Hex of unkeyed BLAKE3 of the token's text.
    pub hash: String,
    /// When it was made, RFC 3339.
    pub created: String,
}

/// The token file of a server root.
pub struct TokenFile {
    path: PathBuf,
}

/// The server's own folder: tokens, arrivals, the access log. `--state DIR`, else inside a
/// local root (repository names may not start with a dot, so no repository reaches it).
/// A root on a remote store needs `--state`: tokens never go to the storage.
pub fn state_dir(root: &str, state: Option<&Path>) -> crate::Result<PathBuf> {
    match state {
        Some(s) => Ok(s.to_path_buf()),
        None if crate::backend::is_remote(root) => Err(Error::invalid(format!(
            "--root {root} is a remote store: give --state DIR, a local folder for the tokens"
        ))),
        None => Ok(Path::new(root).join(".cairn-serve")),
    }
}

/// Repository names: letters, digits, '-', '_' and '.', not starting with '.', at most 64.
pub fn check_repo_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{name}' is not a repository name: use letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl TokenFile {
    /// The token file of the server whose state folder is `state`.
    pub fn new(state: &Path) -> TokenFile {
        TokenFile { path: state.join("tokens.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<Vec<TokenEntry>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", self.path.display()), e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::Corrupt, format!("{} is not a token file: {e}", self.path.display()))
        })
    }

    fn save(&self, entries: &[TokenEntry]) -> Result<()> {
        let dir = self.path.parent().expect("token file has a folder");
        crate::sys::create_private_dir(dir)?;
        let json = serde_json::to_vec_pretty(entries).expect("tokens serialize");
        crate::sys::write_private_file(&self.path, &json)
    }

    /// Make a token for `repo` with `role` under `name` (unique), store its hash and
    /// return the token text, which nothing else ever shows again.
    pub fn add(&self, name: &str, repo: &str, role: Role) -> Result<Zeroizing<String>> {
        check_repo_name(repo)?;
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(format!(
                "'{name}' is not a token name: use up to 64 visible characters, no spaces"
            )));
        }
        let mut entries = self.load()?;
        if entries.iter().any(|e| e.name == name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a token named '{name}' exists; remove it first or choose another name"),
            ));
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut raw[..]).map_err(|e| Error::invalid(format!("no randomness: {e}")))?;
        let token = Zeroizing::new(format!("cairn_{}", crate::id::hex_encode(&raw[..])));
        entries.push(TokenEntry {
            name: name.to_string(),
            repo: repo.to_string(),
            role,
            hash: hash_token(&token),
            created: jiff::Timestamp::now().to_string(),
        });
        self.save(&entries)?;
        Ok(token)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let mut entries = self.load()?;
        let before = entries.len();
        entries.retain(|e| e.name != name);
        if entries.len() == before {
            return Err(Error::new(ErrorKind::NotFound, format!("no token named '{name}'")));
        }
        self.save(&entries)
    }
}

/// The tokens a running server checks requests against, reloaded when the file changes
/// (so `token add` and `token remove` take effect without a restart).
pub struct TokenCache {
    file: TokenFile,
    state: std::sync::Mutex<(Option<std::time::SystemTime>, Vec<TokenEntry>)>,
}

impl TokenCache {
    pub fn new(state: &Path) -> TokenCache {
        TokenCache { file: TokenFile::new(state), state: std::sync::Mutex::new((None, Vec::new())) }
    }

    /// The repositories tokens name.
    pub fn repos(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.file.load().unwrap_or_default().into_iter().map(|e| e.repo).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The entry whose token is `token`, if any.
    pub fn find(&self, token: &str) -> Result<Option<TokenEntry>> {
        let stamp = std::fs::metadata(self.file.path()).and_then(|m| m.modified()).ok();
        let mut state = self.state.lock().expect("token cache lock");
        if state.0 != stamp || stamp.is_none() {
            *state = (stamp, self.file.load()?);
        }
        let hash = hash_token(token);
        Ok(state.1.iter().find(|e| e.hash == hash).cloned())
    }
}

/// Check that a token file is private before trusting it: tokens are hashed, but a file
/// others may write would let them add their own.
pub fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if m.mode() & 0o022 != 0 => Err(Error::invalid(format!(
            "{} may be written by others (mode {:o}); run chmod 600 on it",
            path.display(),
            m.mode() & 0o777
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("cannot look at {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_found_by_their_text() {
        let root = tempfile::tempdir().unwrap();
        let file = TokenFile::new(root.path());
        assert_eq!(state_dir("/srv/cairn", None).unwrap(), Path::new("/srv/cairn/.cairn-serve"));
        assert!(state_dir("s3:https://s3.example/b", None).is_err(), "tokens never go to a bucket");
        let t = file.add("gw1", "gw", Role::Append).unwrap();
        let stored = std::fs::read_to_string(file.path()).unwrap();
        assert!(!stored.contains(t.as_str()), "the token itself is never stored");
        let cache = TokenCache::new(root.path());
        assert_eq!(cache.find(&t).unwrap().unwrap().role, Role::Append);
        assert!(cache.find("cairn_00").unwrap().is_none());
        assert_eq!(file.add("gw1", "gw", Role::Read).unwrap_err().kind(), ErrorKind::AlreadyExists);
        file.remove("gw1").unwrap();
        assert!(cache.find(&t).unwrap().is_none(), "a removed token stops working");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn repository_names_stay_inside_the_root() {
        for bad in ["", ".", "..", ".cairn-serve", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_repo_name(bad).is_err(), "{bad}");
        }
        for ok in ["gw", "gw-1.prod", "A_b"] {
            check_repo_name(ok).unwrap();
        }
    }
}
