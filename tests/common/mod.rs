//! Shared helpers for the integration tests: running the `cairn` binary, throwaway
//! repositories, a deterministic gateway-like source tree, and a tree comparator.
//!
//! Every test file includes this with `mod common;`; not every test file uses every helper.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use serde_json::Value;
pub use tempfile::TempDir;

mod fault_lab;
mod fault_report;
mod witness;
#[allow(unused_imports)]
pub use fault_lab::{check_clean, small_tree, Lab};
#[allow(unused_imports)]
pub use fault_report::FaultReport;
#[allow(unused_imports)]
pub use witness::{listed, AtRepo, WithPassword, Witness};

/// The password every test repository is created with.
pub const PASSWORD: &str = "correct horse battery staple";

/// The cheapest key derivation a new key may have (64 MiB, 3 passes: RFC 9106's second
/// recommendation); tests pay it like every user.
pub const FAST_KDF: [&str; 4] = ["--kdf-memory", "64M", "--kdf-iterations", "3"];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether missing test preconditions fail the test (`CAIRN_TEST_STRICT=1`, which CI sets)
/// instead of skipping the part that needs them.
pub fn strict() -> bool {
    std::env::var_os("CAIRN_TEST_STRICT").is_some_and(|v| v == "1")
}

/// The one gate for a test (or a part of it) that needs something the machine may lack:
/// root, FUSE, a tmpfs, holes, user xattrs. Returns `condition`; when it is false, says
/// why on stderr, and under [`strict`] fails the test instead, so that CI never passes a
/// check it did not run.
pub fn require(condition: bool, why: &str) -> bool {
    require_in(strict(), condition, why)
}

/// [`require`] with the strictness given (tested apart from the environment).
pub fn require_in(strict: bool, condition: bool, why: &str) -> bool {
    if condition {
        return true;
    }
    assert!(!strict, "precondition missing: {why} (CAIRN_TEST_STRICT=1 makes this a failure)");
    eprintln!("SKIPPED: {why} (set CAIRN_TEST_STRICT=1 to fail instead)");
    false
}

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

/// A `cairn` invocation being built. The environment is clean of every CAIRN_* variable
/// except CAIRN_PASSWORD (set to [`PASSWORD`]) unless the test changes it.
pub struct Cairn {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
}

impl Default for Cairn {
    fn default() -> Self {
        Self::new()
    }
}

impl Cairn {
    pub fn new() -> Self {
        Cairn {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: vec![
                ("CAIRN_PASSWORD".into(), Some(PASSWORD.into())),
                ("CAIRN_REPOSITORY".into(), None),
                ("CAIRN_PASSWORD_FILE".into(), None),
            ],
            stdin: None,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn repo(self, repo: &Path) -> Self {
        self.arg("-r").arg(repo)
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.env.push((k.into(), Some(v.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.push((k.into(), None));
        self
    }

    pub fn password(self, pw: &str) -> Self {
        self.env("CAIRN_PASSWORD", pw)
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Run as uid/gid 65534 with no supplementary groups (root only).
    pub fn run_as_nobody(mut self) -> Self {
        self.wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            .iter()
            .map(OsString::from)
            .collect();
        self
    }

    /// Run in a new session: no controlling terminal, so no password prompt is possible.
    pub fn without_terminal(mut self) -> Self {
        self.wrapper = ["setsid", "--wait"].iter().map(OsString::from).collect();
        self
    }

    pub fn describe(&self) -> String {
        let mut s = String::from("cairn");
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn command(&self) -> Command {
        let mut cmd = if self.wrapper.is_empty() {
            Command::new(bin())
        } else {
            let mut c = Command::new(&self.wrapper[0]);
            c.args(&self.wrapper[1..]).arg(bin());
            c
        };
        cmd.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }

    pub fn spawn(&self) -> Child {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()))
    }

    pub fn run(self) -> Out {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let feeder = self.stdin.clone().map(|bytes| {
            let mut pipe = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                // cairn may stop reading early (an error); a broken pipe is then expected.
                let _ = pipe.write_all(&bytes);
            })
        });
        let output =
            child.wait_with_output().unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.describe()));
        if let Some(f) = feeder {
            f.join().expect("stdin feeder");
        }
        Out::new(self.describe(), output.status, output.stdout, output.stderr)
    }
}

/// What a finished `cairn` run gave.
#[derive(Debug)]
pub struct Out {
    pub cmd: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// stdout as written, for binary output.
    pub stdout_bytes: Vec<u8>,
}

impl Out {
    pub fn new(cmd: String, status: std::process::ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Out {
        use std::os::unix::process::ExitStatusExt;
        Out {
            cmd,
            code: status.code(),
            signal: status.signal(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            stdout_bytes: stdout,
        }
    }

    pub fn context(&self) -> String {
        format!(
            "`{}` exited with {:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.signal, self.stdout, self.stderr
        )
    }

    /// Assert the exit code and return self for more checks.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{}", self.context());
        self
    }

    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    /// The JSON result on stdout. `backup --json` may print progress events (one JSON
    /// object a line, "type": "progress") before its summary: every line must then be
    /// JSON, and the result is the last object that is not a progress event.
    pub fn json(&self) -> Value {
        let text = self.stdout.trim();
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return v;
        }
        let events = self.json_lines();
        events
            .into_iter()
            .rev()
            .find(|v| v["type"] != "progress")
            .unwrap_or_else(|| panic!("no JSON result on stdout\n{}", self.context()))
    }

