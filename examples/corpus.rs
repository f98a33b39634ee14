//! Deterministic benchmark corpus shaped like an API-gateway installation.
//!
//! ```text
//! cargo run --release --example corpus -- generate DIR [--scale 1.0]
//! cargo run --release --example corpus -- mutate DIR ROUND
//! ```
//!
//! `generate` writes, at scale 1.0, about 1 GB in about 25,000 files below DIR:
//!
//! - `apigateway/conf/`: installation-wide settings (XML, JSON, YAML, .properties);
//! - `apigateway/system/conf/nodemanager.xml` and a few other node-manager files;
//! - `apigateway/groups/group-N/conf/<fed>/PrimaryStore-*.xml`: one large deployed
//!   configuration per group;
//! - `apigateway/groups/group-N/instance-M/conf/`: about a thousand small files per
//!   instance. A file exists under the same name in every instance; most are identical
//!   within a group, some differ per instance only in host names, ports and instance names,
//!   a few are identical everywhere;
//! - `apigateway/groups/group-N/instance-M/trace/` and `apigateway/trace/`: text logs;
//! - `apigateway/ext/lib/*.jar`: random (incompressible) files of 0.1 to 5 MB;
//! - `dbdump/gwdb.sql`: a database dump of about 200 MB of `INSERT` rows (compressible).
//!
//! `mutate DIR ROUND` changes the tree as a day of operation would: it edits a value in
//! about 1% of the small files (mostly in place, same size), inserts lines into a few,
//! renames, adds and deletes a few, changes one group's PrimaryStore, appends to the
//! current trace logs (and rotates one every third round), and writes a new dump in which
//! rows in the middle were rewritten and new audit rows were appended.
//!
//! Both commands are deterministic: the same scale and the same sequence of rounds give
//! the same bytes under the same names. Nothing but the standard library is used; the
//! random numbers come from a SplitMix64 generator.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const GROUPS: u32 = 4;
const INSTANCES: u32 = 6;
const MIB: f64 = 1024.0 * 1024.0;

const SEED_GLOBAL_CONF: u64 = 0x0c0f_91ab;
const SEED_INSTANCE_CONF: u64 = 0x1a57_a9ce;
const SEED_SYSTEM: u64 = 0x5157_e300;
const SEED_GROUP: u64 = 0x6e0a_b000;
const SEED_JARS: u64 = 0x1a2b_3c4d;
const SEED_SQL: u64 = 0x5e1d_a7a0;
const SEED_TRACE: u64 = 0x7ace_0000;
const SEED_MUTATE: u64 = 0x00c4_a27e;

// ---------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough to make test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Derives an independent seed from a base seed and a number.
fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xd6e8_feb8_6659_fd93)).next()
}

// ---------------------------------------------------------------------------------------
// Sizes at a given scale
// ---------------------------------------------------------------------------------------

struct Params {
    scale: f64,
    global_conf_files: u64,
    instance_conf_files: u64,
    store_bytes: u64,
    jars: u64,
    sql_bytes: u64,
    trace_rotated_bytes: u64,
    trace_current_bytes: u64,
    nodemanager_trace_bytes: u64,
}

