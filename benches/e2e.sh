#!/usr/bin/env bash
# End-to-end benchmark: cairn against restic and borg on the same generated corpus.
#
#   bash benches/e2e.sh [--scale S] [--rounds N] [--repeat R] [--tools "cairn restic borg"] [--keep]
#
# For each repetition: generate a fresh corpus (examples/corpus.rs), then for every tool
# in turn run the same phases on it: init, first backup, backup with nothing changed,
# N rounds of (one mutation of the corpus, then each tool backs it up), restore of the
# latest snapshot into an empty folder (then compared with the corpus, untimed), and a
# check that reads all data. Every phase runs under /usr/bin/time; the repository size is
# taken after each backup. The median over the repetitions is reported.
#
# Results: Markdown on stdout and in benches/RESULTS-e2e-latest.md. Work files go to a
# fresh folder under $BENCH_DIR (default /tmp), removed at the end unless --keep.
# A failing tool phase is recorded in the table; the run goes on.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCALE=1.0
ROUNDS=5
REPEAT=1
TOOLS="cairn restic borg"
KEEP=0
usage() { sed -n '2,3p' "$0" | sed 's/^# \{0,3\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --repeat) REPEAT=${2:?}; shift 2 ;;
    --tools) TOOLS=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) echo "e2e: unknown argument $1" >&2; usage ;;
  esac
done
case "$ROUNDS$REPEAT" in *[!0-9]*) echo "e2e: --rounds and --repeat take whole numbers" >&2; exit 2 ;; esac
[ "$REPEAT" -ge 1 ] || { echo "e2e: --repeat must be at least 1" >&2; exit 2; }

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
has_tool() { case " $TOOLS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---- tools ------------------------------------------------------------------------------
missing=()
has_tool restic && ! command -v restic >/dev/null 2>&1 && missing+=(restic)
has_tool borg && ! command -v borg >/dev/null 2>&1 && missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2 \
    || { echo "e2e: could not install ${missing[*]}" >&2; exit 1; }
fi

say "building cairn and the corpus generator (release)"
cargo build --release --quiet --bin cairn --example corpus || { echo "e2e: build failed" >&2; exit 1; }

base=${BENCH_DIR:-/tmp}
mkdir -p "$base"
WORK=$(mktemp -d "$base/cairn-e2e.XXXXXX")
if [ "$KEEP" = 1 ]; then say "work folder (kept): $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK/bin" "$WORK/logs"
# Private copies: others may rebuild target/ while the benchmark runs.
cp target/release/cairn target/release/examples/corpus "$WORK/bin/"
CAIRN=$WORK/bin/cairn
CORPUS=$WORK/bin/corpus
DATA=$WORK/data/apigw   # the same absolute path for every tool and every round
TSV=$WORK/results.tsv
META=$WORK/meta.txt
: >"$TSV"

export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export RESTIC_CACHE_DIR=$WORK/cache/restic BORG_BASE_DIR=$WORK/cache/borg
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_DISPLAY_PASSPHRASE=no
BORG_COMPRESSION=lz4   # borg 1.x's default, named explicitly

# ---- machine description ----------------------------------------------------------------
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc=$(nproc)"
  echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || echo unknown)"
  echo "fs=$(df -T "$WORK" | awk 'NR==2 {print $2}')"
  echo "cairn=$("$CAIRN" --version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in src'))"
  has_tool restic && echo "restic=$(restic version | head -1)"
  has_tool borg && echo "borg=$(borg --version)"
  echo "borg_compression=$BORG_COMPRESSION"
  echo "scale=$SCALE"
  echo "rounds=$ROUNDS"
  echo "repeat=$REPEAT"
  echo "tools=$TOOLS"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$META"

# ---- measuring --------------------------------------------------------------------------
clean() { tr '\t\n|' '  /' | tr -s ' ' | sed 's/[ ;]*$//' | cut -c1-300; }

repo_of() { echo "$WORK/repo/$1"; }

