#!/usr/bin/env bash
# Remote stores over an emulated long link: about 40 ms round trip and 200 Mbit/s.
#
#   bash benches/wan.sh [--scale S] [--rtt MS] [--rate MBIT] [--snapshots N] [--restores R]
#                       [--backends "s3 sftp served"] [--cairn BIN]   (as root)
#
# Everything runs inside a network namespace this script creates and removes, on its
# loopback only. The rate comes from tbf on that loopback (its MTU lowered to 1500 first,
# or tbf drops 64 KiB packets); the latency from scripts/servers/delay-proxy.py, which
# holds each byte back for half the round trip each way. Every byte crosses the loopback
# twice (client to proxy, proxy to server), so tbf is set to twice the link's rate.
# First the link itself is measured (round trip; 1 and 8 parallel streams). Then, for
# S3 (s3s-fs), SFTP (sshd) and a served repository (cairn serve), each behind its own
# delay proxy: the first backup of the gateway corpus, and the median of R restores of it
# into new folders (default 3), each against the link's rate for the bytes stored, which
# is what crosses the link; and a no-change backup of a repository holding N snapshots
# (default 100, copied in from a local repository), beside the same no-change backup on a
# local folder: once with an empty object cache (a new host) and once more with the
# cache that run left.
# --cairn runs that cairn binary (another build, to compare) instead of building one.
# Work files go to $BENCH_DIR (default /tmp; /dev/shm keeps the disk's write-back, which
# made restores vary by a second here, out of what is measured).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=0.1
RTT=40
RATE=200
SNAPSHOTS=100
RESTORES=3
BACKENDS="s3 sftp served"
CAIRN_BUILT=
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=${2:?}; shift 2 ;;
    --rtt) RTT=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --snapshots) SNAPSHOTS=${2:?}; shift 2 ;;
    --restores) RESTORES=${2:?}; shift 2 ;;
    --backends) BACKENDS=${2:?}; shift 2 ;;
    --cairn) CAIRN_BUILT=$(realpath "${2:?}"); shift 2 ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }

if [ -z "${CAIRN_WAN_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "wan.sh: run as root (it creates a network namespace)" >&2; exit 1; }
  say "building cairn and the corpus generator (release)"
  cargo build --release --quiet --bin cairn --example corpus
  ns=cairn-wan-$$
  ip netns add "$ns"
  trap 'ip netns delete "$ns"' EXIT
  ip -n "$ns" link set lo mtu 1500
  ip -n "$ns" link set lo up
  tc -n "$ns" qdisc add dev lo root tbf rate "$((2 * RATE))mbit" burst 512kb latency 100ms
  CAIRN_WAN_NETNS=$ns ip netns exec "$ns" bash "$0" "${ARGS[@]}"
  exit
fi

# ---- inside the namespace ---------------------------------------------------------------
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-wan.XXXXXX")
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  bash scripts/servers/s3.sh stop "$WORK/s3" || true
  bash scripts/servers/sshd.sh stop "$WORK/ssh" || true
  bash scripts/servers/cairn-serve.sh stop "$WORK/serve" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/bin"
cp "${CAIRN_BUILT:-target/release/cairn}" "$WORK/bin/cairn"
cp target/release/examples/corpus "$WORK/bin/"
CAIRN=$WORK/bin/cairn
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
delay() { # VARIABLE TARGET_PORT: start a delay proxy in front of the port; VARIABLE gets its port
  local port
  port=$(free_port)
  python3 scripts/servers/delay-proxy.py "$port" "$2" "$((RTT / 2))" </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  printf -v "$1" '%s' "$port"
}

say "the link: ${RTT} ms round trip, ${RATE} Mbit/s"
SINK=$(free_port)
delay LINK "$SINK"
LINK_REPORT=$(python3 scripts/servers/link-check.py "$SINK" "$LINK" 8 4)
echo "$LINK_REPORT" >&2

say "starting s3s-fs, sshd and cairn serve, each behind a delay proxy"
S3_PORT=$(free_port); SSH_PORT=$(free_port); SERVE_PORT=$(free_port)
bash scripts/servers/s3.sh start "$WORK/s3" "$S3_PORT"
bash scripts/servers/sshd.sh start "$WORK/ssh" "$SSH_PORT"
umask 077  # the server's state and the token files
CAIRN_BIN=$CAIRN bash scripts/servers/cairn-serve.sh start "$WORK/serve" "$SERVE_PORT"
for r in first nochange; do
  "$CAIRN" serve token add "bench-$r" --root "$WORK/serve/root" --repo "repo-$r" --role admin >"$WORK/serve/token-$r"
done
umask 022
delay S3_LINK "$S3_PORT"; delay SSH_LINK "$SSH_PORT"; delay SERVE_LINK "$SERVE_PORT"
set -a; . "$WORK/s3/env"; set +a
S3_ENDPOINT=http://127.0.0.1:$S3_LINK
# The client reaches sshd through its proxy: the same host key, listed for the proxy's port.
sed "s/^  Port $SSH_PORT\$/  Port $SSH_LINK/" "$WORK/ssh/ssh_config" >"$WORK/ssh/wan_config"
sed "s/^\[127.0.0.1\]:$SSH_PORT /[127.0.0.1]:$SSH_LINK /" "$WORK/ssh/known_hosts" >>"$WORK/ssh/known_hosts"
export CAIRN_SSH_COMMAND="ssh -F $WORK/ssh/wan_config" CAIRN_PASSWORD=bench-password CAIRN_FROM_PASSWORD=bench-password
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
# The object cache of remote repositories (snapshots, index files) lives here, so the
# "empty cache" runs start empty and nothing is left in the user's own cache.
export CAIRN_CACHE_DIR=$WORK/cache

say "generating the corpus (scale $SCALE) and a local repository of $SNAPSHOTS snapshots of it"
"$WORK/bin/corpus" generate "$WORK/data" --scale "$SCALE" >/dev/null
BYTES=$(du -sb --apparent-size "$WORK/data" | cut -f1)
FILES=$(find "$WORK/data" -type f | wc -l)
"$CAIRN" -r "$WORK/local" init -q
for i in $(seq "$SNAPSHOTS"); do "$CAIRN" -r "$WORK/local" backup -q "$WORK/data"; done
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f", e - s}'; }
LOCAL_NOCHANGE=$(seconds "$CAIRN" -r "$WORK/local" backup -q "$WORK/data")
# What crosses the link: the packs of one snapshot (every snapshot of the local
# repository holds the same data), compressed, so fewer bytes than the corpus.
STORED=$(du -sb "$WORK/local/data" | cut -f1)

location() { # backend repository-name
  case $1 in
    s3) echo "s3:$S3_ENDPOINT/cairn-test/$2" ;;
    sftp) echo "sftp:cairn-test$WORK/ssh/$2" ;;
    served) echo "rest:http://127.0.0.1:$SERVE_LINK/$2" ;;
  esac
}
ROWS=()
for b in $BACKENDS; do
  first=$(location "$b" repo-first)
  export CAIRN_TOKEN_FILE=$WORK/serve/token-first
  "$CAIRN" -r "$first" init -q
  tb=$(seconds "$CAIRN" -r "$first" backup -q "$WORK/data")
  tr=$(for k in $(seq "$RESTORES"); do
    seconds "$CAIRN" -r "$first" restore -q latest --target "$WORK/restore-$b-$k"; echo
    rm -rf "$WORK/restore-$b-$k"
  done | sort -n | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}')
  nochange=$(location "$b" repo-nochange)
  export CAIRN_TOKEN_FILE=$WORK/serve/token-nochange
  "$CAIRN" -r "$nochange" init -q
  "$CAIRN" -r "$nochange" copy -q --from-repo "$WORK/local" >/dev/null
  rm -rf "$CAIRN_CACHE_DIR"
  tn=$(seconds "$CAIRN" -r "$nochange" backup -q "$WORK/data")
  tw=$(seconds "$CAIRN" -r "$nochange" backup -q "$WORK/data")
  say "$b: first backup $tb s, restore $tr s, no-change backup $tn s, again $tw s (local $LOCAL_NOCHANGE s)"
  ROWS+=("$(awk -v b="$b" -v tb="$tb" -v tr="$tr" -v tn="$tn" -v tw="$tw" -v tl="$LOCAL_NOCHANGE" -v n="$BYTES" -v s="$STORED" -v rate="$RATE" 'BEGIN {
    link = rate * 1e6 / 8
    printf "| %s | %.2f | %.1f | %.0f%% | %.2f | %.1f | %.0f%% | %.2f | %.2f | %.1fx |", b, tb, n/tb/1e6, 100*s/tb/link, tr, n/tr/1e6, 100*s/tr/link, tn, tw, tw/tl }')")