impl Params {
    fn new(scale: f64) -> Params {
        let n = |full: f64, min: u64| ((full * scale).round() as u64).max(min);
        Params {
            scale,
            global_conf_files: n(420.0, 4),
            instance_conf_files: n(1000.0, 8),
            store_bytes: n(6.0 * MIB, 64 * 1024),
            jars: n(210.0, 2),
            sql_bytes: n(200.0 * MIB, 256 * 1024),
            trace_rotated_bytes: n(1.0 * MIB, 16 * 1024),
            trace_current_bytes: n(0.5 * MIB, 8 * 1024),
            nodemanager_trace_bytes: n(2.0 * MIB, 16 * 1024),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Text material
// ---------------------------------------------------------------------------------------

const WORD_LIST: &str = "\
    account admin alert api apikey app archive audit auth backend balance basic batch bearer \
    billing cache callback catalog cert channel check circuit claim client cluster config \
    connector consumer content cors credential customer data default delivery deploy detail \
    device domain endpoint entity error event export external failover feed filter flow gateway \
    grant group handler header health host identity import inbound instance internal invoice \
    issuer jwt key keystore kps latency ldap limit listener load local log mapping message \
    metric monitor node oauth order outbound partner password path payload payment policy pool \
    port product profile proxy quota rate realm redirect region remote request response retry \
    role route routing saml schema scope secret secure server service session shipment signature \
    soap ssl stage status store stream subscriber support sync system target tenant threat \
    throttle timeout token trace traffic transform trust upstream user validate vault version \
    virtual webhook whitelist worker xml zone";
const ELEMENTS: &[&str] = &[
    "Circuit",
    "Filter",
    "Policy",
    "Listener",
    "Interface",
    "Connection",
    "Certificate",
    "Cache",
    "Alert",
    "Route",
    "Property",
    "KPSStore",
    "Selector",
    "Transform",
    "Validator",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH"];
const LEVELS: &[&str] = &["INFO ", "INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN ", "ERROR"];
const MONTHS: &[&str] = &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SUBDIRS: &[&str] = &[
    "",
    "policies",
    "policies/oauth",
    "policies/routing",
    "apis",
    "apis/v1",
    "apis/v2",
    "kps",
    "env",
    "certs/trusted",
    "listeners",
    "filters",
    "schemas",
    "alerts",
];

fn word(r: &mut Rng) -> &'static str {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| WORD_LIST.split_ascii_whitespace().collect());
    words[r.below(words.len() as u64) as usize]
}

fn push_hex(out: &mut Vec<u8>, r: &mut Rng, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut v = r.next();
    for i in 0..digits {
        if i % 16 == 15 {
            v = r.next();
        }
        out.push(HEX[(v & 15) as usize]);
        v >>= 4;
    }
}

fn push_words(out: &mut Vec<u8>, r: &mut Rng, n: u64) {
    for i in 0..n {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word(r).as_bytes());
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// 2026-01-05 00:00:00 UTC, the start of the corpus' imaginary history.
const EPOCH: u64 = 1_767_571_200;

struct Clock {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
}

fn clock(secs: u64) -> Clock {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    Clock { y, mo, d, h: t / 3600, mi: t / 60 % 60, s: t % 60 }
}

fn sql_time(secs: u64) -> String {
    let c = clock(secs);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.y, c.mo, c.d, c.h, c.mi, c.s)
}

// ---------------------------------------------------------------------------------------
// Small configuration files
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Xml,
    Json,
    Yaml,
    Props,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Xml => "xml",
            Kind::Json => "json",
            Kind::Yaml => "yaml",
            Kind::Props => "properties",
        }
    }

    fn of_name(name: &str) -> Kind {
        match name.rsplit('.').next() {
            Some("json") => Kind::Json,
            Some("yaml") | Some("yml") => Kind::Yaml,
            Some("properties") | Some("props") => Kind::Props,
            _ => Kind::Xml,
        }
    }
}

/// The values that make one instance's copy of a file differ from another's.
struct Site {
    host: String,
    name: String,
    group: String,
    port: u32,
}

impl Site {
    fn global() -> Site {
        Site { host: "gateway.corp.example".into(), name: "all".into(), group: "all".into(), port: 8090 }
    }

    fn group(g: u32) -> Site {
        Site {
            host: format!("gw-group{g}.corp.example"),
            name: "all".into(),
            group: format!("group-{g}"),
            port: 8080 + g,
        }
    }

    fn instance(g: u32, i: u32) -> Site {
        Site {
            host: format!("gw{g}{i:02}.dmz.corp.example"),
            name: format!("instance-{i}"),
            group: format!("group-{g}"),
            port: 8000 + 100 * g + i,
        }
    }
}

/// Appends a value. The random draws do not depend on `site`, so every instance's copy of
/// a file has the same shape and differs only where a site value was chosen.
fn push_value(out: &mut Vec<u8>, r: &mut Rng, site: &Site) {
    let v = r.below(100);
    let sub = r.below(4);
    let n = r.next();
    match v {
        0..=7 => match sub {
            0 => out.extend_from_slice(site.host.as_bytes()),
            1 => out.extend_from_slice(site.name.as_bytes()),
            2 => out.extend_from_slice(site.group.as_bytes()),
            _ => out.extend_from_slice(site.port.to_string().as_bytes()),
        },
        8..=39 => {
            out.extend_from_slice((n % [10, 1000, 30_000, 1_000_000][sub as usize]).to_string().as_bytes())
        }
        40..=69 => {
            out.extend_from_slice(word(r).as_bytes());
            if sub < 2 {
                out.push(b'-');
                out.extend_from_slice(word(r).as_bytes());
            }
        }
        70..=84 => push_hex(out, r, 8 + 8 * sub as usize),
        _ => out.extend_from_slice(if n & 1 == 0 { b"true" } else { b"false" }),
    }
}

