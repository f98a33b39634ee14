#!/usr/bin/env bash
# Commands that read every snapshot, on a long history.
#
#   bash benches/history.sh [--snapshots N] [--runs R]
#
# Backs a small tree up once, then stores N-1 more snapshots of it an hour apart with the
# history example (examples/history.rs: snapshot objects only, as hourly backups of an
# unchanged tree leave), so the repository holds N snapshots (default 10,000). Times R
# runs (default 5) of `snapshots`, `snapshots --json`, a forget plan (--dry-run) with a
# typical retention policy, then that forget itself (it removes all but about 100) and
# one that removes the oldest 100, each on a fresh copy of the repository. Prints each run and the medians, with peak memory. Work files go to $BENCH_DIR
# (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=10000
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }

say "building cairn and the history example (release)"
cargo build --release --quiet --bin cairn --example history
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-history.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CAIRN=$WORK/cairn
cp target/release/cairn "$CAIRN"
export CAIRN_PASSWORD=bench-password
mkdir -p "$WORK/src"
for i in $(seq 20); do head -c 50000 /dev/urandom >"$WORK/src/file-$i"; done
"$CAIRN" init --repo "$WORK/repo" -q
"$CAIRN" backup --repo "$WORK/repo" "$WORK/src" -q
say "storing $((N - 1)) more snapshots"
target/release/examples/history "$WORK/repo" $((N - 1)) >/dev/null
find "$WORK/repo" -type f -exec cat {} + >/dev/null

POLICY=(--keep-hourly 48 --keep-daily 30 --keep-weekly 8 --keep-monthly 24)
RESULTS=$WORK/runs.tsv
: >"$RESULTS"
timed() { # NAME COMMAND...
  local name=$1
  shift
  /usr/bin/time -f "$name	%e	%M" -a -o "$RESULTS" "$@" >/dev/null
}
for _ in $(seq "$RUNS"); do
  timed "snapshots" "$CAIRN" snapshots --repo "$WORK/repo" -q
  timed "snapshots --json" "$CAIRN" snapshots --repo "$WORK/repo" --json
  timed "forget --dry-run (plan)" "$CAIRN" forget --repo "$WORK/repo" "${POLICY[@]}" --dry-run -q
  rm -rf "$WORK/copy"
  cp -a "$WORK/repo" "$WORK/copy"
  find "$WORK/copy" -type f -exec cat {} + >/dev/null
  timed "forget (removes all but ~100)" "$CAIRN" forget --repo "$WORK/copy" "${POLICY[@]}" -q
  rm -rf "$WORK/copy"
  cp -a "$WORK/repo" "$WORK/copy"
  find "$WORK/copy" -type f -exec cat {} + >/dev/null
  timed "forget --keep-last N-100" "$CAIRN" forget --repo "$WORK/copy" --keep-last $((N - 100)) -q
done
echo "snapshots in the repository: $N"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, kb = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append((float(secs), int(kb)))
print(f"{'command':<34} {'median s':>8} {'runs':<28} {'peak RSS MB':>11}")
for name, runs in rows.items():
    times = sorted(t for t, _ in runs)
    print(f"{name:<34} {statistics.median(times):>8.2f} {' '.join(f'{t:.2f}' for t in times):<28} {max(k for _, k in runs) / 1024:>11.0f}")
PY
