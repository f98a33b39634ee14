#!/usr/bin/env bash
# The Debian package, as an operator meets it: build it, install it with dpkg, check what
# it put where (binary, man pages, completions, a private example job file, systemd units
# that systemd-analyze accepts), run the demo with the installed binary, and remove it
# again, leaving nothing but the job file (a conffile) until a purge. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-package: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root: it installs the package with dpkg"
command -v cargo-deb >/dev/null 2>&1 || fail "cargo-deb is missing: cargo install cargo-deb --locked"
command -v systemd-analyze >/dev/null 2>&1 || fail "systemd-analyze is missing: apt-get install systemd"
if dpkg -s cairn >/dev/null 2>&1; then fail "a cairn package is installed already; remove it first (dpkg -P cairn)"; fi

deb=$(bash scripts/package.sh | tail -n 1)
echo "== built $deb"
dpkg -i "$deb" >/dev/null
trap 'dpkg -P cairn >/dev/null 2>&1 || true' EXIT

[ "$(command -v cairn)" = /usr/bin/cairn ] || fail "cairn is not on the PATH at /usr/bin/cairn"
/usr/bin/cairn --version
[ "$(stat -c '%a %U' /etc/cairn/cairn.toml)" = "600 root" ] || fail "/etc/cairn/cairn.toml is not 0600 root: $(stat -c '%a %U' /etc/cairn/cairn.toml)"
/usr/bin/cairn config check --config /etc/cairn/cairn.toml >/dev/null 2>&1 || true # its paths are examples
grep -q '^\[jobs\.' /etc/cairn/cairn.toml || fail "the example job file holds no job"
for page in cairn cairn-backup cairn-restore cairn-serve; do
  man -w "$page" >/dev/null || fail "no manual page $page"
done
man cairn-backup 2>/dev/null | grep -q -- '--exclude' || fail "man cairn-backup does not show --exclude"
bash -c 'source /usr/share/bash-completion/completions/cairn && complete -p cairn' >/dev/null ||
  fail "the bash completion does not load"
[ -s /usr/share/zsh/vendor-completions/_cairn ] && [ -s /usr/share/fish/vendor_completions.d/cairn.fish ] ||
  fail "zsh or fish completions are missing"

# The units as systemd reads them (the templates through an instance of each).
units=$(mktemp -d)
cp /lib/systemd/system/cairn-job@.service "$units/cairn-job@gw.service"
cp /lib/systemd/system/cairn-job@.timer "$units/cairn-job@gw.timer"
cp /lib/systemd/system/cairn-serve.service /lib/systemd/system/cairn-ui.service "$units/"
# Any remark counts: systemd only warns about an unknown key, and ignores it.
if ! out=$(cd "$units" && systemd-analyze verify --man=no ./cairn-job@gw.service ./cairn-job@gw.timer ./cairn-serve.service ./cairn-ui.service 2>&1) || [ -n "$out" ]; then
  echo "$out" >&2
  fail "systemd-analyze verify refused or remarked on a unit"
fi
grep -q 'ExecStart=/usr/bin/cairn run --config /etc/cairn/cairn.toml %i' /lib/systemd/system/cairn-job@.service ||
  fail "the job unit does not run the job it is an instance of"
rm -rf "$units"

echo "== the demo with the installed binary"
CAIRN_BIN=/usr/bin/cairn bash scripts/demo.sh >/dev/null

dpkg -r cairn >/dev/null
[ ! -e /usr/bin/cairn ] || fail "dpkg -r left /usr/bin/cairn"
[ -e /etc/cairn/cairn.toml ] || fail "dpkg -r removed the job file, which is the operator's"
dpkg -P cairn >/dev/null
[ ! -e /etc/cairn/cairn.toml ] || fail "dpkg -P left /etc/cairn/cairn.toml"
trap - EXIT
echo "== package: installed, checked, used and removed"
