//! The key hierarchy: master key material, the subkeys derived from it, and the
//! passphrase wrapping of key files.
//!
//! Master key material is two independent random secrets (format-spec/keys.md):
//! - the *write root*, which every key kind holds: it derives the chunk-id and tree-id keys,
//!   the chunker's gear table, the key that seals shared objects (config, index, locks) and
//!   the pack-authentication key;
//! - the *read secret*, an X25519 static secret that only full keys hold. Packs and
//!   snapshots are sealed to its public key with a fresh ephemeral key pair each, so a
//!   writer never needs the read secret, and a key without it can read no stored content.
//!   That is what makes backup-only keys hold by construction.
//!
//! Every subkey comes from BLAKE3 `derive_key` with its own context string. Secrets live in
//! `Zeroizing` buffers or zeroize-on-drop types and are wiped when dropped.

use crate::error::{Error, ErrorKind, Result};
use crate::id::{BlobId, ChunkId, RefsId, TreeId};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const CTX_CHUNK_ID: &str = "cairn 2026-11-24 v1 chunk id";
const CTX_TREE_ID: &str = "cairn 2026-11-24 v1 tree id";
const CTX_GEAR: &str = "cairn 2026-11-24 v1 chunker gear table";
const CTX_SHARED_SEAL: &str = "cairn 2026-11-24 v1 shared object sealing";
const CTX_PACK_AUTH: &str = "cairn 2026-11-24 v1 sealed object authentication";
const CTX_SHARED_OBJECT_KEY: &str = "cairn 2026-11-24 v1 shared object key";
const CTX_SEALED_OBJECT_KEY: &str = "cairn 2026-11-24 v1 sealed object key";
// Added with envelope version 2 and pack version 3 (format-spec/keys.md).
const CTX_SHARED_OBJECT_KEY_V2: &str = "cairn 2026-12-04 v2 shared object key";
const CTX_SEALED_OBJECT_KEY_V2: &str = "cairn 2026-12-04 v2 sealed object key";
const CTX_ATTESTATION: &str = "cairn 2026-12-04 v2 full key attestation";
const CTX_HEDGE: &str = "cairn 2026-12-04 v2 hedged randomness";
// Added with the maintenance key (format-spec/maintenance-key.md).
const CTX_REFERENCES_ID: &str = "cairn 2026-12-06 v4 references id";
const CTX_SOURCE_PATH: &str = "cairn 2026-12-06 v4 source path";
const CTX_MAINTENANCE_AUTH: &str = "cairn 2026-12-06 v4 maintenance authentication";
const CTX_MAINTENANCE_SECRET: &str = "cairn 2026-12-06 v4 maintenance secret";
const CTX_MAINTENANCE_ATTESTATION: &str = "cairn 2026-12-06 v4 maintenance attestation";
const CTX_MAINTENANCE_OBJECT_KEY: &str = "cairn 2026-12-06 v4 maintenance sealed object key";
// This machine's index cache file (src/index/cache_file.rs), never stored in a repository.
const CTX_INDEX_CACHE: &str = "cairn 2026-12-06 local index cache";

/// What a sealed object's key is bound to, besides its salt or ephemeral key: the kind of
/// object (so one object's bytes can never open as another kind), and for the legacy
/// derivations none (version 1 envelopes, version 1 and 2 packs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The first derivations: no kind, no repository id.
    Legacy,
    /// Bound to an object kind byte (an envelope's type, or [`PACK_KIND`]).
    Kind(u8),
}

/// A new data pack's ephemeral public key, pack key and maintenance table key.
pub type DataPackKeys = ([u8; 32], Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>);

/// The kind byte packs bind their key to (envelope types are 1 to 5).
pub const PACK_KIND: u8 = 0x50;

/// What a key may do. Stored in key files; see format-spec/keys.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Reads and writes everything.
    Full = 1,
    /// Writes new snapshots and dedups, reads no stored content (no read secret).
    BackupOnly = 2,
    /// Lists and forgets snapshots from their summaries; reads no content, name or
    /// metadata and writes no data (format-spec/maintenance-key.md).
    Maintenance = 3,
}

impl KeyKind {
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(KeyKind::Full),
            2 => Ok(KeyKind::BackupOnly),
            3 => Ok(KeyKind::Maintenance),
            _ => Err(Error::new(ErrorKind::Unsupported, format!("unknown key kind {b}"))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            KeyKind::Full => "full",
            KeyKind::BackupOnly => "backup-only",
            KeyKind::Maintenance => "maintenance",
        }
    }
}

/// One key epoch's secrets: its root (shared-seal and authentication keys) and its read
/// secret (full keys) or public key (backup-only keys). `key rotate` adds an epoch and, once
/// everything is sealed anew, drops the old one (format-spec/keys.md, key rotation).
struct Epoch {
    number: u16,
    /// Full and backup-only keys; zero in a maintenance key, which holds `maintenance`.
    root: Zeroizing<[u8; 32]>,
    read_secret: Option<StaticSecret>,
    public: [u8; 32],
    /// Backup-only keys of material version 4: the epoch's maintenance public key, which
    /// they seal summaries to (full keys derive it).
    maintenance_public: Option<[u8; 32]>,
    /// Maintenance keys: the subkeys they hold in place of the root and read secret.
    maintenance: Option<MaintenanceSubkeys>,
}

/// What a maintenance key holds of one epoch (format-spec/maintenance-key.md, key kind 3).
#[derive(Clone)]
struct MaintenanceSubkeys {
    shared_seal: Zeroizing<[u8; 32]>,
    auth: Zeroizing<[u8; 32]>,
    attestation: Zeroizing<[u8; 32]>,
    secret: StaticSecret,
}

impl MaintenanceSubkeys {
    /// A full key's epoch's maintenance subkeys, from its root and read secret.
    fn of(root: &[u8; 32], read_secret: &StaticSecret) -> MaintenanceSubkeys {
        MaintenanceSubkeys {
            shared_seal: derive(CTX_SHARED_SEAL, root),
            auth: derive(CTX_MAINTENANCE_AUTH, root),
            attestation: derive(CTX_MAINTENANCE_ATTESTATION, read_secret.as_bytes()),
            secret: StaticSecret::from(*derive(CTX_MAINTENANCE_SECRET, read_secret.as_bytes())),
        }
    }

    fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }
}

impl Epoch {
    fn fresh(number: u16, root: Zeroizing<[u8; 32]>) -> Result<Epoch> {
        let mut read = Zeroizing::new([0u8; 32]);
        fill_random(&mut read[..])?;
        let secret = StaticSecret::from(*read);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(Epoch {
            number,
            root,
            read_secret: Some(secret),
            public,
            maintenance_public: None,
            maintenance: None,
        })
    }

    fn without_read_secret(&self) -> Epoch {
        Epoch {
            number: self.number,
            root: self.root.clone(),
            read_secret: None,
            public: self.public,
            maintenance_public: None,
            maintenance: None,
        }
    }

    fn clone_secret(&self) -> Epoch {
        Epoch {
            number: self.number,
            root: self.root.clone(),
            read_secret: self.read_secret.clone(),
            public: self.public,
            maintenance_public: self.maintenance_public,
            maintenance: self.maintenance.clone(),
        }
    }

