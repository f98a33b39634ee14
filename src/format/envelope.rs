//! The envelope of every sealed file object (config, index, snapshot, lock, log entry): a
//! fixed header, then the AES-256-GCM sealed, compression-encoded payload.
//!
//! Version 2 (written since 2026-12-04):
//! ```text
//! 0   4  magic "CRNO"
//! 4   1  envelope version (2)
//! 5   1  object type (ObjectType)
//! 6   1  seal mode: 1 shared (bytes 8..40 are a salt), 2 sealed to the repository
//!        public key (bytes 8..40 are an ephemeral X25519 public key)
//! 7   1  writer: 1 a full key, 2 a backup-only key
//! 8   32 salt or ephemeral public key (hedged: see RepoKeys::hedged)
//! 40  32 attestation: a full writer's KH(attestation key, bytes 0..40 || H(payload));
//!        32 zero bytes from a backup-only writer
//! 72  ..  ciphertext of compress::encode(payload), then the 16-byte tag
//! ```
//! The key is unique to the object and bound to its type (and, for shared objects, to the
//! repository id), so the nonce is 12 zero bytes; the associated data is the 72-byte
//! header. Only a full key can make an attestation, so a reader with a full key knows
//! whether a full key wrote an object: retention, the activity log and `supersedes` rely
//! on that against a backup-only key holder.
//!
//! Version 3 (format-spec/maintenance-key.md): version 2's layout, for what a maintenance
//! key writes (writer byte 3, attestation zero) and for summaries (type 7, seal mode 3:
//! sealed to the key epoch's maintenance public key, bytes 8..40 an ephemeral X25519
//! public key; a full writer attests them with the maintenance attestation key).
//!
//! Version 1 (still read): a 40-byte header whose byte 7 is 0, no attestation, and the
//! first key derivations (no type, no repository id). The config is always version 1: it
//! is sealed before the keys that bind to the repository exist, and is bound to its
//! repository by the public key it holds (keys.md).

use crate::compress;
use crate::crypto::aead::{Cipher, TAG_LEN};
use crate::crypto::keys::{fill_random, shared_object_key, Binding, KeyKind, MasterKey, RepoKeys};
use crate::error::{Error, ErrorKind, Result};

pub const MAGIC: &[u8; 4] = b"CRNO";
/// The version this cairn writes.
pub const VERSION: u8 = 2;
pub const VERSION_1: u8 = 1;
/// What a maintenance key writes, and summaries.
pub const VERSION_3: u8 = 3;
pub const HEADER_LEN: usize = 72;
pub const HEADER_LEN_V1: usize = 40;
/// Largest payload any object may decode to.
pub const MAX_PAYLOAD: usize = 256 << 20;

const MODE_SHARED: u8 = 1;
const MODE_SEALED: u8 = 2;
const MODE_MAINTENANCE: u8 = 3;
const WRITER_FULL: u8 = 1;
const WRITER_BACKUP_ONLY: u8 = 2;
const WRITER_MAINTENANCE: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
    Log = 5,
    /// Inside a key file (version 2): the file's authentication key, for full keys that
    /// give the file new key epochs (format-spec/keys.md).
    KeyGrant = 6,
    /// A snapshot's summary, in the same snapshot file (format-spec/maintenance-key.md):
    /// sealed to the maintenance public key.
    Summary = 7,
}

impl ObjectType {
    fn mode(self) -> u8 {
        match self {
            ObjectType::Snapshot | ObjectType::KeyGrant => MODE_SEALED,
            ObjectType::Summary => MODE_MAINTENANCE,
            ObjectType::Config | ObjectType::Index | ObjectType::Lock | ObjectType::Log => MODE_SHARED,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Config => "config",
            ObjectType::Index => "index",
            ObjectType::Snapshot => "snapshot",
            ObjectType::Lock => "lock",
            ObjectType::Log => "log entry",
            ObjectType::KeyGrant => "key grant",
            ObjectType::Summary => "summary",
        }
    }
}