    /// Every stdout line parsed as JSON (panics on a line that is not).
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}\n{}", self.context()))
            })
            .collect()
    }

    /// stderr holds exactly one line, and it starts with "cairn: ". Returns that line.
    pub fn one_line_error(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected a one-line error on stderr\n{}", self.context());
        assert!(lines[0].starts_with("cairn: "), "error line must start with 'cairn: '\n{}", self.context());
        lines[0]
    }
}

// ---------------------------------------------------------------------------------------
// Repositories
// ---------------------------------------------------------------------------------------

/// A repository in its own temporary folder, created with the fast KDF.
pub struct Repo {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl Repo {
    pub fn new() -> Repo {
        Repo::with_options(&[])
    }

    /// `init` with extra options such as `["--pack-size", "1M"]`.
    pub fn with_options(extra: &[&str]) -> Repo {
        let dir = tempfile::Builder::new().prefix("cairn-repo-").tempdir().expect("temp dir");
        let path = dir.path().join("repo");
        let r = Repo { dir, path };
        r.cairn().arg("init").args(FAST_KDF).args(extra).run().ok();
        assert!(r.path.join("config").is_file(), "init made no config");
        r
    }

    /// A `cairn -r REPO` invocation.
    pub fn cairn(&self) -> Cairn {
        Cairn::new().repo(&self.path)
    }

    /// `backup --json PATHS... EXTRA...`, expecting success; returns the JSON summary.
    pub fn backup<P: AsRef<OsStr>>(&self, paths: &[P], extra: &[&str]) -> Value {
        self.cairn().arg("backup").arg("--json").args(paths).args(extra).run().ok().json()
    }

    /// `snapshots --json`, expecting success.
    pub fn snapshots(&self) -> Vec<Value> {
        let v = self.cairn().args(["snapshots", "--json"]).run().ok().json();
        v.as_array().unwrap_or_else(|| panic!("snapshots --json is not an array: {v}")).clone()
    }

    /// `restore --json SNAP --target T EXTRA...` (any exit code).
    pub fn restore(&self, snap: &str, target: &Path, extra: &[&str]) -> Out {
        self.cairn().args(["restore", "--json", snap, "--target"]).arg(target).args(extra).run()
    }

    /// Names of the files in data/ (all subfolders), index/ or snapshots/.
    pub fn objects(&self, kind: &str) -> Vec<String> {
        list_objects(&self.path, kind)
    }

    /// Paths of the pack files (final names only).
    pub fn pack_paths(&self) -> Vec<PathBuf> {
        pack_paths(&self.path)
    }
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}

/// File names under REPO/data/*/ (kind "data") or REPO/<kind>/, temporary ones included.
pub fn list_objects(repo: &Path, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let dirs: Vec<PathBuf> = if kind == "data" {
        match fs::read_dir(repo.join("data")) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    } else {
        vec![repo.join(kind)]
    };
    for d in dirs {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Pack files under their final names (no ".tmp-" files).
pub fn pack_paths(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(repo.join("data")) {
        for sub in rd.flatten() {
            if let Ok(rd2) = fs::read_dir(sub.path()) {
                for e in rd2.flatten() {
                    if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                        out.push(e.path());
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// Where `source` (an absolute path as backed up) lands under a restore target.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute source path"))
}

/// A fresh temporary folder.
pub fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("temp dir")
}

/// Poll `cond` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Whether process `pid` has a file open that `is_it` accepts (given its path), with
/// `moved` also that it has read from it (the handle's position is past 0): the backup's
/// read-ahead opens a file to ask the kernel for it before the walk reads it, and its
/// handle never moves.
pub fn has_file_open(pid: u32, moved: bool, is_it: impl Fn(&Path) -> bool) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        let position = || {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()));
            let info = info.ok()?;
            info.lines().find_map(|l| l.strip_prefix("pos:")).and_then(|v| v.trim().parse::<u64>().ok())
        };
        std::fs::read_link(fd.path()).is_ok_and(|t| is_it(&t))
            && (!moved || position().is_some_and(|p| p > 0))
    })
}

// ---------------------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------------------

/// SplitMix64: small, fast, deterministic; good enough for test data.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    /// `n` incompressible bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// Write `n` random bytes from `seed` to `path`.
pub fn write_random(path: &Path, seed: u64, n: usize) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, Rng::new(seed).bytes(n)).unwrap();
}