# One line of the summary each tool prints, for the report.
info_of() { # tool phase out err
  case "$1:$2" in
    cairn:backup*|cairn:round*) grep -m1 '^snapshot' "$3" ;;
    cairn:restore) grep -m1 '^restored' "$3" ;;
    cairn:check) grep -m1 -E 'problems|DAMAGE' "$3" ;;
    borg:check) grep -h -m1 -E 'rror|archive' "$3" "$4" | head -1 ;;
    restic:backup*|restic:round*) grep -E '^(Files|Added to the repo)' "$3" | tr '\n' ';' ;;
    restic:check) grep -h -m1 -E 'no errors|error' "$3" "$4" | head -1 ;;
    borg:backup*|borg:round*) grep -E '^(Number of files|This archive)' "$4" | tr -s ' ' | tr '\n' ';' ;;
  esac 2>/dev/null | clean
}

# measure REP TOOL PHASE CMD... : run CMD under /usr/bin/time and append a result line.
measure() {
  local rep=$1 tool=$2 phase=$3; shift 3
  local log=$WORK/logs/$rep-$tool-$phase load
  load=$(cut -d' ' -f1 /proc/loadavg)
  # Write back what earlier phases (or the corpus generator) left dirty, so no tool pays
  # for another's writes when it syncs its own files.
  sync
  /usr/bin/time -f '%e %U %S %M' -o "$log.time" "$@" >"$log.out" 2>"$log.err" </dev/null
  local rc=$? wall user sys rss status note="" size=""
  read -r wall user sys rss < <(tail -1 "$log.time")
  case "$rc:$tool:$phase" in
    0:*) status=ok ;;
    3:cairn:backup*|3:cairn:round*|3:restic:backup*|3:restic:round*) status="partial(3)" ;;
    1:borg:backup*|1:borg:round*) status="warning(1)" ;;
    *) status="FAILED($rc)"; note=$(grep -v '^\s*$' "$log.err" | tail -1 | clean) ;;
  esac
  case "$phase" in init|backup*|round*) size=$(du -sb "$(repo_of "$tool")" 2>/dev/null | cut -f1) ;; esac
  [ -n "$note" ] || note=$(info_of "$tool" "$phase" "$log.out" "$log.err")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$tool" "$phase" "${wall:-}" "${user:-}" \
    "${sys:-}" "${rss:-}" "${size:-}" "$status" "$load" "$note" >>"$TSV"
  printf '   %-7s %-16s %8ss  %s\n' "$tool" "$phase" "${wall:-?}" "$status" >&2
  [ "$status" = ok ] || echo "      see $log.err: $(grep -v '^\s*$' "$log.err" | tail -1 | cut -c1-200)" >&2
}

warm() { find "$DATA" -type f -print0 | xargs -0 cat >/dev/null; }
# Restore and check read the repository: each tool starts them with its repository in the
# page cache, since cairn writes packs past the cache and the others write through it.
warm_repo() { find "$(repo_of "$1")" -type f -print0 | xargs -0 cat >/dev/null; }

declare -A LAST_ARCHIVE

do_init() { # rep tool
  local repo; repo=$(repo_of "$2")
  case "$2" in
    cairn) measure "$1" cairn init "$CAIRN" -r "$repo" init ;;
    restic) measure "$1" restic init restic -r "$repo" init --repository-version 2 ;;
    borg) measure "$1" borg init borg init -e repokey-blake2 "$repo" ;;
  esac
}

do_backup() { # rep tool phase
  local repo; repo=$(repo_of "$2")
  case "$2" in
    cairn) measure "$1" cairn "$3" "$CAIRN" -r "$repo" backup "$DATA" --host bench ;;
    restic) measure "$1" restic "$3" restic -r "$repo" backup --host bench "$DATA" ;;
    borg)
      LAST_ARCHIVE[borg]=bench-$3
      measure "$1" borg "$3" borg create --stats --compression "$BORG_COMPRESSION" "$repo::bench-$3" "$DATA" ;;
  esac
}

