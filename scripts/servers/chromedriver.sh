#!/usr/bin/env bash
# Debian's chromedriver for the browser tests (tests/browser/mod.rs), on 127.0.0.1 only.
#
#   chromedriver.sh start STATE_DIR PORT   start it in the background
#   chromedriver.sh stop STATE_DIR         stop it and every Chromium it started
#
# Without --allowed-ips chromedriver listens on the loopback addresses only; with it, it
# listens on all interfaces and filters by client address, so that flag is not given.
# It runs in its own process group (setsid), which the browsers it starts inherit: stop
# ends the whole group, so a test that panics mid-session leaves no Chromium behind.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
usage="usage: chromedriver.sh start|stop STATE_DIR [PORT]"
cmd=${1:?$usage}
state=${2:?$usage}
case "$cmd" in
start)
  port=${3:?$usage}
  [ -x /usr/bin/chromedriver ] || { echo "chromedriver.sh: no /usr/bin/chromedriver: apt-get install chromium-driver" >&2; exit 1; }
  # No background job control in a script, so this child is no group leader and setsid
  # does not fork: $! is chromedriver's pid and its process group id. Chromium keeps its
  # crash database under XDG_CONFIG_HOME whatever its profile: in STATE_DIR, not ~/.config.
  XDG_CONFIG_HOME="$state/config" XDG_CACHE_HOME="$state/cache" setsid /usr/bin/chromedriver --port="$port" --log-level=INFO </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  wait_listening "chromedriver.sh: chromedriver" "$port" "$state"
  ;;
stop)
  [ -f "$state/pid" ] || exit 0
  pid=$(cat "$state/pid")
  # Whether a process of the group still runs. Zombies do not count: whoever reaps them
  # (pid 1, as chromedriver's parent is gone) may take a second to.
  running() { ps -e -o pgid=,stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
  # The group outlives chromedriver when a browser is still running, so wait on the group.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do running || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$state/pid"
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
