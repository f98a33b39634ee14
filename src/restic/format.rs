//! restic's on-disk types, read from restic's published design document
//! (`doc/design.rst`): key files, the config, index files, snapshots, trees and the pack
//! header. Everything here parses bytes from a repository cairn does not trust: sizes are
//! bounded before anything is allocated for them, and a parse failure is an error naming
//! what could not be read, never a panic.

use crate::error::{Error, Result};
use base64::Engine;
use serde::Deserialize;
use std::io::Read;

/// A restic id: the SHA-256 of a file's bytes or of a blob's plaintext.
pub type Id = [u8; 32];

/// The most bytes a key file or the config may have.
pub const MAX_SMALL_FILE: u64 = 64 << 10;
/// The most bytes a snapshot file may have, stored and decoded.
pub const MAX_SNAPSHOT_FILE: u64 = 16 << 20;
/// The most bytes an index file may have stored (restic keeps them below 8 MiB).
pub const MAX_INDEX_FILE: u64 = 64 << 20;
/// The most bytes an index file may decode to.
pub const MAX_INDEX_DECODED: u64 = 512 << 20;
/// The most bytes one blob may have, stored or decoded. restic's data blobs are at most
/// 8 MiB; a tree blob of a huge folder can be larger.
pub const MAX_BLOB: u32 = 128 << 20;
/// The most bytes a pack header may have (a pack of 128 MiB of 512 KiB blobs needs 10 KiB).
pub const MAX_PACK_HEADER: u32 = 16 << 20;
/// The most key files tried with a password.
pub const MAX_KEYS: usize = 256;

pub fn hex_id(s: &str) -> Option<Id> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

pub fn id_hex(id: &Id) -> String {
    crate::id::hex_encode(id)
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| Error::corrupt(format!("{what} is not valid base64: {e}")))
}

fn json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(format!("{what} is not what restic writes: {e}")))
}

/// A key file (`keys/ID`): the scrypt parameters and the sealed master key.
#[derive(Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
    pub salt: String,
    pub data: String,
}

impl KeyFile {
    pub fn parse(name: &str, bytes: &[u8]) -> Result<KeyFile> {
        let k: KeyFile = json(&format!("restic key file {name}"), bytes)?;
        if k.kdf != "scrypt" {
            return Err(Error::corrupt(format!(
                "restic key file {name} uses the KDF '{}', not scrypt",
                k.kdf
            )));
        }
        Ok(k)
    }

    /// The scrypt parameters, refused where they would cost more than 1 GiB of memory or
    /// minutes of work (restic calibrates them to about 60 MiB and half a second).
    pub fn params(&self, name: &str) -> Result<(u8, u32, u32)> {
        let bad = || Error::corrupt(format!("restic key file {name} has scrypt parameters out of bounds"));
        if !self.n.is_power_of_two() || self.n < 2 {
            return Err(bad());
        }
        let log_n = self.n.trailing_zeros() as u8;
        if log_n > 24 || self.r == 0 || self.r > 64 || self.p == 0 || self.p > 16 {
            return Err(bad());
        }
        if (self.n as u128) * 128 * (self.r as u128) > 1 << 30 {
            return Err(bad());
        }
        Ok((log_n, self.r, self.p))
    }

    pub fn salt(&self, name: &str) -> Result<Vec<u8>> {
        b64(&format!("the salt of restic key file {name}"), &self.salt)
    }

    pub fn data(&self, name: &str) -> Result<Vec<u8>> {
        b64(&format!("the data of restic key file {name}"), &self.data)
    }
}

#[derive(Deserialize)]
struct MacKeyJson {
    k: String,
    r: String,
}

#[derive(Deserialize)]
struct MasterKeyJson {
    mac: MacKeyJson,
    encrypt: String,
}