    /// The maintenance subkeys of a full key's epoch.
    fn maintenance_subkeys(&self) -> Option<MaintenanceSubkeys> {
        match (&self.maintenance, &self.read_secret) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(read)) => Some(MaintenanceSubkeys::of(&self.root, read)),
            (None, None) => None,
        }
    }

    /// The working keys of this epoch.
    fn keys(&self) -> EpochKeys {
        let subkeys = self.maintenance_subkeys();
        let (shared_seal, pack_auth, maintenance_auth) = match &self.maintenance {
            // A maintenance key holds no root: no pack-authentication key, so it makes
            // no object full keys accept as a pack or snapshot.
            Some(m) => (*m.shared_seal, [0u8; 32], *m.auth),
            None => (
                *derive(CTX_SHARED_SEAL, &self.root[..]),
                *derive(CTX_PACK_AUTH, &self.root[..]),
                *derive(CTX_MAINTENANCE_AUTH, &self.root[..]),
            ),
        };
        EpochKeys {
            number: self.number,
            shared_seal,
            pack_auth,
            public: self.public,
            attestation: self.read_secret.as_ref().map(|s| *derive(CTX_ATTESTATION, s.as_bytes())),
            read_secret: self.read_secret.clone(),
            maintenance_public: subkeys.as_ref().map(MaintenanceSubkeys::public).or(self.maintenance_public),
            maintenance_auth,
            maintenance_attestation: subkeys.as_ref().map(|m| *m.attestation),
            maintenance_secret: subkeys.map(|m| m.secret),
        }
    }
}

/// The secrets a key file wraps: the content root (blob ids and chunk boundaries) and one
/// or, during a rotation, two key epochs.
pub struct MasterKey {
    pub kind: KeyKind,
    /// The content root writers use: chunk boundaries, chunk ids and tree ids.
    content_root: Zeroizing<[u8; 32]>,
    /// The content root before it, held only while a content key rotation runs
    /// (`key rotate --content-keys`): blobs named under it still verify.
    older_content_root: Option<Zeroizing<[u8; 32]>>,
    /// In increasing epoch number; one or two.
    epochs: Vec<Epoch>,
    /// A maintenance key's references-id key (it holds no content root: that is zero).
    references_id: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, epochs {:?}, secrets redacted)", self.kind.name(), self.epoch_numbers())
    }
}

/// Length of version 1 material: kind byte, write root, then the read secret (full keys)
/// or the repository public key (backup-only keys).
const MASTER_LEN_V1: usize = 1 + 32 + 32;
/// Version 2 material: kind, content root, epoch count, then per epoch its number (u16 LE),
/// root and read secret or public key.
const MASTER_HEAD_V2: usize = 1 + 32 + 1;
const EPOCH_LEN: usize = 2 + 32 + 32;
/// Version 3 material (during a content key rotation): byte 33's high nibble is 1 and an
/// older content root follows the epochs.
const OLDER_CONTENT_FLAG: u8 = 0x10;
/// Version 4 material (a maintenance key, or a backup-only key carrying maintenance public
/// keys): byte 33's bit 0x20 is set, and each epoch is longer.
const MAINTENANCE_FLAG: u8 = 0x20;
/// A version 4 backup-only epoch: number, root, public key, maintenance public key.
const EPOCH_LEN_V4_BACKUP_ONLY: usize = 2 + 3 * 32;
/// A maintenance key's epoch: number, public key, shared-seal key, maintenance
/// authentication key, maintenance attestation key, maintenance secret.
const EPOCH_LEN_V4_MAINTENANCE: usize = 2 + 5 * 32;
/// A key holds at most two epochs: the current one and, during a rotation, one more.
pub const MAX_EPOCHS: usize = 2;

/// The lengths key material of `kind` may have (versions 2 to 4): a key file's decoder
/// finds its parts by them.
pub fn material_lengths(kind: KeyKind) -> Vec<usize> {
    let layouts: &[(usize, usize)] = match kind {
        KeyKind::Full => &[(EPOCH_LEN, 0), (EPOCH_LEN, 32)],
        KeyKind::BackupOnly => {
            &[(EPOCH_LEN, 0), (EPOCH_LEN, 32), (EPOCH_LEN_V4_BACKUP_ONLY, 0), (EPOCH_LEN_V4_BACKUP_ONLY, 32)]
        }
        KeyKind::Maintenance => &[(EPOCH_LEN_V4_MAINTENANCE, 0)],
    };
    (1..=MAX_EPOCHS)
        .flat_map(|n| layouts.iter().map(move |(e, older)| MASTER_HEAD_V2 + e * n + older))
        .collect()
}

impl MasterKey {
    /// Fresh key material from the operating system's random source: epoch 0, whose root is
    /// the content root (as every repository's first epoch).
    pub fn generate() -> Result<Self> {
        let mut content_root = Zeroizing::new([0u8; 32]);
        fill_random(&mut content_root[..])?;
        let epoch = Epoch::fresh(0, content_root.clone())?;
        Ok(MasterKey {
            kind: KeyKind::Full,
            content_root,
            older_content_root: None,
            epochs: vec![epoch],
            references_id: None,
        })
    }

    /// Key material for a new repository that shares this one's content root, so the two
    /// agree on chunk boundaries and blob ids (`init --copy-chunker-params-from`), with
    /// a read secret of its own: neither repository's full key reads the other's packs
    /// or snapshots. See format-spec/keys.md for what the shared root does share.
    pub fn sharing_ids(&self) -> Result<MasterKey> {
        let epoch = Epoch::fresh(0, self.content_root.clone())?;
        Ok(MasterKey {
            kind: KeyKind::Full,
            content_root: self.content_root.clone(),
            older_content_root: None,
            epochs: vec![epoch],
            references_id: None,
        })
    }

    /// The same repository's key material without the read secrets.
    pub fn backup_only(&self) -> MasterKey {
        MasterKey {
            kind: KeyKind::BackupOnly,
            content_root: self.content_root.clone(),
            older_content_root: self.older_content_root.clone(),
            epochs: self.epochs.iter().map(Epoch::without_read_secret).collect(),
            references_id: None,
        }
    }

    /// A full key's backup-only material that carries each epoch's maintenance public
    /// key (material version 4), for a repository with maintenance: its holder seals
    /// summaries to it and never takes it from the config, which a backup-only key holder
    /// could rewrite (format-spec/maintenance-key.md).
    pub fn backup_only_with_maintenance(&self) -> Result<MasterKey> {
        let mut out = self.backup_only();
        for (e, full) in out.epochs.iter_mut().zip(&self.epochs) {
            let subkeys = full
                .maintenance_subkeys()
                .ok_or_else(|| Error::invalid("only a full key derives maintenance public keys"))?;
            e.maintenance_public = Some(subkeys.public());
        }
        Ok(out)
    }

    /// A full key's maintenance key material (key kind 3): for each epoch the public key,
    /// the shared-seal key and the maintenance subkeys, and the references-id key; no
    /// content root, epoch root, read secret or pack-authentication key.
    pub fn maintenance(&self) -> Result<MasterKey> {
        if self.kind != KeyKind::Full {
            return Err(Error::invalid("only a full key makes a maintenance key"));
        }
        let epochs = self
            .epochs
            .iter()
            .map(|e| Epoch {
                number: e.number,
                root: Zeroizing::new([0u8; 32]),
                read_secret: None,
                public: e.public,
                maintenance_public: None,
                maintenance: e.maintenance_subkeys(),
            })
            .collect();
        Ok(MasterKey {
            kind: KeyKind::Maintenance,
            content_root: Zeroizing::new([0u8; 32]),
            older_content_root: None,
            epochs,
            references_id: Some(derive(CTX_REFERENCES_ID, &self.content_root[..])),
        })
    }

    /// A copy of this material (same kind).
    pub fn duplicate(&self) -> MasterKey {
        MasterKey {
            kind: self.kind,
            content_root: self.content_root.clone(),
            older_content_root: self.older_content_root.clone(),
            epochs: self.epochs.iter().map(Epoch::clone_secret).collect(),
            references_id: self.references_id.clone(),
        }
    }

    /// The epoch numbers this key holds, oldest first.
    pub fn epoch_numbers(&self) -> Vec<u16> {
        self.epochs.iter().map(|e| e.number).collect()
    }

