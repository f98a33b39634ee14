//! Tree::decode on arbitrary bytes: never panics; what it accepts has sorted, unique,
//! safe names and survives encode -> decode unchanged.
#![no_main]

use cairn::format::tree::{valid_name, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Tree::decode(data) else {
        return;
    };
    for pair in t.nodes.windows(2) {
        assert!(pair[0].name < pair[1].name, "names sorted and unique");
    }
    for n in &t.nodes {
        assert!(valid_name(&n.name), "unsafe name accepted: {:?}", n.name);
        assert!(!n.name.contains(&b'/') && n.name != b".." && n.name != b".");
        let found = t.find(&n.name).expect("find locates every entry");
        assert_eq!(found, n);
    }
    let enc = t.encode();
    let back = Tree::decode(&enc).expect("re-encoded tree decodes");
    assert_eq!(back, t);
    assert_eq!(back.encode(), enc, "encoding is stable");
});
