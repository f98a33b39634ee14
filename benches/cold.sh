#!/usr/bin/env bash
# First backup from a cold disk: cairn against restic on the generated gateway corpus,
# the kernel's caches dropped before every timed backup (so it must run as root).
#
#   bash benches/cold.sh [--scale S] [--repeat R] [--cairn BIN] [--also NAME=BIN]   (as root)
#
# Each repetition backs up the corpus into a fresh repository with each tool in turn,
# alternating, after `sync` and `echo 3 > /proc/sys/vm/drop_caches`, then once more with
# the caches warm (the corpus read whole first). Reports the median wall seconds and
# restic's time over each one's as Markdown. --cairn runs that binary instead of building
# one; --also adds another cairn build to the same rounds (say, the one before a change).
# Work files go to $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1
REPEAT=3
CAIRN_BIN=
ALSO=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=${2:?}; shift 2 ;;
    --repeat) REPEAT=${2:?}; shift 2 ;;
    --cairn) CAIRN_BIN=$(realpath "${2:?}"); shift 2 ;;
    --also) ALSO+=("${2:?}"); shift 2 ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "cold.sh: dropping the kernel's caches needs root" >&2; exit 2; }
command -v restic >/dev/null || { echo "cold.sh: restic is not installed (apt-get install restic)" >&2; exit 2; }
say() { printf '== %s\n' "$*" >&2; }

cargo build --release --quiet --example corpus
if [ -z "$CAIRN_BIN" ]; then
  cargo build --release --quiet --bin cairn
  CAIRN_BIN=$PWD/target/release/cairn
fi
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-cold.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
declare -A BIN=([cairn]=$CAIRN_BIN)
TOOLS=(cairn)
for a in "${ALSO[@]}"; do
  BIN[${a%%=*}]=$(realpath "${a#*=}")
  TOOLS+=("${a%%=*}")
done
TOOLS+=(restic)
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export RESTIC_CACHE_DIR=$WORK/restic-cache XDG_CACHE_HOME=$WORK/cache

say "generating the corpus (scale $SCALE)"
target/release/examples/corpus generate "$WORK/data" --scale "$SCALE" >/dev/null
BYTES=$(du -sb --apparent-size "$WORK/data" | cut -f1)
FILES=$(find "$WORK/data" -type f | wc -l)

first_backup() { # tool state(cold|warm) -> seconds on stdout
  local tool=$1 state=$2 repo=$WORK/repo-$1
  rm -rf "$repo" "$WORK/cache" "$WORK/restic-cache"
  if [ "$tool" = restic ]; then
    restic -r "$repo" init --repository-version 2 >/dev/null 2>&1
    set -- restic -r "$repo" backup --host bench "$WORK/data"
  else
    "${BIN[$tool]}" init --repo "$repo" >/dev/null 2>&1
    set -- "${BIN[$tool]}" backup --repo "$repo" "$WORK/data"
  fi
  sync
  if [ "$state" = cold ]; then echo 3 >/proc/sys/vm/drop_caches; else find "$WORK/data" -type f -exec cat {} + >/dev/null; fi
  /usr/bin/time -o "$WORK/time" -f %e "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  cat "$WORK/time"
}

declare -A COLD WARM
for rep in $(seq "$REPEAT"); do
  for tool in "${TOOLS[@]}"; do
    say "round $rep: $tool"
    COLD[$tool]+="$(first_backup "$tool" cold)"$'\n'
    WARM[$tool]+="$(first_backup "$tool" warm)"$'\n'
  done
done

median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }
echo "Corpus: $FILES files, $((BYTES / 1000000)) MB (scale $SCALE); median of $REPEAT; $(nproc) cores; $(date -u '+%Y-%m-%d')"
echo
echo "| tool | cold, s | restic / it, cold | warm, s | restic / it, warm | per run, cold | per run, warm |"
echo "|---|--:|--:|--:|--:|---|---|"
rc=$(printf '%s' "${COLD[restic]}" | median); rw=$(printf '%s' "${WARM[restic]}" | median)
for tool in "${TOOLS[@]}"; do
  c=$(printf '%s' "${COLD[$tool]}" | median); w=$(printf '%s' "${WARM[$tool]}" | median)
  runs_c=$(printf '%s' "${COLD[$tool]}" | paste -sd' ' -); runs_w=$(printf '%s' "${WARM[$tool]}" | paste -sd' ' -)
  awk -v t="$tool" -v c="$c" -v w="$w" -v rc="$rc" -v rw="$rw" -v pc="$runs_c" -v pw="$runs_w" \
    'BEGIN { printf "| %s | %.2f | %.2fx | %.2f | %.2fx | %s | %s |\n", t, c, rc / c, w, rw / w, pc, pw }'
done