/// Who wrote an object, as far as the reader can prove.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WrittenBy {
    /// A full key: its attestation verified.
    FullKey,
    /// Said to be a backup-only key (any write-root holder can write such an object).
    BackupOnlyKey,
    /// Said to be a maintenance key (any holder of the shared-seal key can claim it).
    MaintenanceKey,
    /// Not known: a version 1 object, or a full key's claim that this reader (holding a
    /// backup-only key) cannot check.
    #[default]
    Unknown,
}

impl WrittenBy {
    pub fn name(self) -> &'static str {
        match self {
            WrittenBy::FullKey => "full key",
            WrittenBy::BackupOnlyKey => "backup-only key",
            WrittenBy::MaintenanceKey => "maintenance key",
            WrittenBy::Unknown => "unknown",
        }
    }
}

/// An opened object: its payload and who wrote it.
pub struct Opened {
    pub payload: Vec<u8>,
    pub written_by: WrittenBy,
    /// The key epoch it was sealed under.
    pub epoch: u16,
}

/// The bytes an attestation covers: the first 40 header bytes and the payload's hash.
fn attested(head40: &[u8], payload: &[u8]) -> [u8; 72] {
    let mut a = [0u8; 72];
    a[..40].copy_from_slice(&head40[..40]);
    a[40..].copy_from_slice(blake3::hash(payload).as_bytes());
    a
}

/// Seal an object of `ty` with the repository keys (version 2), under the write epoch.
pub fn seal(keys: &RepoKeys, ty: ObjectType, payload: &[u8]) -> Result<Vec<u8>> {
    let writer = match keys.kind {
        KeyKind::Full => WrittenBy::FullKey,
        KeyKind::BackupOnly => WrittenBy::BackupOnlyKey,
        KeyKind::Maintenance => WrittenBy::MaintenanceKey,
    };
    seal_as(keys, ty, payload, writer)
}

/// Seal an object of `ty` as written by `writer`: a full key sealing anew what another
/// writer wrote (key rotation) keeps the writer it was shown to have, so sealing anew never
/// turns a backup-only key's object into a full key's. `FullKey` needs a full key.
pub fn seal_as(keys: &RepoKeys, ty: ObjectType, payload: &[u8], writer: WrittenBy) -> Result<Vec<u8>> {
    let content = *blake3::hash(payload).as_bytes();
    let epoch = keys.write_epoch();
    let (material, key) = match ty.mode() {
        MODE_SHARED => {
            let salt = *keys.hedged(ty as u8, &content)?;
            (salt, keys.shared_object_key(epoch, &salt, Binding::Kind(ty as u8))?)
        }
        MODE_MAINTENANCE => keys.new_maintenance_sealed_key(ty as u8, &content)?,
        _ => keys.new_sealed_object_key(ty as u8, &content)?,
    };
    if writer == WrittenBy::MaintenanceKey && ty.mode() != MODE_SHARED {
        return Err(Error::invalid("a maintenance key seals shared objects only"));
    }
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = if ty == ObjectType::Summary || writer == WrittenBy::MaintenanceKey { VERSION_3 } else { VERSION };
    h[5] = ty as u8;
    h[6] = ty.mode();
    h[7] = match writer {
        WrittenBy::FullKey => WRITER_FULL,
        WrittenBy::MaintenanceKey => WRITER_MAINTENANCE,
        _ => WRITER_BACKUP_ONLY,
    };
    h[8..40].copy_from_slice(&material);
    if writer == WrittenBy::FullKey {
        let attested = attested(&h, payload);
        let tag = match ty {
            ObjectType::Summary => keys.maintenance_attest(&attested),
            _ => keys.attest(&attested),
        }
        .ok_or_else(|| Error::invalid("only a full key can seal an object as a full key's"))?;
        h[40..].copy_from_slice(&tag);
    }
    let mut body = compress::encode(payload, compress::DEFAULT_LEVEL);
    Cipher::new(&key).seal_in_place(&[0u8; 12], &h, &mut body);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Check the fixed part of the header of `bytes` for `ty` (magic, version, type, mode);
/// returns the version.
fn check_header(ty: ObjectType, bytes: &[u8]) -> Result<u8> {
    if bytes.len() < HEADER_LEN_V1 + TAG_LEN + 1 {
        return Err(Error::corrupt(format!("{} object too short ({} bytes)", ty.name(), bytes.len())));
    }
    if &bytes[..4] != MAGIC {
        return Err(Error::corrupt(format!("not a cairn {} object (bad magic)", ty.name())));
    }
    let version = bytes[4];
    if !matches!(version, VERSION_1 | VERSION | VERSION_3) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} object has envelope version {version}; this cairn reads versions 1 to {VERSION_3}; upgrade cairn",
                ty.name()
            ),
        ));
    }
    if bytes[5] != ty as u8 || bytes[6] != ty.mode() {
        return Err(Error::corrupt(format!(
            "object type {} / mode {} found where a {} was expected",
            bytes[5],
            bytes[6],
            ty.name()
        )));
    }
    // Version 3 holds exactly summaries (from full and backup-only writers) and what a
    // maintenance key writes; version 2 neither.
    let writer_ok = match (version, ty == ObjectType::Summary) {
        (VERSION_1, false) => bytes[7] == 0,
        (VERSION, false) => matches!(bytes[7], WRITER_FULL | WRITER_BACKUP_ONLY),
        (VERSION_3, true) => matches!(bytes[7], WRITER_FULL | WRITER_BACKUP_ONLY),
        (VERSION_3, false) => bytes[7] == WRITER_MAINTENANCE,
        _ => false,
    } && (version == VERSION_1 || bytes.len() > HEADER_LEN + TAG_LEN);
    if !writer_ok {
        return Err(Error::corrupt(format!("{} object header is malformed", ty.name())));
    }
    Ok(version)
}

