#!/usr/bin/env bash
# `cairn import restic` against the manual route it replaces: `restic restore` of each
# snapshot into a folder, then `cairn backup --time` of that folder. Both start from the
# same restic repository (format 2): the gateway corpus backed up N times (default 3),
# one mutation round between backups. Times with /usr/bin/time; the manual route's
# temporary disk is the largest restored snapshot.
#
#   bash benches/import_restic.sh [--snapshots N] [--scale S]
#
# Results: Markdown on stdout. Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=3
SCALE=0.25
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    *) echo "import_restic.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v restic >/dev/null || { echo "import_restic.sh: restic is missing (apt-get install restic)" >&2; exit 1; }
cargo build --release --quiet --bin cairn --example corpus
target=${CARGO_TARGET_DIR:-$PWD/target}
cairn=$target/release/cairn
corpus=$target/release/examples/corpus
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-import-restic.XXXXXX")
trap 'rm -rf "$work"' EXIT
export RESTIC_PASSWORD=bench CAIRN_PASSWORD=bench CAIRN_FROM_PASSWORD=bench TZ=UTC
"$corpus" generate "$work/data" --scale "$SCALE" >/dev/null
restic -q -r "$work/restic" --no-cache init --repository-version 2
for i in $(seq 1 "$N"); do
  [ "$i" -gt 1 ] && "$corpus" mutate "$work/data" "$((i - 1))" >/dev/null
  restic -q -r "$work/restic" --no-cache backup "$work/data"
done
timed() { /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null; read -r w m <"$work/t"; echo "$w $((m / 1024))"; }
"$cairn" -r "$work/imported" init -q
"$cairn" -r "$work/manual" init -q
sync
read -r import_s import_mib < <(timed "$cairn" -r "$work/imported" import restic -q --from-repo "$work/restic")
start=$(date +%s.%N)
peak=0
while read -r id time; do
  restic -q -r "$work/restic" --no-cache restore "$id" --target "$work/tmp"
  size=$(du -sb "$work/tmp" | cut -f1)
  [ "$size" -gt "$peak" ] && peak=$size
  "$cairn" -r "$work/manual" backup -q --time "$time" "$work/tmp"
  rm -rf "$work/tmp"
done < <(restic -r "$work/restic" --no-cache snapshots --json |
  python3 -c 'import json, sys; [print(s["id"], s["time"]) for s in sorted(json.load(sys.stdin), key=lambda s: s["time"])]')
manual_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
data_mib=$(( $(du -sb "$work/data" | cut -f1) / 1048576 ))
echo "| $N snapshots of ${data_mib} MiB (corpus scale $SCALE) | import restic | restic restore + cairn backup |"
echo "|---|--:|--:|"
echo "| time | ${import_s} s | ${manual_s} s |"
echo "| peak memory of cairn | ${import_mib} MiB | |"
echo "| temporary disk | 0 | $((peak / 1048576)) MiB |"
echo "| repository | $(( $(du -sb "$work/imported" | cut -f1) / 1048576 )) MiB | $(( $(du -sb "$work/manual" | cut -f1) / 1048576 )) MiB |"