done

# restic over the same link and servers, for S3 and SFTP (it has no client for a served
# repository): its first backup and the median of its restores, against the bytes it
# stored. restic has no object cache to warm, so it gets no no-change figures here.
restic_location() { # backend
  case $1 in
    s3) echo "s3:$S3_ENDPOINT/cairn-test/restic-first" ;;
    sftp) echo "sftp:cairn-test:$WORK/ssh/restic-first" ;;
  esac
}
restic_stored() { # backend
  case $1 in
    s3) du -sb "$WORK/s3/store/cairn-test/restic-first" | cut -f1 ;;
    sftp) du -sb "$WORK/ssh/restic-first" | cut -f1 ;;
  esac
}
if command -v restic >/dev/null 2>&1; then
  export RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR=$WORK/cache/restic
  for b in $BACKENDS; do
    [ "$b" = served ] && continue
    r=(restic -q -r "$(restic_location "$b")" -o "sftp.command=ssh -F $WORK/ssh/wan_config cairn-test -s sftp")
    "${r[@]}" init >/dev/null
    tb=$(seconds "${r[@]}" backup --host bench "$WORK/data")
    tr=$(for k in $(seq "$RESTORES"); do
      seconds "${r[@]}" restore latest --target "$WORK/restic-restore-$b-$k"; echo
      rm -rf "$WORK/restic-restore-$b-$k"
    done | sort -n | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}')
    say "restic, $b: first backup $tb s, restore $tr s"
    ROWS+=("$(awk -v b="restic $(restic version | cut -d' ' -f2), $b" -v tb="$tb" -v tr="$tr" -v n="$BYTES" -v s="$(restic_stored "$b")" -v rate="$RATE" 'BEGIN {
      link = rate * 1e6 / 8
      printf "| %s | %.2f | %.1f | %.0f%% | %.2f | %.1f | %.0f%% | | | |", b, tb, n/tb/1e6, 100*s/tb/link, tr, n/tr/1e6, 100*s/tr/link }')")
  done
else
  say "restic is not installed: no restic rows"
fi

echo "Link: ${RTT} ms round trip, ${RATE} Mbit/s ($((RATE / 8)) MB/s), measured: $(echo "$LINK_REPORT" | paste -sd';' | sed 's/;/; /g')."
echo "Corpus: $FILES files, $((BYTES / 1000000)) MB (scale $SCALE), $((STORED / 1000000)) MB stored by cairn (what crosses the link; MB/s below are of the corpus, \"of link\" of the bytes each tool stored); $(nproc) cores; $(date -u '+%Y-%m-%d'); no-change backup of $SNAPSHOTS snapshots on a local folder: $LOCAL_NOCHANGE s"
echo
echo "| backend | first backup, s | MB/s | of link | restore, s | MB/s | of link | no-change, empty cache, s | no-change, s | vs local |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
printf '%s\n' "${ROWS[@]}"
