#!/usr/bin/env bash
# A private OpenSSH server for the tests: Debian's sshd on 127.0.0.1 at a high port, with
# its own host key, key-only login and the internal SFTP server, plus a client side to
# match: a user key, a known_hosts file and an ssh config with Host aliases.
#
#   sshd.sh start STATE_DIR PORT   start it; STATE_DIR/ssh_config names the aliases:
#       cairn-test          the server, with the right key and host key (strict checking)
#       cairn-test-badkey   the server, with a key it does not accept
#       cairn-test-badhost  the server, with a known_hosts entry for another host key
#   sshd.sh stop STATE_DIR         stop the server and its sessions
#
# Use it with CAIRN_SSH_COMMAND="ssh -F STATE_DIR/ssh_config".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cmd=${1:?usage: sshd.sh start|stop STATE_DIR [PORT]}
state=${2:?usage: sshd.sh start|stop STATE_DIR [PORT]}
case "$cmd" in
start)
  port=${3:?usage: sshd.sh start STATE_DIR PORT}
  if [ ! -x /usr/sbin/sshd ]; then
    echo "sshd.sh: /usr/sbin/sshd is missing; run: apt-get install openssh-server openssh-client" >&2
    exit 1
  fi
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  for k in host_key user_key other_key other_host_key; do
    [ -f "$state/$k" ] || ssh-keygen -q -t ed25519 -N '' -C "cairn-test-$k" -f "$state/$k"
  done
  cp "$state/user_key.pub" "$state/authorized_keys"
  chmod 600 "$state/authorized_keys"
  # sshd needs its privilege separation folder.
  [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
  cat >"$state/sshd_config" <<END
ListenAddress 127.0.0.1
Port $port
HostKey $state/host_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
AllowUsers $(id -un)
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
END
  # The client side is written whole and renamed into place: a restart must never show a
  # client that retries meanwhile a half-written config (no alias: a permanent error).
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$state/host_key.pub")" >"$state/known_hosts.new"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$state/other_host_key.pub")" >"$state/wrong_known_hosts.new"
  mv "$state/known_hosts.new" "$state/known_hosts"
  mv "$state/wrong_known_hosts.new" "$state/wrong_known_hosts"
  alias() {
    cat <<END
Host $1
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $state/$2
  IdentitiesOnly yes
  UserKnownHostsFile $state/$3
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR

END
  }
  { alias cairn-test user_key known_hosts
    alias cairn-test-badkey other_key known_hosts
    alias cairn-test-badhost user_key wrong_known_hosts; } >"$state/ssh_config.new"
  mv "$state/ssh_config.new" "$state/ssh_config"
  /usr/sbin/sshd -D -e -f "$state/sshd_config" </dev/null >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  wait_listening "sshd.sh: sshd" "$port" "$state"
  ;;
stop)
  if [ -f "$state/pid" ]; then
    # The sessions are sshd's children: end them too, by their ids.
    # shellcheck disable=SC2046
    stop_server "$state" $(pgrep -P "$(cat "$state/pid")" 2>/dev/null || true)
  fi
  ;;
*) echo "usage: sshd.sh start|stop STATE_DIR [PORT]" >&2; exit 2 ;;
esac
