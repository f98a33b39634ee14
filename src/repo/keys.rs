//! Key files of a repository: finding the one a passphrase opens, listing, adding,
//! removing, and keeping a key outside the repository (`--key-file`).
//!
//! Every key file wraps the same master key material (a backup-only key wraps the same
//! write root and the public key instead of the read secret), so adding or removing a key
//! never touches data.

use super::Repository;
use crate::backend::{Backend, FileType};
use crate::crypto::keys::{KdfParams, KeyKind, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::keyfile::{KeyFile, KeyHeader};
use crate::id::KeyId;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where the key that opens a repository comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeySource {
    /// Try every key file in the repository's keys/ folder.
    #[default]
    Stored,
    /// A key file kept apart from the repository.
    File(PathBuf),
}

/// A key file as `key list` shows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: KeyId,
    /// Key file version (1 cannot be given new keys by a rotation).
    pub version: u8,
    pub kind: KeyKind,
    pub header: KeyHeader,
    pub in_use: bool,
}

/// Find and unwrap the key for `passphrase`.
pub(super) fn open_key(
    backend: &dyn Backend,
    source: &KeySource,
    passphrase: &[u8],
) -> Result<(KeyId, MasterKey)> {
    match source {
        KeySource::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Error::with_source(
                    ErrorKind::WrongPassword,
                    format!("cannot read key file {}; check --key-file", path.display()),
                    e,
                )
            })?;
            let kf = KeyFile::decode(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::WrongPassword,
                    format!("{} is not a usable cairn key file: {e}", path.display()),
                )
            })?;
            Ok((KeyId(*blake3::hash(&bytes).as_bytes()), kf.unwrap(passphrase)?))
        }
        KeySource::Stored => find_stored_key(backend, passphrase),
    }
}

/// Try the key files in keys/ with `passphrase`; the first that opens wins. Each try costs
/// one Argon2id derivation at the file's own parameters, and anyone who can write to the
/// storage can plant key files, so the order bounds what a planted one costs: the key
/// that opened this repository last on this machine first, then the others cheapest
/// first. A planted file asking for the ceiling is then only ever tried after every
/// genuine key has failed (a wrong password).
///
/// The key that opened last is first read by its name, without a listing: on a remote
/// store that is one round trip where a listing and a read are two.
fn find_stored_key(backend: &dyn Backend, passphrase: &[u8]) -> Result<(KeyId, MasterKey)> {
    let remembered = last_key::recall(&backend.location());
    // The remembered key refused this password: the search below need not pay for it again.
    let mut refused = None;
    if let Some(name) = &remembered {
        match open_named_key(backend, name, passphrase) {
            NamedKey::Opened(opened) => return Ok(opened),
            NamedKey::Refused => refused = Some(name.clone()),
            NamedKey::Unusable => {}
        }
    }
    let names = backend.list(FileType::Key)?;
    if names.is_empty() {
        return Err(Error::new(
            ErrorKind::WrongPassword,
            "the repository holds no key files: its key is kept apart; give it with --key-file",
        ));
    }
    let mut damaged = Vec::new();
    let mut candidates: Vec<(String, KeyFile)> = Vec::new();
    for name in names {
        let bytes = match backend.read(FileType::Key, &name, FileType::Key.size_limit()) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                damaged.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if crate::id::hex_encode(blake3::hash(&bytes).as_bytes()) != name {
            // Never spend Argon2id time on a planted or damaged file.
            damaged.push(format!("{name}: content does not match its name"));
            continue;
        }
        match KeyFile::decode(&bytes) {
            Ok(kf) => candidates.push((name, kf)),
            Err(e) => damaged.push(format!("{name}: {e}")),
        }
    }
    candidates
        .sort_by_key(|(name, kf)| (Some(name) != remembered.as_ref(), kf.header.kdf.cost(), name.clone()));
    for (name, kf) in candidates {
        if refused.as_ref() == Some(&name) {
            continue;
        }
        match kf.unwrap(passphrase) {
            Ok(master) => {
                if Some(&name) != remembered.as_ref() {
                    last_key::remember(&backend.location(), &name);
                }
                return Ok((KeyId::from_hex(&name)?, master));
            }
            Err(e) if e.kind() == ErrorKind::WrongPassword => {}
            Err(e) => damaged.push(format!("{name}: {e}")),
        }
    }
    if damaged.is_empty() {
        Err(Error::new(ErrorKind::WrongPassword, "wrong password: no key of this repository opens with it"))
    } else {
        Err(Error::new(
            ErrorKind::WrongPassword,
            format!("wrong password, or the matching key file is damaged ({})", damaged.join("; ")),
        ))
    }
}

