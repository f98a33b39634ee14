#!/usr/bin/env bash
# Reading a large file through `cairn mount` against `cairn restore` (and `cairn cat`) of
# the same file: one 200 MB random file backed up once, then R rounds (default 10) of
#   - mount, `cat FILE > /dev/null` through the mount (a fresh mount each round, so the
#     kernel has none of it cached), a second read (now from the page cache), unmount;
#   - `cairn restore latest --include FILE` into an empty folder;
#   - `cairn cat latest FILE > /dev/null`.
# Needs FUSE (/dev/fuse; root, or fusermount3/fusermount).
#
#   bash benches/mount.sh [--rounds R] [--mb SIZE] [--cold]
#
# --cold drops the kernel's caches (as root) before each timed read, so the repository's
# packs come from the disk, not from memory.
#
# Results: Markdown on stdout (medians, min-max). Work files in a fresh folder under
# $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
R=10
MB=200
COLD=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) R=${2:?}; shift 2 ;;
    --mb) MB=${2:?}; shift 2 ;;
    --cold) COLD=1; shift ;;
    *) echo "mount.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet --bin cairn
cairn=${CARGO_TARGET_DIR:-$PWD/target}/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-mount.XXXXXX")
mnt=$work/mnt
pid=
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" || true
  if grep -q " $mnt " /proc/self/mountinfo; then umount -l "$mnt" 2>/dev/null || fusermount -u -z "$mnt" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export CAIRN_REPOSITORY=$work/repo CAIRN_PASSWORD=bench TZ=UTC
file=$work/data/big.bin
mkdir -p "$work/data" "$mnt"
head -c "$((MB * 1000 * 1000))" /dev/urandom >"$file"
"$cairn" init -q --kdf-memory 64M --kdf-iterations 3
"$cairn" backup -q "$file"
sync
now() { [ -n "$COLD" ] && sync && echo 3 >/proc/sys/vm/drop_caches; date +%s.%N; }
since() { echo "$(date +%s.%N) - $1" | bc; }
for i in $(seq 1 "$R"); do
  t=$(now)
  "$cairn" mount -q "$mnt" & pid=$!
  until grep -q " $mnt " /proc/self/mountinfo; do sleep 0.01; done
  up=$(since "$t")
  ls "$mnt/latest$file" >/dev/null
  t=$(now); cat "$mnt/latest$file" >/dev/null; cold=$(since "$t")
  t=$(date +%s.%N); cat "$mnt/latest$file" >/dev/null; warm=$(since "$t") # no drop: the page cache is the point
  kill -INT "$pid"; wait "$pid"; pid=
  rm -rf "$work/target"
  t=$(now); "$cairn" restore -q latest --target "$work/target" --include "$file"; restore=$(since "$t")
  cmp -s "$work/target$file" "$file" || { echo "mount.sh: the restored file differs" >&2; exit 1; }
  t=$(now); "$cairn" cat latest "$file" >/dev/null; cat_=$(since "$t")
  echo "$cold $restore $cat_ $up $warm" >>"$work/times"
done
python3 - "$work/times" "$MB" "$R" "$COLD" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
mb, rounds = float(sys.argv[2]), sys.argv[3]
med = lambda i: statistics.median(r[i] for r in rows)
cold = " (kernel caches dropped before each timed read)" if sys.argv[4] else ""
print(f"Reading one {mb:.0f} MB random file, median of {rounds} rounds{cold}:\n")
print("| how | seconds | MB/s | min-max s |")
print("|---|--:|--:|---|")
names = ["through the mount, first read", "`restore --include` (to disk)", "`cat` (to /dev/null)",
         "mount start-up (until mounted)", "through the mount, second read (page cache)"]
for i, n in enumerate(names):
    lo, hi = min(r[i] for r in rows), max(r[i] for r in rows)
    rate = f"{mb / med(i):.0f}" if i != 3 else ""
    print(f"| {n} | {med(i):.3f} | {rate} | {lo:.3f}-{hi:.3f} |")
print(f"\nmount first read / restore: {med(1) / med(0):.0%} of restore's throughput; "
      f"/ cat: {med(2) / med(0):.0%} of cat's")
EOF