/// The master key's parts, as a key file holds them once opened: (AES-256 key, MAC AES
/// key k, MAC key r).
pub type MasterKeyParts =
    (zeroize::Zeroizing<Vec<u8>>, zeroize::Zeroizing<Vec<u8>>, zeroize::Zeroizing<Vec<u8>>);

pub fn parse_master_key(name: &str, bytes: &[u8]) -> Result<MasterKeyParts> {
    let what = format!("the master key in restic key file {name}");
    let m: MasterKeyJson = json(&what, bytes)?;
    let z = zeroize::Zeroizing::new;
    let (enc, k, r) = (z(b64(&what, &m.encrypt)?), z(b64(&what, &m.mac.k)?), z(b64(&what, &m.mac.r)?));
    if enc.len() != 32 || k.len() != 16 || r.len() != 16 {
        return Err(Error::corrupt(format!("{what} has keys of the wrong length")));
    }
    Ok((enc, k, r))
}

/// The repository's config: its format version (1, or 2 with compression).
#[derive(Deserialize)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub id: String,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        let c: Config = json("the restic config", bytes)?;
        if !(1..=2).contains(&c.version) {
            return Err(Error::new(
                crate::ErrorKind::Unsupported,
                format!(
                    "the restic repository has format version {}; cairn reads versions 1 and 2",
                    c.version
                ),
            ));
        }
        Ok(c)
    }
}

/// The plaintext of an index, snapshot, lock or config file: JSON, or (version 2) a byte 2
/// followed by zstd-compressed JSON. At most `limit` bytes are decoded.
pub fn decode_unpacked(what: &str, plain: Vec<u8>, limit: u64) -> Result<Vec<u8>> {
    match plain.first() {
        Some(b'{') | Some(b'[') => Ok(plain),
        Some(2) => {
            let mut out = Vec::new();
            let dec = zstd::stream::Decoder::new(&plain[1..])
                .map_err(|e| Error::corrupt(format!("{what}: cannot start zstd: {e}")))?;
            dec.take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::corrupt(format!("{what} does not decompress: {e}")))?;
            if out.len() as u64 > limit {
                return Err(Error::corrupt(format!(
                    "{what} decompresses to more than {limit} bytes; not read"
                )));
            }
            Ok(out)
        }
        Some(v) => Err(Error::corrupt(format!("{what} has an unknown encoding version {v}"))),
        None => Err(Error::corrupt(format!("{what} is empty"))),
    }
}

#[derive(Deserialize)]
struct IndexJson {
    packs: Option<Vec<IndexPackJson>>,
}

#[derive(Deserialize)]
struct IndexPackJson {
    id: String,
    blobs: Option<Vec<IndexBlobJson>>,
}

#[derive(Deserialize)]
struct IndexBlobJson {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    offset: u64,
    length: u64,
    #[serde(default)]
    uncompressed_length: Option<u64>,
}

/// Where a blob is: its pack, offset and stored length, and its length decompressed
/// (`None` when it is stored uncompressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: Id,
    pub tree: bool,
    pub offset: u64,
    pub length: u32,
    pub uncompressed: Option<u32>,
}

/// An index file: each pack with the blobs it holds.
pub fn parse_index(name: &str, bytes: &[u8]) -> Result<Vec<(Id, Vec<BlobEntry>)>> {
    let what = format!("restic index file {name}");
    let idx: IndexJson = json(&what, bytes)?;
    let bad = |m: String| Error::corrupt(format!("{what}: {m}"));
    let mut out = Vec::new();
    for p in idx.packs.unwrap_or_default() {
        let pack = hex_id(&p.id).ok_or_else(|| bad(format!("a pack id '{}' that is not an id", p.id)))?;
        let mut blobs = Vec::new();
        for b in p.blobs.unwrap_or_default() {
            let id = hex_id(&b.id).ok_or_else(|| bad(format!("a blob id '{}' that is not an id", b.id)))?;
            let tree = match b.kind.as_str() {
                "data" => false,
                "tree" => true,
                other => return Err(bad(format!("blob {} has the unknown type '{other}'", b.id))),
            };
            let length = bounded(b.length).ok_or_else(|| bad(format!("blob {} is too large", b.id)))?;
            let uncompressed = match b.uncompressed_length {
                Some(u) => Some(bounded(u).ok_or_else(|| bad(format!("blob {} is too large", b.id)))?),
                None => None,
            };
            if length < 32 {
                return Err(bad(format!("blob {} is shorter than its encryption overhead", b.id)));
            }
            blobs.push(BlobEntry { id, tree, offset: b.offset, length, uncompressed });
        }
        out.push((pack, blobs));
    }
    Ok(out)
}

