//! Witnessing snapshots: what each snapshot restored to right after it was made, so that
//! after an attack, a kill or a failing store a test checks the promise a backup makes
//! (every snapshot it was told was saved still restores to exactly that tree) and not a
//! proxy for it such as `check` passing.

use super::{assert_trees_equal, restored, tempdir, Cairn, CompareOptions, Repo, TempDir, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a test runs cairn against a repository: a local [`Repo`], the same with another
/// password, or a remote store.
pub trait AtRepo {
    /// A `cairn -r LOCATION` invocation with what opening the repository needs.
    fn cairn(&self) -> Cairn;
}

impl AtRepo for Repo {
    fn cairn(&self) -> Cairn {
        Repo::cairn(self)
    }
}

/// A local repository opened with a password other than the usual one.
pub struct WithPassword<'a>(pub &'a Repo, pub &'a str);

impl AtRepo for WithPassword<'_> {
    fn cairn(&self) -> Cairn {
        self.0.cairn().password(self.1)
    }
}

/// One witnessed snapshot.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    /// Where its line of edits began: the snapshot a tag, rewrite or repair replaced
    /// first, else itself. Every replacement names it as `original`.
    origin: String,
    /// The folder it was taken from, and its reference restore.
    src: PathBuf,
    reference: PathBuf,
    /// Paths (relative to `src`) its content no longer has: left out by a rewrite.
    without: Vec<PathBuf>,
}

/// Remembers, for each snapshot a test was told was saved, what it restored to right
/// after the backup (checked then against its source).
pub struct Witness {
    dir: TempDir,
    seen: Vec<Seen>,
}

impl Default for Witness {
    fn default() -> Self {
        Self::new()
    }
}

/// Every listed snapshot's JSON description (exit 4, some snapshot object unreadable,
/// still lists the readable ones).
pub fn listed(repo: &impl AtRepo) -> Vec<Value> {
    let out = repo.cairn().args(["snapshots", "--json"]).run();
    assert!(matches!(out.code, Some(0 | 4)), "{}", out.context());
    out.json().as_array().expect("a list").clone()
}

fn field(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_string)
}

impl Witness {
    pub fn new() -> Witness {
        Witness { dir: tempdir("cairn-witness-"), seen: Vec::new() }
    }

    /// Back up `src` with `extra` options, then witness the snapshot; returns its id.
    pub fn backup(&mut self, repo: &impl AtRepo, src: &Path, extra: &[&str]) -> String {
        let b = repo.cairn().arg("backup").arg("--json").arg(src).args(extra).run().ok().json();
        let id = b["snapshot"].as_str().unwrap_or_else(|| panic!("no snapshot id in {b}")).to_string();
        self.record(repo, &id, src);
        id
    }

    /// Restore snapshot `id` (taken from `src` by a backup, and `src` has not changed
    /// since) and keep the restored tree as the reference.
    pub fn record(&mut self, repo: &impl AtRepo, id: &str, src: &Path) {
        let target = self.dir.path().join(format!("ref-{}", super::unique_suffix()));
        self.restore(repo, id, &target).ok();
        let reference = restored(&target, src);
        super::assert_same_tree(src, &reference);
        // A snapshot a backup made names no original: its line begins with it.
        let origin = id.to_string();
        self.seen.push(Seen { id: id.into(), origin, src: src.into(), reference, without: Vec::new() });
    }

    fn restore(&self, repo: &impl AtRepo, id: &str, target: &Path) -> super::Out {
        repo.cairn().args(["restore", "--json", id, "--target"]).arg(target).run()
    }

    /// Restore `id` and compare it with `seen`'s reference (leaving out `without` and
    /// what `seen` already lacks).
    fn verify_one(&self, repo: &impl AtRepo, id: &str, seen: &Seen, without: &[PathBuf]) {
        let target = self.dir.path().join(format!("check-{}", super::unique_suffix()));
        let out = self.restore(repo, id, &target);
        assert_eq!(out.code, Some(0), "snapshot {id} no longer restores\n{}", out.context());
        let mut ignore = seen.without.clone();
        ignore.extend(without.iter().cloned());
        let opts = CompareOptions { ignore, ..CompareOptions::default() };
        assert_trees_equal(&seen.reference, &restored(&target, &seen.src), &opts);
        fs::remove_dir_all(&target).ok();
    }

    /// The ids witnessed so far.
    pub fn ids(&self) -> Vec<String> {
        self.seen.iter().map(|s| s.id.clone()).collect()
    }

    /// Forget a snapshot the test removed (or had a command remove) on purpose.
    pub fn drop_id(&mut self, id: &str) {
        self.seen.retain(|s| s.id != id);
    }

    /// Every witnessed snapshot is still listed and restores byte- and metadata-identical
    /// to its reference. Returns how many were verified.
    pub fn verify_all(&self, repo: &impl AtRepo) -> usize {
        self.verify_listed(repo, &listed(repo))
    }

