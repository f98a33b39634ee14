#!/usr/bin/env bash
# A local S3-compatible server for the tests: s3s-fs (a real server storing objects as
# files, checking SigV4 signatures) on 127.0.0.1 only.
#
#   s3.sh start STATE_DIR PORT   start it in the background; STATE_DIR/env gets the settings
#   s3.sh stop STATE_DIR         stop it (the stored objects stay in STATE_DIR/store)
#
# The bucket "cairn-test" exists from the start. Credentials: cairn-test / cairn-test-secret.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cmd=${1:?usage: s3.sh start|stop STATE_DIR [PORT]}
state=${2:?usage: s3.sh start|stop STATE_DIR [PORT]}
case "$cmd" in
start)
  port=${3:?usage: s3.sh start STATE_DIR PORT}
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "s3.sh: s3s-fs is not installed; run: cargo install s3s-fs@0.14.1 --features binary --locked" >&2
    exit 1
  fi
  mkdir -p "$state/store/cairn-test"
  s3s-fs --host 127.0.0.1 --port "$port" --access-key cairn-test --secret-key cairn-test-secret \
    "$state/store" </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  cat >"$state/env" <<END
AWS_ACCESS_KEY_ID=cairn-test
AWS_SECRET_ACCESS_KEY=cairn-test-secret
AWS_DEFAULT_REGION=us-east-1
S3_ENDPOINT=http://127.0.0.1:$port
END
  wait_listening "s3.sh: s3s-fs" "$port" "$state"
  ;;
stop)
  stop_server "$state"
  ;;
*) echo "usage: s3.sh start|stop STATE_DIR [PORT]" >&2; exit 2 ;;
esac