/// Check the header of `bytes` for `ty`; returns the salt or ephemeral key.
pub fn parse_header(ty: ObjectType, bytes: &[u8]) -> Result<[u8; 32]> {
    check_header(ty, bytes)?;
    Ok(bytes[8..40].try_into().expect("32 bytes"))
}

fn open_with(ty: ObjectType, key: &[u8; 32], header_len: usize, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut body = bytes[header_len..].to_vec();
    Cipher::new(key)
        .open_in_place(&[0u8; 12], &bytes[..header_len], &mut body)
        .map_err(|e| e.wrap(ty.name()))?;
    compress::decode(&body, MAX_PAYLOAD).map_err(|e| e.wrap(ty.name()))
}

/// Check and open an object of `ty`.
pub fn open(keys: &RepoKeys, ty: ObjectType, bytes: &[u8]) -> Result<Vec<u8>> {
    open_attested(keys, ty, bytes).map(|o| o.payload)
}

/// Check and open an object of `ty`, and tell who wrote it and under which key epoch. A
/// full key's attestation that does not verify is damage (or forgery), reported as
/// *corrupt*. A key holding two epochs (during a rotation) tries the write epoch first,
/// then the other: envelopes do not say their epoch (format-spec/objects.md).
pub fn open_attested(keys: &RepoKeys, ty: ObjectType, bytes: &[u8]) -> Result<Opened> {
    let version = check_header(ty, bytes)?;
    let mut first_error = None;
    for epoch in keys.epochs() {
        match open_in_epoch(keys, epoch, version, ty, bytes) {
            Ok(opened) => return Ok(opened),
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(first_error.expect("a key holds an epoch"))
}

fn open_in_epoch(keys: &RepoKeys, epoch: u16, version: u8, ty: ObjectType, bytes: &[u8]) -> Result<Opened> {
    let material: [u8; 32] = bytes[8..40].try_into().expect("32 bytes");
    let (binding, header_len) = match version {
        VERSION_1 => (Binding::Legacy, HEADER_LEN_V1),
        _ => (Binding::Kind(ty as u8), HEADER_LEN),
    };
    let key = match ty.mode() {
        MODE_SHARED => keys.shared_object_key(epoch, &material, binding)?,
        MODE_MAINTENANCE => keys.open_maintenance_sealed_key(epoch, &material, ty as u8)?,
        _ => keys.open_sealed_object_key(epoch, &material, binding)?,
    };
    let payload = open_with(ty, &key, header_len, bytes)?;
    let written_by = match (version, bytes[7]) {
        (VERSION_1, _) => WrittenBy::Unknown,
        (_, WRITER_FULL) => {
            let tag: [u8; 32] = bytes[40..72].try_into().expect("32 bytes");
            let attested = attested(bytes, &payload);
            let verified = match ty {
                ObjectType::Summary => keys.check_maintenance_attestation(epoch, &attested, &tag),
                _ => keys.check_attestation(epoch, &attested, &tag),
            };
            match verified {
                Some(true) => WrittenBy::FullKey,
                Some(false) => {
                    return Err(Error::corrupt(format!(
                        "{} claims a full key wrote it, but its attestation does not verify",
                        ty.name()
                    )))
                }
                None => WrittenBy::Unknown,
            }
        }
        _ if bytes[40..72] != [0u8; 32] => {
            return Err(Error::corrupt(format!(
                "{} from a backup-only or maintenance key carries an attestation",
                ty.name()
            )))
        }
        (_, WRITER_MAINTENANCE) => WrittenBy::MaintenanceKey,
        _ => WrittenBy::BackupOnlyKey,
    };
    Ok(Opened { payload, written_by, epoch })
}

/// The config is sealed before the repository keys exist (it holds the public key and
/// the repository id), with the shared key of key epoch `epoch` itself, in a version 1
/// envelope.
pub fn seal_config(master: &MasterKey, epoch: u16, payload: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; 32];
    fill_random(&mut salt)?;
    let (_, seal_key) = master
        .config_seal_keys()
        .into_iter()
        .find(|(n, _)| *n == epoch)
        .ok_or_else(|| Error::invalid(format!("this key does not hold key epoch {epoch}")))?;
    let key = shared_object_key(&seal_key, &salt);
    let mut h = [0u8; HEADER_LEN_V1];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION_1;
    h[5] = ObjectType::Config as u8;
    h[6] = MODE_SHARED;
    h[8..].copy_from_slice(&salt);
    let mut body = compress::encode(payload, compress::DEFAULT_LEVEL);
    Cipher::new(&key).seal_in_place(&[0u8; 12], &h, &mut body);
    Ok([&h[..], &body].concat())
}

/// Open the config with each key epoch `master` holds, newest first. A key that a
/// completed rotation retired opens it with none.
pub fn open_config(master: &MasterKey, bytes: &[u8]) -> Result<Vec<u8>> {
    if check_header(ObjectType::Config, bytes)? != VERSION_1 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the config has an envelope version this cairn does not read",
        ));
    }
    let salt: [u8; 32] = bytes[8..40].try_into().expect("32 bytes");
    let mut first_error = None;
    for (_, seal_key) in master.config_seal_keys() {
        match open_with(ObjectType::Config, &shared_object_key(&seal_key, &salt), HEADER_LEN_V1, bytes) {
            Ok(payload) => return Ok(payload),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.expect("a key holds an epoch").wrap(
        "the config does not open with this key: it is damaged, or the key was retired by `cairn key rotate`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RepoKeys {
        let m = MasterKey::generate().unwrap();
        m.derive(m.public_key(), [3; 32]).unwrap()
    }

    /// A version 1 object, as cairn wrote them before envelope version 2.
    fn seal_v1(k: &RepoKeys, ty: ObjectType, payload: &[u8]) -> Vec<u8> {
        let salt = [9u8; 32];
        let key = match ty.mode() {
            MODE_SHARED => k.shared_object_key(0, &salt, Binding::Legacy).unwrap(),
            _ => panic!("only shared objects here"),
        };
        let mut h = [0u8; HEADER_LEN_V1];
        h[..4].copy_from_slice(MAGIC);
        h[4] = VERSION_1;
        h[5] = ty as u8;
        h[6] = ty.mode();
        h[8..].copy_from_slice(&salt);
        let mut body = compress::encode(payload, compress::DEFAULT_LEVEL);
        Cipher::new(&key).seal_in_place(&[0u8; 12], &h, &mut body);
        [&h[..], &body].concat()
    }

    #[test]
    fn writers_are_told_apart_and_a_forged_claim_is_refused() {
        let m = MasterKey::generate().unwrap();
        let full = m.derive(m.public_key(), [3; 32]).unwrap();
        let backup = m.backup_only().derive(m.public_key(), [3; 32]).unwrap();
        let by_full = seal(&full, ObjectType::Index, b"i").unwrap();
        let by_backup = seal(&backup, ObjectType::Index, b"i").unwrap();
        assert_eq!(open_attested(&full, ObjectType::Index, &by_full).unwrap().written_by, WrittenBy::FullKey);
        assert_eq!(
            open_attested(&backup, ObjectType::Index, &by_full).unwrap().written_by,
            WrittenBy::Unknown
        );
        assert_eq!(
            open_attested(&full, ObjectType::Index, &by_backup).unwrap().written_by,
            WrittenBy::BackupOnlyKey
        );
        // A backup-only key cannot claim to be a full key: it has no attestation key, and
        // copying one from another object does not verify.
        let mut claim = by_backup.clone();
        claim[7] = WRITER_FULL;
        claim[40..72].copy_from_slice(&by_full[40..72]);
        assert!(open_attested(&full, ObjectType::Index, &claim).is_err());
        // Version 1 objects still open, writer unknown.
        let old = seal_v1(&full, ObjectType::Index, b"old");
        let o = open_attested(&full, ObjectType::Index, &old).unwrap();
        assert_eq!((o.payload.as_slice(), o.written_by), (&b"old"[..], WrittenBy::Unknown));
    }

    #[test]
    fn shared_objects_of_a_sibling_repository_do_not_open() {
        let m = MasterKey::generate().unwrap();
        let sibling = m.sharing_ids().unwrap();
        let (ours, theirs) = (
            m.derive(m.public_key(), [1; 32]).unwrap(),
            sibling.derive(sibling.public_key(), [2; 32]).unwrap(),
        );
        for ty in [ObjectType::Index, ObjectType::Lock, ObjectType::Log] {
            let foreign = seal(&theirs, ty, b"x").unwrap();
            assert!(open(&ours, ty, &foreign).is_err(), "{ty:?}");
        }
    }

    #[test]
    fn the_config_stays_version_1_and_opens_with_the_master_key() {
        let m = MasterKey::generate().unwrap();
        let c = seal_config(&m, 0, b"config").unwrap();
        assert_eq!(c[4], VERSION_1);
        assert_eq!(open_config(&m, &c).unwrap(), b"config");
    }

    #[test]
    fn round_trip_each_type_and_reject_swaps() {
        let k = keys();
        for ty in [ObjectType::Index, ObjectType::Snapshot, ObjectType::Lock, ObjectType::Log] {
            let sealed = seal(&k, ty, b"payload bytes").unwrap();
            assert_eq!(open(&k, ty, &sealed).unwrap(), b"payload bytes");
        }
        let snap = seal(&k, ObjectType::Snapshot, b"x").unwrap();
        assert!(open(&k, ObjectType::Index, &snap).is_err());
        // Rewriting the type byte breaks authentication.
        let mut idx = seal(&k, ObjectType::Index, b"x").unwrap();
        idx[5] = ObjectType::Lock as u8;
        assert!(open(&k, ObjectType::Lock, &idx).is_err());
        assert!(open(&keys(), ObjectType::Index, &seal(&k, ObjectType::Index, b"x").unwrap()).is_err());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = keys();
        let sealed = seal(&k, ObjectType::Snapshot, b"snapshot").unwrap();
        for i in 0..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 0x10;
            assert!(open(&k, ObjectType::Snapshot, &b).is_err(), "flip at {i} undetected");
        }
    }
}
