#!/usr/bin/env bash
# Backup and restore speed on each backend: a local folder, an S3 bucket on s3s-fs, a
# folder over SFTP on sshd and a repository on cairn serve, all on this machine (servers
# from scripts/servers/ on 127.0.0.1), on the same generated gateway corpus.
#
#   bash benches/backends.sh [--scale S] [--repeat R]
#
# For each repetition and backend: init a fresh repository, time the first backup of the
# corpus (everything is uploaded), then the restore of it into an empty folder. Reports
# the median seconds, MB/s of corpus and the ratio to the local folder as Markdown.
# Needs s3s-fs and sshd (as .ci/run installs them). Work files go to $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=0.25
REPEAT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=${2:?}; shift 2 ;;
    --repeat) REPEAT=${2:?}; shift 2 ;;
    *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
say() { printf '== %s\n' "$*" >&2; }

say "building cairn and the corpus generator (release)"
cargo build --release --quiet --bin cairn --example corpus
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-backends.XXXXXX")
trap 'bash scripts/servers/s3.sh stop "$WORK/s3"; bash scripts/servers/sshd.sh stop "$WORK/ssh"; bash scripts/servers/cairn-serve.sh stop "$WORK/serve"; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
cp target/release/cairn target/release/examples/corpus "$WORK/bin/"
CAIRN=$WORK/bin/cairn

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
say "starting s3s-fs, sshd and cairn serve on 127.0.0.1"
bash scripts/servers/s3.sh start "$WORK/s3" "$(free_port)"
bash scripts/servers/sshd.sh start "$WORK/ssh" "$(free_port)"
SERVE_PORT=$(free_port)
umask 077  # the token files
CAIRN_BIN=$CAIRN bash scripts/servers/cairn-serve.sh start "$WORK/serve" "$SERVE_PORT"
for rep in $(seq "$REPEAT"); do
  "$CAIRN" serve token add "bench-$rep" --root "$WORK/serve/root" --repo "repo-$rep" --role admin >"$WORK/serve/token-$rep"
done
set -a; . "$WORK/s3/env"; set +a
export CAIRN_SSH_COMMAND="ssh -F $WORK/ssh/ssh_config" CAIRN_PASSWORD=bench-password
# Requests to the local servers must not go through a proxy.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

say "generating the corpus (scale $SCALE)"
"$WORK/bin/corpus" generate "$WORK/data" --scale "$SCALE" >/dev/null
BYTES=$(du -sb --apparent-size "$WORK/data" | cut -f1)
FILES=$(find "$WORK/data" -type f | wc -l)

location() { # backend repetition
  case $1 in
    local) echo "$WORK/repo-local-$2" ;;
    s3) echo "s3:$S3_ENDPOINT/cairn-test/repo-$2" ;;
    sftp) echo "sftp:cairn-test$WORK/ssh/repo-$2" ;;
    served) echo "rest:http://127.0.0.1:$SERVE_PORT/repo-$2" ;;
  esac
}
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e - s}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A backup restore
for rep in $(seq "$REPEAT"); do
  for b in local s3 sftp served; do
    loc=$(location "$b" "$rep")
    export CAIRN_TOKEN_FILE=$WORK/serve/token-$rep
    "$CAIRN" -r "$loc" init -q >/dev/null
    sync
    tb=$(seconds "$CAIRN" -r "$loc" backup -q "$WORK/data")
    # A fresh folder each time, removed only at the end: on ext4 without a journal,
    # creating files right after deleting thousands costs seconds of inode searching
    # that would swamp what is measured here.
    tr=$(seconds "$CAIRN" -r "$loc" restore -q latest --target "$WORK/restore-$b-$rep")
    backup[$b]+="$tb"$'\n'
    restore[$b]+="$tr"$'\n'
    say "rep $rep $b: backup $tb s, restore $tr s"
  done
done

echo "Corpus: $FILES files, $((BYTES / 1000000)) MB (scale $SCALE); median of $REPEAT; $(nproc) cores; $(date -u '+%Y-%m-%d')"
echo
echo "| backend | first backup s | MB/s | vs local | restore s | MB/s | vs local |"
echo "|---|---|---|---|---|---|---|"
lb=$(printf '%s' "${backup[local]}" | median); lr=$(printf '%s' "${restore[local]}" | median)
for b in local s3 sftp served; do
  tb=$(printf '%s' "${backup[$b]}" | median); tr=$(printf '%s' "${restore[$b]}" | median)
  awk -v b="$b" -v tb="$tb" -v tr="$tr" -v lb="$lb" -v lr="$lr" -v n="$BYTES" 'BEGIN {
    printf "| %s | %.2f | %.0f | %.0f%% | %.2f | %.0f | %.0f%% |\n", b, tb, n/tb/1e6, 100*lb/tb, tr, n/tr/1e6, 100*lr/tr }'
done
