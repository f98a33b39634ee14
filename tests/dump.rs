//! `cairn dump`: archives of a snapshot that real tools extract to the tree that was backed
//! up. tar goes through GNU tar (`tar -xpf`, xattrs on), zip through Python's zipfile and
//! Info-ZIP's unzip.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What GNU tar needs to give back xattrs (it leaves them out by default).
const XATTRS: [&str; 2] = ["--xattrs", "--xattrs-include=*"];

/// `cairn dump latest ARGS... --archive tar` piped straight into `tar -xpf - -C DST FLAGS`.
/// Both must succeed, and GNU tar must have nothing to complain about.
fn dump_into_tar(repo: &Repo, args: &[&OsStr], dst: &Path, flags: &[&str]) {
    fs::create_dir_all(dst).unwrap();
    let mut dump = repo.cairn().args(["dump", "latest", "--archive", "tar"]).args(args).spawn();
    let tar = Command::new("tar")
        .arg("-xpf")
        .arg("-")
        .arg("-C")
        .arg(dst)
        .args(flags)
        .stdin(dump.stdout.take().expect("piped stdout"))
        .output()
        .expect("GNU tar runs");
    let dumped = dump.wait_with_output().unwrap();
    let dumped = Out::new("cairn dump".into(), dumped.status, dumped.stdout, dumped.stderr).ok();
    assert!(dumped.stderr.is_empty(), "dump warned: {}", dumped.stderr);
    assert!(
        tar.status.success() && tar.stderr.is_empty(),
        "tar -x failed or warned ({:?}):\n{}",
        tar.status,
        String::from_utf8_lossy(&tar.stderr)
    );
}

