#!/usr/bin/env bash
# Installs, runs and stops a private RabbitMQ node for the RabbitMQ tests.
#
#   scripts/rabbitmq.sh install   install the Debian package rabbitmq-server if it is missing
#   scripts/rabbitmq.sh start     start the node in the background and wait until it accepts connections
#   scripts/rabbitmq.sh stop      stop it (its data is kept: durable queues survive a restart)
#   scripts/rabbitmq.sh restart   stop, then start again on the same data
#   scripts/rabbitmq.sh status    say whether it runs (exit status 3 when it does not)
#   scripts/rabbitmq.sh env       print the shell exports the tests read
#   scripts/rabbitmq.sh ctl ARGS  run rabbitmqctl ARGS against this node (e.g. ctl list_queues name durable)
#
# The node is not the system service of the package: it runs as the calling
# user with its own node name (switchyard-rabbit@localhost), its own Erlang
# cookie, its own epmd port and its own configuration, data (mnesia) and log
# directories under the run directory SWITCHYARD_RABBITMQ_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/rabbitmq). It listens for AMQP
# 0-9-1 on 127.0.0.1 only, port SWITCHYARD_RABBITMQ_PORT (default 5672), with
# the Erlang distribution on that port + 20000 and epmd on
# SWITCHYARD_RABBITMQ_EPMD_PORT (default 14369).
#
# The main user is `switchyard` with a password generated on first use; it
# has all permissions on the vhosts "/" and "switchyard-test". The user
# `switchyard-ro` (same password) may only read on "/", for tests of refused
# operations. The guest user is not created. max_message_size is 16 MiB (RabbitMQ's default is 128 MiB)
# so that a test can provoke the broker's refusal of a too large message
# cheaply. No plugins are enabled (rabbitmqctl lists exchanges and queues).
#
# Tunables (environment): SWITCHYARD_RABBITMQ_START_TIMEOUT (seconds, default
# 90), SWITCHYARD_RABBITMQ_STOP_TIMEOUT (seconds, default 60).
set -euo pipefail

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
run_dir="${SWITCHYARD_RABBITMQ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/rabbitmq}"
host=127.0.0.1
port="${SWITCHYARD_RABBITMQ_PORT:-5672}"
dist_port=$((port + 20000))
epmd_port="${SWITCHYARD_RABBITMQ_EPMD_PORT:-14369}"
node="switchyard-rabbit@localhost"
user=switchyard
ro_user=switchyard-ro
test_vhost=switchyard-test
rabbit_bin=/usr/lib/rabbitmq/bin
conf="$run_dir/rabbitmq.conf"
pid_file="$run_dir/rabbitmq.pid"
script_pid_file="$run_dir/rabbitmq-server.pid"
log_dir="$run_dir/log"
log_file="$run_dir/rabbitmq-server.out"
mnesia_dir="$run_dir/mnesia"
password_file="$run_dir/password"
lock_file="$run_dir/rabbitmq.lock"
start_timeout="${SWITCHYARD_RABBITMQ_START_TIMEOUT:-90}"
stop_timeout="${SWITCHYARD_RABBITMQ_STOP_TIMEOUT:-60}"