const WORDS: &[&str] = &[
    "gateway",
    "policy",
    "filter",
    "circuit",
    "listener",
    "certificate",
    "oauth",
    "token",
    "routing",
    "backend",
    "timeout",
    "keystore",
    "trace",
    "throttle",
    "header",
    "jwt",
    "validate",
    "transform",
    "endpoint",
    "cache",
    "session",
    "realm",
    "scope",
    "audit",
];

fn words(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(if rng.range(0, 6) == 0 { '-' } else { ' ' });
        }
        let w: &&str = rng.pick(WORDS);
        s.push_str(w);
    }
    s
}

fn hex(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&format!("{:016x}", rng.next_u64()));
    }
    s.truncate(n);
    s
}

/// One config file's text, about `size` bytes, in the format its extension says.
fn config_text(rng: &mut Rng, ext: &str, size: usize) -> String {
    let mut s = String::new();
    match ext {
        "xml" => s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<entityStore version=\"7.7\">\n"),
        "json" => s.push_str("{\n  \"apis\": [\n"),
        "yaml" => s.push_str("---\nkps:\n"),
        _ => s.push_str("# generated gateway settings\n"),
    }
    let mut i = 0;
    while s.len() < size {
        let id = hex(rng, 12);
        let nw = 1 + rng.range(0, 5) as usize;
        let w = words(rng, nw);
        let n = rng.range(1, 65536);
        let line = match ext {
            "xml" => format!(
                "  <entity type=\"{}\" id=\"{id}\"><field name=\"{}\">{w}</field><field name=\"port\">{n}</field></entity>\n",
                rng.pick(WORDS),
                rng.pick(WORDS)
            ),
            "json" => format!(
                "    {{\"id\": \"{id}\", \"name\": \"{w}\", \"port\": {n}, \"enabled\": {}}},\n",
                n % 2 == 0
            ),
            "yaml" => format!("  - id: {id}\n    name: {w}\n    port: {n}\n"),
            _ => format!("gw.{}.{}.{i}={w} {n}\n", rng.pick(WORDS), rng.pick(WORDS)),
        };
        s.push_str(&line);
        i += 1;
    }
    match ext {
        "xml" => s.push_str("</entityStore>\n"),
        "json" => s.push_str("    {}\n  ]\n}\n"),
        _ => {}
    }
    s
}

/// A SQL dump of about `size` bytes.
pub fn sql_dump(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(size + 256);
    s.push_str("-- MySQL dump 10.13\n-- Host: localhost    Database: gwdb\nSET NAMES utf8mb4;\n");
    let mut table = 0;
    while s.len() < size {
        table += 1;
        s.push_str(&format!(
            "\nDROP TABLE IF EXISTS `kps_{table}`;\nCREATE TABLE `kps_{table}` (\n  `id` bigint NOT NULL,\n  `name` varchar(255),\n  `payload` text,\n  PRIMARY KEY (`id`)\n);\nINSERT INTO `kps_{table}` VALUES "
        ));
        for row in 0..400 {
            if row > 0 {
                s.push(',');
            }
            let w = words(&mut rng, 3);
            let h = hex(&mut rng, 40);
            s.push_str(&format!("({},'{w}','{h}')", rng.next_u64() % 10_000_000));
        }
        s.push_str(";\n");
    }
    s.into_bytes()
}

// ---------------------------------------------------------------------------------------
// The gateway-like source tree
// ---------------------------------------------------------------------------------------

/// What [`gateway_tree`] made, for tests that poke at particular entries.
pub struct GenTree {
    /// The tree's root folder (absolute).
    pub root: PathBuf,
    /// Paths relative to `root` of a few plain config files safe to modify.
    pub configs: Vec<PathBuf>,
    /// Relative paths of the hard-linked pair.
    pub hardlink: (PathBuf, PathBuf),
    pub sparse: PathBuf,
    /// Whether the filesystem kept the sparse file sparse.
    pub sparse_supported: bool,
    pub xattr_file: PathBuf,
    /// Whether user.* xattrs could be set (else none were).
    pub xattrs_supported: bool,
    /// Relative path of the file with a non-UTF-8 name.
    pub non_utf8: PathBuf,
    pub fifo: PathBuf,
    pub symlinks: Vec<PathBuf>,
    /// Regular file paths (relative) of each instance folder, for dedup expectations.
    pub instances: Vec<PathBuf>,
    /// Number of regular files (each hard link counted), folders (root included), and
    /// other entries (symlinks, fifos).
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Sum of regular file sizes (each hard link counted).
    pub total_bytes: u64,
}

