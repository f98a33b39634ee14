#!/usr/bin/env bash
# How fast the dashboard's pages load on a repository with many snapshots.
#
#   bash benches/ui.sh [--snapshots N] [--runs R]
#
# Makes a repository of N snapshots (default 1000) of a small tree, one file changed in
# each, with a check and a drill every 100 backups (so the log and the plots have drills),
# starts `cairn ui` on 127.0.0.1, and fetches each page and API endpoint R times
# (default 11) with curl after two warm-up fetches. Prints the median, lowest and highest
# time of each, in seconds. Work files go to $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
N=1000
RUNS=11
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshots) N=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }
command -v curl >/dev/null || { echo "ui.sh: needs curl (Debian: apt-get install curl)" >&2; exit 1; }

say "building cairn (release)"
cargo build --release --quiet --bin cairn
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-ui.XXXXXX")
UI_PID=
trap '[ -n "$UI_PID" ] && kill "$UI_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
cp target/release/cairn "$WORK/cairn"
CAIRN=$WORK/cairn
export CAIRN_PASSWORD=bench-password
REPO=$WORK/repo
SRC=$WORK/gateway
mkdir -p "$SRC/conf" "$SRC/groups"
for i in $(seq 50); do head -c 20000 /dev/urandom >"$SRC/groups/group-$i.xml"; done
"$CAIRN" init --repo "$REPO" -q
say "making $N snapshots"
for i in $(seq "$N"); do
  echo "<policy run=\"$i\"/>" >"$SRC/conf/policy.xml"
  "$CAIRN" backup --repo "$REPO" "$SRC" --label job=gw -q
  if [ $((i % 100)) = 0 ]; then
    "$CAIRN" check --repo "$REPO" -q
    "$CAIRN" drill --repo "$REPO" >/dev/null
  fi
done
FIRST=$("$CAIRN" snapshots --repo "$REPO" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CAIRN_UI_TOKEN=bench-token-0123456789
"$CAIRN" ui --repo "$REPO" --listen "127.0.0.1:$PORT" >"$WORK/ui.log" 2>&1 &
UI_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

printf '%-48s %8s %8s %8s %8s\n' "page ($N snapshots)" median lowest highest bytes
for path in "/" "/snapshots" "/snapshots?from=2000-01-01&label=job%3Dgw" "/browse?snap=latest&path=$SRC/groups" \
  "/diff?a=$FIRST&b=latest" "/plots" "/log" "/log?q=drill" "/api/snapshots" "/api/overview" "/api/series"; do
  url="http://127.0.0.1:$PORT$path"
  get() { curl -s -o /dev/null -H "Authorization: Bearer $CAIRN_UI_TOKEN" -w '%{time_total} %{size_download} %{http_code}\n' "$url"; }
  get >/dev/null
  get >/dev/null
  name=${path//$SRC/SRC}
  name=${name//$FIRST/FIRST}
  for _ in $(seq "$RUNS"); do get; done | sort -n | awk -v name="$name" '
    $3 != 200 { bad = $3 }
    { t[NR] = $1; b = $2 }
    END {
      if (bad) { printf "%-48s HTTP %s\n", name, bad; exit 1 }
      printf "%-48s %8.3f %8.3f %8.3f %8d\n", name, t[int((NR + 1) / 2)], t[1], t[NR], b
    }'
done