die() {
  printf 'rabbitmq.sh: %s\n' "$*" >&2
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

log_tail() {
  local f
  for f in "$log_dir/$node.log" "$log_file"; do
    if [ -s "$f" ]; then
      tail -n 5 "$f" | tr '\n' ' ' | cut -c 1-600
      return 0
    fi
  done
}

# lock serialises start, stop and restart.
locked=0
lock() {
  [ "$locked" = 1 ] && return 0
  locked=1
  mkdir -p "$run_dir"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock_file"
    flock -w "$((start_timeout + stop_timeout + 30))" 9 || die "another rabbitmq.sh holds $lock_file"
  fi
}

installed() {
  [ -x "$rabbit_bin/rabbitmq-server" ] && [ -x "$rabbit_bin/rabbitmqctl" ]
}

cmd_install() {
  if installed; then
    echo "rabbitmq: already installed"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "rabbitmq-server is not installed and apt-get is not available; install RabbitMQ 3.x by hand"
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they do not know the package yet.
  if ! apt-cache policy rabbitmq-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  as_root apt-get install -y -qq --no-install-recommends rabbitmq-server </dev/null >/dev/null ||
    die "apt-get install rabbitmq-server failed"
  installed || die "rabbitmq-server is still missing after apt-get install"
  echo "rabbitmq: installed"
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

# node_env exports what every RabbitMQ command needs to reach this node and
# no other: the cookie in $run_dir (through HOME), the node name, the epmd
# port, and paths that keep the package's /etc and /var files out of it.
node_env() {
  export HOME="$run_dir"
  export ERL_EPMD_PORT="$epmd_port"
  export RABBITMQ_NODENAME="$node"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_CONF_ENV_FILE="$run_dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$run_dir/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$run_dir/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$mnesia_dir"
  export RABBITMQ_MNESIA_DIR="$mnesia_dir/$node"
  export RABBITMQ_LOG_BASE="$log_dir"
  export RABBITMQ_PID_FILE="$pid_file"
  export RABBITMQ_NODE_IP_ADDRESS="$host"
  export RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT="$dist_port"
  export RABBITMQ_LOGS="$log_dir/$node.log"
  export RABBITMQ_PLUGINS_EXPAND_DIR="$mnesia_dir/$node-plugins-expand"
  export LANG=C.UTF-8 LC_ALL=C.UTF-8
}

ctl() {
  (node_env && cd "$run_dir" && "$rabbit_bin/rabbitmqctl" -n "$node" "$@")
}

write_config() {
  mkdir -p "$run_dir" "$log_dir" "$mnesia_dir"
  chmod 700 "$run_dir"
  if [ ! -s "$run_dir/.erlang.cookie" ]; then
    (umask 077 && head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$run_dir/.erlang.cookie")
  fi
  chmod 400 "$run_dir/.erlang.cookie"
  : >"$run_dir/rabbitmq-env.conf"
  echo "[]." >"$run_dir/enabled_plugins"
  echo "[]." >"$run_dir/advanced.config"
  local pw
  pw="$(password)"
  {
    echo "# Written by scripts/rabbitmq.sh; rewritten on every start."
    echo "listeners.tcp.1 = $host:$port"
    echo "loopback_users = none"
    # Created on the first start on empty data; later starts keep the user
    # database, and start sets the password again.
    echo "default_user = $user"
    echo "default_pass = $pw"
    echo "default_vhost = /"
    echo "default_permissions.configure = .*"
    echo "default_permissions.read = .*"
    echo "default_permissions.write = .*"
    echo "max_message_size = 16777216"
    echo "log.file.level = info"
    echo "log.console = false"
    # A test machine may have little free disk; do not block publishers.
    echo "disk_free_limit.absolute = 10MB"
  } >"$conf"
}

# running_pid prints the pid of the node this script started, if it runs.
running_pid() {
  local f pid
  for f in "$pid_file" "$script_pid_file"; do
    [ -s "$f" ] || continue
    pid="$(tr -dc '0-9' <"$f")"
    [ -n "$pid" ] || continue
    kill -0 "$pid" 2>/dev/null || continue
    if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e "$node" -e rabbitmq-server; then
      continue
    fi
    echo "$pid"
    return 0
  done
  return 1
}

port_open() {
  (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

ready() {
  port_open "$port" && ctl -q status >/dev/null 2>&1
}

cmd_start() {
  lock
  installed || die "rabbitmq-server is not installed; run: $self install"
  local pid
  if pid="$(running_pid)" && ready; then
    echo "rabbitmq: already running (pid $pid) at amqp://$host:$port"
    return 0
  fi
  if [ -z "${pid:-}" ]; then
    for p in "$port" "$dist_port"; do
      if port_open "$p"; then
        die "port $host:$p is already in use by another process (set SWITCHYARD_RABBITMQ_PORT)"
      fi
    done
    write_config
    rm -f "$pid_file" "$script_pid_file"
    if [ -f "$log_file" ] && [ "$(wc -c <"$log_file")" -gt 10485760 ]; then
      : >"$log_file"
    fi
    (
      node_env
      cd "$run_dir"
      nohup "$rabbit_bin/rabbitmq-server" >>"$log_file" 2>&1 </dev/null 9>&- &
      echo $! >"$script_pid_file"
    )
  else
    echo "rabbitmq: process $pid is running but not ready yet; waiting"
  fi
  local t0=$SECONDS deadline=$((SECONDS + start_timeout))
  until port_open "$port"; do
    if ! running_pid >/dev/null; then
      die "rabbitmq exited while starting: $(log_tail)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "rabbitmq did not listen on $host:$port within ${start_timeout}s (see $log_dir): $(log_tail)"
    fi
    sleep 0.2
  done
  ctl -q await_startup --timeout "$start_timeout" >/dev/null 2>&1 ||
    die "rabbitmq did not finish booting: $(log_tail)"
  # The user and vhosts: the configuration creates the user and "/" on
  # empty data; the rest is done once per data directory (each rabbitmqctl
  # call costs seconds).
  if [ ! -e "$mnesia_dir/provisioned-2" ] || [ "$mnesia_dir/provisioned-2" -ot "$password_file" ]; then
    ctl -q add_user "$user" "$(password)" >/dev/null 2>&1 || ctl -q change_password "$user" "$(password)" >/dev/null 2>&1 ||
      die "setting the password of $user failed"
    ctl -q set_user_tags "$user" administrator >/dev/null
    ctl -q add_vhost "$test_vhost" >/dev/null 2>&1 || true
    local vh
    for vh in / "$test_vhost"; do
      ctl -q set_permissions -p "$vh" "$user" '.*' '.*' '.*' >/dev/null || die "setting permissions on vhost $vh failed"
    done
    # A user that may read but neither declare nor publish, for the tests
    # of refused operations.
    ctl -q add_user "$ro_user" "$(password)" >/dev/null 2>&1 || ctl -q change_password "$ro_user" "$(password)" >/dev/null 2>&1 ||
      die "setting the password of $ro_user failed"
    ctl -q set_permissions -p / "$ro_user" '^$' '^$' '.*' >/dev/null || die "setting permissions of $ro_user failed"
    touch "$mnesia_dir/provisioned-2"
  fi
  pid="$(running_pid)" || die "rabbitmq exited after starting: $(log_tail)"
  echo "rabbitmq: running (pid $pid) at amqp://$host:$port, ready after $((SECONDS - t0))s"
}

cmd_stop() {
  lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file" "$script_pid_file"
    echo "rabbitmq: not running"
    return 0
  fi
  # shutdown stops the node gracefully (queues are flushed) and waits for
  # the OS process to exit.
  (node_env && cd "$run_dir" && timeout "$stop_timeout" "$rabbit_bin/rabbitmqctl" -n "$node" -q shutdown) >/dev/null 2>&1 || true
  local deadline=$((SECONDS + stop_timeout)) p
  for p in $(running_pid; [ -s "$script_pid_file" ] && tr -dc '0-9' <"$script_pid_file"); do
    kill -TERM "$p" 2>/dev/null || true
  done
  while pid="$(running_pid)"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      echo "rabbitmq: did not stop within ${stop_timeout}s and was killed (pid $pid)" >&2
      break
    fi
    sleep 0.2
  done
  rm -f "$pid_file" "$script_pid_file"
  # The epmd on the private port was started by the node; end it too.
  (node_env && epmd -port "$epmd_port" -kill >/dev/null 2>&1) || true
  echo "rabbitmq: stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)" && port_open "$port"; then
    echo "rabbitmq: running (pid $pid) at amqp://$host:$port"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    echo "rabbitmq: running (pid $pid) but not ready"
  else
    echo "rabbitmq: not running"
  fi
  exit 3
}

cmd_env() {
  local pw
  pw="$(password)"
  printf 'export SWITCHYARD_RABBITMQ_URL=%q\n' "amqp://$user:$pw@$host:$port/"
  printf 'export SWITCHYARD_RABBITMQ_HOST=%q\n' "$host"
  printf 'export SWITCHYARD_RABBITMQ_PORT=%q\n' "$port"
  printf 'export SWITCHYARD_RABBITMQ_USER=%q\n' "$user"
  printf 'export SWITCHYARD_RABBITMQ_PASSWORD=%q\n' "$pw"
  printf 'export SWITCHYARD_RABBITMQ_RO_USER=%q\n' "$ro_user"
  printf 'export SWITCHYARD_RABBITMQ_TEST_VHOST=%q\n' "$test_vhost"
  printf 'export SWITCHYARD_RABBITMQ_RESTART=%q\n' "$self restart"
  printf 'export SWITCHYARD_RABBITMQ_STOP=%q\n' "$self stop"
  printf 'export SWITCHYARD_RABBITMQ_START=%q\n' "$self start"
  printf 'export SWITCHYARD_RABBITMQ_CTL=%q\n' "$self ctl"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart)
  cmd_stop
  cmd_start
  ;;
status) cmd_status ;;
env) cmd_env ;;
ctl)
  shift
  installed || die "rabbitmq-server is not installed; run: $self install"
  ctl "$@"
  ;;
*)
  echo "usage: $0 {install|start|stop|restart|status|env|ctl ARGS}" >&2
  exit 2
  ;;
esac
