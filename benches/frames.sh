#!/usr/bin/env bash
# A blob per frame, and the maintenance key's prune (format-spec/maintenance-key.md,
# *frames* and *moved frames*). Space: the generated corpus (examples/corpus.rs, scale
# S, default 0.5) and a tree of 20,000 small XML files, each backed up once into a
# repository without maintenance (frames of up to 1 MiB) and one with it (a blob per
# frame, and references records), sizes in bytes from the packs' own lengths. Prune: R
# rounds (default 8) of the corpus's daily mutation backed up into the repository with
# maintenance, `forget --keep-last 3`, then side by side with hyperfine on fresh copies
# each run: `prune` with the full key and with the maintenance key; then, once each, what
# each left stored.
#
#   bash benches/frames.sh [--scale S] [--rounds R]
#
# Needs hyperfine (a Debian package; installed if missing). Results: Markdown on stdout.
# Work files in a fresh folder under $BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
S=0.5
R=8
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) S=${2:?}; shift 2 ;;
    --rounds) R=${2:?}; shift 2 ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ! command -v hyperfine >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq hyperfine >&2
fi
cargo build --release --quiet --bin cairn --example corpus
cairn=$PWD/target/release/cairn
corpus=$PWD/target/release/examples/corpus
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-frames.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TZ=UTC CAIRN_PASSWORD=full
"$corpus" generate "$work/corpus" --scale "$S" >&2
python3 - "$work/small" <<'PY'
import os, sys, random
root, rng = sys.argv[1], random.Random(7)
for d in range(2000):
    path = os.path.join(root, f"g{d // 100:02d}", f"instance-{d:05d}")
    os.makedirs(path, exist_ok=True)
    for f in range(10):
        with open(os.path.join(path, f"store-{f}.xml"), "w") as out:
            out.write("".join(f'<policy id="{rng.randrange(10**9)}" name="p{i}"/>\n' for i in range(40)))
PY
# Bytes of packs of a repository, all and those of class 2 (references records).
packs() { find "$1/data" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
records() {
  local n=0 f
  for f in "$1"/data/*/*; do
    if [ "$(od -An -tu1 -j4 -N1 "$f" | tr -d ' ')" = 5 ] && [ "$(od -An -tu1 -j7 -N1 "$f" | tr -d ' ')" = 2 ]; then
      n=$((n + $(stat -c %s "$f")))
    fi
  done
  echo $n
}
new_repo() {
  "$cairn" init -q -r "$1"
  if [ "$2" = maint ]; then CAIRN_NEW_PASSWORD=keeper "$cairn" key add -q --maintenance -r "$1"; fi
}
space_rows=
for tree in corpus small; do
  for kind in plain maint; do
    new_repo "$work/$tree-$kind" "$kind"
    "$cairn" -r "$work/$tree-$kind" backup -q "$work/$tree"
  done
  p=$(packs "$work/$tree-plain") m=$(packs "$work/$tree-maint") r=$(records "$work/$tree-maint")
  space_rows+="| $tree ($(find "$work/$tree" -type f | wc -l) files, $(du -sb "$work/$tree" | cut -f1) bytes) | $p | $((m - r)) | $r | $(python3 -c "print(f'{($m - $r) / $p - 1:+.1%}')") |"$'\n'
  rm -rf "$work/$tree-plain" "$work/$tree-maint"
done
# The history for prune.
new_repo "$work/hist" maint
for i in $(seq 1 "$R"); do
  "$corpus" mutate "$work/corpus" "$i" >/dev/null
  "$cairn" -r "$work/hist" backup -q --time "2026-11-$(printf %02d "$i") 12:00" "$work/corpus"
done
"$cairn" -r "$work/hist" forget -q --keep-last 3
fresh() { echo "rm -rf $work/p && cp -a $work/hist $work/p"; }
hyperfine -N --runs 5 --export-json "$work/p.json" \
  --prepare "bash -c '$(fresh)'" -n "prune, full key (reads, re-seals)" \
  "env CAIRN_PASSWORD=full $cairn -r $work/p prune -q" \
  --prepare "bash -c '$(fresh)'" -n "prune, maintenance key (moves frames)" \
  "env CAIRN_PASSWORD=keeper $cairn -r $work/p prune -q" >&2
left() {
  bash -c "$(fresh)"
  CAIRN_PASSWORD=$1 "$cairn" -r "$work/p" prune -q
  CAIRN_PASSWORD=full "$cairn" -r "$work/p" check -q --read-data
  echo "$(packs "$work/p") $(find "$work/p/data" -type f | wc -l)"
}
read -r full_bytes full_packs < <(left full)
read -r keeper_bytes keeper_packs < <(left keeper)
medians() { python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("| %s | %.0f | %.0f | %.0f |" % (r["command"], r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3))
' "$1"; }
cat <<MD
### A blob per frame, and the maintenance key's prune (scale $S, $R rounds, $(nproc) cores)

| tree | packs without maintenance | data packs with it | references packs | data packs, change |
|---|--:|--:|--:|--:|
$space_rows
Before prune: $(packs "$work/hist") bytes in $(find "$work/hist/data" -type f | wc -l) packs ($R snapshots, 3 kept).

| command | median ms | min ms | max ms |
|---|--:|--:|--:|
$(medians "$work/p.json")

Left stored: $full_bytes bytes in $full_packs packs after the full key's prune, $keeper_bytes bytes in $keeper_packs packs after the maintenance key's (moved frames carry an 8-byte prefix each, and their packs name their origins); \`check --read-data\` clean after both.
MD