    /// This material with a new, random epoch after its newest (a full key only, holding
    /// one epoch): the start of a key rotation.
    pub fn with_new_epoch(&self) -> Result<MasterKey> {
        let newest = self.epochs.last().expect("a key holds an epoch");
        if self.kind != KeyKind::Full || self.epochs.len() != 1 {
            return Err(Error::invalid("only a full key holding one key epoch can start a new one"));
        }
        let number = newest.number.checked_add(1).ok_or_else(|| Error::invalid("no key epoch is left"))?;
        let mut root = Zeroizing::new([0u8; 32]);
        fill_random(&mut root[..])?;
        let mut out = self.duplicate();
        out.epochs.push(Epoch::fresh(number, root)?);
        Ok(out)
    }

    /// This material with a new content root and a new epoch after its newest (a full key
    /// only, holding one of each): the start of a content key rotation. The root is fresh
    /// random bytes, or `from`: another repository's newest (`--content-from`).
    pub fn with_new_content(&self, from: Option<&MasterKey>) -> Result<MasterKey> {
        if self.older_content_root.is_some() {
            return Err(Error::invalid("only a key holding one content root can start a new one"));
        }
        let mut out = self.with_new_epoch()?;
        out.older_content_root = Some(std::mem::replace(&mut out.content_root, Zeroizing::new([0u8; 32])));
        match from {
            Some(other) => *out.content_root = *other.content_root,
            None => fill_random(&mut out.content_root[..])?,
        }
        if out.older_content_root.as_deref() == Some(&*out.content_root) {
            return Err(Error::invalid("the new content root is the one this key already has"));
        }
        Ok(out)
    }

    /// Whether this key holds an older content root: a content key rotation is under way.
    pub fn holds_older_content(&self) -> bool {
        self.older_content_root.is_some()
    }

    /// Whether `other` has this key's (newest) content root: the two name blobs alike.
    pub fn same_content_root(&self, other: &MasterKey) -> bool {
        *self.content_root == *other.content_root
    }

    /// This material holding only its newest epoch and content root: the end of a key
    /// rotation.
    pub fn newest_only(&self) -> MasterKey {
        let mut out = self.duplicate();
        out.epochs.drain(..out.epochs.len() - 1);
        out.older_content_root = None;
        out
    }

    /// This key's one epoch under another number: tests open objects of a later epoch with
    /// a retired key's secrets, to show that nothing opens.
    #[cfg(test)]
    pub(crate) fn relabelled(&self, number: u16) -> MasterKey {
        let mut out = self.newest_only();
        out.epochs[0].number = number;
        out
    }

    /// The public key of the newest epoch.
    pub fn public_key(&self) -> [u8; 32] {
        self.epochs.last().expect("a key holds an epoch").public
    }

    /// Version 2 material, version 3 while an older content root is held, version 4 for a
    /// maintenance key and a backup-only key that carries maintenance public keys
    /// (format-spec/keys.md, format-spec/maintenance-key.md).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let v4 = self.material_v4();
        let mut out = Zeroizing::new(Vec::with_capacity(MASTER_HEAD_V2 + EPOCH_LEN_V4_MAINTENANCE * 2 + 32));
        out.push(self.kind as u8);
        match &self.references_id {
            Some(r) => out.extend_from_slice(&r[..]),
            None => out.extend_from_slice(&self.content_root[..]),
        }
        let mut flag = if self.older_content_root.is_some() { OLDER_CONTENT_FLAG } else { 0 };
        if v4 {
            flag |= MAINTENANCE_FLAG;
        }
        out.push(self.epochs.len() as u8 | flag);
        for e in &self.epochs {
            out.extend_from_slice(&e.number.to_le_bytes());
            if let Some(m) = &e.maintenance {
                for part in [&e.public, &*m.shared_seal, &*m.auth, &*m.attestation, m.secret.as_bytes()] {
                    out.extend_from_slice(part);
                }
                continue;
            }
            out.extend_from_slice(&e.root[..]);
            match &e.read_secret {
                Some(s) => out.extend_from_slice(s.as_bytes()),
                None => out.extend_from_slice(&e.public),
            }
            if v4 {
                out.extend_from_slice(&e.maintenance_public.expect("version 4 material carries it"));
            }
        }
        if let Some(older) = &self.older_content_root {
            out.extend_from_slice(&older[..]);
        }
        out
    }

    /// Whether this material is written in version 4.
    fn material_v4(&self) -> bool {
        match self.kind {
            KeyKind::Maintenance => true,
            KeyKind::BackupOnly => self.epochs.iter().all(|e| e.maintenance_public.is_some()),
            KeyKind::Full => false,
        }
    }

    /// One epoch of `kind` from its encoding `e` (number first).
    fn epoch_from(kind: KeyKind, v4: bool, e: &[u8]) -> Epoch {
        let number = u16::from_le_bytes([e[0], e[1]]);
        let field = |i: usize| {
            let mut b = Zeroizing::new([0u8; 32]);
            b.copy_from_slice(&e[2 + 32 * i..2 + 32 * (i + 1)]);
            b
        };
        match kind {
            KeyKind::Full => {
                let secret = StaticSecret::from(*field(1));
                let public = PublicKey::from(&secret).to_bytes();
                Epoch {
                    number,
                    root: field(0),
                    read_secret: Some(secret),
                    public,
                    maintenance_public: None,
                    maintenance: None,
                }
            }
            KeyKind::BackupOnly => Epoch {
                number,
                root: field(0),
                read_secret: None,
                public: *field(1),
                maintenance_public: v4.then(|| *field(2)),
                maintenance: None,
            },
            KeyKind::Maintenance => Epoch {
                number,
                root: Zeroizing::new([0u8; 32]),
                read_secret: None,
                public: *field(0),
                maintenance_public: None,
                maintenance: Some(MaintenanceSubkeys {
                    shared_seal: field(1),
                    auth: field(2),
                    attestation: field(3),
                    secret: StaticSecret::from(*field(4)),
                }),
            },
        }
    }

    /// Decode material of version 2, 3 or 4 (byte 33 tells which).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let kind = KeyKind::from_byte(*b.first().ok_or_else(|| Error::corrupt("empty key"))?)?;
        let counts = b.get(MASTER_HEAD_V2 - 1).copied().unwrap_or(0);
        let older = counts & OLDER_CONTENT_FLAG != 0;
        let v4 = counts & MAINTENANCE_FLAG != 0;
        let n = (counts & 0x0F) as usize;
        let fits_kind = match kind {
            KeyKind::Full => !v4,
            KeyKind::BackupOnly => true,
            KeyKind::Maintenance => v4 && !older,
        };
        if counts & 0xC0 != 0 || !fits_kind {
            return Err(Error::corrupt(format!(
                "key material of kind {} has an unknown layout",
                kind.name()
            )));
        }
        let epoch_len = match (kind, v4) {
            (KeyKind::Maintenance, _) => EPOCH_LEN_V4_MAINTENANCE,
            (_, true) => EPOCH_LEN_V4_BACKUP_ONLY,
            _ => EPOCH_LEN,
        };
        let epochs_end = MASTER_HEAD_V2 + epoch_len * n;
        if !(1..=MAX_EPOCHS).contains(&n) || b.len() != epochs_end + if older { 32 } else { 0 } {
            return Err(Error::corrupt(format!(
                "key material of {} bytes does not hold 1 or 2 key epochs",
                b.len()
            )));
        }
        let mut first = Zeroizing::new([0u8; 32]);
        first.copy_from_slice(&b[1..33]);
        let mut epochs: Vec<Epoch> = Vec::with_capacity(n);
        for e in b[MASTER_HEAD_V2..epochs_end].chunks_exact(epoch_len) {
            let epoch = Self::epoch_from(kind, v4, e);
            if epochs.last().is_some_and(|prev| prev.number >= epoch.number) {
                return Err(Error::corrupt("key material's epochs are not in increasing order"));
            }
            epochs.push(epoch);
        }
        let older_content_root = older.then(|| {
            let mut root = Zeroizing::new([0u8; 32]);
            root.copy_from_slice(&b[epochs_end..]);
            root
        });
        if older_content_root.as_ref().is_some_and(|r| **r == *first) {
            return Err(Error::corrupt("key material holds the same content root twice"));
        }
        let (content_root, references_id) = match kind {
            KeyKind::Maintenance => (Zeroizing::new([0u8; 32]), Some(first)),
            _ => (first, None),
        };
        Ok(MasterKey { kind, content_root, older_content_root, epochs, references_id })
    }

    /// Decode version 1 material: its write root is the content root and epoch 0's root.
    pub fn from_bytes_v1(b: &[u8]) -> Result<Self> {
        let kind = KeyKind::from_byte(*b.first().ok_or_else(|| Error::corrupt("empty key"))?)?;
        if b.len() != MASTER_LEN_V1 || kind == KeyKind::Maintenance {
            return Err(Error::corrupt(format!(
                "key material is {} bytes, expected {MASTER_LEN_V1}",
                b.len()
            )));
        }
        let epoch = Self::epoch_from(kind, false, &Zeroizing::new([&[0u8, 0][..], &b[1..65]].concat()));
        let content_root = epoch.root.clone();
        Ok(MasterKey {
            kind,
            content_root,
            older_content_root: None,
            epochs: vec![epoch],
            references_id: None,
        })
    }

    /// Derive all working keys. `public` is the repository public key from the config: the
    /// epoch whose public key it is becomes the one everything new is sealed under. `repo_id`
    /// is the config's repository id, which shared objects are bound to.
    pub fn derive(&self, public: [u8; 32], repo_id: [u8; 32]) -> Result<RepoKeys> {
        let Some(current) = self.epochs.iter().position(|e| e.public == public) else {
            return Err(Error::corrupt(
                "the config's public key is not this key's repository public key (config replaced?)",
            ));
        };
        // A maintenance key holds no content root: its id keys stay zero, and it can seal
        // no pack or snapshot in which they would be used (new_sealed_object_key).
        let content = |ctx: &str| match self.kind {
            KeyKind::Maintenance => [0u8; 32],
            _ => *derive(ctx, &self.content_root[..]),
        };
        Ok(RepoKeys {
            kind: self.kind,
            chunk_id: content(CTX_CHUNK_ID),
            tree_id: content(CTX_TREE_ID),
            gear: content(CTX_GEAR),
            source_path: (self.kind != KeyKind::Maintenance).then(|| content(CTX_SOURCE_PATH)),
            references_id: match &self.references_id {
                Some(r) => **r,
                None => content(CTX_REFERENCES_ID),
            },
            older_ids: self.older_content_root.as_ref().map(|r| OlderIds {
                chunk_id: *derive(CTX_CHUNK_ID, &r[..]),
                tree_id: *derive(CTX_TREE_ID, &r[..]),
                source_path: *derive(CTX_SOURCE_PATH, &r[..]),
                references_id: *derive(CTX_REFERENCES_ID, &r[..]),
            }),
            repo_id,
            current: self.epochs[current].keys(),
            other: self.epochs.iter().enumerate().find(|(i, _)| *i != current).map(|(_, e)| e.keys()),
        })
    }

    /// The keys that seal the config itself, newest epoch first: the config is sealed with
    /// its epoch's shared key (it holds the public key, so it cannot depend on it), and a
    /// reader tries each epoch it holds.
    pub fn config_seal_keys(&self) -> Vec<(u16, Zeroizing<[u8; 32]>)> {
        self.epochs
            .iter()
            .rev()
            .map(|e| match &e.maintenance {
                Some(m) => (e.number, m.shared_seal.clone()),
                None => (e.number, derive(CTX_SHARED_SEAL, &e.root[..])),
            })
            .collect()
    }
}

