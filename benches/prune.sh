#!/usr/bin/env bash
# Prune after a long history: back up the gateway corpus N times (default 100), each time
# after one mutation round, then forget all but a retention set and prune, timed with
# /usr/bin/time. Shows that prune's work follows the data it repacks, not the history,
# and how much of the forgotten data lies in wholly unused packs and frames
# (examples/prune_granularity.rs), which a prune that cannot open packs could reclaim.
#
#   bash benches/prune.sh [--snapshots N] [--scale S]
#
# Results: Markdown on stdout. Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=100
SCALE=1.0
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    *) echo "prune.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet --bin cairn --example corpus --example prune_granularity
cairn=$PWD/target/release/cairn
corpus=$PWD/target/release/examples/corpus
granularity=$PWD/target/release/examples/prune_granularity
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-prune.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY=$work/repo CAIRN_PASSWORD=bench TZ=UTC
"$corpus" generate "$work/data" --scale "$SCALE" >/dev/null
"$cairn" init -q
t0=$(date +%s)
for i in $(seq 1 "$N"); do
  [ "$i" -gt 1 ] && "$corpus" mutate "$work/data" "$i" >/dev/null
  # One snapshot a day, so daily/weekly/monthly retention has a calendar to work on.
  day=$(date -u -d "2026-01-01 + $i days" '+%Y-%m-%d 02:00')
  "$cairn" backup -q --host bench --time "$day" "$work/data"
done
t1=$(date +%s)
size_before=$(du -sb "$work/repo" | cut -f1)
timed() { /usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >"$work/out" 2>&1; read -r w u s m <"$work/t"; echo "$w $(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }') $((m / 1024))"; }
sync
check=$(timed "$cairn" check)
forget=$(timed "$cairn" forget --keep-daily 7 --keep-weekly 4 --keep-monthly 3)
share() { awk -v n="$1" -v d="$2" 'BEGIN { printf "%.1f MiB (%.0f%%)", n / 1048576, 100 * n / d }'; }
while read -r name bytes; do declare "g_$name=$bytes"; done < <("$granularity" "$CAIRN_REPOSITORY")
sync
dry=$(timed "$cairn" prune --dry-run)
dry_text=$(cat "$work/out")
sync
prune=$(timed "$cairn" prune)
prune_text=$(cat "$work/out")
size_after=$(du -sb "$work/repo" | cut -f1)
sync
check_after=$(timed "$cairn" check --read-data)
cat <<MD
### Prune after $N snapshots of the gateway corpus (scale $SCALE)

Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM.
$N backups took $((t1 - t0)) s in all (mutations included). Repository: $((size_before / 1000000)) MB before, $((size_after / 1000000)) MB after prune.
Retention: --keep-daily 7 --keep-weekly 4 --keep-monthly 3.

| step | wall s | CPU s | peak RSS MiB |
|---|--:|--:|--:|
| check (structure, $N snapshots) | $(echo "$check" | tr ' ' '|' | sed 's/|/ | /g') |
| forget | $(echo "$forget" | tr ' ' '|' | sed 's/|/ | /g') |
| prune --dry-run | $(echo "$dry" | tr ' ' '|' | sed 's/|/ | /g') |
| prune | $(echo "$prune" | tr ' ' '|' | sed 's/|/ | /g') |
| check --read-data after | $(echo "$check_after" | tr ' ' '|' | sed 's/|/ | /g') |

Dry run: $dry_text

Prune: $prune_text

Of the $(share "$g_unused" "$g_stored") of the stored bytes that no kept snapshot uses, a prune
that deletes only wholly unused packs reclaims $(share "$g_whole_packs" "$g_unused"), and one that
also drops wholly unused frames $(share "$g_whole_frames" "$g_unused").
MD
