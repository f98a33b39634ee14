#!/usr/bin/env bash
# Browsing benchmark (issue #9 targets): ls -l --recursive of a ~25k-file snapshot, diff of
# two snapshots that differ by one mutation round (about 1% of the files), find and stats,
# timed with hyperfine side by side with restic's ls and diff on the same corpus.
#
#   bash benches/browse.sh [--scale S]
#
# Needs hyperfine and restic (Debian packages; installed if missing). Work files go to a
# fresh folder under $BENCH_DIR (default /tmp), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1.0
[ "${1:-}" = "--scale" ] && SCALE=${2:?}

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v restic >/dev/null || missing+=(restic)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
cargo build --release --quiet --bin cairn --example corpus
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-browse.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BIN=$PWD/target/release
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
C="$BIN/cairn -r $WORK/cairn"
R="restic -q -r $WORK/restic"

"$BIN/examples/corpus" generate "$WORK/corpus" --scale "$SCALE" >/dev/null
$C init -q
$R init >/dev/null
$C backup -q "$WORK/corpus"
$R backup "$WORK/corpus" >/dev/null
"$BIN/examples/corpus" mutate "$WORK/corpus" 1 >/dev/null
$C backup -q "$WORK/corpus"
$R backup "$WORK/corpus" >/dev/null
read -r C1 C2 < <($C snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[0]["id"], s[1]["id"])')
read -r R1 R2 < <($R snapshots --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[0]["id"], s[1]["id"])')
files=$($C ls --recursive latest | wc -l)
changes=$($C diff "$C1" "$C2" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["changes"]))')
echo "corpus: $files entries; the two snapshots differ in $changes entries" >&2

hyperfine -N --warmup 2 --runs 10 --export-markdown "$WORK/table.md" \
  -n "cairn ls -l --recursive" "$C ls -l --recursive latest" \
  -n "restic ls -l" "$R ls -l latest" \
  -n "cairn diff" "$C diff $C1 $C2" \
  -n "restic diff" "$R diff $R1 $R2" \
  -n "cairn find (all snapshots)" "$C find nodemanager.xml" \
  -n "cairn stats" "$C stats" >&2
echo "entries: $files, changed entries: $changes"
cat "$WORK/table.md"