/// Write a new key file for `master` under `passphrase`: into keys/, or to `outside`
/// (created 0600, never overwriting). Returns its id.
pub(super) fn store_key(
    backend: &dyn Backend,
    master: &MasterKey,
    keys: &RepoKeys,
    passphrase: &[u8],
    kdf: KdfParams,
    outside: Option<&Path>,
) -> Result<KeyId> {
    if passphrase.is_empty() {
        return Err(Error::invalid("the password is empty; choose a password"));
    }
    kdf.check_new()?;
    let bytes =
        KeyFile::wrap(master, keys, passphrase, kdf, &crate::sys::hostname(), &crate::sys::username())?;
    let id = KeyId(*blake3::hash(&bytes).as_bytes());
    match outside {
        Some(path) => write_private_file(path, &bytes)?,
        None => backend.write(FileType::Key, &id.to_hex(), &bytes)?,
    }
    crate::failpoint::hit("key:after-store");
    Ok(id)
}

/// Replace the key file kept apart at `path` by `bytes`: written beside it (0600), renamed
/// over it, and the rename made durable (the old password may have leaked).
fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("cairn-new");
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, bytes)?;
    std::fs::rename(&tmp, path).ctx(|| format!("cannot replace key file {}", path.display()))?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(folder)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("cannot sync the folder of key file {}", path.display()))
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::AlreadyExists {
                ErrorKind::AlreadyExists
            } else {
                ErrorKind::Io
            };
            Error::with_source(
                kind,
                format!("cannot create key file {} (it must not exist yet)", path.display()),
                e,
            )
        })?;
    f.write_all(bytes).and_then(|_| f.sync_all()).ctx(|| format!("cannot write key file {}", path.display()))
}

