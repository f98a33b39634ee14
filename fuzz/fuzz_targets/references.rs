//! References records: References::decode on arbitrary bytes never panics, and what it
//! accepts is sorted without duplicates and survives encode -> decode (by value: postcard
//! takes a varint written longer than needed). The same bytes as a tree blob: the record
//! made of whatever tree decodes names exactly its chunks and named trees, and decodes.
#![no_main]

use cairn::format::references::References;
use cairn::format::tree::{NodeKind, TreeBlob};
use cairn::id::{RefsId, TreeId};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = References::decode(data) {
        assert!(r.subtrees.windows(2).all(|w| w[0] < w[1]));
        assert!(r.chunks.windows(2).all(|w| w[0] < w[1]));
        let back = References::decode(&r.encode()).expect("re-encoded record decodes");
        assert_eq!(back, r);
    }
    if let Ok(blob) = TreeBlob::decode(data) {
        let record = References::of_tree_blob(TreeId([1; 32]), &blob, |t| Ok(RefsId(t.0))).unwrap();
        let mut chunks = BTreeSet::new();
        let mut named: BTreeSet<[u8; 32]> = blob.parts.iter().map(|p| p.0).collect();
        for n in &blob.nodes {
            match &n.kind {
                NodeKind::File { chunks: c, .. } => chunks.extend(c.iter().copied()),
                NodeKind::Dir { tree } => {
                    named.insert(tree.0);
                }
                _ => {}
            }
        }
        assert_eq!(record.chunks, chunks.into_iter().collect::<Vec<_>>());
        assert_eq!(record.subtrees.iter().map(|r| r.0).collect::<Vec<_>>(), named.into_iter().collect::<Vec<_>>());
        assert_eq!(References::decode(&record.encode()).expect("a made record decodes"), record);
    }
});
