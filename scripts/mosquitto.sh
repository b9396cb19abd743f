#!/usr/bin/env bash
# Installs, runs and stops a local Mosquitto 2.x broker for the MQTT tests.
#
#   scripts/mosquitto.sh install   install the Debian package `mosquitto` if `mosquitto` is missing
#   scripts/mosquitto.sh start     start the broker in the background and wait until it accepts connections
#   scripts/mosquitto.sh stop      stop it (its persistent state is saved and kept)
#   scripts/mosquitto.sh restart   stop, then start again with the same persistent state
#   scripts/mosquitto.sh status    say whether it runs (exit status 3 when it does not)
#   scripts/mosquitto.sh env       print the shell exports the tests read
#
# The broker has two listeners on the loopback interface: an anonymous one
# (SWITCHYARD_MQTT_PORT, default 18831) and one that requires the user
# `switchyard` with a password generated on first use (SWITCHYARD_MQTT_AUTH_PORT,
# default 18832). Its configuration, password file, pid file, log and
# persistence database live in the run directory SWITCHYARD_MOSQUITTO_DIR
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/mosquitto).
set -euo pipefail

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
run_dir="${SWITCHYARD_MOSQUITTO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/mosquitto}"
host=127.0.0.1
port="${SWITCHYARD_MQTT_PORT:-18831}"
auth_port="${SWITCHYARD_MQTT_AUTH_PORT:-18832}"
user=switchyard
conf="$run_dir/mosquitto.conf"
pid_file="$run_dir/mosquitto.pid"
log_file="$run_dir/mosquitto.log"
passwd_file="$run_dir/passwd"
password_file="$run_dir/password"
data_dir="$run_dir/data"
start_timeout="${SWITCHYARD_MOSQUITTO_START_TIMEOUT:-15}"
stop_timeout="${SWITCHYARD_MOSQUITTO_STOP_TIMEOUT:-15}"

die() {
  printf 'mosquitto.sh: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "installing needs root: run as root or install sudo"
  fi
}

cmd_install() {
  if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    echo "mosquitto: already installed"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "mosquitto is not installed and apt-get is not available; install Mosquitto 2.x by hand"
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they do not know the package yet.
  if ! apt-cache policy mosquitto 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  as_root apt-get install -y -qq mosquitto >/dev/null || die "apt-get install mosquitto failed"
  mosquitto_bin >/dev/null || die "mosquitto is still missing after apt-get install"
  echo "mosquitto: installed"
}

mosquitto_bin() {
  if command -v mosquitto >/dev/null 2>&1; then
    command -v mosquitto
  elif [ -x /usr/sbin/mosquitto ]; then
    echo /usr/sbin/mosquitto
  else
    return 1
  fi
}

mosquitto_passwd_bin() {
  if command -v mosquitto_passwd >/dev/null 2>&1; then
    command -v mosquitto_passwd
  elif [ -x /usr/bin/mosquitto_passwd ]; then
    echo /usr/bin/mosquitto_passwd
  else
    return 1
  fi
}

# password prints the test password, generating it on first use.
password() {
  if [ ! -s "$password_file" ]; then
    mkdir -p "$run_dir"
    local pw
    pw="$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    (umask 077 && printf '%s\n' "${pw:0:24}" >"$password_file")
  fi
  tr -d '\n' <"$password_file"
}

