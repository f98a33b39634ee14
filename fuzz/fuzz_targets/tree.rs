//! TreeBlob::decode on arbitrary bytes (tree versions 1 and 2): never panics; what it
//! accepts has sorted, unique, safe names, never both entries and parts, and survives
//! encode -> decode unchanged.
#![no_main]

use cairn::format::tree::{valid_name, Tree, TreeBlob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(b) = TreeBlob::decode(data) else {
        return;
    };
    assert!(b.nodes.is_empty() || b.parts.is_empty(), "entries and parts together accepted");
    for pair in b.nodes.windows(2) {
        assert!(pair[0].name < pair[1].name, "names sorted and unique");
    }
    let t = Tree { nodes: b.nodes.clone() };
    for n in &t.nodes {
        assert!(valid_name(&n.name), "unsafe name accepted: {:?}", n.name);
        assert!(!n.name.contains(&b'/') && n.name != b".." && n.name != b".");
        let found = t.find(&n.name).expect("find locates every entry");
        assert_eq!(found, n);
    }
    let enc = b.encode();
    let back = TreeBlob::decode(&enc).expect("re-encoded tree decodes");
    assert_eq!(back, b);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