fn push_line(kind: Kind, out: &mut Vec<u8>, r: &mut Rng, site: &Site) {
    match kind {
        Kind::Xml => {
            let fields = r.range(2, 10);
            out.extend_from_slice(b"  <Entity type=\"");
            out.extend_from_slice(r.pick(ELEMENTS).as_bytes());
            out.extend_from_slice(b"\" id=\"");
            push_hex(out, r, 12);
            out.extend_from_slice(b"\">\n");
            for _ in 0..fields {
                out.extend_from_slice(b"    <fval name=\"");
                out.extend_from_slice(word(r).as_bytes());
                out.extend_from_slice(b"\"><value>");
                push_value(out, r, site);
                out.extend_from_slice(b"</value></fval>\n");
            }
            out.extend_from_slice(b"  </Entity>\n");
        }
        Kind::Json => {
            out.extend_from_slice(b"    {\"name\": \"");
            out.extend_from_slice(word(r).as_bytes());
            out.push(b'-');
            out.extend_from_slice(word(r).as_bytes());
            for _ in 0..r.range(1, 5) {
                out.extend_from_slice(b"\", \"");
                out.extend_from_slice(word(r).as_bytes());
                out.extend_from_slice(b"\": \"");
                push_value(out, r, site);
            }
            out.extend_from_slice(b"\"},\n");
        }
        Kind::Yaml => {
            out.extend_from_slice(word(r).as_bytes());
            out.push(b'_');
            out.extend_from_slice(word(r).as_bytes());
            out.extend_from_slice(b":\n");
            for _ in 0..r.range(1, 6) {
                out.extend_from_slice(b"  ");
                out.extend_from_slice(word(r).as_bytes());
                out.extend_from_slice(b": ");
                push_value(out, r, site);
                out.push(b'\n');
            }
        }
        Kind::Props => {
            if r.chance(0.1) {
                out.extend_from_slice(b"# ");
                let n = r.range(3, 9);
                push_words(out, r, n);
                out.push(b'\n');
            }
            for i in 0..3 {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(word(r).as_bytes());
            }
            out.push(b'=');
            push_value(out, r, site);
            out.push(b'\n');
        }
    }
}

fn render(kind: Kind, seed: u64, size: usize, site: &Site) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 512);
    match kind {
        Kind::Xml => {
            out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entityStoreData>\n")
        }
        Kind::Json => out.extend_from_slice(b"{\n  \"items\": [\n"),
        Kind::Yaml => out.extend_from_slice(b"---\n"),
        Kind::Props => out.extend_from_slice(b"# generated by the configuration deployment\n"),
    }
    while out.len() < size {
        push_line(kind, &mut out, &mut r, site);
    }
    match kind {
        Kind::Xml => out.extend_from_slice(b"</entityStoreData>\n"),
        Kind::Json => out.extend_from_slice(b"    {}\n  ]\n}\n"),
        Kind::Yaml | Kind::Props => {}
    }
    out
}

/// Which copies of a file are identical.
#[derive(Clone, Copy)]
enum Sharing {
    Everywhere,
    PerGroup,
    PerInstance,
}

struct ConfSpec {
    path: String,
    kind: Kind,
    size: usize,
    seed: u64,
    sharing: Sharing,
}

fn conf_spec(base: u64, j: u64) -> ConfSpec {
    let mut r = Rng::new(mix(base, j));
    let kind = match r.below(100) {
        0..=44 => Kind::Xml,
        45..=64 => Kind::Json,
        65..=79 => Kind::Yaml,
        _ => Kind::Props,
    };
    let sub = *r.pick(SUBDIRS);
    let name = format!("{}-{}-{j}.{}", word(&mut r), word(&mut r), kind.ext());
    let path = if sub.is_empty() { name } else { format!("{sub}/{name}") };
    let size = if r.chance(0.015) {
        r.range(40_000, 300_000) as usize
    } else {
        (200.0 * (5.0 * r.unit()).exp()) as usize
    };
    let sharing = match r.below(100) {
        0..=14 => Sharing::Everywhere,
        15..=74 => Sharing::PerGroup,
        _ => Sharing::PerInstance,
    };
    ConfSpec { path, kind, size, seed: r.next(), sharing }
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, data)
}

// ---------------------------------------------------------------------------------------
// Trace logs, jars, the SQL dump
// ---------------------------------------------------------------------------------------