impl GenTree {
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }
}

/// Size knobs for [`gateway_tree`].
#[derive(Clone, Copy, Debug)]
pub struct TreeSize {
    pub instances: usize,
    /// Config files per instance.
    pub configs: usize,
    pub sql_bytes: usize,
    /// Sizes of the shared random jars.
    pub jars: &'static [usize],
}

impl TreeSize {
    /// About 16 MB logical (8 MiB of it one sparse file), ~4 MB unique random data.
    pub const FULL: TreeSize =
        TreeSize { instances: 5, configs: 24, sql_bytes: 3 << 20, jars: &[600 << 10, 1200 << 10, 2 << 20] };
    /// Same entry kinds, a few MB: for tests that need the shapes, not the volume.
    pub const SMALL: TreeSize =
        TreeSize { instances: 2, configs: 8, sql_bytes: 256 << 10, jars: &[520 << 10] };
}

/// Build a deterministic Axway-gateway-like tree under `root` (which must not exist).
///
/// Content: groups/group-2/instance-N/conf/... config files shared between instances with
/// small per-instance differences, random "jar" files, a SQL dump, empty files and an
/// empty folder, symlinks (relative, absolute, dangling), a hard-linked pair, a fifo, a
/// non-UTF-8 file name, setuid/setgid/sticky modes, a user xattr (if supported), a sparse
/// file, foreign owners (as root) and times with nanoseconds on every entry.
pub fn gateway_tree(root: &Path, seed: u64, size: TreeSize) -> GenTree {
    let mut rng = Rng::new(seed);
    fs::create_dir_all(root).unwrap();
    let root = fs::canonicalize(root).unwrap();
    let mut g = GenTree {
        root: root.clone(),
        configs: Vec::new(),
        hardlink: (PathBuf::new(), PathBuf::new()),
        sparse: PathBuf::from("data/sparse.img"),
        sparse_supported: false,
        xattr_file: PathBuf::new(),
        xattrs_supported: false,
        non_utf8: PathBuf::new(),
        fifo: PathBuf::from("run/gw.fifo"),
        symlinks: Vec::new(),
        instances: Vec::new(),
        files: 0,
        dirs: 1,
        others: 0,
        total_bytes: 0,
    };
    let mkdir = |g: &mut GenTree, rel: &str| {
        let mut p = g.root.clone();
        for c in Path::new(rel).components() {
            p.push(c);
            if !p.exists() {
                fs::create_dir(&p).unwrap();
                g.dirs += 1;
            }
        }
    };
    let write = |g: &mut GenTree, rel: &Path, bytes: &[u8]| {
        let p = g.root.join(rel);
        fs::write(&p, bytes).unwrap();
        g.files += 1;
        g.total_bytes += bytes.len() as u64;
    };

    // Shared config templates; a few of them differ per instance.
    let subdirs = ["conf", "conf/fed", "conf/policies", "conf/env", "conf/apis"];
    let exts = ["xml", "json", "yaml", "properties"];
    let mut templates = Vec::new();
    for i in 0..size.configs {
        let dir = subdirs[i % subdirs.len()];
        let ext = exts[(i / subdirs.len() + i) % exts.len()];
        let len = match rng.range(0, 10) {
            0 => rng.range(20_000, 40_000),
            1..=3 => rng.range(4_000, 12_000),
            _ => rng.range(150, 3_000),
        } as usize;
        let text = config_text(&mut rng, ext, len);
        templates.push((format!("{dir}/{}-{i}.{ext}", rng.pick(WORDS)), text));
    }
    // A jar every instance carries an identical copy of.
    let shared_jar = Rng::new(seed ^ 0x1a2).bytes(700 << 10);
    for k in 1..=size.instances {
        let inst = format!("groups/group-2/instance-{k}");
        g.instances.push(PathBuf::from(&inst));
        for d in subdirs {
            mkdir(&mut g, &format!("{inst}/{d}"));
        }
        mkdir(&mut g, &format!("{inst}/ext/lib"));
        for (i, (rel, text)) in templates.iter().enumerate() {
            let body = if i % 4 == 1 {
                // Same file, one line different per instance.
                let cut = text.find('\n').map(|n| n + 1).unwrap_or(0);
                format!(
                    "{}<!-- instance-{k} listens on port {} -->\n{}",
                    &text[..cut],
                    8080 + k,
                    &text[cut..]
                )
            } else {
                text.clone()
            };
            let rel = PathBuf::from(format!("{inst}/{rel}"));
            write(&mut g, &rel, body.as_bytes());
            if k == 1 && i % 5 == 2 && g.configs.len() < 4 {
                g.configs.push(rel);
            }
        }
        let props = format!(
            "instance.name=instance-{k}\ninstance.group=group-2\nmanagement.port={}\ntrace.level=INFO\n",
            8090 + k
        );
        write(&mut g, Path::new(&format!("{inst}/conf/instance.properties")), props.as_bytes());
        write(&mut g, Path::new(&format!("{inst}/ext/lib/custom-filters.jar")), &shared_jar);
        write(&mut g, Path::new(&format!("{inst}/conf/empty-{k}.xml")), b"");
    }
    // Larger random jars in a shared lib folder.
    mkdir(&mut g, "system/lib");
    for (j, &n) in size.jars.iter().enumerate() {
        let bytes = Rng::new(seed.wrapping_add(1000 + j as u64)).bytes(n);
        write(&mut g, Path::new(&format!("system/lib/vendor-{j}.jar")), &bytes);
    }
    // A database dump.
    mkdir(&mut g, "db");
    let dump = sql_dump(seed ^ 0xdb, size.sql_bytes);
    write(&mut g, Path::new("db/gwdb.sql"), &dump);

    // Empty file and empty folder.
    mkdir(&mut g, "logs");
    write(&mut g, Path::new("logs/trace.log"), b"");
    mkdir(&mut g, "trace/empty");

    // Symlinks: relative, absolute, dangling.
    mkdir(&mut g, "links");
    for (name, target) in [
        ("links/current", OsStr::new("../groups/group-2/instance-1")),
        ("links/absolute", OsStr::new("/opt/axway/apigateway/conf")),
        ("links/dangling", OsStr::from_bytes(b"missing/\xe9t\xe9.xml")),
    ] {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        g.symlinks.push(PathBuf::from(name));
        g.others += 1;
    }

    // A hard-linked pair in different folders.
    mkdir(&mut g, "bin");
    let start = b"#!/bin/sh\nexec java -jar gateway.jar \"$@\"\n";
    write(&mut g, Path::new("bin/startinstance"), start);
    let first = root.join("bin/startinstance");
    let second = root.join("groups/group-2/instance-1/startinstance.link");
    fs::hard_link(&first, &second).unwrap();
    g.files += 1;
    g.total_bytes += start.len() as u64;
    g.hardlink =
        (PathBuf::from("bin/startinstance"), PathBuf::from("groups/group-2/instance-1/startinstance.link"));

    // A fifo.
    mkdir(&mut g, "run");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join(&g.fifo),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    g.others += 1;

    // A non-UTF-8 name.
    mkdir(&mut g, "misc");
    let mut name = b"caf".to_vec();
    name.extend_from_slice(b"\xff\xfe.xml");
    g.non_utf8 = PathBuf::from("misc").join(OsStr::from_bytes(&name));
    let non_utf8 = g.non_utf8.clone();
    write(&mut g, &non_utf8, b"<cafe/>\n");

    // setuid, setgid, sticky and other modes.
    write(&mut g, Path::new("bin/setuid-helper"), b"\x7fELF helper");
    write(&mut g, Path::new("bin/setgid-tool"), b"\x7fELF tool");
    write(&mut g, Path::new("bin/readonly.cfg"), b"ro=1\n");
    mkdir(&mut g, "shared-tmp");
    mkdir(&mut g, "groups/group-2/setgid-dir");
    write(
        &mut g,
        Path::new("groups/group-2/setgid-dir/private.key"),
        b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    );

    // Foreign owners (root only): numeric ids with no name, and nobody.
    if is_root() {
        let chown = |rel: &str, uid: u32, gid: u32| {
            std::os::unix::fs::lchown(root.join(rel), Some(uid), Some(gid)).unwrap();
        };
        chown("bin/setuid-helper", 4242, 4243);
        chown("groups/group-2/setgid-dir", 65534, 65534);
        chown("links/absolute", 4242, 4243);
        chown("misc", 4242, 65534);
    }
    let chmod = |rel: &str, mode: u32| {
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod("bin/setuid-helper", 0o4755);
    chmod("bin/setgid-tool", 0o2751);
    chmod("bin/readonly.cfg", 0o444);
    chmod("shared-tmp", 0o1777);
    chmod("groups/group-2/setgid-dir", 0o2770);
    chmod("groups/group-2/setgid-dir/private.key", 0o600);
    chmod("db", 0o750);

    // A sparse file: a few bytes at 3 MiB, 8 MiB long.
    mkdir(&mut g, "data");
    {
        let p = root.join(&g.sparse);
        let f = File::create(&p).unwrap();
        f.write_all_at(b"SPARSE-HEADER-0001", 3 << 20).unwrap();
        f.set_len(8 << 20).unwrap();
        f.sync_all().unwrap();
        let md = fs::metadata(&p).unwrap();
        g.sparse_supported = md.blocks() * 512 * 8 < md.len();
        g.files += 1;
        g.total_bytes += 8 << 20;
    }

    // User xattrs on a file and a folder (skipped where refused).
    g.xattr_file = g.instances[0].join("conf/fed/xattr-bearer.xml");
    let xf = g.xattr_file.clone();
    write(&mut g, &xf, b"<bearer/>\n");
    g.xattrs_supported =
        xattr::set(root.join(&g.xattr_file), "user.cairn.origin", b"gateway\xff\x00binary-value").is_ok();
    if g.xattrs_supported {
        xattr::set(root.join(&g.xattr_file), "user.cairn.empty", b"").unwrap();
        xattr::set(root.join("groups/group-2"), "user.cairn.group", b"group-2").unwrap();
    }

    set_times_everywhere(&root, seed);
    g
}

/// Give every entry under (and including) `root` distinct mtimes and atimes with
/// nanoseconds, without following symlinks.
pub fn set_times_everywhere(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x7137);
    let mut all = Vec::new();
    collect_paths(root, &mut all);
    // Folders last, deepest first, so nothing written later touches their times.
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        let mtime = rustix::fs::Timespec {
            tv_sec: 1_500_000_000 + rng.range(0, 200_000_000) as i64,
            tv_nsec: rng.range(1, 1_000_000_000) as _,
        };
        let atime = rustix::fs::Timespec {
            tv_sec: mtime.tv_sec + rng.range(1, 10_000_000) as i64,
            tv_nsec: rng.range(1, 1_000_000_000) as _,
        };
        set_times(&p, atime, mtime);
    }
}

