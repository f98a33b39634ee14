#!/usr/bin/env bash
# Restore beside restic's and beside cairn's own full read check, on one tree.
#
#   bash benches/restore.sh [--tree DIR | --scale S] [--repeat R] [--baseline CAIRN_BIN]
#
# Backs the tree (default: the generated gateway corpus at --scale, default 1.0) up once
# with cairn and once with restic, reads both repositories into the page cache, then
# runs R rounds (default 5) of: cairn restore, restic restore (alone, and followed by
# `sync`, as cairn's restore ends with its files on disk), `cairn check --read-data`
# (and a restore with --baseline's binary, to compare two builds of cairn), each restore
# into a fresh folder (a folder deleted just before makes ext4's inode allocation slow
# for whoever restores next). Prints each run's wall, user and system seconds, then the
# medians and the ratios: restic's restore time over cairn's, paired per round, and
# cairn's restore user CPU over check's. Work files go to $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
TREE=
SCALE=1.0
REPEAT=5
BASELINE=
while [ $# -gt 0 ]; do
  case "$1" in
    --tree) TREE=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    --repeat) REPEAT=${2:?}; shift 2 ;;
    --baseline) BASELINE=${2:?}; shift 2 ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }
command -v restic >/dev/null || { echo "restore.sh: needs restic (Debian: apt-get install restic)" >&2; exit 1; }

say "building cairn and the corpus generator (release)"
cargo build --release --quiet --bin cairn --example corpus
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-restore.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin" "$WORK/out"
cp target/release/cairn target/release/examples/corpus "$WORK/bin/"
CAIRN=$WORK/bin/cairn
if [ -z "$TREE" ]; then
  TREE=$WORK/data/apigw
  say "generating the gateway corpus (scale $SCALE)"
  "$WORK/bin/corpus" generate "$TREE" --scale "$SCALE" >/dev/null
fi
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR=$WORK/restic-cache
say "backing up $TREE ($(du -sh "$TREE" | cut -f1), $(find "$TREE" -type f | wc -l) files)"
"$CAIRN" init --repo "$WORK/cairn" -q
"$CAIRN" backup --repo "$WORK/cairn" "$TREE" -q
restic init -r "$WORK/restic" -q
restic backup -r "$WORK/restic" -q "$TREE"
find "$WORK/cairn" "$WORK/restic" -type f -exec cat {} + >/dev/null

RUNS=$WORK/runs.tsv
: >"$RUNS"
timed() { # NAME ROUND COMMAND...
  local name=$1 round=$2
  shift 2
  /usr/bin/time -f "$name	$round	%e	%U	%S" -a -o "$RUNS" "$@"
}
for r in $(seq "$REPEAT"); do
  say "round $r of $REPEAT"
  timed cairn "$r" "$CAIRN" restore latest --repo "$WORK/cairn" --target "$WORK/out/c$r" -q
  timed restic "$r" restic restore latest -r "$WORK/restic" --target "$WORK/out/r$r" -q
  # cairn's restore ends once its files are on the disk (syncfs); restic's does not wait.
  timed restic+sync "$r" sh -c "restic restore latest -r '$WORK/restic' --target '$WORK/out/s$r' -q && sync"
  timed check "$r" "$CAIRN" check --repo "$WORK/cairn" --read-data -q
  if [ -n "$BASELINE" ]; then
    timed baseline "$r" "$BASELINE" restore latest --repo "$WORK/cairn" --target "$WORK/out/b$r" -q
  fi
done
diff -r "$TREE" "$WORK/out/c1$TREE" >/dev/null || { echo "restore.sh: cairn's restore differs from the tree" >&2; exit 1; }

python3 - "$RUNS" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    name, rnd, wall, user, sys_ = line.split("\t")
    runs[name][int(rnd)] = (float(wall), float(user), float(sys_))
print("| run | wall, s (median) | user, s | system, s | per round (wall) |")
print("|---|--:|--:|--:|---|")
for name, by in runs.items():
    rows = [by[r] for r in sorted(by)]
    med = [statistics.median(x[i] for x in rows) for i in range(3)]
    print(f"| {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {', '.join(f'{x[0]:.2f}' for x in rows)} |")
pair = lambda a, b, i: statistics.median(runs[a][r][i] / runs[b][r][i] for r in runs[a])
print()
print(f"restic restore / cairn restore, median of per-round ratios: {pair('restic', 'cairn', 0):.2f}x "
      f"(restic restore and sync: {pair('restic+sync', 'cairn', 0):.2f}x)")
print(f"cairn restore user CPU / check --read-data user CPU: {pair('cairn', 'check', 1):.2f}x")
if "baseline" in runs:
    print(f"restic restore / baseline restore: {pair('restic', 'baseline', 0):.2f}x; "
          f"baseline user CPU / check: {pair('baseline', 'check', 1):.2f}x")
EOF
