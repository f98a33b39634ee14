//! Attacks from format-spec/threat-model.md, each tried against the real binary: a
//! backup-only key holder (a compromised gateway host), a storage writer without any key,
//! and a sibling repository made with `--copy-chunker-params-from`. Every test ends the
//! same way: each snapshot that existed before the attack is still listed and restores
//! byte- and metadata-identical to what it restored to when it was made.

mod common;

use cairn::backend::FileType;
use cairn::format::envelope::{self, ObjectType};
use cairn::format::index::IndexFile;
use cairn::format::pack::Entry;
use cairn::id::{BlobId, PackId};
use cairn::index::{load_pack_lists, Index};
use cairn::pack::BlobWriter;
use cairn::repo::KeySource;
use cairn::Repository;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const BACKUP_ONLY_PASSWORD: &str = "gateway host key";

/// A repository with a backup-only key, two witnessed snapshots made with the full key,
/// and the source folder.
struct Scene {
    work: TempDir,
    repo: Repo,
    src: PathBuf,
    witness: Witness,
}

fn scene() -> Scene {
    let work = tempdir("cairn-adversary-");
    let src = work.path().join("src");
    gateway_tree(&src, 41, TreeSize::SMALL);
    let src = fs::canonicalize(&src).unwrap();
    let repo = Repo::with_options(&["--pack-size", "1M"]);
    repo.cairn()
        .args(["key", "add", "--backup-only"])
        .args(FAST_KDF)
        .env("CAIRN_NEW_PASSWORD", BACKUP_ONLY_PASSWORD)
        .run()
        .ok();
    let mut witness = Witness::new();
    witness.backup(&repo, &src, &["--time", "2026-11-01 10:00"]);
    fs::write(src.join("added-later.xml"), sql_dump(77, 40_000)).unwrap();
    set_times_everywhere(&src, 5);
    witness.backup(&repo, &src, &["--time", "2026-11-02 10:00"]);
    Scene { work, repo, src, witness }
}

fn open_as(repo: &Repo, password: &str) -> Repository {
    Repository::open(repo.path.to_str().unwrap(), password.as_bytes(), &KeySource::Stored).unwrap()
}

/// Every (pack, entry) the repository's index files name.
fn all_entries(repo: &Repository) -> Vec<(PackId, Entry)> {
    let (packs, damaged) = load_pack_lists(repo).unwrap();
    assert!(damaged.is_empty());
    packs.into_iter().flat_map(|(p, es)| es.into_iter().map(move |e| (p, e))).collect()
}

fn prune(repo: &Repo, extra: &[&str]) -> Out {
    repo.cairn().args(["prune", "--max-unused", "0"]).args(extra).run()
}

#[test]
fn a_backup_only_index_naming_a_made_up_pack_costs_the_owners_prune_nothing() {
    let mut s = scene();
    let attacker = open_as(&s.repo, BACKUP_ONLY_PASSWORD);
    assert!(!attacker.keys().can_read(), "the attacker holds a backup-only key");
    // Every blob listed again, under a pack id that sorts before every real one.
    let forged: Vec<Entry> = all_entries(&attacker).into_iter().map(|(_, e)| e).collect();
    attacker.save_index(&IndexFile { supersedes: vec![], packs: vec![(PackId([0; 32]), forged)] }).unwrap();

    s.repo.cairn().arg("check").run().ok();
    prune(&s.repo, &[]).ok();
    s.repo.cairn().args(["check", "--read-data"]).run().ok();
    assert_eq!(s.witness.verify_all(&s.repo), 2);
    // The owner's next backup still stores what it needs.
    fs::write(s.src.join("after-attack.xml"), sql_dump(78, 30_000)).unwrap();
    s.witness.backup(&s.repo, &s.src, &[]);
    s.witness.verify_all(&s.repo);
}