fn bounded(n: u64) -> Option<u32> {
    u32::try_from(n).ok().filter(|&n| n <= MAX_BLOB)
}

#[derive(Deserialize)]
struct SnapshotJson {
    time: String,
    #[serde(default)]
    parent: Option<String>,
    tree: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    original: Option<String>,
}

/// A restic snapshot, as cairn keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub time: crate::format::Timespec,
    pub parent: Option<Id>,
    pub tree: Id,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub tags: Vec<String>,
    pub original: Option<Id>,
}

pub fn parse_snapshot(name: &str, bytes: &[u8]) -> Result<Snapshot> {
    let what = format!("restic snapshot {name}");
    let s: SnapshotJson = json(&what, bytes)?;
    let bad = |m: String| Error::corrupt(format!("{what}: {m}"));
    let id = |s: &str| hex_id(s).ok_or_else(|| bad(format!("'{s}' is not an id")));
    Ok(Snapshot {
        time: parse_time(&s.time).ok_or_else(|| bad(format!("the time '{}' cannot be read", s.time)))?,
        parent: s.parent.as_deref().map(id).transpose()?,
        tree: id(&s.tree)?,
        paths: s.paths.unwrap_or_default(),
        hostname: s.hostname,
        username: s.username,
        tags: s.tags.unwrap_or_default(),
        original: s.original.as_deref().map(id).transpose()?,
    })
}

/// An RFC 3339 time with a zone and up to nanoseconds, as Go writes it.
pub fn parse_time(s: &str) -> Option<crate::format::Timespec> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(crate::format::Timespec { secs: ts.as_second(), nanos: ts.subsec_nanosecond() as u32 })
}

#[derive(Deserialize)]
struct TreeJson {
    nodes: Option<Vec<NodeJson>>,
}

#[derive(Deserialize)]
struct XattrJson {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct NodeJson {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    mode: u32,
    #[serde(default)]
    mtime: Option<String>,
    #[serde(default)]
    atime: Option<String>,
    #[serde(default)]
    ctime: Option<String>,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    inode: u64,
    #[serde(default)]
    device_id: u64,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    links: u64,
    #[serde(default)]
    linktarget: Option<String>,
    #[serde(default)]
    linktarget_raw: Option<String>,
    #[serde(default)]
    extended_attributes: Option<Vec<XattrJson>>,
    #[serde(default)]
    device: u64,
    #[serde(default)]
    content: Option<Vec<String>>,
    #[serde(default)]
    subtree: Option<String>,
}

/// What a restic node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File { content: Vec<Id> },
    Dir { subtree: Id },
    Symlink { target: Vec<u8> },
    BlockDevice { rdev: u64 },
    CharDevice { rdev: u64 },
    Fifo,
    Socket,
}

/// One entry of a restic tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (from Go's file mode).
    pub mode: u32,
    pub mtime: crate::format::Timespec,
    pub atime: crate::format::Timespec,
    pub ctime: crate::format::Timespec,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub inode: u64,
    pub device_id: u64,
    pub size: u64,
    pub links: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Go's os.FileMode bits for setuid, setgid and sticky.
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// The most entries one file's content list may name (8 TiB of 512 KiB blobs).
const MAX_CONTENT: usize = 1 << 24;

