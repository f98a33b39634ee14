//! The workbench of the fault tests (tests/failpoints.rs, tests/faults.rs): a repository
//! of small packs holding a witnessed snapshot of a small tree with every kind of entry,
//! new data on demand, and the checks that follow every kill or fault.

use super::{
    gateway_tree, objects_complete, tempdir, write_random, FaultReport, Repo, TempDir, TreeSize, Witness,
};
use std::path::{Path, PathBuf};

/// A small tree with every kind of entry (gateway_tree), a few hundred KB of data.
pub fn small_tree(root: &Path, seed: u64) -> PathBuf {
    let size = TreeSize { instances: 1, configs: 5, sql_bytes: 48 << 10, jars: &[160 << 10] };
    gateway_tree(root, seed, size).root
}

/// `check --read-data` is clean and nothing partial is under an object's name.
pub fn check_clean(repo: &Repo) {
    repo.cairn().args(["check", "--read-data"]).run().ok();
    let partial = objects_complete(&repo.path);
    assert!(partial.is_empty(), "partial objects under real names: {partial:?}");
}

/// A test's repository, its source, what it witnessed, and its rows of the report.
pub struct Lab {
    pub work: TempDir,
    pub src: PathBuf,
    pub repo: Repo,
    pub witness: Witness,
    pub report: FaultReport,
    files: u64,
}

impl Lab {
    /// A repository of 1 MiB packs holding one witnessed snapshot of a small tree;
    /// `kind` is what the report's middle column holds ("failpoint" or "fault").
    pub fn new(kind: &'static str, seed: u64) -> Lab {
        let work = tempdir("cairn-fault-lab-");
        let src = small_tree(&work.path().join("src"), seed);
        let repo = Repo::with_options(&["--pack-size", "1M"]);
        let mut witness = Witness::new();
        witness.backup(&repo, &src, &[]);
        Lab { work, src, repo, witness, report: FaultReport::new(kind), files: seed * 1000 }
    }

    /// A new file of random bytes in the source (new data for the next backup).
    pub fn add_data(&mut self, size: usize) -> PathBuf {
        self.files += 1;
        let p = self.src.join("rounds").join(format!("data-{}.bin", self.files));
        write_random(&p, self.files, size);
        p
    }

    /// Every witnessed snapshot lists and restores as it did; returns the count.
    pub fn verify(&mut self) -> usize {
        let n = self.witness.verify_all(&self.repo);
        self.report.verified += n;
        n
    }

    pub fn check(&self) {
        check_clean(&self.repo);
    }

    /// `cairn copy` of this lab's latest snapshot into `dst` (not yet run).
    pub fn copy_into(&self, dst: &Repo) -> super::Cairn {
        dst.cairn()
            .args(["copy", "--from-repo"])
            .arg(&self.repo.path)
            .arg("latest")
            .env("CAIRN_FROM_PASSWORD", super::PASSWORD)
    }

    /// Forget snapshots by id (and stop witnessing them).
    pub fn forget(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        self.repo.cairn().arg("forget").args(ids).run().ok();
        for id in ids {
            self.witness.drop_id(id);
        }
    }

    /// Keep the witness small: forget every witnessed snapshot but the first and last.
    pub fn forget_middle(&mut self) {
        let ids = self.witness.ids();
        if ids.len() > 2 {
            self.forget(&ids[1..ids.len() - 1]);
        }
    }

    /// Make garbage for prune: a snapshot C with new files x and y, then D (witnessed)
    /// with only x, and C forgotten (with every witnessed snapshot but the first and D),
    /// so x's pack is partly used and the packs of C alone are unused.
    pub fn make_garbage(&mut self) {
        self.add_data(120_000);
        let y = self.add_data(120_000);
        // One worker thread reads both files, so they share a pack.
        let c =
            self.repo.cairn().args(["backup", "--json"]).arg(&self.src).env("RAYON_NUM_THREADS", "1").run();
        let c = c.ok().json()["snapshot"].as_str().expect("an id").to_string();
        std::fs::remove_file(&y).expect("remove y");
        self.witness.backup(&self.repo, &self.src, &[]);
        let mut gone = vec![c];
        let ids = self.witness.ids();
        if ids.len() > 2 {
            gone.extend(ids[1..ids.len() - 1].iter().cloned());
        }
        self.forget(&gone);
    }
}
