#!/usr/bin/env bash
# Key rotation on a repository with history: back up the gateway corpus N times (default
# 10), each after one mutation round, then time, with /usr/bin/time, a full read
# (`check --read-data`, for scale), a copy of every snapshot into a new repository that
# shares the chunker parameters (the nearest other command that reads and rewrites
# everything), `key rotate` twice (each a whole rotation: every pack, snapshot, index
# file and log entry sealed anew), a copy into a repository with other ids (every chunk
# read and named anew), and `key rotate --content-keys` (every snapshot read back, cut
# and stored anew, then the whole repository read with the new keys alone).
#
#   bash benches/rotate.sh [--snapshots N] [--scale S]
#
# Results: Markdown on stdout. Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=10
SCALE=1.0
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
cargo build --release --quiet --bin cairn --example corpus
cairn=$PWD/target/release/cairn
corpus=$PWD/target/release/examples/corpus
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-rotate.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY=$work/repo CAIRN_PASSWORD=bench CAIRN_FROM_PASSWORD=bench TZ=UTC
"$corpus" generate "$work/data" --scale "$SCALE" >/dev/null
"$cairn" init -q
for i in $(seq 1 "$N"); do
  [ "$i" -gt 1 ] && "$corpus" mutate "$work/data" "$i" >/dev/null
  "$cairn" backup -q --host bench "$work/data"
done
"$cairn" key add -q --backup-only --new-password-file <(echo backup-host)
size=$(du -sb "$work/repo" | cut -f1)
packs=$(find "$work/repo/data" -type f | wc -l)
timed() { /usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >"$work/out" 2>&1; read -r w u s m <"$work/t"; echo "$w $(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }') $((m / 1024))"; }
row() { # NAME "WALL CPU RSS"
  read -r w c m <<<"$2"
  echo "| $1 | $w | $c | $m | $(awk -v b="$size" -v w="$w" 'BEGIN { printf "%.0f", b / 1e6 / w }') |"
}
# Warm the cache by reading the repository's bytes.
find "$work/repo" -type f -exec cat {} + >/dev/null
check=$(timed "$cairn" check --read-data)
"$cairn" init -q --repo "$work/copy" --copy-chunker-params-from "$work/repo"
copy=$(timed "$cairn" copy --repo "$work/copy" --from-repo "$work/repo")
first=$(timed "$cairn" key rotate)
first_text=$(cat "$work/out")
second=$(timed "$cairn" key rotate)
after=$(timed "$cairn" check --read-data)
"$cairn" init -q --repo "$work/other"
other=$(timed "$cairn" copy --repo "$work/other" --from-repo "$work/repo")
rm -rf "$work/copy" "$work/other"
content=$(timed "$cairn" key rotate --content-keys)
content_text=$(cat "$work/out")
after_content=$(timed "$cairn" check --read-data)
cat <<MD
### Key rotation after $N backups of the gateway corpus (scale $SCALE)

Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM.
Repository: $((size / 1000000)) MB in $packs packs, $N snapshots, two keys (full, backup-only). Warm cache.

| command | wall s | CPU s | peak RSS MiB | repository MB/s |
|---|--:|--:|--:|--:|
$(row "check --read-data (reads everything)" "$check")
$(row "copy of every snapshot (shared chunker parameters)" "$copy")
$(row "key rotate (first)" "$first")
$(row "key rotate (second)" "$second")
$(row "check --read-data after" "$after")
$(row "copy of every snapshot (other ids)" "$other")
$(row "key rotate --content-keys" "$content")
$(row "check --read-data after" "$after_content")

First rotation: $first_text

Content key rotation: $content_text
MD
