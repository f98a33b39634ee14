#!/usr/bin/env bash
# A local S3 server that enforces Object Lock, for the object-lock tests: moto's server
# on 127.0.0.1 only, with one bucket made with Object Lock enabled.
#
#   s3-lock.sh start STATE_DIR PORT   start it in the background; STATE_DIR/env gets the settings
#   s3-lock.sh stop STATE_DIR         stop it (moto keeps objects in memory: they go with it)
#
# The bucket "cairn-locked" has Object Lock enabled and no default retention; the bucket
# "cairn-plain" has none. Credentials: cairn-test / cairn-test-secret.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cmd=${1:?usage: s3-lock.sh start|stop STATE_DIR [PORT]}
state=${2:?usage: s3-lock.sh start|stop STATE_DIR [PORT]}
case "$cmd" in
start)
  port=${3:?usage: s3-lock.sh start STATE_DIR PORT}
  if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    echo "s3-lock.sh: moto's server is not installed; run: python3 -m pip install 'moto[server]==5.2.1'" >&2
    exit 1
  fi
  mkdir -p "$state"
  python3 -m moto.server -H 127.0.0.1 -p "$port" </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  wait_listening "s3-lock.sh: moto" "$port" "$state"
  # Buckets are made through the S3 API itself, as a user would with any client.
  python3 - "$port" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  aws_access_key_id="cairn-test", aws_secret_access_key="cairn-test-secret")
s3.create_bucket(Bucket="cairn-locked", ObjectLockEnabledForBucket=True)
s3.create_bucket(Bucket="cairn-plain")
PY
  cat >"$state/env" <<END
AWS_ACCESS_KEY_ID=cairn-test
AWS_SECRET_ACCESS_KEY=cairn-test-secret
AWS_DEFAULT_REGION=us-east-1
S3_ENDPOINT=http://127.0.0.1:$port
END
  ;;
stop)
  stop_server "$state"
  ;;
*) echo "usage: s3-lock.sh start|stop STATE_DIR [PORT]" >&2; exit 2 ;;
esac