/// Working keys of one key epoch.
#[derive(Zeroize, ZeroizeOnDrop)]
struct EpochKeys {
    #[zeroize(skip)]
    number: u16,
    shared_seal: [u8; 32],
    pack_auth: [u8; 32],
    public: [u8; 32],
    /// Full keys only: the key of attestations, which prove a full key wrote an object.
    attestation: Option<[u8; 32]>,
    #[zeroize(skip)] // StaticSecret zeroizes itself on drop
    read_secret: Option<StaticSecret>,
    /// What summaries are sealed to: none for a backup-only key of material before
    /// version 4.
    maintenance_public: Option<[u8; 32]>,
    maintenance_auth: [u8; 32],
    /// Full and maintenance keys: attests and checks full writers' summaries.
    maintenance_attestation: Option<[u8; 32]>,
    /// Full and maintenance keys: opens summaries.
    #[zeroize(skip)]
    maintenance_secret: Option<StaticSecret>,
}

/// The id keys of an older content root.
#[derive(Zeroize, ZeroizeOnDrop)]
struct OlderIds {
    chunk_id: [u8; 32],
    tree_id: [u8; 32],
    source_path: [u8; 32],
    references_id: [u8; 32],
}

/// Working keys of an open repository.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RepoKeys {
    #[zeroize(skip)]
    pub kind: KeyKind,
    chunk_id: [u8; 32],
    tree_id: [u8; 32],
    gear: [u8; 32],
    /// Keys source paths in summaries; a maintenance key has none (it would let it test
    /// guessed paths).
    source_path: Option<[u8; 32]>,
    references_id: [u8; 32],
    /// The id keys of the older content root, during a content key rotation.
    older_ids: Option<OlderIds>,
    repo_id: [u8; 32],
    /// The epoch of the config's public key: everything new is sealed under it.
    #[zeroize(skip)] // zeroizes itself on drop
    current: EpochKeys,
    /// The other epoch a key holds during a rotation: objects not yet sealed anew.
    #[zeroize(skip)]
    other: Option<EpochKeys>,
}

