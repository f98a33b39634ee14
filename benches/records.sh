#!/usr/bin/env bash
# What references records cost (format-spec/maintenance-key.md). A tree of F folders
# (default 2,000) of 10 small files each, backed up side by side with hyperfine into a
# repository without maintenance and one with it (`key add --maintenance` run on the
# empty repository, so every backup writes records): a first backup (each run into a
# fresh copy of the empty repository) and a second one with one file changed; then the
# repository sizes and how much of it is references packs; then `check` without reading
# data, with the full key on both and with the maintenance key, and `prune --dry-run` with
# either key; then enabling on the repository without it (every tree read once, its
# record made).
#
#   bash benches/records.sh [--folders F]
#
# Needs hyperfine (a Debian package; installed if missing). Results: Markdown on stdout.
# Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
F=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --folders) F=${2:?}; shift 2 ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ! command -v hyperfine >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq hyperfine >&2
fi
cargo build --release --quiet --bin cairn
cairn=$PWD/target/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-records.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TZ=UTC
python3 - "$work/src" "$F" <<'PY'
import os, sys, random
root, folders = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for d in range(folders):
    path = os.path.join(root, "groups", f"g{d // 100:02d}", f"instance-{d:05d}")
    os.makedirs(path, exist_ok=True)
    for f in range(10):
        with open(os.path.join(path, f"store-{f}.xml"), "w") as out:
            out.write("".join(f'<policy id="{rng.randrange(10**9)}" name="p{i}"/>\n' for i in range(40)))
PY
find "$work/src" -type f -exec cat {} + >/dev/null
for r in plain maint; do CAIRN_PASSWORD=full "$cairn" init -q -r "$work/$r-empty"; done
CAIRN_PASSWORD=full CAIRN_NEW_PASSWORD=keeper "$cairn" key add -q --maintenance -r "$work/maint-empty"
first() { echo "rm -rf $work/$1 && cp -a $work/$1-empty $work/$1"; }
hyperfine -N --warmup 1 --runs 7 --export-json "$work/b1.json" \
  --prepare "bash -c '$(first plain)'" -n "first backup, without maintenance" \
  "env CAIRN_PASSWORD=full $cairn -r $work/plain backup -q $work/src" \
  --prepare "bash -c '$(first maint)'" -n "first backup, with maintenance (records)" \
  "env CAIRN_PASSWORD=full $cairn -r $work/maint backup -q $work/src" >&2
rss() {
  bash -c "$(first "$1")"
  /usr/bin/time -f '%M' -o "$work/rss" env CAIRN_PASSWORD=full "$cairn" -r "$work/$1" backup -q "$work/src"
  echo $(($(cat "$work/rss") / 1024))
}
rss_plain=$(rss plain)
rss_maint=$(rss maint)
echo "<changed/>" >"$work/src/groups/g00/instance-00000/store-0.xml"
hyperfine -N --warmup 1 --runs 7 --export-json "$work/b2.json" \
  -n "next backup, one file changed, without maintenance" \
  "env CAIRN_PASSWORD=full $cairn -r $work/plain backup -q $work/src" \
  -n "next backup, one file changed, with maintenance" \
  "env CAIRN_PASSWORD=full $cairn -r $work/maint backup -q $work/src" >&2
size() { du -sb "$1" | cut -f1; }
refs=0
for f in "$work"/maint/data/*/*; do
  if [ "$(od -An -tu1 -j4 -N1 "$f" | tr -d ' ')" = 5 ] && [ "$(od -An -tu1 -j7 -N1 "$f" | tr -d ' ')" = 2 ]; then
    refs=$((refs + $(stat -c %s "$f")))
  fi
done
hyperfine -N --warmup 1 --runs 7 --export-json "$work/c.json" \
  -n "check, full key, without maintenance" "env CAIRN_PASSWORD=full $cairn -r $work/plain check -q" \
  -n "check, full key, with maintenance (records compared)" "env CAIRN_PASSWORD=full $cairn -r $work/maint check -q" \
  -n "check, maintenance key (records read)" "env CAIRN_PASSWORD=keeper $cairn -r $work/maint check -q" \
  -n "prune --dry-run, full key (trees read)" "env CAIRN_PASSWORD=full $cairn -r $work/maint prune --dry-run -q" \
  -n "prune --dry-run, maintenance key (records read)" "env CAIRN_PASSWORD=keeper $cairn -r $work/maint prune --dry-run -q" >&2
/usr/bin/time -f '%e %M' -o "$work/t" env CAIRN_PASSWORD=full CAIRN_NEW_PASSWORD=keeper \
  "$cairn" key add -q --maintenance -r "$work/plain"
read -r enable_s enable_kb <"$work/t"
medians() { python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("| %s | %.0f | %.0f | %.0f |" % (r["command"], r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3))
' "$1"; }
cat <<MD
### References records ($F folders, $((F * 10)) files, $(nproc) cores)

| command | median ms | min ms | max ms |
|---|--:|--:|--:|
$(medians "$work/b1.json")
$(medians "$work/b2.json")
$(medians "$work/c.json")

Peak RSS of a first backup (/usr/bin/time): $rss_plain MB without maintenance, $rss_maint MB with it.
Repository after both backups: $(size "$work/plain") bytes without maintenance (before enabling), $(size "$work/maint") bytes with it, of which $refs bytes in references packs.
Enabling on the repository without it (two snapshots, every tree read and its record made): ${enable_s} s, peak RSS $((enable_kb / 1024)) MB.
MD