/// Appends trace lines starting at `secs` until `out` has grown by `bytes`; returns the
/// time of the last line.
fn trace_lines(out: &mut Vec<u8>, r: &mut Rng, mut secs: u64, bytes: usize) -> u64 {
    let end = out.len() + bytes;
    while out.len() < end {
        secs += r.below(3);
        let c = clock(secs);
        let ms = r.below(1000);
        out.extend_from_slice(r.pick(LEVELS).as_bytes());
        out.extend_from_slice(
            format!(
                " {:02}/{}/{}:{:02}:{:02}:{:02}.{ms:03} [",
                c.d,
                MONTHS[c.mo as usize - 1],
                c.y,
                c.h,
                c.mi,
                c.s
            )
            .as_bytes(),
        );
        push_hex(out, r, 4);
        out.push(b':');
        push_hex(out, r, 24);
        out.extend_from_slice(b"] ");
        match r.below(4) {
            0 => {
                out.extend_from_slice(b"run circuit \"");
                push_words(out, r, 2);
                out.extend_from_slice(b"\"...");
            }
            1 => {
                out.extend_from_slice(METHODS[r.below(METHODS.len() as u64) as usize].as_bytes());
                out.extend_from_slice(b" /api/v1/");
                out.extend_from_slice(word(r).as_bytes());
                out.push(b'/');
                out.extend_from_slice(r.below(100_000).to_string().as_bytes());
                let status = [200, 200, 200, 200, 201, 204, 401, 404, 500, 503][r.below(10) as usize];
                out.extend_from_slice(format!(" -> {status} in {} ms", r.below(900)).as_bytes());
            }
            _ => {
                let n = r.range(4, 14);
                push_words(out, r, n);
            }
        }
        out.push(b'\n');
    }
    secs
}

const SQL_TABLES: &[(&str, &str)] = &[
    ("api_key", "`id` bigint NOT NULL, `key_id` char(32), `application` varchar(128), `created` datetime, `state` int, `description` text"),
    ("oauth_token", "`id` bigint NOT NULL, `token` char(40), `client` varchar(128), `scope` varchar(255), `expires` bigint, `subject` varchar(255)"),
    ("kps_entry", "`id` bigint NOT NULL, `store` varchar(64), `entry_key` varchar(128), `entry_value` text"),
    ("audit_event", "`id` bigint NOT NULL, `at` datetime, `method` char(8), `path` varchar(255), `status` int, `latency_ms` int, `principal` varchar(128), `message` text"),
];
/// Share of the dump's rows per table, in percent.
const SQL_SHARE: &[u64] = &[8, 17, 20, 55];

fn sql_row(out: &mut Vec<u8>, r: &mut Rng, table: usize, id: u64, secs: u64) {
    out.extend_from_slice(b"INSERT INTO `");
    out.extend_from_slice(SQL_TABLES[table].0.as_bytes());
    out.extend_from_slice(b"` VALUES (");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b",'");
    match table {
        0 => {
            push_hex(out, r, 32);
            out.extend_from_slice(b"','");
            push_words(out, r, 2);
            out.extend_from_slice(b"','");
            out.extend_from_slice(sql_time(secs - r.below(86_400 * 400)).as_bytes());
            out.extend_from_slice(format!("',{},'", r.below(3)).as_bytes());
            let n = r.range(4, 20);
            push_words(out, r, n);
        }
        1 => {
            push_hex(out, r, 40);
            out.extend_from_slice(b"','");
            out.extend_from_slice(word(r).as_bytes());
            out.extend_from_slice(b"-client','");
            let n = r.range(1, 5);
            push_words(out, r, n);
            out.extend_from_slice(format!("',{},'", secs + r.below(86_400 * 30)).as_bytes());
            out.extend_from_slice(word(r).as_bytes());
            out.extend_from_slice(format!("{}@corp.example", r.below(5000)).as_bytes());
        }
        2 => {
            out.extend_from_slice(word(r).as_bytes());
            out.extend_from_slice(b"','");
            push_hex(out, r, 16);
            out.extend_from_slice(b"','{\"");
            for k in 0..r.range(2, 8) {
                if k > 0 {
                    out.extend_from_slice(b",\"");
                }
                out.extend_from_slice(word(r).as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(word(r).as_bytes());
                out.extend_from_slice(r.below(1000).to_string().as_bytes());
                out.push(b'"');
            }
            out.push(b'}');
        }
        _ => {
            out.extend_from_slice(sql_time(secs).as_bytes());
            out.extend_from_slice(b"','");
            out.extend_from_slice(r.pick(METHODS).as_bytes());
            out.extend_from_slice(b"','/api/v1/");
            out.extend_from_slice(word(r).as_bytes());
            out.push(b'/');
            out.extend_from_slice(word(r).as_bytes());
            out.push(b'/');
            out.extend_from_slice(r.below(1_000_000).to_string().as_bytes());
            let status = [200, 200, 200, 200, 201, 204, 400, 401, 404, 500][r.below(10) as usize];
            out.extend_from_slice(format!("',{status},{},'", r.below(2000)).as_bytes());
            out.extend_from_slice(word(r).as_bytes());
            out.extend_from_slice(r.below(5000).to_string().as_bytes());
            out.extend_from_slice(b"','");
            let n = r.range(3, 16);
            push_words(out, r, n);
        }
    }
    out.extend_from_slice(b"');\n");
}

fn sql_trailer(round: u64) -> String {
    format!("-- Dump completed on {}\n", sql_time(EPOCH + round * 86_400 + 3 * 3600))
}

