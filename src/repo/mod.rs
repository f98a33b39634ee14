//! Opening and creating repositories, and the small facade commands use to load and save
//! objects. Everything stored goes through here or through pack/ and index/; the facade
//! itself knows no command.

use crate::backend::{self, Backend, FileType};
use crate::chunker::{Chunker, ChunkerParams};
use crate::crypto::keys::{fill_random, KdfParams, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{Config, REPO_FORMAT};
use crate::format::envelope::{self, ObjectType};
use crate::format::index::IndexFile;
use crate::format::keyfile::KeyFile;
use crate::format::snapshot::Snapshot;
use crate::format::Timespec;
use crate::id::{IndexId, KeyId, SnapshotId};

/// Choices made once, at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::DEFAULT,
            compression_level: 3,
            pack_size: 16 << 20,
            kdf: KdfParams::DEFAULT,
        }
    }
}

pub struct Repository {
    backend: Box<dyn Backend>,
    config: Config,
    keys: RepoKeys,
    key_id: KeyId,
}

impl Repository {
    /// Create a repository at `location` with a first full key for `passphrase`.
    pub fn init(location: &str, passphrase: &[u8], opts: &InitOptions) -> Result<Repository> {
        let backend = backend::open(location)?;
        Self::init_on(backend, passphrase, opts)
    }

    pub fn init_on(backend: Box<dyn Backend>, passphrase: &[u8], opts: &InitOptions) -> Result<Repository> {
        opts.kdf.check()?;
        let master = MasterKey::generate()?;
        let mut repo_id = [0u8; 32];
        fill_random(&mut repo_id)?;
        let config = Config {
            format: REPO_FORMAT,
            repo_id,
            created: Timespec::now(),
            chunker: opts.chunker,
            compression_level: opts.compression_level,
            pack_size: opts.pack_size,
            public_key: master.public_key(),
        };
        config.validate()?;
        backend.create()?;
        let key_bytes =
            KeyFile::wrap(&master, passphrase, opts.kdf, &crate::sys::hostname(), &crate::sys::username())?;
        let key_id = KeyId(*blake3::hash(&key_bytes).as_bytes());
        // Key first, config last: a folder with a config is a repository, so the config
        // appears only when everything needed to open it is there.
        backend.write(FileType::Key, &key_id.to_hex(), &key_bytes)?;
        backend.write(FileType::Config, "config", &envelope::seal_config(&master, &config.encode())?)?;
        let keys = master.derive(config.public_key)?;
        Ok(Repository { backend, config, keys, key_id })
    }

    /// Open the repository at `location` with `passphrase`.
    pub fn open(location: &str, passphrase: &[u8]) -> Result<Repository> {
        Self::open_on(backend::open(location)?, passphrase)
    }