pub fn parse_tree(name: &str, bytes: &[u8]) -> Result<Vec<Node>> {
    let what = format!("restic tree {name}");
    let t: TreeJson = json(&what, bytes)?;
    let bad = |m: String| Error::corrupt(format!("{what}: {m}"));
    let mut out = Vec::new();
    for n in t.nodes.unwrap_or_default() {
        let id = |s: &str| hex_id(s).ok_or_else(|| bad(format!("entry {}: '{s}' is not an id", n.name)));
        let kind = match n.kind.as_str() {
            "file" => {
                let list = n.content.as_deref().unwrap_or_default();
                if list.len() > MAX_CONTENT {
                    return Err(bad(format!("entry {} names too many blobs", n.name)));
                }
                Kind::File { content: list.iter().map(|s| id(s)).collect::<Result<_>>()? }
            }
            "dir" => {
                let sub =
                    n.subtree.as_deref().ok_or_else(|| bad(format!("folder {} has no subtree", n.name)))?;
                Kind::Dir { subtree: id(sub)? }
            }
            "symlink" => Kind::Symlink {
                target: match &n.linktarget_raw {
                    Some(raw) => b64(&format!("{what}: the target of {}", n.name), raw)?,
                    None => n.linktarget.clone().unwrap_or_default().into_bytes(),
                },
            },
            "dev" => Kind::BlockDevice { rdev: n.device },
            "chardev" => Kind::CharDevice { rdev: n.device },
            "fifo" => Kind::Fifo,
            "socket" => Kind::Socket,
            other => return Err(bad(format!("entry {} has the unknown type '{other}'", n.name))),
        };
        let time = |t: &Option<String>| match t {
            Some(t) => {
                parse_time(t).ok_or_else(|| bad(format!("entry {}: the time '{t}' cannot be read", n.name)))
            }
            None => Ok(crate::format::Timespec { secs: 0, nanos: 0 }),
        };
        let mut mode = n.mode & 0o777;
        for (go, unix) in [(GO_SETUID, 0o4000), (GO_SETGID, 0o2000), (GO_STICKY, 0o1000)] {
            if n.mode & go != 0 {
                mode |= unix;
            }
        }
        let mut xattrs = Vec::new();
        for x in n.extended_attributes.as_deref().unwrap_or_default() {
            let value = match &x.value {
                Some(v) => b64(&format!("{what}: xattr {} of {}", x.name, n.name), v)?,
                None => Vec::new(),
            };
            xattrs.push((x.name.clone().into_bytes(), value));
        }
        xattrs.sort();
        out.push(Node {
            kind,
            mode,
            mtime: time(&n.mtime)?,
            atime: time(&n.atime)?,
            ctime: time(&n.ctime)?,
            uid: n.uid,
            gid: n.gid,
            user: n.user.filter(|u| !u.is_empty()),
            group: n.group.filter(|g| !g.is_empty()),
            inode: n.inode,
            device_id: n.device_id,
            size: n.size,
            links: n.links,
            xattrs,
            name: go_unquote(&n.name)
                .ok_or_else(|| bad(format!("the name '{}' is not quoted as restic quotes names", n.name)))?,
        });
    }
    Ok(out)
}