#[test]
fn a_backup_only_pack_claiming_every_blob_id_with_garbage_costs_the_owners_prune_nothing() {
    let mut s = scene();
    let attacker = open_as(&s.repo, BACKUP_ONLY_PASSWORD);
    // A real pack, sealed with the repository's keys, whose table names every used blob
    // id, each holding bytes that are not that blob; plus an index file that supersedes
    // every real index file.
    let ids: Vec<BlobId> = all_entries(&attacker).into_iter().map(|(_, e)| e.id).collect();
    let real_index: Vec<_> = attacker
        .backend()
        .list(FileType::Index)
        .unwrap()
        .iter()
        .map(|n| cairn::id::IndexId::from_hex(n).unwrap())
        .collect();
    let (done, _) = BlobWriter::run(&attacker, Index::default(), |w| {
        for (i, id) in ids.iter().enumerate() {
            w.save(*id, format!("not the data {i}").as_bytes()).unwrap();
        }
    })
    .unwrap();
    let () = done;
    let mut forged = all_entries(&attacker);
    forged.retain(|(p, _)| !real_packs_of(&s.repo, &real_index).contains(p));
    let mut by_pack: std::collections::BTreeMap<PackId, Vec<Entry>> = Default::default();
    for (p, e) in forged {
        by_pack.entry(p).or_default().push(e);
    }
    attacker.save_index(&IndexFile { supersedes: real_index, packs: by_pack.into_iter().collect() }).unwrap();

    prune(&s.repo, &[]).ok();
    assert_eq!(s.witness.verify_all(&s.repo), 2);
    s.repo.cairn().args(["forget", "--keep-last", "1", "--prune", "--max-unused", "0"]).run().ok();
    let kept = s.repo.snapshots()[0]["id"].as_str().unwrap().to_string();
    for id in s.witness.ids() {
        if id != kept {
            s.witness.drop_id(&id);
        }
    }
    assert_eq!(s.witness.verify_all(&s.repo), 1);
}

/// Packs named by the given (real) index files.
fn real_packs_of(repo: &Repo, files: &[cairn::id::IndexId]) -> Vec<PackId> {
    let full = open_as(repo, PASSWORD);
    let mut out = Vec::new();
    for f in files {
        let file = cairn::index::load_index_file(&full, f).unwrap();
        out.extend(file.packs.into_iter().map(|(p, _)| p));
    }
    out
}

#[test]
fn forged_future_snapshots_of_a_backup_only_key_do_not_make_forget_drop_real_ones() {
    let s = scene();
    let host = s.repo.snapshots()[0]["host"].as_str().unwrap().to_string();
    // The compromised host backs up its own (possibly altered) files dated far ahead and
    // just before the real ones, in the real snapshots' group.
    for time in ["2099-01-01 00:00", "2098-01-01 00:00", "2026-11-02 10:30", "2026-11-02 11:00"] {
        s.repo
            .cairn()
            .password(BACKUP_ONLY_PASSWORD)
            .args(["backup", "--host", &host, "--time", time])
            .arg(&s.src)
            .run()
            .ok();
    }
    let out = s.repo.cairn().args(["forget", "--keep-last", "2", "--prune", "--json"]).run().ok();
    assert!(out.stderr.contains("future"), "future-dated snapshots are reported\n{}", out.context());
    assert_eq!(s.witness.verify_all(&s.repo), 2);
    let out = s.repo.cairn().args(["forget", "--keep-within", "30d", "--prune"]).run().ok();
    let _ = out;
    // Counted back from now, 30 days keeps nothing from November 2026 once that is past;
    // what matters here is that the forged 2099 snapshot did not move the window.
    let snaps = s.repo.snapshots();
    let times: Vec<&str> = snaps.iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert!(
        times.iter().any(|t| t.starts_with("2099")),
        "a future snapshot is kept until its time: {times:?}"
    );
}

#[test]
fn replayed_index_files_do_not_make_a_backup_claim_data_that_is_gone() {
    let s = scene();
    let saved = s.work.path().join("saved-index");
    copy_dir(&s.repo.path.join("index"), &saved);
    // Forget everything, prune every byte, then put the old index files back.
    let ids = s.witness.ids();
    s.repo.cairn().arg("forget").args(&ids).run().ok();
    prune(&s.repo, &[]).ok();
    for e in fs::read_dir(&saved).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), s.repo.path.join("index").join(e.file_name())).unwrap();
    }
    let mut witness = Witness::new();
    witness.backup(&s.repo, &s.src, &[]);
    s.repo.cairn().args(["check", "--read-data"]).run().ok();
    witness.verify_all(&s.repo);
}

/// `init` a repository at `at`: one that shares `source`'s ids, or (with `None`) an
/// unrelated one.
fn init_sharing_ids(at: &Path, source: Option<&Repo>) {
    let mut init = Cairn::new().repo(at).arg("init").args(FAST_KDF);
    if let Some(src) = source {
        init = init.arg("--copy-chunker-params-from").arg(&src.path).env("CAIRN_FROM_PASSWORD", PASSWORD);
    }
    init.run().ok();
}

