#!/usr/bin/env bash
# cairn's own server for the tests, on 127.0.0.1 only.
#
#   cairn-serve.sh start STATE_DIR PORT [SERVE OPTIONS...]   start it in the background
#   cairn-serve.sh stop STATE_DIR                            stop it (the root stays)
#
# CAIRN_BIN names the cairn binary (default: cairn on the PATH). Repositories live in
# STATE_DIR/root; tokens are made with `cairn serve token add NAME --root STATE_DIR/root`.
# CAIRN_SERVE_ROOT puts the repositories elsewhere (a bucket: s3:http://...), with the
# tokens in STATE_DIR/state (then `token add ... --root ROOT --state STATE_DIR/state`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
usage="usage: cairn-serve.sh start|stop STATE_DIR [PORT [OPTIONS...]]"
cmd=${1:?$usage}
state=${2:?$usage}
case "$cmd" in
start)
  port=${3:?$usage}
  shift 3
  bin=${CAIRN_BIN:-cairn}
  where=(--root "$state/root")
  if [ -n "${CAIRN_SERVE_ROOT:-}" ]; then
    where=(--root "$CAIRN_SERVE_ROOT" --state "$state/state")
  else
    mkdir -p "$state/root"
  fi
  "$bin" serve "${where[@]}" --listen "127.0.0.1:$port" "$@" </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  wait_listening "cairn-serve.sh: cairn serve" "$port" "$state"
  ;;
stop)
  stop_server "$state"
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