/// A name as restic stores it: Go's `strconv.Quote` without the quotes, so that bytes
/// that are not UTF-8 survive JSON as `\xNN` (and `\\`, `\"`, `\n`, `\u00e9`, ... stand
/// for themselves).
pub fn go_unquote(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + chars.next()?.to_digit(16)?;
        }
        Some(v)
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let simple = |b: u8| Some(b);
        let byte = match chars.next()? {
            'a' => simple(7),
            'b' => simple(8),
            'f' => simple(12),
            'n' => simple(b'\n'),
            'r' => simple(b'\r'),
            't' => simple(b'\t'),
            'v' => simple(11),
            '\\' => simple(b'\\'),
            '"' => simple(b'"'),
            '\'' => simple(b'\''),
            'x' => Some(hex(&mut chars, 2)? as u8),
            d @ '0'..='7' => {
                let mut v = d.to_digit(8)?;
                for _ in 0..2 {
                    v = v * 8 + chars.next()?.to_digit(8)?;
                }
                Some(u8::try_from(v).ok()?)
            }
            u @ ('u' | 'U') => {
                let c = char::from_u32(hex(&mut chars, if u == 'u' { 4 } else { 8 })?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                None
            }
            _ => return None,
        };
        out.extend(byte);
    }
    Some(out)
}

/// One entry of a pack header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackHeaderEntry {
    pub tree: bool,
    pub length: u32,
    pub uncompressed: Option<u32>,
    pub id: Id,
}

/// A decrypted pack header: type, lengths and id of each blob, in pack order.
pub fn parse_pack_header(name: &str, bytes: &[u8]) -> Result<Vec<PackHeaderEntry>> {
    let bad = |m: &str| Error::corrupt(format!("the header of restic pack {name} {m}"));
    let mut out = Vec::new();
    let mut at = bytes;
    while let Some((&kind, rest)) = at.split_first() {
        let compressed = kind & 0b10 != 0;
        if kind > 0b11 {
            return Err(bad(&format!("names an unknown blob type {kind}")));
        }
        let need = if compressed { 40 } else { 36 };
        if rest.len() < need {
            return Err(bad("ends inside an entry"));
        }
        let u32_at = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("four bytes"));
        let length = u32_at(0);
        let uncompressed = compressed.then(|| u32_at(4));
        let id_at = if compressed { 8 } else { 4 };
        let id: Id = rest[id_at..id_at + 32].try_into().expect("32 bytes");
        if length > MAX_BLOB || uncompressed.is_some_and(|u| u > MAX_BLOB) || length < 32 {
            return Err(bad(&format!("gives blob {} an impossible length", id_hex(&id))));
        }
        out.push(PackHeaderEntry { tree: kind & 1 != 0, length, uncompressed, id });
        at = &rest[need..];
    }
    Ok(out)
}