#[test]
fn a_sibling_repositorys_index_files_are_not_accepted() {
    let s = scene();
    let sibling = s.work.path().join("sibling");
    init_sharing_ids(&sibling, Some(&s.repo));
    Cairn::new().repo(&sibling).arg("backup").arg(&s.src).run().ok();
    // A fresh repository made from the same source, which the sibling's index files are
    // then copied into; its own backup must store the data itself.
    let fresh = s.work.path().join("fresh");
    init_sharing_ids(&fresh, Some(&s.repo));
    for e in fs::read_dir(sibling.join("index")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), fresh.join("index").join(e.file_name())).unwrap();
    }
    let fresh = Repo { dir: tempdir("cairn-unused-"), path: fresh };
    let mut witness = Witness::new();
    let out = fresh.cairn().args(["backup", "--json"]).arg(&s.src).run().ok();
    assert!(out.stderr.contains("left out"), "the foreign index files are reported\n{}", out.context());
    witness.record(&fresh, out.json()["snapshot"].as_str().unwrap(), &s.src);
    // They do not open here: check names them, and prune replaces them.
    let out = fresh.cairn().args(["check", "--read-data"]).run().expect_code(4);
    assert!(out.stderr.contains("index file"), "{}", out.context());
    fresh.cairn().arg("prune").run().ok();
    fresh.cairn().args(["check", "--read-data"]).run().ok();
    witness.verify_all(&fresh);
    assert_eq!(s.witness.verify_all(&s.repo), 2, "the source repository lost nothing either");
}

/// A sparse file of 8 GiB under `dir`, named like an object of that folder.
fn plant_huge(dir: &Path, name: &str) {
    fs::create_dir_all(dir).unwrap();
    let f = fs::File::create(dir.join(name)).unwrap();
    f.set_len(8 << 30).unwrap();
}

/// Peak resident memory of the largest finished child of this test process, in bytes
/// (nextest runs each test in a process of its own).
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn planted_huge_objects_and_costly_key_files_neither_exhaust_memory_nor_wedge_commands() {
    let mut s = scene();
    let hex = "ab".repeat(32);
    for folder in ["locks", "keys", "index", "snapshots"] {
        plant_huge(&s.repo.path.join(folder), &hex);
    }
    plant_huge(&s.repo.path.join("log"), &format!("0000000000000099-{hex}"));
    plant_costly_key(&s.repo.path);
    let started = std::time::Instant::now();
    let out = s.repo.cairn().arg("snapshots").run().expect_code(4);
    assert!(out.stderr.contains("not read"), "the planted snapshot is named, unread\n{}", out.context());
    fs::write(s.src.join("after-plant.xml"), sql_dump(79, 20_000)).unwrap();
    s.witness.backup(&s.repo, &s.src, &[]);
    let out = s.repo.cairn().arg("log").run();
    assert_eq!(out.code, Some(4), "the planted log entry is reported\n{}", out.context());
    let out = s.repo.cairn().arg("check").run();
    assert_eq!(out.code, Some(4), "check reports the planted objects as damage\n{}", out.context());
    s.witness.verify_all(&s.repo);
    let peak = children_peak_rss();
    assert!(peak < 200 << 20, "a command used {} MiB", peak >> 20);
    assert!(started.elapsed().as_secs() < 120, "commands took {:?}", started.elapsed());
}

/// A well-formed key file, named by its hash, asking for the Argon2id ceiling.
fn plant_costly_key(repo: &Path) {
    use cairn::crypto::keys::{KdfParams, MasterKey};
    use cairn::format::keyfile::KeyFile;
    let master = MasterKey::generate().unwrap();
    // Wrapping at the ceiling would cost the test itself minutes: wrap cheaply, then
    // rewrite the stored parameters (the tag then fails, but only after the derivation).
    let keys = master.derive(master.public_key(), [0; 32]).unwrap();
    let bytes = KeyFile::wrap(&master, &keys, b"planted", KdfParams::FLOOR, "h", "u").unwrap();
    let mut kf = KeyFile::decode(&bytes).unwrap();
    kf.header.kdf = KdfParams::CEILING;
    let costly = kf.encode();
    assert_eq!(KeyFile::decode(&costly).unwrap().header.kdf, KdfParams::CEILING);
    let name = blake3::hash(&costly).to_hex().to_string();
    fs::write(repo.join("keys").join(name), costly).unwrap();
}

#[test]
fn a_planted_log_name_neither_wedges_the_log_nor_is_followed() {
    let mut s = scene();
    let hex = "cd".repeat(32);
    fs::write(s.repo.path.join("log").join(format!("9999999999999999-{hex}")), b"junk").unwrap();
    let id = s.witness.backup(&s.repo, &s.src, &[]);
    let out = s.repo.cairn().args(["log", "--json"]).run();
    assert_eq!(out.code, Some(4), "the planted entry is reported\n{}", out.context());
    let log = out.json();
    let entries = log["entries"].as_array().unwrap();
    let newest_backup = entries.iter().rev().find(|e| e["operation"] == "backup").unwrap();
    assert_eq!(
        newest_backup["snapshot"],
        id.as_str(),
        "the new backup's entry is in the chain: {}",
        out.stdout
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.iter().all(|&n| n < 1000), "the planted number was followed: {seqs:?}");
    s.witness.verify_all(&s.repo);
}

