//! The gate every test with a precondition goes through (`require` in common/mod.rs): it
//! skips with a note when the machine lacks something, and fails under
//! CAIRN_TEST_STRICT=1, which CI sets, so that no check passes without running.

mod common;

use common::require_in;

#[test]
fn a_met_precondition_runs_the_check_in_either_mode() {
    assert!(require_in(false, true, "always there"));
    assert!(require_in(true, true, "always there"));
}

#[test]
fn a_missing_precondition_skips_outside_strict_mode() {
    assert!(!require_in(false, false, "not on this machine"));
}

#[test]
fn a_missing_precondition_fails_in_strict_mode() {
    let failed = std::panic::catch_unwind(|| require_in(true, false, "not on this machine"));
    let message = failed.expect_err("strict mode must fail the test");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("not on this machine") && text.contains("CAIRN_TEST_STRICT"), "{text}");
}

#[test]
fn ci_sets_strict_mode_and_checks_its_own_preconditions() {
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let strict = ci.find("export CAIRN_TEST_STRICT=1").expect(".ci/run must export CAIRN_TEST_STRICT=1");
    let tests = ci.find("scripts/test.sh").expect(".ci/run runs scripts/test.sh");
    assert!(strict < tests, "strict mode must be set before the tests run");
    for needed in ["id -u", "command -v cc", "command -v c++", "/dev/fuse"] {
        assert!(ci[..tests].contains(needed), ".ci/run does not check `{needed}` before the tests");
    }
}