/// `tar -tvf FILE` lines.
fn tar_listing(archive: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tvf").arg(archive).output().unwrap();
    assert!(out.status.success(), "tar -t: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// Entries beyond the gateway tree's: a path and a symlink target over 100 bytes, and a
/// character device where the system lets us make one.
fn add_long_names_and_a_device(g: &GenTree) -> PathBuf {
    let deep = PathBuf::from("deep").join("d".repeat(60)).join("e".repeat(60));
    fs::create_dir_all(g.path(&deep)).unwrap();
    let long_file = deep.join(format!("{}.properties", "long-file-name-".repeat(5)));
    fs::write(g.path(&long_file), b"gw.deep=1\n").unwrap();
    std::os::unix::fs::symlink(format!("../{}", long_file.display()), g.path("links/long-target")).unwrap();
    if require(is_root(), "not root: no device node and no foreign owners in this tree") {
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            g.path("run/null-device"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o620),
            rustix::fs::makedev(1, 3),
        );
        if let Err(e) = made {
            require(false, &format!("cannot make a device node here ({e}); the device part is skipped"));
        }
    }
    long_file
}

#[test]
fn tar_dump_extracts_with_gnu_tar_to_the_same_tree() {
    let work = tempdir("cairn-dump-");
    let g = gateway_tree(&work.path().join("src"), 21, TreeSize::SMALL);
    let long_file = add_long_names_and_a_device(&g);
    set_times_everywhere(&g.root, 21);
    let repo = Repo::new();
    repo.backup(&[&g.root], &[]);

    let dst = work.path().join("numeric");
    let mut flags = XATTRS.to_vec();
    flags.push("--numeric-owner");
    dump_into_tar(&repo, &[g.root.as_os_str()], &dst, &flags);
    let back = restored(&dst, &g.root);
    // tar gives back everything but atimes (extraction sets them); owners only as root.
    let opts = CompareOptions { atime: false, owner: is_root(), ..Default::default() };
    assert_trees_equal(&g.root, &back, &opts);

    // The comparator covers these; spelled out so that a failure says what broke.
    assert!(back.join(&g.non_utf8).is_file(), "non-UTF-8 name lost");
    assert!(g.root.join(&long_file).as_os_str().len() > 100);
    assert_eq!(fs::read(back.join(&long_file)).unwrap(), b"gw.deep=1\n", "long path lost");
    assert!(fs::symlink_metadata(back.join(&g.fifo)).unwrap().file_type().is_fifo());
    let (h1, h2) = &g.hardlink;
    let ino = |p: &Path| fs::metadata(back.join(p)).unwrap().ino();
    assert_eq!(ino(h1), ino(h2), "hard links extracted as copies");
    let mode = |rel: &str| fs::symlink_metadata(back.join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/setuid-helper"), 0o4755);
    assert_eq!(mode("bin/setgid-tool"), 0o2751);
    assert_eq!(mode("shared-tmp"), 0o1777);
    if require(g.sparse_supported, "this filesystem keeps no holes; the sparse check is skipped") {
        let md = fs::metadata(back.join(&g.sparse)).unwrap();
        assert_eq!(md.len(), 8 << 20);
        assert!(md.blocks() * 512 < md.len() / 4, "holes lost: {} bytes allocated", md.blocks() * 512);
    }
    if require(g.xattrs_supported, "this filesystem refuses user xattrs; the xattr check is skipped") {
        assert_eq!(
            xattr::get(back.join(&g.xattr_file), "user.cairn.origin").unwrap(),
            Some(b"gateway\xff\x00binary-value".to_vec())
        );
    }
    if g.path("run/null-device").exists() {
        let md = fs::symlink_metadata(back.join("run/null-device")).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == rustix::fs::makedev(1, 3));
    }

    // Holes are holes in the archive too, and owners travel as names as well as ids.
    let file = work.path().join("gw.tar");
    repo.cairn().args(["dump", "latest", "--archive", "tar", "--output"]).arg(&file).arg(&g.root).run().ok();
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert!(fs::metadata(&file).unwrap().len() < 8 << 20, "the sparse file went in whole");
    if require(is_root(), "not root: owners are not compared") {
        let listing = tar_listing(&file);
        let line = listing.iter().find(|l| l.contains("setgid-dir/private.key")).unwrap();
        assert!(line.contains("root/root"), "owner names missing: {line}");
        let line = listing.iter().find(|l| l.ends_with("setgid-dir/")).unwrap();
        assert!(line.contains("nobody/"), "owner name of uid 65534 missing: {line}");
        let by_name = work.path().join("by-name");
        dump_into_tar(&repo, &[g.root.as_os_str()], &by_name, &XATTRS);
        assert_trees_equal(&g.root, &restored(&by_name, &g.root), &opts);
    }
}

#[test]
fn dump_of_one_file_or_one_folder_holds_only_that() {
    let work = tempdir("cairn-dump-part-");
    let g = gateway_tree(&work.path().join("src"), 22, TreeSize::SMALL);
    let repo = Repo::new();
    repo.backup(&[&g.root], &[]);

    let file = g.path("bin/setuid-helper");
    let dst = work.path().join("one-file");
    dump_into_tar(&repo, &[file.as_os_str()], &dst, &[]);
    let all = files_below(&dst);
    assert_eq!(all, vec![restored(&dst, &file)], "only the file is in the archive");
    let md = fs::metadata(&all[0]).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755);
    assert_eq!(fs::read(&all[0]).unwrap(), fs::read(&file).unwrap());
    let src_md = fs::metadata(&file).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (src_md.mtime(), src_md.mtime_nsec()));

    // A folder holding one of a hard-linked pair: that one is a plain file in the archive.
    let folder = g.path(&g.instances[0]);
    let dst = work.path().join("one-folder");
    dump_into_tar(&repo, &[folder.as_os_str()], &dst, &XATTRS);
    let back = restored(&dst, &folder);
    let opts = CompareOptions { atime: false, owner: is_root(), ..Default::default() };
    assert_trees_equal(&folder, &back, &opts);
    let outside: Vec<PathBuf> = files_below(&dst).into_iter().filter(|p| !p.starts_with(&back)).collect();
    assert!(outside.is_empty(), "entries outside the folder: {outside:?}");
    assert!(back.join("startinstance.link").is_file());

    // Several paths in one archive, and the summary as JSON.
    let file2 = work.path().join("two.tar");
    let out = repo.cairn().args(["dump", "--json", "latest", "--archive", "tar", "-o"]).arg(&file2);
    let v = out.arg(&file).arg(&folder).run().ok().json();
    assert_eq!(v["links"], 0, "{v}");
    assert_eq!(v["output"], file2.to_str().unwrap(), "{v}");
    let listing = tar_listing(&file2);
    assert_eq!(v["files"].as_u64().unwrap() + v["dirs"].as_u64().unwrap(), listing.len() as u64, "{v}");
    let (a, b) = (file.strip_prefix("/").unwrap(), folder.strip_prefix("/").unwrap());
    assert!(listing[0].ends_with(a.to_str().unwrap()), "{listing:?}");
    assert!(listing[1].ends_with(&format!("{}/", b.display())), "{listing:?}");

    // A folder as --output: one clear line.
    let out = repo.cairn().args(["dump", "latest", "--archive", "tar", "-o"]).arg(work.path()).run();
    assert!(out.expect_code(2).one_line_error().contains("is a folder"));

    // A path the snapshot lacks: one clear line, no archive.
    let missing = g.path("no/such/file");
    let out = repo.cairn().args(["dump", "latest", "--archive", "tar"]).arg(&missing).run();
    assert_ne!(out.code, Some(0));
    assert!(out.stdout.is_empty(), "bytes written for a missing path");
    assert!(out.one_line_error().contains("not in this snapshot"), "{}", out.context());
}