impl RepoKeys {
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_id, plaintext).as_bytes())
    }

    pub fn tree_id(&self, encoded: &[u8]) -> TreeId {
        TreeId(*blake3::keyed_hash(&self.tree_id, encoded).as_bytes())
    }

    /// The id of an encoded references record: every key kind can compute it, so a
    /// maintenance key checks each record it reads.
    pub fn references_id(&self, encoded: &[u8]) -> RefsId {
        RefsId(*blake3::keyed_hash(&self.references_id, encoded).as_bytes())
    }

    /// Whether `plain` is the content blob `id` names: its keyed hash under the content root
    /// writers use, or under the older one a key holds during a content key rotation.
    pub fn names(&self, id: &BlobId, plain: &[u8]) -> bool {
        self.names_under_newest(id, plain)
            || self.older_ids.as_ref().is_some_and(|o| match id {
                BlobId::Chunk(c) => blake3::keyed_hash(&o.chunk_id, plain) == blake3::Hash::from(c.0),
                BlobId::Tree(t) => blake3::keyed_hash(&o.tree_id, plain) == blake3::Hash::from(t.0),
                BlobId::References(r) => {
                    blake3::keyed_hash(&o.references_id, plain) == blake3::Hash::from(r.0)
                }
            })
    }

    /// Whether `plain` is the blob `id` names under the content root writers use.
    pub fn names_under_newest(&self, id: &BlobId, plain: &[u8]) -> bool {
        match id {
            BlobId::Chunk(c) => self.chunk_id(plain) == *c,
            BlobId::Tree(t) => self.tree_id(plain) == *t,
            BlobId::References(r) => self.references_id(plain) == *r,
        }
    }

    /// Whether this key holds an older content root (a content key rotation is under way).
    pub fn holds_older_content(&self) -> bool {
        self.older_ids.is_some()
    }

    /// The chunker's 256-entry gear table, from the key's XOF so that chunk boundaries
    /// depend on the key and do not fingerprint content.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut bytes = [0u8; 256 * 8];
        let mut xof = blake3::Hasher::new_keyed(&self.gear).finalize_xof();
        xof.fill(&mut bytes);
        xof.zeroize();
        let mut table = Box::new([0u64; 256]);
        for (t, b) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            *t = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        bytes.zeroize();
        table
    }

    /// The epoch everything new is sealed under.
    pub fn write_epoch(&self) -> u16 {
        self.current.number
    }

    /// The epochs this key opens objects of, the one new objects are sealed under first.
    pub fn epochs(&self) -> Vec<u16> {
        std::iter::once(self.current.number).chain(self.other.as_ref().map(|e| e.number)).collect()
    }

    fn epoch(&self, number: u16) -> Result<&EpochKeys> {
        std::iter::once(&self.current).chain(self.other.as_ref()).find(|e| e.number == number).ok_or_else(
            || {
                Error::corrupt(format!(
                    "sealed under key epoch {number}, which this key does not hold (epochs {:?})",
                    self.epochs()
                ))
            },
        )
    }

    /// The key of one shared object (index, lock, log entry) of `epoch`, from its salt.
    pub fn shared_object_key(
        &self,
        epoch: u16,
        salt: &[u8; 32],
        binding: Binding,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let e = self.epoch(epoch)?;
        Ok(match binding {
            Binding::Legacy => shared_object_key(&e.shared_seal, salt),
            Binding::Kind(kind) => {
                let mut h = blake3::Hasher::new_derive_key(CTX_SHARED_OBJECT_KEY_V2);
                h.update(&e.shared_seal).update(&self.repo_id).update(&[kind]).update(salt);
                wiped(h)
            }
        })
    }

    /// 32 bytes for a new object's salt or ephemeral secret: fresh randomness hashed
    /// with what the object will hold. If the random source ever repeats (a virtual
    /// machine restored from a snapshot), two objects still get the same key and nonce
    /// only if they hold the same content, which then seals to the same bytes: a repeat
    /// never reuses a GCM nonce for two different messages.
    pub fn hedged(&self, kind: u8, content: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let mut fresh = Zeroizing::new([0u8; 32]);
        fill_random(&mut fresh[..])?;
        let mut h = blake3::Hasher::new_derive_key(CTX_HEDGE);
        h.update(&fresh[..]).update(&[kind]).update(content).update(&self.repo_id);
        Ok(wiped(h))
    }

    /// A new ephemeral key pair for a sealed object of `kind` (pack or snapshot) whose
    /// content hashes to `content`, under the write epoch: returns the ephemeral public key
    /// to store and the object's key (bound to `kind`).
    pub fn new_sealed_object_key(
        &self,
        kind: u8,
        content: &[u8; 32],
    ) -> Result<([u8; 32], Zeroizing<[u8; 32]>)> {
        let (eph, eph_pub, key) = self.new_sealed(kind, content)?;
        drop(eph);
        Ok((eph_pub, key))
    }

    /// [`RepoKeys::new_sealed_object_key`] for a data pack of a repository with
    /// maintenance: one ephemeral secret, two recipients. Also returns the key of the pack's
    /// maintenance table, sealed to the write epoch's maintenance public key with
    /// `table_kind`, which full and maintenance keys open and backup-only keys do not.
    pub fn new_data_pack_keys(&self, kind: u8, table_kind: u8, content: &[u8; 32]) -> Result<DataPackKeys> {
        let maintenance_public = self.current.maintenance_public.ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                "this key cannot seal a data pack for a repository with maintenance",
            )
        })?;
        let (eph, eph_pub, pack_key) = self.new_sealed(kind, content)?;
        let shared = eph.diffie_hellman(&PublicKey::from(maintenance_public));
        let table_key = maintenance_sealed_key(&self.current, shared.as_bytes(), &eph_pub, table_kind);
        Ok((eph_pub, pack_key, table_key))
    }

    /// A hedged ephemeral secret, its public key, and the sealed-object key it agrees with
    /// the write epoch's public key for `kind`. A maintenance key seals no such object.
    fn new_sealed(
        &self,
        kind: u8,
        content: &[u8; 32],
    ) -> Result<(StaticSecret, [u8; 32], Zeroizing<[u8; 32]>)> {
        if self.kind == KeyKind::Maintenance {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "a maintenance key writes no data or snapshot; use a full or backup-only key",
            ));
        }
        let eph = StaticSecret::from(*self.hedged(kind, content)?);
        let eph_pub = PublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&PublicKey::from(self.current.public));
        let key = sealed_key(&self.current, shared.as_bytes(), &eph_pub, Binding::Kind(kind));
        Ok((eph, eph_pub, key))
    }

    /// The key of a stored sealed object of `epoch`, from its ephemeral public key. Needs
    /// the read secret: a backup-only key gets `PermissionDenied`.
    pub fn open_sealed_object_key(
        &self,
        epoch: u16,
        eph_pub: &[u8; 32],
        binding: Binding,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let e = self.epoch(epoch)?;
        let secret = e.read_secret.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("this is a {} key: it cannot read stored data; use a full key", self.kind.name()),
            )
        })?;
        let shared = secret.diffie_hellman(&PublicKey::from(*eph_pub));
        Ok(sealed_key(e, shared.as_bytes(), eph_pub, binding))
    }

    /// The attestation of an object whose attested bytes are `attested`, under the write
    /// epoch: only a full key can compute it (its key comes from the read secret). `None`
    /// for a backup-only key.
    pub fn attest(&self, attested: &[u8]) -> Option<[u8; 32]> {
        self.current.attestation.as_ref().map(|k| *blake3::keyed_hash(k, attested).as_bytes())
    }

    /// Whether `tag` attests `attested` under `epoch`: `None` when this key cannot tell
    /// (backup-only).
    pub fn check_attestation(&self, epoch: u16, attested: &[u8], tag: &[u8; 32]) -> Option<bool> {
        // blake3::Hash compares in constant time.
        let e = self.epoch(epoch).ok()?;
        e.attestation.as_ref().map(|k| blake3::keyed_hash(k, attested) == blake3::Hash::from(*tag))
    }

    /// The key that authenticates this machine's index cache file of the repository (never
    /// stored). From the chunk-id key, which every key kind holds and a rotation keeps.
    pub fn index_cache_key(&self) -> Zeroizing<[u8; 32]> {
        match self.kind {
            // It holds no chunk-id key; every kind holds the references-id key.
            KeyKind::Maintenance => Zeroizing::new(blake3::derive_key(CTX_INDEX_CACHE, &self.references_id)),
            _ => Zeroizing::new(blake3::derive_key(CTX_INDEX_CACHE, &self.chunk_id)),
        }
    }

    /// The maintenance public key of the write epoch, if this key has it: what the config
    /// of a repository with maintenance names (field 11) and summaries are sealed to.
    pub fn maintenance_public(&self) -> Option<[u8; 32]> {
        self.current.maintenance_public
    }

    /// `KH(source-path key, path)`: how a summary names a source path. `None` for a
    /// maintenance key, which cannot compute it (so it cannot test a guessed path).
    pub fn source_path_hash(&self, path: &[u8]) -> Option<[u8; 32]> {
        self.source_path.as_ref().map(|k| *blake3::keyed_hash(k, path).as_bytes())
    }

    /// [`RepoKeys::source_path_hash`] under the older content root, during a content key
    /// rotation: summaries written before it still agree with their snapshots.
    pub fn older_source_path_hash(&self, path: &[u8]) -> Option<[u8; 32]> {
        self.older_ids.as_ref().map(|o| *blake3::keyed_hash(&o.source_path, path).as_bytes())
    }

    /// A new ephemeral key pair for an object of `kind` sealed to the write epoch's
    /// maintenance public key (a summary), whose content hashes to `content`: the
    /// ephemeral public key to store and the object's key.
    pub fn new_maintenance_sealed_key(
        &self,
        kind: u8,
        content: &[u8; 32],
    ) -> Result<([u8; 32], Zeroizing<[u8; 32]>)> {
        let maintenance_public = self.current.maintenance_public.ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                "this backup-only key carries no maintenance public key: replace it with one made by `cairn key add --backup-only`",
            )
        })?;
        let eph = StaticSecret::from(*self.hedged(kind, content)?);
        let eph_pub = PublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&PublicKey::from(maintenance_public));
        Ok((eph_pub, maintenance_sealed_key(&self.current, shared.as_bytes(), &eph_pub, kind)))
    }

    /// The key of a stored object of `epoch` sealed to its maintenance public key. Needs
    /// the maintenance secret (full and maintenance keys).
    pub fn open_maintenance_sealed_key(
        &self,
        epoch: u16,
        eph_pub: &[u8; 32],
        kind: u8,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let e = self.epoch(epoch)?;
        let secret = e.maintenance_secret.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                "a backup-only key cannot read summaries; use a full or maintenance key",
            )
        })?;
        let shared = secret.diffie_hellman(&PublicKey::from(*eph_pub));
        Ok(maintenance_sealed_key(e, shared.as_bytes(), eph_pub, kind))
    }

    /// A full writer's attestation of a summary whose attested bytes are `attested`,
    /// under the write epoch; `None` for any other key kind.
    pub fn maintenance_attest(&self, attested: &[u8]) -> Option<[u8; 32]> {
        if self.kind != KeyKind::Full {
            return None;
        }
        self.current.maintenance_attestation.as_ref().map(|k| *blake3::keyed_hash(k, attested).as_bytes())
    }

    /// Whether `tag` attests `attested` as a full writer's summary of `epoch`: `None` when
    /// this key cannot tell (backup-only).
    pub fn check_maintenance_attestation(&self, epoch: u16, attested: &[u8], tag: &[u8; 32]) -> Option<bool> {
        let e = self.epoch(epoch).ok()?;
        e.maintenance_attestation
            .as_ref()
            .map(|k| blake3::keyed_hash(k, attested) == blake3::Hash::from(*tag))
    }

    pub fn can_read(&self) -> bool {
        self.current.read_secret.is_some()
    }
}

