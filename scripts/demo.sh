#!/usr/bin/env bash
# A complete backup job on a local repository, with nothing to set up first:
# init, backup, change, backup, check, restore, verify. Everything happens in a
# temporary folder that is removed at the end (set KEEP=1 to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# CAIRN_BIN runs the demo with an installed binary instead (the package test does).
if [ -n "${CAIRN_BIN:-}" ]; then
  cairn=$CAIRN_BIN
else
  step "build cairn (release)"
  cargo build --release --quiet
  cairn=$PWD/target/release/cairn
fi

work=$(mktemp -d)
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY=$work/repo
export CAIRN_PASSWORD_FILE=$work/pass
printf 'demo password\n' >"$work/pass"
chmod 600 "$work/pass"

step "make an API-gateway-like tree in $work/gw"
gw=$work/gw
for g in 1 2; do
  for i in 1 2 3; do
    d=$gw/groups/group-$g/instance-$i/conf
    mkdir -p "$d"
    for f in $(seq 1 40); do
      printf '<entityStore group="%s" instance="%s" id="%s">\n%s</entityStore>\n' \
        "$g" "$i" "$f" "$(printf '  <policy name="policy-%s" enabled="true"/>\n' $(seq 1 60))" >"$d/store-$f.xml"
    done
    printf 'port=%s\nlog.level=INFO\n' "$((8080 + i))" >"$d/service.properties"
  done
done
mkdir -p "$gw/ext/lib" "$gw/system/conf"
head -c 3000000 /dev/urandom >"$gw/ext/lib/custom-filters.jar"
printf '<NodeManager port="8090"/>\n' >"$gw/system/conf/nodemanager.xml"
ln -s ../system/conf/nodemanager.xml "$gw/ext/nodemanager-link.xml"
du -sh "$gw"

step "cairn init"
"$cairn" init
step "cairn backup (first; named, so later commands can say 'before-change')"
"$cairn" backup "$gw" --tag demo --label name=before-change
mysql_dump() { for r in $(seq 1 20000); do printf 'INSERT INTO audit VALUES (%s,"event-%s");\n' "$r" "$r"; done; }
step "cairn backup --stdin (a database dump piped in)"
mysql_dump | "$cairn" backup --stdin --stdin-name gwdb.sql --tag demo

step "change a few files"
sed -i 's/log.level=INFO/log.level=DEBUG/' "$gw/groups/group-1/instance-2/conf/service.properties"
printf '<policy name="new"/>\n' >>"$gw/groups/group-2/instance-3/conf/store-7.xml"
rm "$gw/groups/group-1/instance-1/conf/store-40.xml"
step "cairn backup (second: stores only what changed)"
"$cairn" backup "$gw" --tag demo
"$cairn" snapshots

step "cairn diff (what changed between the two file backups, with the changed settings)"
"$cairn" diff before-change latest --content

step "cairn check --read-data"
"$cairn" check --read-data

step "cairn restore latest --verify (re-reads and compares everything it wrote)"
"$cairn" restore latest --target "$work/restore" --verify

step "verify: restored tree equals the source (content, modes, times, links)"
restored=$work/restore$gw
diff -r --no-dereference "$gw" "$restored"
meta() { (cd "$1" && find . -printf '%p %y %m %T@ %l\n' | sort); }
diff <(meta "$gw") <(meta "$restored")
echo "verified: $(find "$gw" | wc -l) entries identical"

step "cairn drill (restore into a scratch folder, verify, measure RTO and RPO)"
"$cairn" drill --max-rto 5m --max-rpo 1h

step "cairn log (what was done to the repository)"
"$cairn" log
