//! tar_stream::read_tar (`backup --stdin-tar`) on arbitrary streams: never panics; every
//! folder it stores passes the tree check (sorted, unique, safe names) and survives
//! encode -> decode; the root comes last; no folder sits deeper than MAX_DEPTH + 1 (the
//! root is one more); every counted file's size is the bytes handed on for it.
#![no_main]

use cairn::format::tree::{Tree, TreeBlob};
use cairn::format::Timespec;
use cairn::id::TreeId;
use cairn::ops::tar_stream::{read_tar, Content, Counted, TarSink};
use libfuzzer_sys::fuzz_target;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Read;

/// A sparse entry may declare far more bytes than the input holds (its holes are zeros):
/// content past this many bytes is reported as a read failure, which ends the stream.
const CONTENT_LIMIT: u64 = 4 << 20;
/// Folders deeper than this would mean the depth limit did not hold (the root is one more).
const DEEPEST: usize = 1025;

#[derive(Default)]
struct Sink {
    /// Each stored tree's depth below the root, by its id: a folder is one deeper than its
    /// deepest child folder.
    heights: RefCell<HashMap<TreeId, usize>>,
    stored: RefCell<Vec<TreeId>>,
    handed_on: Cell<u64>,
    counted_bytes: Cell<u64>,
}

impl TarSink for Sink {
    fn interrupted(&self) -> cairn::error::Result<()> {
        Ok(())
    }
    fn file(&self, content: &mut dyn Read) -> cairn::error::Result<Content> {
        let mut buf = [0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => size += n as u64,
                Err(e) => return Ok(Err(e.to_string())),
            }
            if size > CONTENT_LIMIT {
                return Ok(Err("longer than the fuzz target reads".into()));
            }
        }
        self.handed_on.set(self.handed_on.get() + size);
        Ok(Ok((size, Vec::new())))
    }
    fn tree(&self, tree: Tree) -> cairn::error::Result<TreeId> {
        tree.check().expect("stored folders pass the tree check");
        let blobs = tree.encode_blobs(|_| TreeId([0; 32]));
        let back = TreeBlob::decode(&blobs.last().expect("a head blob").1).expect("a stored tree decodes");
        if back.parts.is_empty() {
            assert_eq!(back.nodes, tree.nodes, "encode -> decode round trip");
        }
        let mut heights = self.heights.borrow_mut();
        let height = 1 + tree
            .nodes
            .iter()
            .filter_map(|n| match n.kind {
                cairn::format::tree::NodeKind::Dir { tree } => {
                    Some(*heights.get(&tree).expect("a folder's subfolders are stored before it"))
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        assert!(height <= DEEPEST, "a folder {height} deep was stored");
        // Ids only need to tell the stored folders apart here.
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(heights.len() as u64 + 1).to_le_bytes());
        let id = TreeId(id);
        heights.insert(id, height);
        self.stored.borrow_mut().push(id);
        Ok(id)
    }
    fn left_out(&self, path: &str, why: &str) {
        assert!(!why.is_empty() && !why.contains('\n'), "one line for {path}");
    }
    fn counted(&self, what: Counted) {
        if let Counted::File(size) = what {
            self.counted_bytes.set(self.counted_bytes.get() + size);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let sink = Sink::default();
    let Ok(root) = read_tar(data, Timespec { secs: 1_733_400_000, nanos: 0 }, &sink) else {
        return;
    };
    assert_eq!(sink.stored.borrow().last(), Some(&root), "the root folder is stored last");
    assert_eq!(sink.counted_bytes.get(), sink.handed_on.get(), "counted sizes are the bytes read");
});