fn write_sql(path: &Path, p: &Params) -> io::Result<()> {
    fs::create_dir_all(path.parent().unwrap())?;
    let mut w = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut r = Rng::new(SEED_SQL);
    let mut buf = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(
        b"-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: db.corp.example    Database: gwdb\n\n",
    );
    let mut secs = EPOCH - 86_400 * 365;
    for (t, (name, cols)) in SQL_TABLES.iter().enumerate() {
        buf.extend_from_slice(
            format!(
                "--\n-- Table structure for table `{name}`\n--\n\nDROP TABLE IF EXISTS `{name}`;\nCREATE TABLE `{name}` ({cols}, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\nLOCK TABLES `{name}` WRITE;\n"
            )
            .as_bytes(),
        );
        let target = p.sql_bytes * SQL_SHARE[t] / 100;
        let mut written = 0u64;
        let mut id = 1;
        while written < target {
            let before = buf.len();
            secs += r.below(40);
            sql_row(&mut buf, &mut r, t, id, secs);
            written += (buf.len() - before) as u64;
            id += 1;
            if buf.len() > (1 << 20) {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"UNLOCK TABLES;\n\n");
    }
    buf.extend_from_slice(sql_trailer(0).as_bytes());
    w.write_all(&buf)?;
    w.flush()
}

// ---------------------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------------------

fn generate(root: &Path, scale: f64) -> io::Result<()> {
    if root.exists() && fs::read_dir(root)?.next().is_some() {
        return Err(io::Error::other(format!("{} exists and is not empty", root.display())));
    }
    let p = Params::new(scale);
    let gw = root.join("apigateway");

    std::thread::scope(|s| -> io::Result<()> {
        // The two big writers run beside the many small files.
        let sql = s.spawn(|| write_sql(&root.join("dbdump/gwdb.sql"), &p));
        let jars = s.spawn(|| write_jars(&gw.join("ext/lib"), &p));
        write_conf(&gw, &p)?;
        write_traces(&gw, &p)?;
        sql.join().expect("sql writer panicked")?;
        jars.join().expect("jar writer panicked")
    })
}

fn write_conf(gw: &Path, p: &Params) -> io::Result<()> {
    let global = Site::global();
    for j in 0..p.global_conf_files {
        let spec = conf_spec(SEED_GLOBAL_CONF, j);
        write_file(&gw.join("conf").join(&spec.path), &render(spec.kind, spec.seed, spec.size, &global))?;
    }
    let sys = gw.join("system/conf");
    let nm = render(Kind::Xml, SEED_SYSTEM, 14_000, &global);
    let mut nodemanager = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NodeManager port=\"8090\" host=\"gateway.corp.example\">\n".to_vec();
    nodemanager.extend_from_slice(&nm[nm.iter().position(|&b| b == b'\n').unwrap() + 1..]);
    nodemanager.extend_from_slice(b"</NodeManager>\n");
    write_file(&sys.join("nodemanager.xml"), &nodemanager)?;
    for (k, name) in ["jvm.xml", "envSettings.props", "logging.xml", "acl.json"].iter().enumerate() {
        let kind = Kind::of_name(name);
        write_file(&sys.join(name), &render(kind, mix(SEED_SYSTEM, k as u64 + 1), 3000, &global))?;
    }
    for g in 1..=GROUPS {
        let group = Site::group(g);
        let mut r = Rng::new(mix(SEED_GROUP, u64::from(g)));
        let mut fed = Vec::new();
        push_hex(&mut fed, &mut r, 32);
        let fed = String::from_utf8(fed).unwrap();
        let dir = gw.join(format!("groups/group-{g}/conf/{fed}"));
        write_file(
            &dir.join(format!("PrimaryStore-{fed}.xml")),
            &render(Kind::Xml, r.next(), p.store_bytes as usize, &group),
        )?;
        write_file(&dir.join("configs.properties"), &render(Kind::Props, r.next(), 800, &group))?;
        write_file(&dir.join("UserStore.xml"), &render(Kind::Xml, r.next(), 20_000, &group))?;
        for i in 1..=INSTANCES {
            let inst = Site::instance(g, i);
            let conf = gw.join(format!("groups/group-{g}/instance-{i}/conf"));
            for j in 0..p.instance_conf_files {
                let spec = conf_spec(SEED_INSTANCE_CONF, j);
                let (site, seed) = match spec.sharing {
                    Sharing::Everywhere => (&global, spec.seed),
                    Sharing::PerGroup => (&group, mix(spec.seed, u64::from(g))),
                    Sharing::PerInstance => (&inst, mix(spec.seed, u64::from(g))),
                };
                write_file(&conf.join(&spec.path), &render(spec.kind, seed, spec.size, site))?;
            }
        }
    }
    Ok(())
}

fn write_traces(gw: &Path, p: &Params) -> io::Result<()> {
    let mut buf = Vec::new();
    for g in 1..=GROUPS {
        for i in 1..=INSTANCES {
            let dir = gw.join(format!("groups/group-{g}/instance-{i}/trace"));
            let mut r = Rng::new(mix(SEED_TRACE, u64::from(g * 100 + i)));
            buf.clear();
            let t = trace_lines(&mut buf, &mut r, EPOCH - 86_400, p.trace_rotated_bytes as usize);
            write_file(&dir.join(format!("instance-{i}_20260104000000.trc")), &buf)?;
            buf.clear();
            trace_lines(&mut buf, &mut r, t, p.trace_current_bytes as usize);
            write_file(&dir.join(format!("instance-{i}.trc")), &buf)?;
        }
    }
    let mut r = Rng::new(mix(SEED_TRACE, 0));
    buf.clear();
    trace_lines(&mut buf, &mut r, EPOCH - 86_400, p.nodemanager_trace_bytes as usize);
    write_file(&gw.join("trace/nodemanager.trc"), &buf)
}

fn write_jars(dir: &Path, p: &Params) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut r = Rng::new(SEED_JARS);
    let mut buf = Vec::new();
    for k in 0..p.jars {
        let name = format!(
            "{}-{}-{}.{}.{}-{k}.jar",
            word(&mut r),
            word(&mut r),
            r.below(10),
            r.below(20),
            r.below(10)
        );
        let size = r.range(100_000, 5_000_001) as usize;
        buf.resize(size, 0);
        r.fill(&mut buf);
        buf[..4].copy_from_slice(b"PK\x03\x04");
        fs::write(dir.join(name), &buf)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// mutate
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Tree {
    small: Vec<PathBuf>,
    stores: Vec<PathBuf>,
    traces: Vec<PathBuf>,
    sql: Vec<PathBuf>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ty = e.file_type()?;
        if ty.is_dir() {
            walk(&e.path(), out)?;
        } else if ty.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn classify(root: &Path) -> io::Result<Tree> {
    let mut all = Vec::new();
    walk(root, &mut all)?;
    let mut t = Tree::default();
    for path in all {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".jar") {
            continue;
        } else if name.ends_with(".sql") {
            t.sql.push(path);
        } else if name.ends_with(".trc") {
            t.traces.push(path);
        } else if name.starts_with("PrimaryStore") {
            t.stores.push(path);
        } else {
            t.small.push(path);
        }
    }
    Ok(t)
}

/// Changes one number in place (same length, so the file keeps its size). Returns false
/// when the file has no digits.
fn edit_number(path: &Path, r: &mut Rng) -> io::Result<bool> {
    let data = fs::read(path)?;
    if data.is_empty() {
        return Ok(false);
    }
    let start = r.below(data.len() as u64) as usize;
    let Some(pos) = (start..data.len()).chain(0..start).find(|&i| data[i].is_ascii_digit()) else {
        return Ok(false);
    };
    let mut a = pos;
    while a > 0 && data[a - 1].is_ascii_digit() {
        a -= 1;
    }
    let mut b = pos;
    while b < data.len() && data[b].is_ascii_digit() {
        b += 1;
    }
    let mut new: Vec<u8> = (a..b).map(|_| b'0' + r.below(10) as u8).collect();
    if new == data[a..b] {
        let last = new.len() - 1;
        new[last] = b'0' + (new[last] - b'0' + 1) % 10;
    }
    fs::OpenOptions::new().write(true).open(path)?.write_all_at(&new, a as u64)?;
    Ok(true)
}

/// Inserts new content after a random line.
fn insert_lines(path: &Path, r: &mut Rng, lines: u64) -> io::Result<()> {
    let data = fs::read(path)?;
    let kind = Kind::of_name(&path.to_string_lossy());
    let at = match data.iter().skip(1).position(|&b| b == b'\n') {
        None => data.len(),
        Some(_) => {
            let from = r.below(data.len() as u64) as usize;
            data[from..].iter().position(|&b| b == b'\n').map_or(data.len(), |k| from + k + 1)
        }
    };
    let mut ins = Vec::new();
    for _ in 0..lines {
        push_line(kind, &mut ins, r, &Site::global());
    }
    let mut out = Vec::with_capacity(data.len() + ins.len());
    out.extend_from_slice(&data[..at]);
    out.extend_from_slice(&ins);
    out.extend_from_slice(&data[at..]);
    fs::write(path, out)
}

/// Distinct random indices below n, in drawing order.
fn distinct(r: &mut Rng, n: usize, k: usize, taken: &mut BTreeSet<usize>) -> Vec<usize> {
    let mut out = Vec::new();
    while out.len() < k.min(n.saturating_sub(taken.len())) {
        let i = r.below(n as u64) as usize;
        if taken.insert(i) {
            out.push(i);
        }
    }
    out
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy();
    let new = match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}{suffix}.{ext}"),
        None => format!("{name}{suffix}"),
    };
    path.with_file_name(new)
}

