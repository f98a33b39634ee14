#!/usr/bin/env bash
# cairn's dashboard for the tests, on 127.0.0.1 only.
#
#   cairn-ui.sh start STATE_DIR PORT [UI OPTIONS...]   start it in the background
#   cairn-ui.sh stop STATE_DIR                         stop it
#
# CAIRN_BIN names the cairn binary (default: cairn on the PATH). The dashboard gets this
# script's environment: CAIRN_UI_TOKEN, and the repository's password (CAIRN_PASSWORD or
# a job file's password files). Its first line of output, in STATE_DIR/server.log, is the
# login URL.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
usage="usage: cairn-ui.sh start|stop STATE_DIR [PORT [OPTIONS...]]"
cmd=${1:?$usage}
state=${2:?$usage}
case "$cmd" in
start)
  port=${3:?$usage}
  shift 3
  mkdir -p "$state"
  "${CAIRN_BIN:-cairn}" ui --listen "127.0.0.1:$port" "$@" </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  wait_listening "cairn-ui.sh: cairn ui" "$port" "$state"
  ;;
stop)
  stop_server "$state"
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