    fn verify_listed(&self, repo: &impl AtRepo, listed: &[Value]) -> usize {
        let ids: Vec<String> = listed.iter().filter_map(|s| field(s, "id")).collect();
        for s in &self.seen {
            assert!(ids.contains(&s.id), "snapshot {} was saved but is no longer listed: {ids:?}", s.id);
            self.verify_one(repo, &s.id, s, &[]);
        }
        self.seen.len()
    }

    /// [`Witness::verify_all`], then [`Witness::adopt_new`] (with one listing): what a
    /// killed or failed command that adds snapshots must leave. Returns how many were
    /// verified and the ids adopted.
    pub fn verify_and_adopt(&mut self, repo: &impl AtRepo, src: &Path) -> (usize, Vec<String>) {
        let listed = listed(repo);
        let verified = self.verify_listed(repo, &listed);
        let new = self.unknown(&listed);
        for id in &new {
            self.record(repo, id, src);
        }
        (verified, new)
    }

    /// For commands that replace snapshots (tag, rewrite, repair snapshots): every
    /// witnessed snapshot is still listed, or replaced by listed snapshots that name its
    /// line as their original, or both (a kill between storing the new one and deleting
    /// the old leaves both). Each of them restores to the reference, a replacement less
    /// `replaced_without` (what the command was asked to leave out). The witness then
    /// follows the replacements. Returns how many snapshots were verified.
    pub fn verify_following(&mut self, repo: &impl AtRepo, replaced_without: &[PathBuf]) -> usize {
        let listed = listed(repo);
        let mut next = Vec::new();
        for s in &self.seen {
            let mut line: Vec<(String, bool)> = Vec::new();
            for l in &listed {
                let id = field(l, "id").unwrap_or_default();
                if id == s.id {
                    line.push((id, false));
                } else if field(l, "original").as_deref() == Some(s.origin.as_str())
                    && !self.seen.iter().any(|o| o.id == id)
                {
                    line.push((id, true));
                }
            }
            assert!(!line.is_empty(), "snapshot {} was saved but is neither listed nor replaced", s.id);
            for (id, replacement) in line {
                let without: &[PathBuf] = if replacement { replaced_without } else { &[] };
                self.verify_one(repo, &id, s, without);
                let mut followed = s.clone();
                followed.without.extend(without.iter().cloned());
                followed.id = id;
                if !next.iter().any(|n: &Seen| n.id == followed.id) {
                    next.push(followed);
                }
            }
        }
        self.seen = next;
        self.seen.len()
    }

    /// For a command that seals snapshots anew (key rotate), which gives each a new id:
    /// every witnessed snapshot is listed under its id or under other ids with the same
    /// tree and time as it had in `before` (a listing taken before the command; a kill
    /// between storing the new one and deleting the old leaves both). Each of them restores
    /// to the reference; the witness then follows them. Returns how many were verified.
    pub fn verify_resealed(&mut self, repo: &impl AtRepo, before: &[Value]) -> usize {
        self.verify_followed(repo, before, &["tree", "time"])
    }

    /// For a content key rotation, which stores each snapshot anew under a new root tree
    /// too: as [`Witness::verify_resealed`], a snapshot followed by its time and host.
    pub fn verify_stored_anew(&mut self, repo: &impl AtRepo, before: &[Value]) -> usize {
        self.verify_followed(repo, before, &["time", "host"])
    }

    fn verify_followed(&mut self, repo: &impl AtRepo, before: &[Value], identity: &[&str]) -> usize {
        let now = listed(repo);
        let identity = |v: &Value| identity.iter().map(|k| field(v, k)).collect::<Vec<_>>();
        let mut next: Vec<Seen> = Vec::new();
        for s in &self.seen {
            let was = before
                .iter()
                .find(|v| field(v, "id").as_deref() == Some(s.id.as_str()))
                .unwrap_or_else(|| panic!("snapshot {} is not in the listing from before", s.id));
            let line: Vec<String> =
                now.iter().filter(|v| identity(v) == identity(was)).filter_map(|v| field(v, "id")).collect();
            assert!(!line.is_empty(), "snapshot {} was saved but is listed under no id now", s.id);
            for id in line {
                self.verify_one(repo, &id, s, &[]);
                if !next.iter().any(|n| n.id == id) {
                    next.push(Seen { id, ..s.clone() });
                }
            }
        }
        self.seen = next;
        self.seen.len()
    }

    /// Witness every listed snapshot this witness does not know yet as a snapshot of
    /// `src` (which has not changed since they were made): the snapshot a killed backup
    /// stored before it could say so must be whole too. Returns their ids.
    pub fn adopt_new(&mut self, repo: &impl AtRepo, src: &Path) -> Vec<String> {
        let new = self.unknown(&listed(repo));
        for id in &new {
            self.record(repo, id, src);
        }
        new
    }

    fn unknown(&self, listed: &[Value]) -> Vec<String> {
        listed
            .iter()
            .filter_map(|l| field(l, "id"))
            .filter(|id| !self.seen.iter().any(|s| &s.id == id))
            .collect()
    }
}