fn mutate(root: &Path, round: u64) -> io::Result<Stats> {
    let tree = classify(root)?;
    if tree.small.is_empty() || tree.sql.is_empty() {
        return Err(io::Error::other(format!("{} holds no generated corpus", root.display())));
    }
    let mut r = Rng::new(mix(SEED_MUTATE, round));
    let mut st = Stats::default();
    let n = tree.small.len();
    let mut taken = BTreeSet::new();

    // About 1% of the small files get a changed value; a quarter of those grow a few lines.
    let edits = (n / 100).max(1);
    for i in distinct(&mut r, n, edits, &mut taken) {
        let path = &tree.small[i];
        if r.chance(0.75) && edit_number(path, &mut r)? {
            st.edited += 1;
        } else {
            let lines = r.range(1, 4);
            insert_lines(path, &mut r, lines)?;
            st.grown += 1;
        }
    }
    // A few renames, additions and deletions.
    let few = (n / 2500).max(1);
    let suffix = format!("-r{round}");
    for i in distinct(&mut r, n, few, &mut taken) {
        fs::rename(&tree.small[i], with_suffix(&tree.small[i], &suffix))?;
        st.renamed += 1;
    }
    for k in 0..few * 2 {
        let src = &tree.small[r.below(n as u64) as usize];
        let dst = with_suffix(src, &format!("-added-r{round}-{k}"));
        fs::copy(src, &dst)?;
        let lines = r.range(1, 6);
        insert_lines(&dst, &mut r, lines)?;
        st.added += 1;
    }
    for i in distinct(&mut r, n, few, &mut taken) {
        fs::remove_file(&tree.small[i])?;
        st.deleted += 1;
    }
    // One group deploys a changed configuration: a few values change and a policy grows.
    if !tree.stores.is_empty() {
        let store = &tree.stores[r.below(tree.stores.len() as u64) as usize];
        for _ in 0..5 {
            edit_number(store, &mut r)?;
        }
        let lines = r.range(2, 12);
        insert_lines(store, &mut r, lines)?;
        st.stores += 1;
    }
    // Logs grow; every third round the node manager's log is rotated first.
    let day_start = EPOCH + round * 86_400;
    let per_log = (Params::scale_of(&tree) * 150_000.0).max(2000.0) as usize;
    for (k, path) in tree.traces.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.contains('_') {
            continue; // rotated: never written again
        }
        if round % 3 == 0 && name == "nodemanager.trc" {
            let c = clock(day_start);
            let old = path.with_file_name(format!("nodemanager_{:04}{:02}{:02}000000.trc", c.y, c.mo, c.d));
            fs::rename(path, old)?;
            st.rotated += 1;
        }
        let mut buf = Vec::new();
        let mut lr = Rng::new(mix(mix(SEED_TRACE, round), k as u64));
        trace_lines(&mut buf, &mut lr, day_start, per_log);
        fs::OpenOptions::new().append(true).create(true).open(path)?.write_all(&buf)?;
        st.log_bytes += buf.len() as u64;
    }
    for path in &tree.sql {
        mutate_sql(path, &mut r, round, &mut st)?;
    }
    Ok(st)
}

