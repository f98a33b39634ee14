//! The library's one error type.
//!
//! Policy: every fallible library function returns [`Result`]. An [`Error`] carries a
//! [`ErrorKind`] that callers branch on (the CLI maps kinds to exit codes), a one-line
//! context saying what was being done and to which object, and optionally the underlying
//! cause. Library code never prints and never exits; it never panics on bad input (hostile
//! bytes, missing files, a full disk): those are errors of a kind, not bugs. `anyhow`-style
//! catch-alls are not used here: a caller must be able to tell "not found" from "corrupt".

use std::fmt;

/// What went wrong, in the terms a caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The path holds no cairn repository.
    NotARepository,
    /// `init` found a repository (or other files) already there.
    AlreadyExists,
    /// No key file opens with the given passphrase, or the key file is not a key.
    WrongPassword,
    /// An object or path that should exist does not.
    NotFound,
    /// Stored bytes fail authentication, hashing or decoding: damage or tampering.
    Corrupt,
    /// The repository uses a format version or feature this build does not know.
    Unsupported,
    /// The user gave something unusable (bad snapshot id, bad option value, ...).
    InvalidInput,
    /// The disk (or quota) is full.
    NoSpace,
    /// The operation was interrupted by a signal.
    Interrupted,
    /// Another process holds a conflicting lock on the repository.
    Locked,
    /// The key in use lacks the right (for example a backup-only key asked to read), or
    /// the storage refuses this user (permission denied, a read-only filesystem).
    PermissionDenied,
    /// A command cairn ran for the user (a database dump, a hook) failed.
    CommandFailed,
    /// A command that deletes or replaces data refused to run because a snapshot cannot be
    /// read (damaged, or written by a newer cairn) and was not named for removal.
    UnreadableSnapshot,
    /// Any other I/O failure.
    Io,
}

/// An error with its kind, what was being done, and the cause.
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error { kind, context: context.into(), source: None }
    }

    pub fn with_source(
        kind: ErrorKind,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error { kind, context: context.into(), source: Some(source.into()) }
    }

    /// An I/O error, classified by what the OS said (a full disk gets its own kind).
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => ErrorKind::NoSpace,
            std::io::ErrorKind::Interrupted => ErrorKind::Interrupted,
            // Both say "this user may not change that here" (a read-only mount).
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                ErrorKind::PermissionDenied
            }
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, context, err)
    }

    pub fn corrupt(context: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, context)
    }

    pub fn invalid(context: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, context)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// Prefix more context ("while doing X: ...") keeping kind and cause.
    pub fn wrap(mut self, outer: impl fmt::Display) -> Self {
        self.context = format!("{outer}: {}", self.context);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Attach context to a `std::io::Result`.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_its_own_kind() {
        let e = Error::io("writing pack", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.to_string().starts_with("writing pack: "));
    }

    #[test]
    fn wrap_keeps_kind() {
        let e = Error::corrupt("bad tag").wrap("pack 01ab");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(e.to_string(), "pack 01ab: bad tag");
    }
}