pub fn set_times(p: &Path, atime: rustix::fs::Timespec, mtime: rustix::fs::Timespec) {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps { last_access: atime, last_modification: mtime },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("cannot set times of {}: {e}", p.display()));
}

/// Give `dst` the atime and mtime `src` has.
pub fn copy_times(src: &Path, dst: &Path) {
    let md = fs::symlink_metadata(src).unwrap();
    set_times(
        dst,
        rustix::fs::Timespec { tv_sec: md.atime(), tv_nsec: md.atime_nsec() as _ },
        rustix::fs::Timespec { tv_sec: md.mtime(), tv_nsec: md.mtime_nsec() as _ },
    );
}

pub fn collect_paths(p: &Path, out: &mut Vec<PathBuf>) {
    let md = fs::symlink_metadata(p).unwrap();
    if md.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            collect_paths(&e.unwrap().path(), out);
        }
    }
    out.push(p.to_path_buf());
}

// ---------------------------------------------------------------------------------------
// Comparing trees
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// lstat-level description of every entry under `root`, keyed by relative path bytes
/// (the root itself is the empty path). Reads no file content, so atimes stay put.
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    scan_into(root, Path::new(""), &[], &mut out);
    out
}

/// Like [`scan`], leaving out (and not entering) the relative paths in `skip`.
pub fn scan_skipping(root: &Path, skip: &[PathBuf]) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    scan_into(root, Path::new(""), skip, &mut out);
    out
}