impl Repository {
    /// Refuse, with `PermissionDenied`, when the key in use is backup-only.
    pub fn require_full_key(&self, what: &str) -> Result<()> {
        if self.master.kind == KeyKind::Full {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("a {} key cannot {what}; use a full key", self.master.kind.name()),
            ))
        }
    }

    /// Refuse `what` while a content key rotation runs: it would name a new snapshot's
    /// trees under the new content root while they keep blobs named under the old one,
    /// which the rotation's end drops (format-spec/keys.md, *renewing the content keys*).
    pub fn refuse_during_content_rotation(&self, what: &str) -> Result<()> {
        if !self.master.holds_older_content() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Locked,
            format!("cannot {what} while a content key rotation is under way; finish it first with `cairn key rotate --content-keys`"),
        ))
    }

    /// The key files stored in the repository (and the key in use, if it is kept apart).
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        self.require_full_key("manage keys")?;
        let mut out = Vec::new();
        for name in self.backend.list(FileType::Key)? {
            let id = KeyId::from_hex(&name)?;
            let kf = KeyFile::decode(&self.read_object(FileType::Key, &name)?)
                .map_err(|e| e.wrap(format!("key {name}")))?;
            out.push(KeyInfo {
                id,
                version: kf.version,
                kind: kf.kind,
                header: kf.header,
                in_use: id == self.key_id,
            });
        }
        if let KeySource::File(path) = &self.key_source {
            let bytes = std::fs::read(path).ctx(|| format!("cannot read key file {}", path.display()))?;
            let kf = KeyFile::decode(&bytes)?;
            out.push(KeyInfo {
                id: self.key_id,
                version: kf.version,
                kind: kf.kind,
                header: kf.header,
                in_use: true,
            });
        }
        out.sort_by(|a, b| a.header.created.cmp(&b.header.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Add a key for `passphrase`: full, or backup-only; stored in keys/ or at `outside`.
    pub fn add_key(
        &self,
        passphrase: &[u8],
        kind: KeyKind,
        kdf: KdfParams,
        outside: Option<&Path>,
    ) -> Result<KeyId> {
        self.require_full_key("manage keys")?;
        kdf.check_new()?;
        let material = self.material_of(&self.master, kind)?;
        store_key(self.backend.as_ref(), &material, &self.keys, passphrase, kdf, outside)
    }

    /// The kind of the key in use.
    pub fn key_kind(&self) -> KeyKind {
        self.master.kind
    }

    /// What a key file of `kind` gets of the full key material `full`: all of it, its
    /// backup-only part (with maintenance public keys in a repository with maintenance),
    /// or its maintenance part.
    pub(crate) fn material_of(&self, full: &MasterKey, kind: KeyKind) -> Result<MasterKey> {
        match kind {
            KeyKind::Full => Ok(full.duplicate()),
            KeyKind::BackupOnly if self.config.maintenance.is_some() => full.backup_only_with_maintenance(),
            KeyKind::BackupOnly => Ok(full.backup_only()),
            KeyKind::Maintenance => full.maintenance(),
        }
    }

    /// Resolve a key id prefix among the stored key files.
    pub fn find_key_id(&self, prefix: &str) -> Result<KeyId> {
        let p = prefix.to_ascii_lowercase();
        let matches: Vec<String> = self
            .backend
            .list(FileType::Key)?
            .into_iter()
            .filter(|n| !p.is_empty() && n.starts_with(&p))
            .collect();
        match matches.as_slice() {
            [one] => KeyId::from_hex(one),
            [] => Err(Error::new(
                ErrorKind::NotFound,
                format!("no stored key has an id starting with '{prefix}'"),
            )),
            many => Err(Error::invalid(format!("'{prefix}' matches {} keys; give more digits", many.len()))),
        }
    }

    /// Remove a stored key file. The key in use cannot be removed (use `change_password`).
    pub fn remove_key(&self, id: &KeyId) -> Result<()> {
        self.require_full_key("manage keys")?;
        if *id == self.key_id {
            return Err(Error::invalid(
                "refusing to remove the key in use; open the repository with another key to remove this one",
            ));
        }
        crate::ops::object_lock::note_deleted(self, FileType::Key, &[id.to_hex()])?;
        self.backend.remove(FileType::Key, &id.to_hex())?;
        crate::failpoint::hit("key:after-remove");
        Ok(())
    }

    /// Replace the key in use by one with a new passphrase: the new key file is written
    /// before the old one is removed, so a crash leaves at least one of them.
    pub fn change_password(&mut self, passphrase: &[u8], kdf: KdfParams) -> Result<KeyId> {
        self.require_full_key("manage keys")?;
        kdf.check_new()?;
        let old = self.key_id;
        let new = match &self.key_source {
            KeySource::Stored => {
                let new = store_key(self.backend.as_ref(), &self.master, &self.keys, passphrase, kdf, None)?;
                crate::ops::object_lock::note_deleted(self, FileType::Key, &[old.to_hex()])?;
                self.backend.remove(FileType::Key, &old.to_hex())?;
                crate::failpoint::hit("key:after-remove");
                new
            }
            KeySource::File(path) => {
                if passphrase.is_empty() {
                    return Err(Error::invalid("the password is empty; choose a password"));
                }
                let bytes = KeyFile::wrap(
                    &self.master,
                    &self.keys,
                    passphrase,
                    kdf,
                    &crate::sys::hostname(),
                    &crate::sys::username(),
                )?;
                replace_private_file(path, &bytes)?;
                KeyId(*blake3::hash(&bytes).as_bytes())
            }
        };
        self.key_id = new;
        Ok(new)
    }

    /// The key files stored in keys/, decoded (a damaged one is an error: a rotation must
    /// not leave a key behind).
    pub(crate) fn stored_key_files(&self) -> Result<Vec<(KeyId, KeyFile)>> {
        let mut out = Vec::new();
        for name in self.backend.list(FileType::Key)? {
            let id = KeyId::from_hex(&name)?;
            let bytes = self.read_object(FileType::Key, &name)?;
            if blake3::hash(&bytes).as_bytes() != &id.0 {
                return Err(Error::corrupt(format!("key file {name}: its content does not match its name")));
            }
            out.push((id, KeyFile::decode(&bytes).map_err(|e| e.wrap(format!("key file {name}")))?));
        }
        Ok(out)
    }

    /// Give every stored key file but the one in use `material` (full keys all of it,
    /// backup-only keys its public part), sealed anew to its slot: its grant opened with
    /// this repository's keys, the new one sealed with `sealer`. Each new file is written
    /// before the old one goes. A file whose grant no full key of this repository made (a
    /// planted one) is given nothing and named in the returned list. Returns the ids of
    /// the files replaced and the files passed over, with why.
    pub(crate) fn rewrap_other_keys(
        &self,
        material: &MasterKey,
        sealer: &RepoKeys,
    ) -> Result<(Vec<KeyId>, Vec<String>)> {
        let mut replaced = Vec::new();
        let mut passed_over = Vec::new();
        for (id, file) in self.stored_key_files()? {
            if id == self.key_id {
                continue;
            }
            let for_kind = self.material_of(material, file.kind)?;
            let bytes = match file.rewrap(&self.keys, sealer, &for_kind) {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    passed_over.push(format!("{}: {e}", id.short()));
                    continue;
                }
                Err(e) => return Err(e.wrap(format!("key {}", id.to_hex()))),
            };
            let new = KeyId(*blake3::hash(&bytes).as_bytes());
            self.backend.write(FileType::Key, &new.to_hex(), &bytes)?;
            crate::ops::object_lock::note_deleted(self, FileType::Key, &[id.to_hex()])?;
            self.backend.remove(FileType::Key, &id.to_hex())?;
            crate::failpoint::hit("rotate:mid-key-rewrap");
            replaced.push(id);
        }
        Ok((replaced, passed_over))
    }

    /// Replace the key file in use by one wrapping `material`: sealed anew to its slot, or,
    /// for a version 1 file (no slot), wrapped anew under `passphrase`. The new file is
    /// written before the old one goes; a key kept apart is replaced by a rename.
    pub(crate) fn rewrap_key_in_use(
        &self,
        material: &MasterKey,
        sealer: &RepoKeys,
        passphrase: &[u8],
    ) -> Result<KeyId> {
        let file = KeyFile::decode(&self.key_file_bytes()?)?;
        let bytes = match file.version {
            crate::format::keyfile::VERSION_1 => KeyFile::wrap(
                material,
                sealer,
                passphrase,
                file.header.kdf,
                &crate::sys::hostname(),
                &crate::sys::username(),
            )?,
            _ => file.rewrap(&self.keys, sealer, material)?,
        };
        let new = KeyId(*blake3::hash(&bytes).as_bytes());
        match &self.key_source {
            KeySource::Stored => {
                self.backend.write(FileType::Key, &new.to_hex(), &bytes)?;
                let old = self.key_id;
                crate::ops::object_lock::note_deleted(self, FileType::Key, &[old.to_hex()])?;
                self.backend.remove(FileType::Key, &old.to_hex())?;
                last_key::remember(&self.backend.location(), &new.to_hex());
            }
            KeySource::File(path) => replace_private_file(path, &bytes)?,
        }
        crate::failpoint::hit("rotate:after-key-in-use");
        Ok(new)
    }

    /// The bytes of the key file in use (still wrapped under its passphrase).
    pub fn key_file_bytes(&self) -> Result<Vec<u8>> {
        match &self.key_source {
            KeySource::Stored => self.read_object(FileType::Key, &self.key_id.to_hex()),
            KeySource::File(path) => {
                std::fs::read(path).ctx(|| format!("cannot read key file {}", path.display()))
            }
        }
    }
}

