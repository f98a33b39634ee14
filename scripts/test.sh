#!/usr/bin/env bash
# The whole test suite: formatting, lints, a short run of every fuzz target, the Debian
# package (built, installed, used and removed: needs root), then all
# unit and integration tests (the golden repository and real-failure tests included).
# Lints and tests build with the feature `failpoints`, so the fault tests (the failpoint
# matrix, the failing store) run too; a release build never has it.
# FUZZ_SECONDS sets the length of each fuzz run (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --all-targets --features failpoints --quiet -- -D warnings
echo "== fuzz smoke (${FUZZ_SECONDS:-10} s per target)"
bash fuzz/smoke.sh "${FUZZ_SECONDS:-10}"
echo "== doc tests"
cargo test --doc --quiet
echo "== the Debian package"
bash scripts/test-package.sh
echo "== unit and integration tests"
cargo nextest run --workspace --features failpoints --no-fail-fast
