//! The Backend contract (src/backend/mod.rs), run against every backend: a local folder,
//! an S3 bucket on s3s-fs, a folder over SFTP on sshd and a repository on `cairn serve`
//! (real servers on 127.0.0.1, started through scripts/servers/). Remote backends are
//! opened through `backend::open`, so the retry wrapper and the location parsing are part
//! of the test. Objects are named by the hash of their bytes, as the format names them
//! (the served store checks it).

mod servers;

use cairn::backend::{self, Backend, FileType};
use cairn::ErrorKind;
use servers::Server;

fn hex(seed: u8) -> String {
    named(&[seed])
}

/// The name the format gives an object with these bytes.
fn named(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn contract(b: &dyn Backend) {
    b.create().unwrap();
    assert!(b.list(FileType::Config).unwrap().is_empty());
    b.write(FileType::Config, "config", b"cfg").unwrap();
    assert_eq!(b.list(FileType::Config).unwrap(), vec!["config".to_string()]);
    assert_eq!(b.create().unwrap_err().kind(), ErrorKind::AlreadyExists, "create over a repository");

    // Whole and ranged reads; a range past the end gives what is there.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let pack = named(&bytes);
    b.write(FileType::Pack, &pack, &bytes).unwrap();
    assert_eq!(b.read(FileType::Pack, &pack, 1 << 30).unwrap(), bytes);
    assert_eq!(b.read_range(FileType::Pack, &pack, 1000, 5000).unwrap(), &bytes[1000..6000]);
    assert_eq!(b.read_range(FileType::Pack, &pack, 199_990, 100).unwrap(), &bytes[199_990..]);
    assert!(b.read_range(FileType::Pack, &pack, 300_000, 10).unwrap().is_empty());
    assert_eq!(b.size(FileType::Pack, &pack).unwrap(), bytes.len() as u64);
    assert!(b.exists(FileType::Pack, &pack).unwrap());

    // A large object reads back whole (remote backends read it in parallel spans).
    let big: Vec<u8> = (0..(5u32 << 19) + 12_345).map(|i| (i * 31 % 255) as u8).collect();
    let big_name = named(&big);
    b.write(FileType::Index, &big_name, &big).unwrap();
    assert!(b.read(FileType::Index, &big_name, 1 << 30).unwrap() == big, "a large object read back differs");
    assert_eq!(
        b.read_range(FileType::Index, &big_name, 1 << 20, 100).unwrap(),
        &big[1 << 20..(1 << 20) + 100]
    );
    // Ranges over several requests' worth (SFTP asks for 255 KiB pieces at once), one of
    // them running past the end.
    assert!(b.read_range(FileType::Index, &big_name, 200_000, 700_001).unwrap() == big[200_000..900_001]);
    let tail = big.len() as u64 - 600_000;
    assert!(b.read_range(FileType::Index, &big_name, tail, 2 << 20).unwrap() == big[tail as usize..]);
    // An object larger than the caller allows is refused, whole, and named by its size.
    let refused = b.read(FileType::Index, &big_name, 300_000).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Corrupt, "{refused}");
    assert!(refused.to_string().contains(&format!("is {} bytes", big.len())), "{refused}");
    b.remove(FileType::Index, &big_name).unwrap();

    // Empty objects exist and read back empty.
    let empty = named(b"");
    b.write(FileType::Lock, &empty, b"").unwrap();
    assert_eq!(b.read(FileType::Lock, &empty, 1 << 30).unwrap(), b"");
    assert_eq!(b.size(FileType::Lock, &empty).unwrap(), 0);

    // Each type is its own namespace, and packs in different subfolders all list.
    let mut packs: Vec<String> = (10..20).map(hex).collect();
    std::thread::scope(|s| {
        for (seed, name) in (10..20u8).zip(&packs) {
            s.spawn(move || b.write(FileType::Pack, name, &[seed]).unwrap());
        }
    });
    packs.push(pack.clone());
    packs.sort();
    let mut listed = b.list(FileType::Pack).unwrap();
    listed.sort();
    assert_eq!(listed, packs);
    // The detailed listing names the same objects, with their sizes and times.
    let mut detailed = b.list_detailed(FileType::Pack).unwrap();
    detailed.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(detailed.iter().map(|e| e.name.clone()).collect::<Vec<_>>(), packs);
    for e in &detailed {
        assert_eq!(e.size, b.size(FileType::Pack, &e.name).unwrap(), "{}", e.name);
        assert!(e.modified.is_some(), "{} has no time", e.name);
    }
    for ft in [FileType::Index, FileType::Snapshot, FileType::Key, FileType::Log] {
        assert!(b.list(ft).unwrap().is_empty(), "{ft:?} is empty");
    }
    let snap = named(b"snap");
    b.write(FileType::Snapshot, &snap, b"snap").unwrap();
    assert_eq!(b.list(FileType::Snapshot).unwrap(), vec![snap.clone()]);
    assert_eq!(b.read(FileType::Index, &snap, 1 << 30).unwrap_err().kind(), ErrorKind::NotFound);

    // Writing the same object again is harmless (retries do it).
    b.write(FileType::Snapshot, &snap, b"snap").unwrap();
    assert_eq!(b.read(FileType::Snapshot, &snap, 1 << 30).unwrap(), b"snap");

    // Missing objects are NotFound, for every operation, and nothing else.
    let missing = hex(99);
    assert_eq!(b.read(FileType::Pack, &missing, 1 << 30).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(b.read_range(FileType::Pack, &missing, 0, 10).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(b.size(FileType::Pack, &missing).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(b.remove(FileType::Pack, &missing).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!b.exists(FileType::Pack, &missing).unwrap());

    // Removal.
    b.remove(FileType::Pack, &pack).unwrap();
    assert_eq!(b.read(FileType::Pack, &pack, 1 << 30).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!b.list(FileType::Pack).unwrap().contains(&pack));
    b.remove(FileType::Lock, &empty).unwrap();
    assert!(b.list(FileType::Lock).unwrap().is_empty());

    // Names that could leave the repository's folder never reach the store.
    for bad in ["../x", "a/b", ""] {
        assert!(b.write(FileType::Snapshot, bad, b"x").is_err(), "{bad:?} accepted");
    }
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend::open(dir.path().join("repo").to_str().unwrap()).unwrap();
    contract(b.as_ref());
}

#[test]
fn s3_backend_keeps_the_contract() {
    let server = Server::s3();
    for (k, v) in &server.env {
        // Safe here: nextest runs each test in its own process, before any thread starts.
        std::env::set_var(k, v);
    }
    let b = backend::open(&server.location("conformance")).unwrap();
    contract(b.as_ref());
}

#[test]
fn sftp_backend_keeps_the_contract() {
    let server = Server::sftp();
    for (k, v) in &server.env {
        std::env::set_var(k, v);
    }
    let b = backend::open(&server.location("conformance")).unwrap();
    contract(b.as_ref());

    // Init makes every pack folder; one that is missing (a repository made by an older
    // cairn, or a folder removed) is made when a pack first goes there.
    let b = backend::open(&server.location("folders")).unwrap();
    b.create().unwrap();
    let data = server.storage("folders").join("data");
    let made = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(made, 256, "pack folders made by init");
    std::fs::remove_dir(data.join("ab")).unwrap();
    let bytes = b"a pack in a folder made on first use".to_vec();
    let name = format!("ab{}", &named(&bytes)[2..]);
    b.write(FileType::Pack, &name, &bytes).unwrap();
    assert_eq!(b.read(FileType::Pack, &name, 1 << 20).unwrap(), bytes);
    assert!(b.list(FileType::Pack).unwrap().contains(&name));
}

#[test]
fn served_backend_keeps_the_contract() {
    let server = Server::cairn(&[]);
    let location = server.location("conformance");
    let token = server.token("conformance", "admin");
    cairn::backend::rest::register_token(&location, token.into());
    let b = backend::open(&location).unwrap();
    contract(b.as_ref());
}
