#!/usr/bin/env bash
# The maintenance key. First N backups (default 100) of a small gateway config folder,
# one a day, from a full key and a backup-only key in turn; timed once with
# /usr/bin/time: `key add --maintenance` (enabling: every snapshot sealed anew with its
# summary); then side by side with hyperfine, the full key against the maintenance key:
# `snapshots`, `forget --dry-run` with a year's policy, and `check` (no data read), and
# the full key's `snapshots` and `forget` on a copy made before enabling (no summaries).
# Then the same on a long history: H snapshots (default 10,000) stored an hour apart by
# examples/history.rs, as in benches/history.sh.
#
#   bash benches/maintenance.sh [--snapshots N] [--history H]
#
# Needs hyperfine (a Debian package; installed if missing). Results: Markdown on stdout.
# Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=100
H=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --history) H=${2:?}; shift 2 ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ! command -v hyperfine >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq hyperfine >&2
fi
cargo build --release --quiet --bin cairn --example history
cairn=$PWD/target/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-maintenance.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY=$work/repo TZ=UTC
mkdir -p "$work/src/conf/groups"
for i in $(seq 1 40); do head -c 20000 /dev/urandom | base64 >"$work/src/conf/groups/store-$i.xml"; done
CAIRN_PASSWORD=full "$cairn" init -q
CAIRN_PASSWORD=full CAIRN_NEW_PASSWORD=writer "$cairn" key add -q --backup-only
for i in $(seq 1 "$N"); do
  echo "round $i" >"$work/src/conf/round.txt"
  day=$(date -u -d "2025-01-01 + $i days" +%F)
  pw=full; [ $((i % 2)) = 0 ] && pw=writer
  CAIRN_PASSWORD=$pw "$cairn" backup -q --host gw --time "$day 12:00" "$work/src"
done
bare=$(du -sb "$work/repo/snapshots" | cut -f1)
cp -a "$work/repo" "$work/bare"
/usr/bin/time -f '%e %M' -o "$work/t" env CAIRN_PASSWORD=full CAIRN_NEW_PASSWORD=keeper \
  "$cairn" key add -q --maintenance
read -r enable_s enable_kb <"$work/t"
summarized=$(du -sb "$work/repo/snapshots" | cut -f1)
policy="--keep-daily 7 --keep-weekly 5 --keep-monthly 12"
hyperfine -N --warmup 1 --runs 10 --export-json "$work/h.json" \
  -n "snapshots, full key, no summaries" "env CAIRN_PASSWORD=full $cairn -r $work/bare snapshots --json" \
  -n "snapshots, full key" "env CAIRN_PASSWORD=full $cairn snapshots --json" \
  -n "snapshots, maintenance key" "env CAIRN_PASSWORD=keeper $cairn snapshots --json" \
  -n "forget --dry-run, full key, no summaries" "env CAIRN_PASSWORD=full $cairn -r $work/bare forget --dry-run -q $policy" \
  -n "forget --dry-run, full key" "env CAIRN_PASSWORD=full $cairn forget --dry-run -q $policy" \
  -n "forget --dry-run, maintenance key" "env CAIRN_PASSWORD=keeper $cairn forget --dry-run -q $policy" \
  -n "check, full key" "env CAIRN_PASSWORD=full $cairn check -q" \
  -n "check, maintenance key" "env CAIRN_PASSWORD=keeper $cairn check -q" >&2
medians() { python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("| %s | %.0f | %.0f | %.0f |" % (r["command"], r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3))
' "$1"; }

# The long history: one backup, then H-1 snapshot objects an hour apart.
hist=$work/hist
mkdir -p "$work/hsrc"
for i in $(seq 20); do head -c 50000 /dev/urandom >"$work/hsrc/file-$i"; done
CAIRN_PASSWORD=full "$cairn" init -q -r "$hist"
CAIRN_PASSWORD=full "$cairn" backup -q -r "$hist" "$work/hsrc"
CAIRN_PASSWORD=full target/release/examples/history "$hist" $((H - 1)) >/dev/null
cp -a "$hist" "$work/hist-bare"
/usr/bin/time -f '%e %M' -o "$work/t" env CAIRN_PASSWORD=full CAIRN_NEW_PASSWORD=keeper \
  "$cairn" key add -q --maintenance -r "$hist"
read -r henable_s henable_kb <"$work/t"
find "$hist" "$work/hist-bare" -type f -exec cat {} + >/dev/null
hpolicy="--keep-hourly 48 --keep-daily 30 --keep-weekly 8 --keep-monthly 24"
hyperfine -N --warmup 1 --runs 5 --export-json "$work/hh.json" \
  -n "snapshots, full key, no summaries" "env CAIRN_PASSWORD=full $cairn -r $work/hist-bare snapshots -q" \
  -n "snapshots, full key" "env CAIRN_PASSWORD=full $cairn -r $hist snapshots -q" \
  -n "snapshots, maintenance key" "env CAIRN_PASSWORD=keeper $cairn -r $hist snapshots -q" \
  -n "forget --dry-run, full key" "env CAIRN_PASSWORD=full $cairn -r $hist forget --dry-run -q $hpolicy" \
  -n "forget --dry-run, maintenance key" "env CAIRN_PASSWORD=keeper $cairn -r $hist forget --dry-run -q $hpolicy" \
  -n "check, full key" "env CAIRN_PASSWORD=full $cairn -r $hist check -q" \
  -n "check, maintenance key" "env CAIRN_PASSWORD=keeper $cairn -r $hist check -q" >&2
cat <<MD
### The maintenance key ($N snapshots, $(nproc) cores)

\`key add --maintenance\` on $N snapshots without summaries: ${enable_s} s, peak RSS $((enable_kb / 1024)) MB.
Snapshot files: $bare bytes bare, $summarized bytes with summaries ($(( (summarized - bare) / N )) bytes more each).

| command | median ms | min ms | max ms |
|---|--:|--:|--:|
$(medians "$work/h.json")

On $H snapshots: \`key add --maintenance\` ${henable_s} s, peak RSS $((henable_kb / 1024)) MB.

| command | median ms | min ms | max ms |
|---|--:|--:|--:|
$(medians "$work/hh.json")
MD