do_restore() { # rep tool
  local repo target; repo=$(repo_of "$2"); target=$WORK/restore/$2
  warm_repo "$2"
  rm -rf "$target"; mkdir -p "$target"
  case "$2" in
    cairn) measure "$1" cairn restore "$CAIRN" -r "$repo" restore latest --target "$target" ;;
    restic) measure "$1" restic restore restic -r "$repo" restore latest --target "$target" ;;
    borg) (cd "$target" && measure "$1" borg restore borg extract "$repo::${LAST_ARCHIVE[borg]:-none}") ;;
  esac
  # Untimed: the restored tree must equal the corpus.
  local verdict
  if [ ! -d "$target$DATA" ]; then
    verdict="restore verification: $DATA missing in the restored tree"
  elif diff -r -q --no-dereference "$DATA" "$target$DATA" >"$WORK/logs/$1-$2-restore.diff" 2>&1; then
    verdict="restored tree identical to the corpus"
  else
    verdict="restored tree DIFFERS from the corpus: $(wc -l <"$WORK/logs/$1-$2-restore.diff") differences, e.g. $(head -1 "$WORK/logs/$1-$2-restore.diff")"
  fi
  printf '%s\t%s\t%s\t\t\t\t\t\t%s\t\t%s\n' "$1" "$2" verify \
    "$(case "$verdict" in *identical*) echo ok ;; *) echo DIFFERS ;; esac)" "$(echo "$verdict" | clean)" >>"$TSV"
  echo "      $verdict" >&2
  # The restored tree stays until the next repetition: deleting 25k files right before
  # the next tool's restore would slow that restore's file creation (ext4 without a
  # journal skips recently freed inodes, one by one, for minutes).
}

do_check() { # rep tool
  local repo; repo=$(repo_of "$2")
  warm_repo "$2"
  case "$2" in
    cairn) measure "$1" cairn check "$CAIRN" -r "$repo" check --read-data ;;
    restic) measure "$1" restic check restic -r "$repo" check --read-data ;;
    borg) measure "$1" borg check borg check --verify-data "$repo" ;;
  esac
}

# ---- the run ----------------------------------------------------------------------------
for rep in $(seq 1 "$REPEAT"); do
  say "repetition $rep/$REPEAT: generating the corpus at scale $SCALE"
  # The previous repetition's files are set aside, not deleted, until the run ends:
  # ext4 without a journal steps over inodes freed in the last 60-300 s one by one when
  # it makes a file, and that search (perf: up to 60% of a restore, in
  # recently_deleted) would land on whichever restore came soonest after a deletion.
  # This needs about 7 GB of free space per repetition.
  if [ -d "$WORK/data" ]; then
    mkdir -p "$WORK/trash/$rep"
    mv "$WORK/data" "$WORK/repo" "$WORK/cache" "$WORK/restore" "$WORK/trash/$rep/" 2>/dev/null
  fi
  mkdir -p "$WORK/data" "$WORK/repo"
  measure "$rep" corpus generate "$CORPUS" generate "$DATA" --scale "$SCALE"
  tail -1 "$WORK/logs/$rep-corpus-generate.out" >&2
  if [ "$rep" = 1 ]; then
    {
      echo "corpus_files=$(find "$DATA" -type f | wc -l)"
      echo "corpus_bytes=$(du -sb "$DATA" | cut -f1)"
    } >>"$META"
  fi
  warm
  for tool in $TOOLS; do do_init "$rep" "$tool"; done
  for tool in $TOOLS; do do_backup "$rep" "$tool" backup-first; done
  warm
  for tool in $TOOLS; do do_backup "$rep" "$tool" backup-nochange; done
  for round in $(seq 1 "$ROUNDS"); do
    measure "$rep" corpus "round-$round" "$CORPUS" mutate "$DATA" "$round"
    tail -1 "$WORK/logs/$rep-corpus-round-$round.out" >&2
    warm
    for tool in $TOOLS; do do_backup "$rep" "$tool" "round-$round"; done
  done
  if [ "$rep" = 1 ]; then
    {
      echo "corpus_files_end=$(find "$DATA" -type f | wc -l)"
      echo "corpus_bytes_end=$(du -sb "$DATA" | cut -f1)"
    } >>"$META"
  fi
  for tool in $TOOLS; do do_restore "$rep" "$tool"; done
  for tool in $TOOLS; do do_check "$rep" "$tool"; done
  for tool in $TOOLS; do
    echo "cache_$tool=$(du -sb "$WORK/cache/$tool" 2>/dev/null | cut -f1)" >>"$META"
  done
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

say "report"
python3 "$ROOT/benches/e2e_report.py" "$META" "$TSV" | tee "$ROOT/benches/RESULTS-e2e-latest.md"
[ "$KEEP" = 1 ] && say "logs and repositories kept in $WORK"
exit 0