impl Params {
    /// The scale a generated tree was made with, estimated from its number of small files.
    fn scale_of(tree: &Tree) -> f64 {
        tree.small.len() as f64 / 24_500.0
    }
}

/// Writes a new dump (as a real dump would be: a new file) in which some rows in the middle
/// were updated and new audit rows were appended.
fn mutate_sql(path: &Path, r: &mut Rng, round: u64, st: &mut Stats) -> io::Result<()> {
    let data = fs::read(path)?;
    let mut starts = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if data[at..].starts_with(b"INSERT INTO `") {
            starts.push(at);
        }
        at += data[at..].iter().position(|&b| b == b'\n').map_or(data.len() - at, |k| k + 1);
    }
    if starts.is_empty() {
        return Err(io::Error::other(format!("{} has no rows", path.display())));
    }
    let line_end = |s: usize| data[s..].iter().position(|&b| b == b'\n').map_or(data.len(), |k| s + k + 1);
    let table_of = |s: usize| {
        let rest = &data[s + 13..];
        let name = &rest[..rest.iter().position(|&b| b == b'`').unwrap_or(0)];
        SQL_TABLES.iter().position(|t| t.0.as_bytes() == name).unwrap_or(3)
    };
    let id_of = |s: usize| -> u64 {
        let from = s + data[s..].windows(8).position(|w| w == b"VALUES (").unwrap_or(0) + 8;
        data[from..].iter().take_while(|b| b.is_ascii_digit()).fold(0, |v, &b| v * 10 + u64::from(b - b'0'))
    };
    let day_start = EPOCH + round * 86_400;

    // Updated rows, in the middle half of the dump.
    let updates = ((starts.len() as f64 * 1.5e-4) as usize).max(3);
    let (lo, hi) = (starts.len() / 4, (3 * starts.len() / 4).max(starts.len() / 4 + 1));
    let mut chosen: Vec<usize> =
        (0..updates).map(|_| starts[r.range(lo as u64, hi as u64) as usize]).collect();
    chosen.sort_unstable();
    chosen.dedup();

    let mut out = Vec::with_capacity(data.len() + (1 << 20));
    let mut pos = 0;
    for &s in &chosen {
        out.extend_from_slice(&data[pos..s]);
        let secs = day_start + r.below(86_400);
        sql_row(&mut out, r, table_of(s), id_of(s), secs);
        pos = line_end(s);
        st.rows_updated += 1;
    }
    // New audit rows go after the last row of the dump (the audit table is last).
    let last = *starts.last().unwrap();
    let end_last = line_end(last);
    out.extend_from_slice(&data[pos..end_last]);
    let mut id = id_of(last);
    let target = out.len() + (data.len() as f64 * 0.004) as usize;
    let mut secs = day_start;
    while out.len() < target {
        id += 1;
        secs += r.below(20);
        sql_row(&mut out, r, 3, id, secs);
        st.rows_appended += 1;
    }
    // The rest (UNLOCK TABLES and the trailer, whose date changes).
    let rest = &data[end_last..];
    let trailer = rest.windows(20).position(|w| w == b"-- Dump completed on").unwrap_or(rest.len());
    out.extend_from_slice(&rest[..trailer]);
    out.extend_from_slice(sql_trailer(round).as_bytes());

    let tmp = path.with_extension("sql.tmp");
    fs::write(&tmp, &out)?;
    fs::rename(&tmp, path)
}