fn sealed_key(e: &EpochKeys, shared: &[u8; 32], eph_pub: &[u8; 32], binding: Binding) -> Zeroizing<[u8; 32]> {
    let mut h = match binding {
        Binding::Legacy => blake3::Hasher::new_derive_key(CTX_SEALED_OBJECT_KEY),
        Binding::Kind(_) => blake3::Hasher::new_derive_key(CTX_SEALED_OBJECT_KEY_V2),
    };
    h.update(shared).update(eph_pub).update(&e.public).update(&e.pack_auth);
    if let Binding::Kind(kind) = binding {
        h.update(&[kind]);
    }
    wiped(h)
}

/// The key of an object sealed to an epoch's maintenance public key: from the X25519
/// shared secret, the ephemeral and maintenance public keys, the maintenance
/// authentication key (which the public keys alone do not give) and the object's kind.
fn maintenance_sealed_key(
    e: &EpochKeys,
    shared: &[u8; 32],
    eph_pub: &[u8; 32],
    kind: u8,
) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(CTX_MAINTENANCE_OBJECT_KEY);
    h.update(shared)
        .update(eph_pub)
        .update(&e.maintenance_public.unwrap_or([0; 32]))
        .update(&e.maintenance_auth)
        .update(&[kind]);
    wiped(h)
}

/// BLAKE3 derive-key of `material` under `context`, with the hasher wiped afterwards.
fn derive(context: &str, material: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(material);
    wiped(h)
}

/// The hash of a hasher that took key material, with the hasher's state (which holds
/// that material, or what it was mixed into) wiped.
fn wiped(mut h: blake3::Hasher) -> Zeroizing<[u8; 32]> {
    let out = Zeroizing::new(*h.finalize().as_bytes());
    h.zeroize();
    out
}

pub(crate) fn shared_object_key(shared_seal: &[u8; 32], salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(CTX_SHARED_OBJECT_KEY);
    h.update(shared_seal).update(salt);
    wiped(h)
}

pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf)
        .map_err(|e| Error::new(ErrorKind::Io, format!("the operating system's random source failed: {e}")))
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for new keys: 64 MiB, 3 passes, 4 lanes (RFC 9106's recommendation for
    /// 64 MiB). The lanes are filled in parallel, so unlocking a repository (every command
    /// pays it) takes half the time on two cores for the same memory and passes.
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 };
    /// The weakest parameters a key file may use; weaker ones are refused on open. Key
    /// files older cairns made this weak still open.
    pub const FLOOR: KdfParams = KdfParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
    /// The weakest parameters a new key may have: RFC 9106's second recommended setting
    /// (64 MiB, 3 passes), with any number of lanes.
    pub const NEW_KEY_FLOOR: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };
    /// The strongest accepted: a planted key file must not make an open allocate or run
    /// without bound (1 GiB and 16 passes is already tens of seconds).
    pub const CEILING: KdfParams = KdfParams { memory_kib: 1024 * 1024, iterations: 16, parallelism: 16 };

    /// What one derivation costs, in KiB-passes: the order in which key files are tried.
    pub fn cost(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }

    /// Check parameters for a new key: within the ceiling and at least [`Self::NEW_KEY_FLOOR`].
    pub fn check_new(&self) -> Result<()> {
        self.check()?;
        let lo = Self::NEW_KEY_FLOOR;
        if self.memory_kib < lo.memory_kib || self.iterations < lo.iterations {
            return Err(Error::invalid(format!(
                "Argon2id for a new key needs at least {} MiB and {} passes (RFC 9106), not {} KiB and {}; raise --kdf-memory / --kdf-iterations",
                lo.memory_kib / 1024,
                lo.iterations,
                self.memory_kib,
                self.iterations
            )));
        }
        Ok(())
    }

    pub fn check(&self) -> Result<()> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        let ok = (lo.memory_kib..=hi.memory_kib).contains(&self.memory_kib)
            && (lo.iterations..=hi.iterations).contains(&self.iterations)
            && (lo.parallelism..=hi.parallelism).contains(&self.parallelism);
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "Argon2id parameters memory={} KiB iterations={} parallelism={} are outside the \
                 accepted range ({}..={} KiB, {}..={} iterations, {}..={} lanes)",
                self.memory_kib,
                self.iterations,
                self.parallelism,
                lo.memory_kib,
                hi.memory_kib,
                lo.iterations,
                hi.iterations,
                lo.parallelism,
                hi.parallelism
            )))
        }
    }

    /// The key-encryption key for a passphrase and salt.
    pub fn derive_kek(&self, passphrase: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| Error::invalid(format!("Argon2id parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, &mut kek[..])
            .map_err(|e| Error::new(ErrorKind::Io, format!("Argon2id failed: {e}")))?;
        Ok(kek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// During a content key rotation a key holds two content roots: its material says so
    /// (version 3, 32 bytes longer) and decodes back; writers name and cut with the new
    /// root, readers accept ids of either; the end of the rotation drops the old one.
    #[test]
    fn a_second_content_root_is_carried_verified_and_dropped() {
        let old = MasterKey::generate().unwrap();
        let both = old.with_new_content(None).unwrap();
        assert!(both.holds_older_content() && !old.holds_older_content());
        assert_eq!(both.epoch_numbers(), vec![0, 1]);
        let bytes = both.to_bytes();
        assert_eq!(bytes.len(), old.to_bytes().len() + EPOCH_LEN + 32);
        assert_eq!(bytes[MASTER_HEAD_V2 - 1], 0x12);
        let back = MasterKey::from_bytes(&bytes).unwrap();
        assert!(back.holds_older_content() && back.same_content_root(&both) && !back.same_content_root(&old));
        // The backup-only form carries both roots too.
        let writer = MasterKey::from_bytes(&both.backup_only().to_bytes()).unwrap();
        assert!(writer.holds_older_content() && writer.same_content_root(&both));
        // A truncated or mislabelled version 3 material is refused.
        assert!(MasterKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut two_flags = bytes.to_vec();
        two_flags[MASTER_HEAD_V2 - 1] = 0x22;
        assert!(MasterKey::from_bytes(&two_flags).is_err());

        let id = [7u8; 32];
        let k_old = old.derive(old.public_key(), id).unwrap();
        let k_both = both.derive(both.public_key(), id).unwrap();
        let plain = b"a chunk";
        let (old_id, new_id) = (BlobId::Chunk(k_old.chunk_id(plain)), BlobId::Chunk(k_both.chunk_id(plain)));
        assert_ne!(old_id, new_id);
        assert_ne!(k_old.gear_table(), k_both.gear_table());
        assert!(k_both.names(&old_id, plain) && k_both.names(&new_id, plain));
        assert!(!k_both.names_under_newest(&old_id, plain) && !k_both.names(&old_id, b"another"));
        let tree = BlobId::Tree(k_old.tree_id(plain));
        assert!(k_both.names(&tree, plain) && !k_both.names_under_newest(&tree, plain));
        let last = both.newest_only();
        assert!(!last.holds_older_content() && last.same_content_root(&both));
        let k_last = last.derive(last.public_key(), id).unwrap();
        assert!(!k_last.names(&old_id, plain) && k_last.names(&new_id, plain));
        // A rotation under way cannot start another; `from` gives another key's root.
        assert!(both.with_new_content(None).is_err());
        let other = MasterKey::generate().unwrap();
        assert!(old.with_new_content(Some(&other)).unwrap().same_content_root(&other));
    }

    /// Material version 4: a maintenance key holds per epoch what its role needs and no
    /// root or read secret; a backup-only key can carry the maintenance public key. Both
    /// round trip; the maintenance key agrees with the full key on shared objects and
    /// summaries, and can seal or open no pack or snapshot.
    #[test]
    fn maintenance_material_round_trips_and_holds_only_its_role() {
        let full = MasterKey::generate().unwrap().with_new_epoch().unwrap();
        let keeper = full.maintenance().unwrap();
        let bytes = keeper.to_bytes();
        assert_eq!(bytes.len(), MASTER_HEAD_V2 + 2 * EPOCH_LEN_V4_MAINTENANCE);
        assert_eq!(bytes[MASTER_HEAD_V2 - 1], 0x22);
        assert!(material_lengths(KeyKind::Maintenance).contains(&bytes.len()));
        let back = MasterKey::from_bytes(&bytes).unwrap();
        assert_eq!(&*back.to_bytes(), &*bytes);
        assert_eq!(back.kind, KeyKind::Maintenance);
        // No content root, epoch root or read secret is in it.
        for secret in [&full.content_root[..], &full.epochs[0].root[..], &full.epochs[1].root[..]] {
            assert!(!bytes.windows(32).any(|w| w == secret), "a root is in the material");
        }
        for e in &full.epochs {
            let read = e.read_secret.as_ref().unwrap().as_bytes();
            assert!(!bytes.windows(32).any(|w| w == read), "a read secret is in the material");
        }
        let writer = full.backup_only_with_maintenance().unwrap();
        let wbytes = writer.to_bytes();
        assert_eq!(wbytes.len(), MASTER_HEAD_V2 + 2 * EPOCH_LEN_V4_BACKUP_ONLY);
        assert_eq!(&*MasterKey::from_bytes(&wbytes).unwrap().to_bytes(), &*wbytes);
        assert!(!full.backup_only().material_v4(), "without maintenance a backup-only key stays version 2");
        // Layouts that do not fit their kind are refused.
        let mut full_v4 = full.to_bytes().to_vec();
        full_v4[MASTER_HEAD_V2 - 1] |= MAINTENANCE_FLAG;
        assert!(MasterKey::from_bytes(&full_v4).is_err());
        let mut keeper_v2 = bytes.to_vec();
        keeper_v2[MASTER_HEAD_V2 - 1] = 0x02;
        assert!(MasterKey::from_bytes(&keeper_v2).is_err());
        let mut keeper_older = bytes.to_vec();
        keeper_older[MASTER_HEAD_V2 - 1] = 0x32;
        keeper_older.extend_from_slice(&[5; 32]);
        assert!(MasterKey::from_bytes(&keeper_older).is_err());
        assert!(MasterKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(full.backup_only().maintenance().is_err(), "only a full key makes one");

        let (public, id) = (full.public_key(), [9u8; 32]);
        let (f, m, w) = (
            full.derive(public, id).unwrap(),
            back.derive(public, id).unwrap(),
            writer.derive(public, id).unwrap(),
        );
        assert_eq!(f.maintenance_public(), m.maintenance_public());
        assert_eq!(f.maintenance_public(), w.maintenance_public());
        assert!(f.maintenance_public().is_some());
        let salt = [3u8; 32];
        for epoch in [0, 1] {
            assert_eq!(
                *f.shared_object_key(epoch, &salt, Binding::Kind(2)).unwrap(),
                *m.shared_object_key(epoch, &salt, Binding::Kind(2)).unwrap()
            );
        }
        assert_eq!(
            full.config_seal_keys().iter().map(|(n, k)| (*n, **k)).collect::<Vec<_>>(),
            back.config_seal_keys().iter().map(|(n, k)| (*n, **k)).collect::<Vec<_>>()
        );
        // Summaries: sealed by either writer, opened by full and maintenance keys only.
        for sealer in [&f, &w] {
            let (eph, key) = sealer.new_maintenance_sealed_key(7, &[1; 32]).unwrap();
            assert_eq!(*m.open_maintenance_sealed_key(1, &eph, 7).unwrap(), *key);
            assert_eq!(*f.open_maintenance_sealed_key(1, &eph, 7).unwrap(), *key);
            assert_ne!(*m.open_maintenance_sealed_key(1, &eph, 8).unwrap(), *key);
            assert_eq!(
                w.open_maintenance_sealed_key(1, &eph, 7).unwrap_err().kind(),
                ErrorKind::PermissionDenied
            );
        }
        let tag = f.maintenance_attest(b"summary").unwrap();
        assert_eq!(m.check_maintenance_attestation(1, b"summary", &tag), Some(true));
        assert_eq!(m.check_maintenance_attestation(1, b"summary!", &tag), Some(false));
        assert_eq!((m.maintenance_attest(b"summary"), w.maintenance_attest(b"summary")), (None, None));
        assert_eq!(w.check_maintenance_attestation(1, b"summary", &tag), None);
        // It seals no pack or snapshot, opens none, attests nothing as a full key, and
        // cannot name a source path.
        assert_eq!(
            m.new_sealed_object_key(PACK_KIND, &[0; 32]).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        let (eph, _) = f.new_sealed_object_key(3, &[0; 32]).unwrap();
        assert_eq!(
            m.open_sealed_object_key(1, &eph, Binding::Kind(3)).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        assert!(m.attest(b"x").is_none() && m.source_path_hash(b"/etc").is_none());
        assert_eq!(f.source_path_hash(b"/etc"), w.source_path_hash(b"/etc"));
        assert!(!m.can_read());
        // A backup-only key without it writes no summary.
        let old_writer = full.backup_only().derive(public, id).unwrap();
        assert!(old_writer.maintenance_public().is_none());
        assert_eq!(
            old_writer.new_maintenance_sealed_key(7, &[1; 32]).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn master_key_bytes_round_trip() {
        let m = MasterKey::generate().unwrap();
        let back = MasterKey::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.public_key(), m.public_key());
        let b = m.backup_only();
        let bb = MasterKey::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(bb.kind, KeyKind::BackupOnly);
        assert!(bb.epochs.iter().all(|e| e.read_secret.is_none()));
        assert_eq!(bb.public_key(), m.public_key());
        // A backup-only key refuses a config whose public key was swapped.
        assert!(bb.derive([7u8; 32], [0; 32]).is_err());
        assert!(MasterKey::from_bytes(&m.to_bytes()[..40]).is_err());
        assert!(MasterKey::from_bytes(&[]).is_err());
    }

    #[test]
    fn only_full_keys_attest_and_bindings_separate_keys() {
        let m = MasterKey::generate().unwrap();
        let full = m.derive(m.public_key(), [1; 32]).unwrap();
        let writer = m.backup_only().derive(m.public_key(), [1; 32]).unwrap();
        let tag = full.attest(b"snapshot").unwrap();
        assert_eq!(full.check_attestation(0, b"snapshot", &tag), Some(true));
        assert_eq!(full.check_attestation(0, b"snapshot!", &tag), Some(false));
        assert_eq!(writer.attest(b"snapshot"), None);
        assert_eq!(writer.check_attestation(0, b"snapshot", &tag), None);
        // Shared keys: bound to the kind and the repository id.
        let other_repo = m.derive(m.public_key(), [2; 32]).unwrap();
        let salt = [7; 32];
        let k = full.shared_object_key(0, &salt, Binding::Kind(2)).unwrap();
        assert_eq!(*k, *writer.shared_object_key(0, &salt, Binding::Kind(2)).unwrap());
        assert_ne!(*k, *full.shared_object_key(0, &salt, Binding::Kind(4)).unwrap());
        assert_ne!(*k, *other_repo.shared_object_key(0, &salt, Binding::Kind(2)).unwrap());
        assert_ne!(*k, *full.shared_object_key(0, &salt, Binding::Legacy).unwrap());
        // Sealed keys: bound to the kind.
        let (eph, key) = writer.new_sealed_object_key(PACK_KIND, &[0; 32]).unwrap();
        assert_eq!(*full.open_sealed_object_key(0, &eph, Binding::Kind(PACK_KIND)).unwrap(), *key);
        assert_ne!(*full.open_sealed_object_key(0, &eph, Binding::Kind(3)).unwrap(), *key);
        assert_ne!(*full.open_sealed_object_key(0, &eph, Binding::Legacy).unwrap(), *key);
    }

    #[test]
    fn backup_only_keys_write_what_full_keys_read_but_cannot_read() {
        let m = MasterKey::generate().unwrap();
        let public = m.public_key();
        let full = m.derive(public, [0; 32]).unwrap();
        let writer = m.backup_only().derive(public, [0; 32]).unwrap();
        let (eph, k_written) = writer.new_sealed_object_key(3, &[0; 32]).unwrap();
        assert_eq!(*full.open_sealed_object_key(0, &eph, Binding::Kind(3)).unwrap(), *k_written);
        let err = writer.open_sealed_object_key(0, &eph, Binding::Kind(3)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        // Ids agree between the two, so the backup-only key dedups against full-key data.
        assert_eq!(full.chunk_id(b"x"), writer.chunk_id(b"x"));
        assert_ne!(full.chunk_id(b"x").0, full.tree_id(b"x").0);
    }

    #[test]
    fn a_key_sharing_ids_agrees_on_ids_but_reads_nothing_of_the_other() {
        let m = MasterKey::generate().unwrap();
        let other = m.sharing_ids().unwrap();
        let (a, b) =
            (m.derive(m.public_key(), [0; 32]).unwrap(), other.derive(other.public_key(), [0; 32]).unwrap());
        assert_eq!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_eq!(a.tree_id(b"x"), b.tree_id(b"x"));
        assert_eq!(a.gear_table(), b.gear_table());
        assert_ne!(m.public_key(), other.public_key());
        let (eph, k) = a.new_sealed_object_key(PACK_KIND, &[0; 32]).unwrap();
        assert_ne!(*b.open_sealed_object_key(0, &eph, Binding::Kind(PACK_KIND)).unwrap(), *k);
    }

    /// Hashers that take key material are wiped after use; that needs blake3's zeroize
    /// feature, and this does not compile without it.
    #[test]
    fn hashers_can_be_wiped() {
        fn wipeable<T: Zeroize>() {}
        wipeable::<blake3::Hasher>();
        wipeable::<blake3::OutputReader>();
        let mut h = blake3::Hasher::new_derive_key(CTX_HEDGE);
        h.update(&[7; 32]);
        let key = wiped(h.clone());
        assert_eq!(*key, *h.finalize().as_bytes());
    }

    #[test]
    fn a_different_public_key_is_refused() {
        let m = MasterKey::generate().unwrap();
        assert!(m.derive([9u8; 32], [0; 32]).is_err());
    }

    #[test]
    fn kdf_bounds() {
        assert!(KdfParams::DEFAULT.check().is_ok());
        let weak = KdfParams { memory_kib: 1024, ..KdfParams::FLOOR };
        assert!(weak.check().is_err());
        assert!(KdfParams::FLOOR.check().is_ok() && KdfParams::FLOOR.check_new().is_err());
        assert!(KdfParams::DEFAULT.check_new().is_ok() && KdfParams::NEW_KEY_FLOOR.check_new().is_ok());
        assert!(KdfParams { iterations: 2, ..KdfParams::DEFAULT }.check_new().is_err());
        assert!(
            KdfParams { memory_kib: 2 << 20, ..KdfParams::DEFAULT }.check().is_err(),
            "above the ceiling"
        );
        let huge = KdfParams { memory_kib: u32::MAX, ..KdfParams::FLOOR };
        assert!(huge.check().is_err());
        let k1 = KdfParams::FLOOR.derive_kek(b"pw", &[1; 32]).unwrap();
        let k2 = KdfParams::FLOOR.derive_kek(b"pw", &[2; 32]).unwrap();
        assert_ne!(*k1, *k2);
    }

    /// Lanes are filled in parallel (argon2's `parallel` feature); the result must still be
    /// standard Argon2id. Expected values from the reference implementation's command line:
    /// `echo -n "correct horse battery staple" | argon2 cairn-known-answer-salt-32-bytes
    /// -id -t 3 -m 13 -p LANES -l 32 -r`.
    #[test]
    fn kek_matches_the_reference_argon2id_with_one_and_four_lanes() {
        let salt: [u8; 32] = *b"cairn-known-answer-salt-32-bytes";
        for (lanes, expected) in [
            (1, "b5ebf1e13ff3cfdfa69402f91d5d9d64a151764e81a754286d0e0fd3d4d06014"),
            (4, "44a9ce23cde30901658c1bc9301897ec69d97bc154ff19573cbf118ba0b00d73"),
        ] {
            let params = KdfParams { memory_kib: 8 * 1024, iterations: 3, parallelism: lanes };
            let kek = params.derive_kek(b"correct horse battery staple", &salt).unwrap();
            assert_eq!(crate::id::hex_encode(&kek[..]), expected, "{lanes} lanes");
        }
    }
}