/// Which key file opened a repository last on this machine, kept in the cache folder
/// ([`super::cache_file`]). Only a hint for the order of tries: a missing or wrong entry
/// costs time, never correctness.
mod last_key {
    pub fn recall(location: &str) -> Option<String> {
        let text = std::fs::read_to_string(super::super::cache_file("keys", location)?).ok()?;
        let name = text.trim();
        (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
    }

    pub fn remember(location: &str, name: &str) {
        if let Some(f) = super::super::cache_file("keys", location) {
            super::super::write_cache_file(&f, name.as_bytes());
        }
    }
}

enum NamedKey {
    Opened((KeyId, MasterKey)),
    /// It opens with another password.
    Refused,
    /// Gone, damaged, or not readable now.
    Unusable,
}

/// The stored key file `name`, opened with `passphrase`.
fn open_named_key(backend: &dyn Backend, name: &str, passphrase: &[u8]) -> NamedKey {
    let Ok(bytes) = backend.read(FileType::Key, name, FileType::Key.size_limit()) else {
        return NamedKey::Unusable;
    };
    let (Some(id), Ok(kf)) = (
        (KeyId::from_hex(name).ok()).filter(|id| blake3::hash(&bytes).as_bytes() == &id.0),
        KeyFile::decode(&bytes),
    ) else {
        return NamedKey::Unusable;
    };
    match kf.unwrap(passphrase) {
        Ok(master) => NamedKey::Opened((id, master)),
        Err(e) if e.kind() == ErrorKind::WrongPassword => NamedKey::Refused,
        Err(_) => NamedKey::Unusable,
    }
}

/// A password given without a prompt: the environment variable `var` (holding the
/// password itself, see `secrets`) wins over `command` (the first line it prints), which
/// wins over `file` (its first line). None when none is given.
pub fn given_password(
    var: &str,
    command: Option<&str>,
    file: Option<&Path>,
) -> Option<Result<Zeroizing<Vec<u8>>>> {
    if let Some(p) = super::secrets::from_environment(var) {
        return Some(Ok(p));
    }
    if let Some(c) = command {
        return Some(super::secrets::from_command(c));
    }
    file.map(read_password_file)
}

/// The first line of a password file.
pub fn read_password_file(f: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    let raw = Zeroizing::new(std::fs::read(f).map_err(|e| {
        Error::with_source(ErrorKind::InvalidInput, format!("cannot read password file {}", f.display()), e)
    })?);
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Zeroizing::new(line.to_vec()))
}
