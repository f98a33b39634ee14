#!/usr/bin/env bash
# Build every fuzz target on the stable toolchain (no sanitizer) and run each for a few
# seconds. Usage: fuzz/smoke.sh [SECONDS_PER_TARGET] (default 10). Exits non-zero if a
# target fails to build or finds a crash; crashing inputs land in fuzz/artifacts/<target>/.
set -euo pipefail

secs="${1:-10}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [seconds per target]" >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")"

# Stable is enough with -s none: cargo-fuzz then passes only stable -C flags.
if command -v rustup >/dev/null 2>&1; then
    export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=(keyfile key_material config pack index tree references snapshot snapshot_file lock log envelope compress job_file serve_request s3_answer restic tar index_cache)

echo "== building ${#targets[@]} targets ($(rustc --version))"
cargo fuzz build -s none

count_artifacts() {
    if [ -d "artifacts/$1" ]; then
        find "artifacts/$1" -type f | wc -l
    else
        echo 0
    fi
}

failed=()
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    mkdir -p "$corpus"
    dirs=("$corpus")
    if [ -d "seeds/$t" ]; then
        dirs+=("seeds/$t")
    fi
    # Inputs that once crashed a target are run again first, every time.
    if [ -d "regressions/$t" ]; then
        dirs+=("regressions/$t")
    fi
    before=$(count_artifacts "$t")
    echo "== $t: ${secs}s"
    log="target/smoke-$t.log"
    if ! cargo fuzz run -s none "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        if [ "$(count_artifacts "$t")" -gt "$before" ]; then
            echo "!! $t CRASHED; new input(s) under fuzz/artifacts/$t/. Last lines of fuzz/$log:"
        else
            echo "!! $t FAILED to build or run. Last lines of fuzz/$log:"
        fi
        tail -n 40 "$log"
        failed+=("$t")
    else
        grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "== FAILED: ${failed[*]}"
    exit 1
fi
echo "== all ${#targets[@]} targets ran ${secs}s without a crash"
