# Shared by the test server scripts (sourced, not run).

# wait_listening NAME PORT STATE_DIR: wait up to 10 s for the server whose pid is in
# STATE_DIR/pid to accept connections on 127.0.0.1:PORT; if it dies or never listens,
# print its log (STATE_DIR/server.log) and fail.
wait_listening() {
  local name=$1 port=$2 state=$3
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name did not start on 127.0.0.1:$port; its log:" >&2
  cat "$state/server.log" >&2
  return 1
}

# stop_server STATE_DIR [PID...]: end the server in STATE_DIR/pid and the given extra
# processes, politely for 5 s, then by force.
stop_server() {
  local state=$1
  shift
  [ -f "$state/pid" ] || return 0
  local pid
  pid=$(cat "$state/pid")
  kill "$pid" "$@" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" "$@" 2>/dev/null || true
  rm -f "$state/pid"
}