/// Python's zipfile reads the archive: one JSON object per entry (name, mode, size, UT
/// mtime, symlink target), and regular files' contents written below OUT_DIR.
const READ_ZIP: &str = r#"
import json, os, struct, sys, zipfile
zf = zipfile.ZipFile(sys.argv[1])
entries = []
for info in zf.infolist():
    mode = info.external_attr >> 16
    extra, mtime = info.extra, None
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        if tag == 0x5455 and extra[4] & 1:
            mtime = struct.unpack("<i", extra[5:9])[0]
        extra = extra[4 + size:]
    entry = {"name": info.filename, "mode": mode, "size": info.file_size, "mtime": mtime,
             "method": info.compress_type}
    data = zf.read(info)
    if (mode & 0o170000) == 0o120000:
        entry["target"] = data.decode()
    elif not info.is_dir():
        out = os.path.join(sys.argv[2], info.filename)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(data)
    entries.append(entry)
print(json.dumps(entries))
"#;

#[test]
fn zip_dump_holds_contents_modes_times_and_symlinks() {
    let work = tempdir("cairn-dump-zip-");
    let g = gateway_tree(&work.path().join("src"), 23, TreeSize::SMALL);
    let repo = Repo::new();
    repo.backup(&[&g.root], &[]);
    let zip = work.path().join("gw.zip");
    let out =
        repo.cairn().args(["dump", "latest", "--archive", "zip", "-o"]).arg(&zip).arg(&g.root).run().ok();
    assert!(out.stderr.contains("gw.fifo: a fifo; zip cannot hold it"), "{}", out.context());
    assert!(out.stderr.contains("the name is not UTF-8"), "{}", out.context());

    let files = work.path().join("unzipped");
    let py = Command::new("python3").arg("-c").arg(READ_ZIP).arg(&zip).arg(&files).output().unwrap();
    assert!(py.status.success(), "zipfile: {}", String::from_utf8_lossy(&py.stderr));
    let entries: Vec<Value> = serde_json::from_slice(&py.stdout).unwrap();
    let prefix = g.root.strip_prefix("/").unwrap();
    let mut checked = (0, 0, 0);
    for (rel, e) in scan(&g.root) {
        let name = if rel.is_empty() { prefix.to_path_buf() } else { prefix.join(OsStr::from_bytes(&rel)) };
        let Ok(name) = name.into_os_string().into_string() else { continue };
        let want = if e.kind == Kind::Dir { format!("{name}/") } else { name.clone() };
        let found = entries.iter().find(|x| x["name"] == want.as_str());
        let path = g.root.join(OsStr::from_bytes(&rel));
        match e.kind {
            Kind::Fifo => {
                assert!(found.is_none(), "a fifo in the zip: {want}");
                continue;
            }
            Kind::Symlink => {
                let Some(target) = e.target.as_ref().and_then(|t| String::from_utf8(t.clone()).ok()) else {
                    continue;
                };
                let x = found.unwrap_or_else(|| panic!("{want} missing"));
                assert_eq!(x["target"], target.as_str(), "{want}");
                assert_eq!(x["mode"].as_u64().unwrap() & 0o170000, 0o120000, "{want} is no symlink");
                checked.2 += 1;
                continue;
            }
            Kind::File => {
                let x = found.unwrap_or_else(|| panic!("{want} missing"));
                assert_eq!(fs::read(files.join(&name)).unwrap(), read_quietly(&path), "{want}");
                assert_eq!(x["size"].as_u64(), Some(e.size));
                checked.0 += 1;
            }
            _ => checked.1 += 1,
        }
        let x = found.unwrap_or_else(|| panic!("{want} missing"));
        // zip keeps the rwx bits only.
        assert_eq!(x["mode"].as_u64().unwrap() & 0o777, u64::from(e.mode & 0o777), "{want}");
        assert_eq!(x["mtime"].as_i64(), Some(e.mtime.0), "{want}: mtime");
    }
    assert!(checked.0 as u64 >= g.files - 1 && checked.1 > 5 && checked.2 >= 2, "checked {checked:?}");
    // Text is deflated; random jars, which the repository could not compress, are stored.
    let method = |suffix: &str| {
        entries.iter().find(|e| e["name"].as_str().unwrap().ends_with(suffix)).unwrap()["method"].clone()
    };
    assert_eq!(method("db/gwdb.sql"), 8, "deflated");
    assert_eq!(method("system/lib/vendor-0.jar"), 0, "stored");

    // Info-ZIP's unzip (the strictest common reader) takes it whole and applies the
    // permission bits and the exact mtimes of files and folders.
    let test = Command::new("unzip").arg("-tq").arg(&zip).output().unwrap();
    assert!(test.status.success(), "unzip -t: {}", String::from_utf8_lossy(&test.stdout));
    let unzipped = work.path().join("info-zip");
    let unzip = Command::new("unzip").arg("-q").arg(&zip).arg("-d").arg(&unzipped).output().unwrap();
    assert!(
        unzip.status.success() && unzip.stderr.is_empty(),
        "unzip: {}",
        String::from_utf8_lossy(&unzip.stderr)
    );
    for rel in ["bin/setgid-tool", "db", "bin/readonly.cfg"] {
        let (a, b) =
            (fs::metadata(g.path(rel)).unwrap(), fs::metadata(restored(&unzipped, &g.path(rel))).unwrap());
        assert_eq!((b.mode() & 0o777, b.mtime()), (a.mode() & 0o777, a.mtime()), "{rel} after unzip");
    }

    let help = Cairn::new().args(["dump", "--help"]).run().ok();
    assert!(help.stdout.contains("zip cannot hold owners, xattrs"), "{}", help.stdout);
}

