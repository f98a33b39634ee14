//! The object cache of a remote repository, on a real `cairn serve` server on 127.0.0.1
//! whose access log shows every object read: snapshots and index files are written to or
//! read from the store once, then read from the cache; a cached copy that is not the
//! object it names is never used; a snapshot deleted from the store is not brought back;
//! each command reads the newest log entry, which it follows, from the cache;
//! and check reads the store itself, so a damaged stored object is found although the
//! cache holds a good copy.

mod common;
mod servers;

use common::*;
use servers::Server;
use std::path::{Path, PathBuf};

/// A served repository, with its own cache folder.
struct Cached {
    loc: String,
    token: String,
    cache: PathBuf,
}

impl AtRepo for Cached {
    fn cairn(&self) -> Cairn {
        Cairn::new()
            .arg("-r")
            .arg(&self.loc)
            .env("CAIRN_TOKEN", &self.token)
            .env("CAIRN_CACHE_DIR", &self.cache)
    }
}

/// How many requests of `op` (read, list, head) on paths holding `part` the server has
/// answered so far.
fn requests(server: &Server, op: &str, part: &str) -> usize {
    let log = std::fs::read_to_string(server.root().join(".cairn-serve/access.log")).unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["op"] == op && v["path"].as_str().unwrap().contains(part))
        .count()
}

/// How many objects of `dir` (snapshots, index) the server has served so far.
fn reads(server: &Server, dir: &str) -> usize {
    requests(server, "read", &format!("/{dir}/"))
}

/// The reads of snapshots and of index files that `run` causes.
fn reads_of(server: &Server, run: impl FnOnce()) -> (usize, usize) {
    let before = (reads(server, "snapshots"), reads(server, "index"));
    run();
    (reads(server, "snapshots") - before.0, reads(server, "index") - before.1)
}

/// The files of the cache's `kind` folder (snapshots, index).
fn cached(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for objects in std::fs::read_dir(cache.join("objects")).unwrap().flatten() {
        if let Ok(entries) = std::fs::read_dir(objects.path().join(kind)) {
            out.extend(entries.flatten().map(|e| e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn snapshots_and_index_files_are_read_once_and_a_bad_copy_or_a_deleted_object_is_never_used() {
    let server = Server::cairn(&[]);
    let work = tempdir("cairn-object-cache-");
    let repo = Cached {
        loc: server.location("gw"),
        token: server.token("gw", "admin"),
        cache: work.path().join("cache"),
    };
    repo.cairn().arg("init").args(FAST_KDF).run().ok();
    let tree = gateway_tree(&work.path().join("src"), 7, TreeSize::SMALL);
    let mut witness = Witness::new();
    for round in 0..3 {
        std::fs::write(tree.root.join("round.txt"), format!("round {round}")).unwrap();
        witness.backup(&repo, &tree.root, &[]);
    }
    // Each backup's log entry follows the one before, which this machine wrote: it is
    // read from the cache, not the store.
    assert!(list_objects(&server.storage("gw"), "log").len() >= 3);
    assert_eq!(reads(&server, "log"), 0, "the newest log entry comes from the cache");
    let snapshots = server.storage("gw").join("snapshots");
    let stored: Vec<String> = list_objects(&server.storage("gw"), "snapshots");
    assert_eq!(stored.len(), 3);

    // What the backups wrote they kept: listing reads no snapshot from the store.
    let listing = || assert_eq!(listed(&repo).len(), 3);
    assert_eq!(reads_of(&server, listing), (0, 0));
    // Opening reads the config and the key that opened last by their names: no look at
    // whether a config exists, no listing of the keys. Nor is its own lock read back.
    let opening = || {
        (requests(&server, "head", "/gw/"), requests(&server, "list", "/gw/keys/"), reads(&server, "locks"))
    };
    let before = opening();
    assert_eq!(cached(&repo.cache, "snapshots").len(), 3);
    let (_, index_reads) = reads_of(&server, || {
        repo.cairn().args(["stats", "--json"]).run().ok();
    });
    assert_eq!(index_reads, 0, "index files come from the cache");
    assert_eq!(opening(), before);
    assert!(requests(&server, "create", "/gw/locks/") > 0, "stats takes a lock");
    let mode =
        |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
    for f in cached(&repo.cache, "snapshots").iter().chain(&cached(&repo.cache, "index")) {
        assert_eq!(mode(f) & 0o777, 0o600, "{}", f.display());
    }
    // --no-cache reads every snapshot from the store.
    let uncached = || {
        repo.cairn().args(["--no-cache", "snapshots"]).run().ok();
    };
    assert_eq!(reads_of(&server, uncached).0, 3);
    // A cache emptied (or a new host) reads each once, and the next run none.
    std::fs::remove_dir_all(&repo.cache).unwrap();
    assert_eq!(reads_of(&server, listing).0, 3);
    assert_eq!(reads_of(&server, listing).0, 0);

    // A cached copy altered on this machine is not used: it is read again from the store.
    for f in cached(&repo.cache, "snapshots") {
        std::fs::write(&f, b"not the snapshot").unwrap();
    }
    assert_eq!(reads_of(&server, listing).0, 3);
    for f in cached(&repo.cache, "snapshots") {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(blake3::hash(&std::fs::read(&f).unwrap()).to_hex().as_str(), name, "copy made good again");
    }

    // A snapshot deleted from the store is neither listed nor kept in the cache. (And a
    // cache emptied meanwhile has the newest log entry read from the store, once.)
    let oldest = witness.ids()[0].clone();
    let log_reads = reads(&server, "log");
    repo.cairn().args(["forget", &oldest]).run().ok();
    assert_eq!(reads(&server, "log"), log_reads + 1);
    repo.cairn().args(["snapshots"]).run().ok();
    repo.cairn().args(["forget", "--keep-last", "5"]).run().ok();
    assert_eq!(reads(&server, "log"), log_reads + 1, "the entry forget wrote is cached");
    witness.drop_id(&oldest);
    assert_eq!(listed(&repo).len(), 2);
    assert_eq!(cached(&repo.cache, "snapshots").len(), 2);

    // check reads the store: a stored snapshot damaged behind the cache's back is found,
    // though the cache holds a good copy of it.
    let victim = list_objects(&server.storage("gw"), "snapshots").into_iter().next().unwrap();
    let path = snapshots.join(&victim);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let out = repo.cairn().args(["check"]).run().expect_code(4);
    assert!(out.stdout.contains(&victim[..8]) || out.stderr.contains(&victim[..8]), "{}", out.context());
    std::fs::write(&path, &good).unwrap();

    // Every snapshot the store still has restores identical, through the cache.
    assert_eq!(witness.verify_all(&repo), 2);
    repo.cairn().args(["check", "--read-data"]).run().ok();
}