# running_pid prints the pid of the broker this script started, if it runs.
running_pid() {
  [ -s "$pid_file" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$pid_file")"
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" != mosquitto ]; then
    return 1
  fi
  echo "$pid"
}

port_open() {
  (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

write_config() {
  mkdir -p "$run_dir" "$data_dir"
  chmod 700 "$run_dir"
  local pw pw_bin
  pw="$(password)"
  pw_bin="$(mosquitto_passwd_bin)" || die "mosquitto_passwd is missing; run: $self install"
  rm -f "$passwd_file"
  (umask 077 && "$pw_bin" -b -c "$passwd_file" "$user" "$pw" >/dev/null 2>&1) ||
    die "mosquitto_passwd could not write $passwd_file"
  {
    echo "# Written by scripts/mosquitto.sh; rewritten on every start."
    # Mosquitto started by root drops to the user 'mosquitto', which cannot
    # read a run directory under root's home: this loopback-only test broker
    # keeps running as root instead.
    if [ "$(id -u)" -eq 0 ]; then
      echo "user root"
    fi
    echo "pid_file $pid_file"
    echo "log_dest file $log_file"
    echo "log_type error"
    echo "log_type warning"
    echo "log_type notice"
    echo "log_type information"
    echo "log_timestamp_format %Y-%m-%dT%H:%M:%S"
    # Sessions and their queued messages survive a restart (saved on SIGTERM,
    # and every autosave_interval seconds against a crash). Shared
    # subscriptions do not: Mosquitto 2.0.11 has no setting that keeps them,
    # so a group misses what is published before it subscribes again. The
    # MQTT publisher's ReconnectGrace covers that window (see mqttpubsub).
    echo "persistence true"
    echo "persistence_location $data_dir/"
    echo "persistence_file mosquitto.db"
    echo "autosave_interval 30"
    # Clients ack each message only after it was handled, so many may be
    # unacknowledged at once; the default of 20 in flight would throttle them.
    # It is no memory bound for the client: once the client acks, Mosquitto
    # 2.0.11 sends well past it (the subscriber bounds itself, MaxUnacked).
    echo "max_inflight_messages 1000"
    # Never drop queued messages of a persistent session (the default keeps 1000).
    echo "max_queued_messages 0"
    echo "max_queued_bytes 0"
    # Sessions of test clients that never come back are removed after a day.
    echo "persistent_client_expiration 1d"
    echo "per_listener_settings true"
    # Send small packets at once: with Nagle's algorithm on, a lone acked
    # request waits tens of milliseconds on the wire.
    echo "set_tcp_nodelay true"
    echo
    echo "listener $port $host"
    echo "allow_anonymous true"
    echo "allow_zero_length_clientid true"
    echo
    echo "listener $auth_port $host"
    echo "allow_anonymous false"
    echo "password_file $passwd_file"
    echo "allow_zero_length_clientid true"
  } >"$conf"
}

cmd_start() {
  local bin pid
  bin="$(mosquitto_bin)" || die "mosquitto is not installed; run: $self install"
  if pid="$(running_pid)"; then
    echo "mosquitto: already running (pid $pid) on $host:$port and $host:$auth_port"
    return 0
  fi
  for p in "$port" "$auth_port"; do
    if port_open "$p"; then
      die "port $host:$p is already in use by another process"
    fi
  done
  write_config
  rm -f "$pid_file"
  # Keep the log from growing without bound across runs.
  if [ -f "$log_file" ] && [ "$(wc -c <"$log_file")" -gt 10485760 ]; then
    : >"$log_file"
  fi
  # 9>&-: the daemon must not inherit the lock (see lock).
  "$bin" -c "$conf" -d >>"$log_file" 2>&1 9>&- || die "mosquitto failed to start: $(tail -n 3 "$log_file" | tr '\n' ' ')"
  local deadline=$((SECONDS + start_timeout))
  until port_open "$port" && port_open "$auth_port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "mosquitto did not accept connections on $host:$port and $host:$auth_port within ${start_timeout}s: $(tail -n 3 "$log_file" | tr '\n' ' ')"
    fi
    sleep 0.1
  done
  pid="$(running_pid)" || die "mosquitto exited after starting: $(tail -n 3 "$log_file" | tr '\n' ' ')"
  echo "mosquitto: running (pid $pid) on $host:$port (anonymous) and $host:$auth_port (user $user)"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file"
    echo "mosquitto: not running"
    return 0
  fi
  # SIGTERM makes Mosquitto save its persistence database before it exits.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      die "mosquitto (pid $pid) did not stop within ${stop_timeout}s and was killed"
    fi
    sleep 0.05
  done
  rm -f "$pid_file"
  echo "mosquitto: stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "mosquitto: running (pid $pid) on $host:$port (anonymous) and $host:$auth_port (user $user)"
  else
    echo "mosquitto: not running"
    exit 3
  fi
}

cmd_env() {
  local pw
  pw="$(password)"
  printf 'export SWITCHYARD_MQTT_ADDR=%q\n' "$host:$port"
  printf 'export SWITCHYARD_MQTT_AUTH_ADDR=%q\n' "$host:$auth_port"
  printf 'export SWITCHYARD_MQTT_USER=%q\n' "$user"
  printf 'export SWITCHYARD_MQTT_PASSWORD=%q\n' "$pw"
  printf 'export SWITCHYARD_MQTT_RESTART=%q\n' "$self restart"
}

# lock serializes start, stop and restart: tests that restart the broker
# can run at the same time, and two restarts interleaved would start a
# second broker while the first still holds the port, or lose the pid file.
lock() {
  mkdir -p "$run_dir"
  exec 9>"$run_dir/lock"
  flock 9
}

case "${1:-}" in
install) cmd_install ;;
start) lock; cmd_start ;;
stop) lock; cmd_stop ;;
restart)
  lock
  cmd_stop
  cmd_start
  ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 {install|start|stop|restart|status|env}" >&2
  exit 2
  ;;
esac