#[test]
fn a_damaged_chunk_fails_the_dump_and_leaves_no_archive() {
    let work = tempdir("cairn-dump-damage-");
    let src = work.path().join("src");
    write_random(&src.join("db/big.bin"), 24, 3 << 20);
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let pack = largest_pack(&repo.path);
    flip_byte(&pack, fs::metadata(&pack).unwrap().len() / 2);

    let outdir = work.path().join("out");
    fs::create_dir(&outdir).unwrap();
    for archive in ["tar", "zip"] {
        let file = outdir.join(format!("gw.{archive}"));
        let out = repo
            .cairn()
            .args(["dump", "latest", "--archive", archive, "--output"])
            .arg(&file)
            .arg(&src)
            .run();
        out.one_line_error();
        assert_eq!(out.code, Some(4), "damage exits 4 as in restore\n{}", out.context());
        assert!(out.stderr.contains("no complete archive"), "{}", out.context());
        let left: Vec<_> = fs::read_dir(&outdir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    // To a pipe: what was written is no complete archive for tar either.
    let raw =
        cairn_with(&repo.path, PASSWORD, &["dump", "latest", "--archive", "tar", src.to_str().unwrap()]);
    assert_eq!(raw.status.code(), Some(4));
    let mut tar = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let _ = tar.stdin.take().unwrap().write_all(&raw.stdout);
    assert!(!tar.wait().unwrap().success(), "tar took a failed dump for a whole archive");
}

#[test]
fn holes_are_found_in_a_repository_without_compression_too() {
    let work = tempdir("cairn-dump-holes-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    // Data, a 6 MiB hole, data, and a hole to the end.
    let f = fs::File::create(src.join("disk.img")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&Rng::new(25).bytes(100_000), 0).unwrap();
    f.write_all_at(b"middle", 6 << 20).unwrap();
    f.set_len(10 << 20).unwrap();
    drop(f);
    let repo = Repo::with_options(&["--compression", "0"]);
    repo.backup(&[&src], &[]);
    let dst = work.path().join("x");
    dump_into_tar(&repo, &[src.as_os_str()], &dst, &[]);
    let back = restored(&dst, &src).join("disk.img");
    assert_eq!(fs::read(&back).unwrap(), fs::read(src.join("disk.img")).unwrap());
    let allocated = fs::metadata(&back).unwrap().blocks() * 512;
    let source = fs::metadata(src.join("disk.img")).unwrap().blocks() * 512;
    if require(source < 2 << 20, "this filesystem keeps no holes; the sparse check is skipped") {
        // Holes end where the data does, to the 4 KiB block, as in the source.
        assert!(allocated <= source + (16 << 10), "holes lost: {allocated} bytes allocated, source {source}");
    }
}

#[test]
fn sigint_during_a_dump_exits_130_and_leaves_no_archive() {
    let work = tempdir("cairn-dump-int-");
    let src = work.path().join("src");
    write_random(&src.join("big.bin"), 26, 96 << 20);
    let repo = Repo::new();
    repo.backup(&[&src], &[]);
    let outdir = work.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let file = outdir.join("gw.tar");

    let child = repo.cairn().args(["dump", "latest", "--archive", "tar", "-o"]).arg(&file).arg(&src).spawn();
    // Interrupt once the archive is being written under its temporary name.
    let started = wait_until(std::time::Duration::from_secs(30), || {
        fs::read_dir(&outdir).unwrap().flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20))
    });
    assert!(started, "no archive data appeared");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::INT)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = Out::new("cairn dump (SIGINT)".into(), output.status, output.stdout, output.stderr);
    assert_ne!(out.code, Some(0), "the dump finished before SIGINT; make the file larger");
    let out = out.expect_code(130);
    assert!(!file.exists(), "a final archive from an interrupted dump");
    assert!(out.one_line_error().contains("interrupted"), "{}", out.context());
    let left: Vec<_> = fs::read_dir(&outdir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