#[test]
fn prune_refuses_while_a_snapshot_is_damaged_until_the_user_names_it() {
    let s = scene();
    let names = s.repo.objects("snapshots");
    let victim = names.iter().find(|n| *n == &s.witness.ids()[0]).unwrap().clone();
    flip_byte(&s.repo.path.join("snapshots").join(&victim), 60);
    let out = prune(&s.repo, &[]);
    assert_eq!(out.code, Some(7), "{}", out.context());
    let line = out.one_line_error();
    assert!(line.contains(&victim[..8]) && line.contains("forget"), "{line}");
    // The other snapshot lost nothing; named, the damaged one goes, and prune runs.
    let mut kept = s.witness;
    kept.drop_id(&victim);
    kept.verify_all(&s.repo);
    s.repo.cairn().arg("forget").arg(&victim[..12]).run().ok();
    prune(&s.repo, &[]).ok();
    assert_eq!(kept.verify_all(&s.repo), 1);
}

#[test]
fn prune_refuses_while_a_snapshot_was_written_by_a_newer_cairn() {
    let s = scene();
    let full = open_as(&s.repo, PASSWORD);
    let (_, snap) = full.find_snapshot(&s.witness.ids()[1]).unwrap();
    let mut payload = snap.encode();
    payload[0] = 99; // a snapshot encoding this cairn does not know
    let bytes = envelope::seal(full.keys(), ObjectType::Snapshot, &payload).unwrap();
    let name = blake3::hash(&bytes).to_hex().to_string();
    full.backend().write(FileType::Snapshot, &name, &bytes).unwrap();
    // The newer snapshot uses data that only it references.
    let out = prune(&s.repo, &[]);
    assert_eq!(out.code, Some(7), "{}", out.context());
    assert!(out.one_line_error().contains(&name[..8]));
    assert_eq!(s.witness.verify_all(&s.repo), 2);
    let out = s.repo.cairn().args(["forget", "--keep-last", "1"]).run();
    assert_eq!(out.code, Some(7), "forget refuses too\n{}", out.context());
}

/// A tree blob whose encoding is not the canonical one (an over-long varint, which the
/// decoder accepts) is copied so that the copy still hashes to its id: byte for byte to
/// a repository that shares the ids, encoded anew to one that does not.
#[test]
fn copy_keeps_a_non_canonical_tree_hashing_to_its_id() {
    use cairn::format::snapshot::Snapshot;
    use cairn::id::TreeId;
    let mut s = scene();
    let full = open_as(&s.repo, PASSWORD);
    let (_, snap) = full.find_snapshot(&s.witness.ids()[1]).unwrap();
    let index = Index::load(&full).unwrap();
    let reader = cairn::pack::PackReader::new(&full);
    let mut bytes = reader.read_indexed(&index, &BlobId::Tree(snap.tree)).unwrap();
    // The last field of a tree blob is the count of its parts: 0, one byte. Two bytes
    // (0x80 0x00) say the same thing.
    assert_eq!(bytes.pop(), Some(0));
    bytes.extend_from_slice(&[0x80, 0x00]);
    assert!(cairn::format::tree::TreeBlob::decode(&bytes).is_ok(), "the decoder accepts the long form");
    let odd = TreeId(*full.keys().tree_id(&bytes).as_bytes());
    let (saved, _) = BlobWriter::run(&full, index, |w| w.save(BlobId::Tree(odd), &bytes)).unwrap();
    assert!(saved.unwrap());
    let odd_snap = full.save_snapshot(&Snapshot { tree: odd, ..snap.clone() }).unwrap();
    s.witness.record(&s.repo, &odd_snap.to_hex(), &s.src);

    for share_ids in [true, false] {
        let dest = s.work.path().join(format!("dest-{share_ids}"));
        init_sharing_ids(&dest, share_ids.then_some(&s.repo));
        Cairn::new()
            .repo(&dest)
            .args(["copy", &odd_snap.to_hex(), "--from-repo"])
            .arg(&s.repo.path)
            .env("CAIRN_FROM_PASSWORD", PASSWORD)
            .run()
            .ok();
        let dest = Repo { dir: tempdir("cairn-unused-"), path: dest };
        dest.cairn().args(["check", "--read-data"]).run().ok();
        let target = s.work.path().join(format!("restored-{share_ids}"));
        dest.restore("latest", &target, &[]).ok();
        assert_same_tree(&s.src, &restored(&target, &s.src));
    }
    s.witness.verify_all(&s.repo);
}