fn scan_into(root: &Path, rel: &Path, skip: &[PathBuf], out: &mut BTreeMap<Vec<u8>, Entry>) {
    if !rel.as_os_str().is_empty() && skip.iter().any(|s| rel.starts_with(s)) {
        return;
    }
    let p = root.join(rel);
    let md = match fs::symlink_metadata(&p) {
        Ok(md) => md,
        Err(e) => panic!("cannot lstat {}: {e}", p.display()),
    };
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else {
        Kind::Socket
    };
    let target =
        (kind == Kind::Symlink).then(|| fs::read_link(&p).unwrap().into_os_string().as_bytes().to_vec());
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = match xattr::list(&p) {
        Ok(names) => names
            .filter_map(|n| {
                let v = xattr::get(&p, &n).ok()??;
                Some((n.as_bytes().to_vec(), v))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    xattrs.sort();
    out.insert(
        rel.as_os_str().as_bytes().to_vec(),
        Entry {
            kind: kind.clone(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: md.len(),
            blocks: md.blocks(),
            mtime: (md.mtime(), md.mtime_nsec()),
            atime: (md.atime(), md.atime_nsec()),
            ino: md.ino(),
            nlink: md.nlink(),
            rdev: md.rdev(),
            target,
            xattrs,
        },
    );
    if kind == Kind::Dir {
        let mut names: Vec<OsString> = fs::read_dir(&p)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", p.display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            scan_into(root, &rel.join(n), skip, out);
        }
    }
}

/// Read a file without touching its atime where the kernel allows.
pub fn read_quietly(p: &Path) -> Vec<u8> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(p)
        .or_else(|_| File::open(p));
    let mut buf = Vec::new();
    f.and_then(|mut f| f.read_to_end(&mut buf))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    buf
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Relative paths (and everything under them) to leave out on both sides.
    pub ignore: Vec<PathBuf>,
    /// Compare regular files' atimes.
    pub atime: bool,
    /// Compare uid/gid.
    pub owner: bool,
    /// Compare the times and mode of the root folder itself.
    pub root_meta: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { ignore: Vec::new(), atime: true, owner: true, root_meta: true }
    }
}

fn show(rel: &[u8]) -> String {
    if rel.is_empty() {
        ".".into()
    } else {
        String::from_utf8_lossy(rel).into_owned()
    }
}

/// Every difference between the tree at `src` and the tree at `dst`, one line each.
pub fn diff_trees(src: &Path, dst: &Path, opts: &CompareOptions) -> Vec<String> {
    // Metadata first (both sides), content afterwards: reading changes atimes.
    let a = scan_skipping(src, &opts.ignore);
    let b = scan_skipping(dst, &opts.ignore);
    let mut d = Vec::new();
    for k in a.keys() {
        if !b.contains_key(k) {
            d.push(format!("{}: missing in restore", show(k)));
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            d.push(format!("{}: unexpected extra entry in restore", show(k)));
        }
    }
    let mut contents = Vec::new();
    for (k, x) in &a {
        let Some(y) = b.get(k) else { continue };
        let name = show(k);
        if x.kind != y.kind {
            d.push(format!("{name}: kind {:?} became {:?}", x.kind, y.kind));
            continue;
        }
        let is_root = k.is_empty();
        if x.kind != Kind::Symlink && x.mode != y.mode && (!is_root || opts.root_meta) {
            d.push(format!("{name}: mode {:o} became {:o}", x.mode, y.mode));
        }
        if opts.owner && (x.uid, x.gid) != (y.uid, y.gid) {
            d.push(format!("{name}: owner {}:{} became {}:{}", x.uid, x.gid, y.uid, y.gid));
        }
        if x.mtime != y.mtime && (!is_root || opts.root_meta) {
            d.push(format!(
                "{name}: mtime {}.{:09} became {}.{:09}",
                x.mtime.0, x.mtime.1, y.mtime.0, y.mtime.1
            ));
        }
        if opts.atime && x.kind == Kind::File && x.atime != y.atime {
            d.push(format!(
                "{name}: atime {}.{:09} became {}.{:09}",
                x.atime.0, x.atime.1, y.atime.0, y.atime.1
            ));
        }
        if x.target != y.target {
            d.push(format!(
                "{name}: symlink target {:?} became {:?}",
                x.target.as_deref().map(String::from_utf8_lossy),
                y.target.as_deref().map(String::from_utf8_lossy)
            ));
        }
        if x.xattrs != y.xattrs {
            d.push(format!(
                "{name}: xattrs {:?} became {:?}",
                x.xattrs.iter().map(|(n, v)| (show(n), show(v))).collect::<Vec<_>>(),
                y.xattrs.iter().map(|(n, v)| (show(n), show(v))).collect::<Vec<_>>()
            ));
        }
        if matches!(x.kind, Kind::Char | Kind::Block) && x.rdev != y.rdev {
            d.push(format!("{name}: device {} became {}", x.rdev, y.rdev));
        }
        if x.kind == Kind::File {
            if x.size != y.size {
                d.push(format!("{name}: size {} became {}", x.size, y.size));
            } else {
                contents.push(k.clone());
            }
            // A sparse source must restore sparse.
            if x.size >= 1 << 20 && x.blocks * 512 * 4 < x.size && y.blocks * 512 * 4 >= y.size {
                d.push(format!(
                    "{name}: holes lost: source uses {} bytes of {}, restore uses {}",
                    x.blocks * 512,
                    x.size,
                    y.blocks * 512
                ));
            }
        }
    }
    // Hard links: same inode on one side exactly when on the other.
    let groups = |m: &BTreeMap<Vec<u8>, Entry>| {
        let mut g: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
        for (k, e) in m {
            if e.kind == Kind::File && e.nlink > 1 {
                g.entry(e.ino).or_default().push(k.clone());
            }
        }
        let mut v: Vec<Vec<Vec<u8>>> = g.into_values().filter(|v| v.len() > 1).collect();
        v.iter_mut().for_each(|x| x.sort());
        v.sort();
        v
    };
    let (ga, gb) = (groups(&a), groups(&b));
    for g in &ga {
        if !gb.contains(g) {
            d.push(format!(
                "hard links {:?} are not one inode in the restore",
                g.iter().map(|p| show(p)).collect::<Vec<_>>()
            ));
        }
    }
    for g in &gb {
        if !ga.contains(g) {
            d.push(format!(
                "restore links {:?} together, the source does not",
                g.iter().map(|p| show(p)).collect::<Vec<_>>()
            ));
        }
    }
    for k in contents {
        let rel = Path::new(OsStr::from_bytes(&k));
        let x = read_quietly(&src.join(rel));
        let y = read_quietly(&dst.join(rel));
        if x != y {
            let at = x.iter().zip(&y).position(|(p, q)| p != q).unwrap_or(0);
            d.push(format!("{}: content differs (first at byte {at} of {})", show(&k), x.len()));
        }
    }
    d
}

/// Panic listing every difference between the trees.
pub fn assert_trees_equal(src: &Path, dst: &Path, opts: &CompareOptions) {
    let d = diff_trees(src, dst, opts);
    if !d.is_empty() {
        let shown: Vec<&String> = d.iter().take(200).collect();
        panic!(
            "{} difference(s) between {} and {}:\n  {}",
            d.len(),
            src.display(),
            dst.display(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
}

/// Compare with the default options (everything).
pub fn assert_same_tree(src: &Path, dst: &Path) {
    assert_trees_equal(src, dst, &CompareOptions::default());
}

// ---------------------------------------------------------------------------------------
// Repository integrity checks
// ---------------------------------------------------------------------------------------

fn is_hex64(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every file in data/*/, index/ and snapshots/ is either a temporary (".tmp-...") or
/// complete: named by the BLAKE3 hash of its bytes. Returns the problems found.
pub fn objects_complete(repo: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut dirs = vec![repo.join("index"), repo.join("snapshots")];
    if let Ok(rd) = fs::read_dir(repo.join("data")) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    for d in dirs {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            if !is_hex64(&name) {
                problems.push(format!("{}: not an object name", e.path().display()));
                continue;
            }
            let bytes = fs::read(e.path()).unwrap();
            if blake3::hash(&bytes).to_hex().as_str() != name {
                problems.push(format!(
                    "{}: content ({} bytes) does not hash to its name: partial or damaged",
                    e.path().display(),
                    bytes.len()
                ));
            }
        }
    }
    problems
}

/// Flip one bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

/// Run cairn on `repo` with `password`, nothing else from the environment that would
/// change its behaviour, and times in UTC.
pub fn cairn_with(repo: &Path, password: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("CAIRN_PASSWORD", password)
        .env("TZ", "UTC")
        .env_remove("CAIRN_REPOSITORY")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_KEY_FILE")
        .env_remove("CAIRN_NEW_PASSWORD")
        .output()
        .expect("run cairn")
}

/// The largest pack file of a repository (one that holds file data).
pub fn largest_pack(repo: &Path) -> PathBuf {
    pack_paths(repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a pack")
}

/// Every file below `dir`, sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("list folder") {
        let p = e.expect("list folder").path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Copy a folder tree (a repository, to damage a copy of it).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create folder");
    for e in fs::read_dir(from).expect("list folder") {
        let e = e.expect("list folder");
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).expect("copy file");
        }
    }
}

/// A number no earlier call in this process returned (for unique folder names).
pub fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl: (cert, key).
pub fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (the openssl package)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

/// The command line of the package's systemd unit `dist/UNIT` as this test runs it: its
/// ExecStart with /usr/bin/cairn replaced by the binary under test and each argument
/// named in `replace` replaced (this machine's paths, a loopback port); output piped.
pub fn unit_command(unit: &str, replace: &[(&str, String)]) -> Command {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist").join(unit)).unwrap();
    let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/bin/cairn", "{unit}");
    let mut cmd = Command::new(bin());
    for a in &args[1..] {
        match replace.iter().find(|(from, _)| from == a) {
            Some((_, to)) => cmd.arg(to),
            None => cmd.arg(a),
        };
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// The first line a started server printed, then the server ended: (line, its stderr).
pub fn first_line_then_kill(mut child: Child) -> (String, String) {
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
        .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (first.trim().to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
}
