#!/usr/bin/env bash
# Memory and time on a repository of many blobs: the index at any size.
#
#   bash benches/index_scale.sh [--blobs N] [--scale S] [--quick]
#
# Makes a repository holding one backup of a generated gateway corpus (scale S, default
# 0.05), adds index entries for N made-up chunks (default 50 million, as a 3 TB
# repository of 64 KiB chunks has) with examples/many_blobs.rs, then runs once each, under
# /usr/bin/time -v, in this order:
#   1. a backup of the corpus after a change: the first command, which builds this
#      machine's index cache file;
#   2. another such backup: the cache file mapped, the new index file beside it;
#   3. a restore of the first snapshot into an empty folder;
#   4. a backup with --no-cache: every index file loaded into memory, as without the cache;
#   5. check (structure: every index file, snapshot, tree and pack), which makes the cache
#      file anew from the store and reads the packs' entry lists a batch at a time;
#   6. check --no-cache, the index and every pack's entries in memory (skipped with
#      --quick).
# Prints wall seconds, CPU seconds and peak RSS of each as Markdown. Work files (about 6 GB
# per 50 million blobs) go to $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=50000000
SCALE=0.05
QUICK=
while [ $# -gt 0 ]; do
  case "$1" in
    --blobs) N=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }

say "building cairn, the corpus generator and the many_blobs example (release)"
cargo build --release --quiet --bin cairn --example corpus --example many_blobs
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-index-scale.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
cp target/release/cairn target/release/examples/corpus target/release/examples/many_blobs "$WORK/bin/"
CAIRN=$WORK/bin/cairn
export CAIRN_PASSWORD=bench-password CAIRN_CACHE_DIR=$WORK/cache
REPO=$WORK/repo

say "a repository with one backup of the corpus (scale $SCALE)"
"$WORK/bin/corpus" generate "$WORK/data" --scale "$SCALE" >/dev/null
"$CAIRN" init --repo "$REPO" -q
"$CAIRN" backup --repo "$REPO" -q --no-cache "$WORK/data"
FIRST=$("$CAIRN" snapshots --repo "$REPO" --no-cache --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
# The backup's packs in the page cache, read (not only listed), as after a backup; the
# made-up packs added next are sparse and never read.
find "$REPO/data" -type f -exec cat {} + >/dev/null
say "adding $N made-up blobs to the index"
start=$(date +%s.%N)
"$WORK/bin/many_blobs" "$REPO" "$N" >/dev/null
say "added in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}') s; index files: $(du -sh "$REPO/index" | cut -f1)"
# The index files and the rest in the page cache too.
find "$REPO" -path "$REPO/data" -prune -o -type f -exec cat {} + >/dev/null

run() { # label, then the command
  local label=$1 out
  shift
  out=$(/usr/bin/time -f '%e %U %S %M' "$@" 2>&1 >/dev/null | tail -1)
  read -r wall user sys rss <<<"$out"
  printf '| %s | %s | %s | %s |\n' "$label" "$wall" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" "$((rss / 1024))"
}
change() { date +%s%N >"$WORK/data/changed-$1"; }

echo "Index of $N made-up blobs plus the corpus (scale $SCALE); one run each; $(nproc) cores; $(date -u +%F)"
echo
echo "| command | wall s | CPU s | peak RSS MiB |"
echo "|---|--:|--:|--:|"
change 1
run "backup, building the cache file" "$CAIRN" backup --repo "$REPO" -q "$WORK/data"
change 2
run "backup, cache file mapped" "$CAIRN" backup --repo "$REPO" -q "$WORK/data"
run "restore of the first snapshot" "$CAIRN" restore --repo "$REPO" -q "$FIRST" --target "$WORK/restored"
change 3
run "backup --no-cache (index in memory)" "$CAIRN" backup --repo "$REPO" -q --no-cache "$WORK/data"
run "check (structure)" "$CAIRN" check --repo "$REPO" -q
[ -n "$QUICK" ] || run "check --no-cache (structure, in memory)" "$CAIRN" check --repo "$REPO" -q --no-cache
echo
echo "Cache file: $(du -sh "$WORK/cache" | cut -f1)"