/// Run every parser on `data`, for the fuzz target: none may panic or allocate beyond its
/// bounds, whatever the bytes.
pub fn parse_all_for_fuzzing(data: &[u8]) -> usize {
    let mut n = 0;
    n += parse_pack_header("fuzz", data).map_or(0, |v| v.len());
    n += parse_index("fuzz", data).map_or(0, |v| v.len());
    n += parse_tree("fuzz", data).map_or(0, |v| v.len());
    n += parse_snapshot("fuzz", data).map_or(0, |s| s.paths.len());
    n += KeyFile::parse("fuzz", data).map_or(0, |k| k.params("fuzz").map_or(0, |p| p.0 as usize));
    n += Config::parse(data).map_or(0, |c| c.version as usize);
    n += decode_unpacked("fuzz", data.to_vec(), 1 << 20).map_or(0, |v| v.len());
    n += go_unquote(&String::from_utf8_lossy(data)).map_or(0, |v| v.len());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_go_mode_bits_times_and_raw_targets() {
        let json = br#"{"nodes":[
            {"name":"s","type":"file","mode":8389101,"mtime":"2024-01-02T03:04:05.123456789+01:00",
             "uid":5,"gid":6,"user":"u","inode":9,"device_id":3,"size":4,"links":2,
             "content":["0000000000000000000000000000000000000000000000000000000000000001"],
             "extended_attributes":[{"name":"user.b","value":"eA=="},{"name":"user.a","value":null}]},
            {"name":"l","type":"symlink","mode":134218239,"linktarget":"x","linktarget_raw":"/w=="},
            {"name":"c","type":"chardev","device":259},
            {"name":"d","type":"dir","mode":2147484141,"subtree":"0000000000000000000000000000000000000000000000000000000000000002"}
        ]}"#;
        let nodes = parse_tree("t", json).unwrap();
        assert_eq!(nodes[0].mode, 0o4755);
        assert_eq!(nodes[0].mtime.secs, 1704161045);
        assert_eq!(nodes[0].mtime.nanos, 123456789);
        assert_eq!(nodes[0].xattrs, vec![(b"user.a".to_vec(), vec![]), (b"user.b".to_vec(), b"x".to_vec())]);
        assert_eq!(nodes[1].kind, Kind::Symlink { target: vec![0xff] });
        assert_eq!(nodes[2].kind, Kind::CharDevice { rdev: 259 });
        assert_eq!(nodes[3].mode, 0o755);
        assert!(parse_tree("t", br#"{"nodes":[{"name":"x","type":"dir"}]}"#).is_err());
        assert!(parse_tree("t", br#"{"nodes":[{"name":"x","type":"file","content":["zz"]}]}"#).is_err());
    }

    #[test]
    fn names_are_unquoted_as_go_quotes_them() {
        assert_eq!(go_unquote(r"caf\xff\xfe.xml").unwrap(), b"caf\xff\xfe.xml");
        assert_eq!(go_unquote(r#"a\\b\"c\nd\u00e9\U0001F600\101"#).unwrap(), "a\\b\"c\ndé😀A".as_bytes());
        assert_eq!(go_unquote("plain é").unwrap(), "plain é".as_bytes());
        assert!(go_unquote(r"bad\q").is_none());
        assert!(go_unquote(r"cut\x4").is_none());
        assert!(go_unquote(r"\777").is_none());
    }

    #[test]
    fn pack_headers_are_bounded() {
        let mut h = vec![0u8];
        h.extend(100u32.to_le_bytes());
        h.extend([7u8; 32]);
        h.push(3);
        h.extend(50u32.to_le_bytes());
        h.extend(90u32.to_le_bytes());
        h.extend([8u8; 32]);
        let e = parse_pack_header("p", &h).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[1].tree, e[1].length, e[1].uncompressed), (true, 50, Some(90)));
        assert!(parse_pack_header("p", &h[..h.len() - 1]).is_err());
        let mut huge = vec![0u8];
        huge.extend(u32::MAX.to_le_bytes());
        huge.extend([0u8; 32]);
        assert!(parse_pack_header("p", &huge).is_err());
        assert!(parse_pack_header("p", &[9]).is_err());
    }

    #[test]
    fn snapshots_and_indexes_parse() {
        let s = parse_snapshot(
            "s",
            br#"{"time":"2024-05-06T07:08:09.5Z","tree":"0101010101010101010101010101010101010101010101010101010101010101",
                "paths":["/a"],"hostname":"h","username":"u","tags":null}"#,
        )
        .unwrap();
        assert_eq!((s.time.nanos, s.tags.len(), s.parent), (500_000_000, 0, None));
        let i = parse_index(
            "i",
            br#"{"packs":[{"id":"0101010101010101010101010101010101010101010101010101010101010101","blobs":[
                {"id":"0202020202020202020202020202020202020202020202020202020202020202","type":"tree","offset":0,"length":40,"uncompressed_length":100}]}]}"#,
        )
        .unwrap();
        assert_eq!(i[0].1[0].uncompressed, Some(100));
        assert!(parse_index("i", br#"{"packs":[{"id":"01","blobs":[]}]}"#).is_err());
        assert!(decode_unpacked("x", vec![7, 1], 10).is_err());
        let big = zstd::bulk::compress(&[b'{'; 4096], 3).unwrap();
        let mut v2 = vec![2];
        v2.extend(big);
        assert!(decode_unpacked("x", v2.clone(), 100).is_err());
        assert_eq!(decode_unpacked("x", v2, 4096).unwrap().len(), 4096);
    }
}
