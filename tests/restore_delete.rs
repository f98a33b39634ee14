//! An in-place restore over a tree that gained files: `--verify` reports every entry the
//! snapshot does not have (a stale jar changes a gateway's classpath), `--delete
//! --dry-run` lists them and changes nothing, and `--delete` removes them, only below the
//! restored paths and never through a symlink.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

struct Setup {
    work: TempDir,
    repo: Repo,
    src: PathBuf,
    target: PathBuf,
}

impl Setup {
    /// A gateway-like folder backed up and restored once to `target`.
    fn new() -> Setup {
        let work = tempdir("cairn-delete-");
        let src = work.path().join("gw");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::create_dir_all(src.join("conf/policies")).unwrap();
        write_random(&src.join("lib/gateway-7.7.jar"), 1, 40_000);
        fs::write(src.join("conf/app.xml"), b"<app/>\n").unwrap();
        fs::write(src.join("conf/policies/p.xml"), b"<policy/>\n").unwrap();
        let src = fs::canonicalize(&src).unwrap();
        set_times_everywhere(&src, 9);
        let repo = Repo::new();
        repo.backup(&[&src], &[]);
        let target = work.path().join("dr");
        repo.restore("latest", &target, &[]).ok();
        Setup { work, repo, src, target }
    }

    fn at(&self, rel: &str) -> PathBuf {
        restored(&self.target, &self.src).join(rel)
    }

    /// Plant extras: a stale jar, a folder of files, a symlink to a folder outside the
    /// target; and a file beside the restored folder (not below a restored path).
    fn plant(&self) -> (PathBuf, PathBuf) {
        write_random(&self.at("lib/old-filter-1.0.jar"), 2, 10_000);
        fs::create_dir_all(self.at("conf/backup.d/sub")).unwrap();
        fs::write(self.at("conf/backup.d/sub/x.xml"), b"<x/>").unwrap();
        let outside = self.work.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep.txt"), b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, self.at("conf/policies/link-out")).unwrap();
        let beside = restored(&self.target, &self.src).with_file_name("not-restored.txt");
        fs::write(&beside, b"beside the restored folder").unwrap();
        (outside, beside)
    }
}

fn names(list: &[Value]) -> Vec<String> {
    list.iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn verify_reports_a_stale_jar_and_exits_4() {
    let s = Setup::new();
    write_random(&s.at("lib/old-filter-1.0.jar"), 2, 10_000);
    let out = s.repo.restore("latest", &s.target, &["--verify"]).expect_code(4);
    let stale = s.at("lib/old-filter-1.0.jar");
    let differences = names(out.json()["differences"].as_array().unwrap());
    assert_eq!(
        differences,
        vec![format!(
            "{}: not in the snapshot (an extra entry; `restore --delete` removes it)",
            stale.display()
        )],
        "{}",
        out.context()
    );
    assert!(out.stderr.contains("old-filter-1.0.jar"), "{}", out.context());
    // Human output says plainly that the target is not identical.
    let human = s.repo.cairn().args(["restore", "latest", "--verify", "--target"]).arg(&s.target).run();
    let human = human.expect_code(4);
    assert!(human.stdout.contains("1 DIFFERENCES"), "{}", human.context());
    assert!(!human.stdout.contains("identical to the snapshot"), "{}", human.context());
}

#[test]
fn delete_dry_run_lists_the_extras_and_changes_nothing() {
    let s = Setup::new();
    let (_outside, beside) = s.plant();
    // Listing a folder may set its access time; everything else must stay.
    let without_atimes = |root: &Path| {
        scan(root)
            .into_iter()
            .map(|(k, mut e)| {
                e.atime = (0, 0);
                format!("{k:?} {e:?}")
            })
            .collect::<Vec<_>>()
    };
    let before = without_atimes(&s.target);
    let out = s.repo.restore("latest", &s.target, &["--delete", "--dry-run"]).ok();
    let listed = names(out.json()["would_remove"].as_array().unwrap());
    let expected: Vec<String> = ["conf/backup.d", "conf/policies/link-out", "lib/old-filter-1.0.jar"]
        .iter()
        .map(|r| s.at(r).display().to_string())
        .collect();
    assert_eq!(listed, expected, "{}", out.context());
    assert!(!out.stdout.contains(&*beside.to_string_lossy()), "beside the restored paths: not listed");
    assert_eq!(before, without_atimes(&s.target), "a dry run changed the target");
    // Without --delete, --dry-run is refused.
    let refused = s.repo.restore("latest", &s.target, &["--dry-run"]).expect_code(2);
    assert!(refused.stderr.contains("--delete"), "{}", refused.context());
}

#[test]
fn delete_removes_only_extras_below_the_restored_paths_and_follows_no_symlink() {
    let s = Setup::new();
    let (outside, beside) = s.plant();
    let out = s.repo.restore("latest", &s.target, &["--delete", "--verify"]).ok();
    assert_eq!(out.json()["removed"].as_array().unwrap().len(), 3, "{}", out.context());
    assert_eq!(out.json()["verified"], true, "{}", out.context());
    // --verify read every file back, which sets access times.
    let opts = CompareOptions { atime: false, ..Default::default() };
    assert_trees_equal(&s.src, &restored(&s.target, &s.src), &opts);
    assert_eq!(fs::read(outside.join("keep.txt")).unwrap(), b"keep", "deleted through the symlink");
    assert!(beside.exists(), "a file beside the restored folder was removed");
}

#[test]
fn delete_with_include_stays_inside_the_included_path() {
    let s = Setup::new();
    s.plant();
    let conf = s.src.join("conf");
    let out = s.repo.restore("latest", &s.target, &["--delete", "--include", conf.to_str().unwrap()]).ok();
    let removed = names(out.json()["removed"].as_array().unwrap());
    assert_eq!(
        removed,
        vec![
            s.at("conf/backup.d").display().to_string(),
            s.at("conf/policies/link-out").display().to_string()
        ]
    );
    assert!(s.at("lib/old-filter-1.0.jar").exists(), "outside the include: kept");
    assert!(!Path::new(&removed[0]).exists());
}