#[derive(Default)]
struct Stats {
    edited: u64,
    grown: u64,
    renamed: u64,
    added: u64,
    deleted: u64,
    stores: u64,
    rotated: u64,
    log_bytes: u64,
    rows_updated: u64,
    rows_appended: u64,
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn summary(root: &Path) -> io::Result<(u64, u64)> {
    let mut all = Vec::new();
    walk(root, &mut all)?;
    let mut bytes = 0;
    for p in &all {
        bytes += fs::metadata(p)?.len();
    }
    Ok((all.len() as u64, bytes))
}

const USAGE: &str = "usage: corpus generate DIR [--scale S]\n       corpus mutate DIR ROUND";

fn run(args: &[String]) -> Result<(), String> {
    let t0 = Instant::now();
    match args {
        [cmd, dir, rest @ ..] if cmd == "generate" => {
            let scale = match rest {
                [] => 1.0,
                [flag, s] if flag == "--scale" => {
                    s.parse::<f64>().map_err(|_| format!("bad scale '{s}'\n{USAGE}"))?
                }
                _ => return Err(USAGE.into()),
            };
            if !(scale > 0.0 && scale <= 100.0) {
                return Err("the scale must be in (0, 100]".into());
            }
            let root = Path::new(dir);
            generate(root, scale).map_err(|e| format!("generate: {e}"))?;
            let (files, bytes) = summary(root).map_err(|e| e.to_string())?;
            let p = Params::new(scale);
            println!(
                "generated {} at scale {}: {files} files, {:.1} MiB in {:.2} s",
                root.display(),
                p.scale,
                bytes as f64 / MIB,
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        [cmd, dir, round] if cmd == "mutate" => {
            let round: u64 = round.parse().map_err(|_| format!("bad round '{round}'\n{USAGE}"))?;
            let root = Path::new(dir);
            let st = mutate(root, round).map_err(|e| format!("mutate: {e}"))?;
            let (files, bytes) = summary(root).map_err(|e| e.to_string())?;
            println!(
                "round {round}: {} values edited, {} files grown, {} renamed, {} added, {} deleted, {} stores changed, {} logs rotated, {:.1} KiB logged, {} dump rows updated, {} appended; now {files} files, {:.1} MiB ({:.2} s)",
                st.edited,
                st.grown,
                st.renamed,
                st.added,
                st.deleted,
                st.stores,
                st.rotated,
                st.log_bytes as f64 / 1024.0,
                st.rows_updated,
                st.rows_appended,
                bytes as f64 / MIB,
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("corpus: {e}");
        std::process::exit(2);
    }
}