    pub fn open_on(backend: Box<dyn Backend>, passphrase: &[u8]) -> Result<Repository> {
        if !backend.exists(FileType::Config, "config")? {
            return Err(Error::new(
                ErrorKind::NotARepository,
                format!(
                    "{} is not a cairn repository (no config); check --repo or run `cairn init`",
                    backend.location()
                ),
            ));
        }
        let (key_id, master) = find_key(backend.as_ref(), passphrase)?;
        let sealed = backend.read(FileType::Config, "config")?;
        let config =
            Config::decode(&envelope::open_config(&master, &sealed)?).map_err(|e| e.wrap("config"))?;
        let keys = master.derive(config.public_key)?;
        Ok(Repository { backend, config, keys, key_id })
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.config.chunker, self.keys.gear_table())
    }

    /// Seal `payload` as an object of `ty`, store it under the hash of its bytes.
    fn save_object(&self, ft: FileType, ty: ObjectType, payload: &[u8]) -> Result<[u8; 32]> {
        let bytes = envelope::seal(&self.keys, ty, payload)?;
        let id = *blake3::hash(&bytes).as_bytes();
        self.backend.write(ft, &crate::id::hex_encode(&id), &bytes)?;
        Ok(id)
    }

    /// Read an object, check it matches its name, and open it.
    fn load_object(&self, ft: FileType, ty: ObjectType, id: &[u8; 32]) -> Result<Vec<u8>> {
        let name = crate::id::hex_encode(id);
        let bytes = self.backend.read(ft, &name)?;
        if blake3::hash(&bytes).as_bytes() != id {
            return Err(Error::corrupt(format!("{} {name} does not match its name", ty.name())));
        }
        envelope::open(&self.keys, ty, &bytes).map_err(|e| e.wrap(format!("{} {name}", ty.name())))
    }

    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        self.save_object(FileType::Index, ObjectType::Index, &file.encode()).map(IndexId)
    }

    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        self.save_object(FileType::Snapshot, ObjectType::Snapshot, &snap.encode()).map(SnapshotId)
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let payload = self.load_object(FileType::Snapshot, ObjectType::Snapshot, &id.0)?;
        Snapshot::decode(&payload).map_err(|e| e.wrap(format!("snapshot {id}")))
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut out = Vec::new();
        for name in self.backend.list(FileType::Snapshot)? {
            let id = SnapshotId::from_hex(&name).map_err(|e| e.wrap("snapshot file name"))?;
            out.push((id, self.load_snapshot(&id)?));
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// A snapshot named by `latest`, a full id or a unique id prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self
                .snapshots()?
                .pop()
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "the repository has no snapshots yet"));
        }
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!(
                "'{spec}' is not a snapshot id: give a hex id prefix or 'latest'"
            )));
        }
        let spec_lc = spec.to_ascii_lowercase();
        let matches: Vec<String> =
            self.backend.list(FileType::Snapshot)?.into_iter().filter(|n| n.starts_with(&spec_lc)).collect();
        match matches.as_slice() {
            [one] => {
                let id = SnapshotId::from_hex(one)?;
                Ok((id, self.load_snapshot(&id)?))
            }
            [] => {
                Err(Error::new(ErrorKind::NotFound, format!("no snapshot has an id starting with '{spec}'")))
            }
            many => Err(Error::invalid(format!(
                "'{spec}' matches {} snapshots; give more digits of the id",
                many.len()
            ))),
        }
    }
}

/// Try each key file with `passphrase`; the first that opens wins.
fn find_key(backend: &dyn Backend, passphrase: &[u8]) -> Result<(KeyId, MasterKey)> {
    let names = backend.list(FileType::Key)?;
    if names.is_empty() {
        return Err(Error::corrupt("the repository has no key files (keys/ is empty)"));
    }
    let mut damaged = Vec::new();
    for name in names {
        let bytes = backend.read(FileType::Key, &name)?;
        if crate::id::hex_encode(blake3::hash(&bytes).as_bytes()) != name {
            // Never spend Argon2id time on a planted or damaged file.
            damaged.push(format!("{name}: content does not match its name"));
            continue;
        }
        let attempt = KeyFile::decode(&bytes).and_then(|kf| kf.unwrap(passphrase));
        match attempt {
            Ok(master) => {
                let id = KeyId::from_hex(&name).map_err(|e| e.wrap("key file name"))?;
                return Ok((id, master));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> InitOptions {
        InitOptions { kdf: KdfParams::FLOOR, ..Default::default() }
    }

    #[test]
    fn init_open_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("r");
        let loc = loc.to_str().unwrap();
        let r = Repository::init(loc, b"pw", &fast()).unwrap();
        let again = Repository::open(loc, b"pw").unwrap();
        assert_eq!(again.config(), r.config());
        assert_eq!(again.key_id(), r.key_id());
        assert_eq!(Repository::open(loc, b"nope").err().unwrap().kind(), ErrorKind::WrongPassword);
        assert_eq!(Repository::init(loc, b"pw", &fast()).err().unwrap().kind(), ErrorKind::AlreadyExists);
        let empty = dir.path().join("none");
        assert_eq!(
            Repository::open(empty.to_str().unwrap(), b"pw").err().unwrap().kind(),
            ErrorKind::NotARepository
        );
        assert_eq!(r.find_snapshot("latest").err().unwrap().kind(), ErrorKind::NotFound);
        assert_eq!(r.find_snapshot("xyz").err().unwrap().kind(), ErrorKind::InvalidInput);
    }
}
