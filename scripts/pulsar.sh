#!/usr/bin/env bash
# Installs, runs and stops a local Apache Pulsar standalone broker for the
# Pulsar tests. Needs bash, curl and tar; no Docker. It uses Java 17 or
# later (JAVA_HOME, the java on PATH or one under /usr/lib/jvm) and installs
# the package openjdk-17-jre-headless with apt-get when there is none.
#
#   scripts/pulsar.sh install   download (once, cached) and unpack the Pulsar distribution
#   scripts/pulsar.sh start     start the broker on fresh data in the background and wait until it is healthy
#   scripts/pulsar.sh stop      stop it (its data is kept for restart)
#   scripts/pulsar.sh restart   stop, then start again with the same data
#   scripts/pulsar.sh status    exit 0 when the broker answers its health check, 3 otherwise
#   scripts/pulsar.sh env       print the shell exports the tests read
#
# The broker listens on 127.0.0.1 only: binary protocol on port 6650, admin
# REST API on port 8080. Token authentication is enabled with a secret key
# generated on first use, and clients without a token are let in as the role
# "anonymous", so plain clients work and a wrong token is refused.
#
# Files: the download is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard
# and unpacked beside it; the configuration, data, logs, pid file, secret key
# and token live in the run directory SWITCHYARD_PULSAR_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/pulsar).
#
# A cold start wipes the data of any earlier run: a standalone broker that was
# killed leaves its bookie registered in the metadata store, and the next
# broker on that data spins re-registering it and refuses to create ledgers.
# restart keeps the data, unless the stop had to kill the broker.
#
# Tunables (environment): SWITCHYARD_PULSAR_VERSION (default 4.0.8),
# SWITCHYARD_PULSAR_START_TIMEOUT (seconds, default 180),
# SWITCHYARD_PULSAR_STOP_TIMEOUT (seconds, default 60), PULSAR_MEM (JVM heap
# and direct memory flags).
set -euo pipefail

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
version="${SWITCHYARD_PULSAR_VERSION:-4.0.8}"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
run_dir="${SWITCHYARD_PULSAR_DIR:-$cache_dir/pulsar}"
archive="$cache_dir/apache-pulsar-$version-bin.tar.gz"
pulsar_home="$cache_dir/apache-pulsar-$version"
maven_url="https://repo1.maven.org/maven2/org/apache/pulsar/pulsar-server-distribution/$version/pulsar-server-distribution-$version-bin.tar.gz"
host=127.0.0.1
broker_port=6650
web_port=8080
admin_url="http://$host:$web_port"
conf="$run_dir/standalone.conf"
pid_file="$run_dir/pulsar.pid"
log_file="$run_dir/pulsar.log"
lock_file="$run_dir/pulsar.lock"
secret_key="$run_dir/token-secret.key"
token_file="$run_dir/token"
start_timeout="${SWITCHYARD_PULSAR_START_TIMEOUT:-180}"
stop_timeout="${SWITCHYARD_PULSAR_STOP_TIMEOUT:-60}"
pulsar_mem="${PULSAR_MEM:--Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m}"

die() {
  printf 'pulsar.sh: %s\n' "$*" >&2
  exit 1
}

log_tail() {
  if [ -f "$log_file" ]; then
    tail -n 5 "$log_file" | tr '\n' ' ' | cut -c 1-600
  fi
}

# lock serialises start, stop and restart: concurrent restarts (a test may
# ask for two in quick succession) run one after the other.
locked=0
lock() {
  [ "$locked" = 1 ] && return 0
  locked=1
  mkdir -p "$run_dir"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock_file"
    flock -w "$((start_timeout + stop_timeout + 30))" 9 || die "another pulsar.sh holds $lock_file"
  fi
}

# java_major prints the major version of the java binary $1.
java_major() {
  local v major
  v="$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  major="${v%%.*}"
  if [ "$major" = 1 ]; then
    major="$(echo "$v" | cut -d. -f2)"
  fi
  case "$major" in
  '' | *[!0-9]*) return 1 ;;
  esac
  echo "$major"
}

# find_java exports JAVA_HOME for a Java 17 or later: JAVA_HOME itself, the
# java on PATH, or one under /usr/lib/jvm.
find_java() {
  local candidates=() c major
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(readlink -f "$(command -v java)")")
  for c in /usr/lib/jvm/*/bin/java; do
    [ -x "$c" ] && candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    [ -x "$c" ] || continue
    major="$(java_major "$c")" || continue
    if [ "$major" -ge 17 ]; then
      JAVA_HOME="$(cd "$(dirname "$c")/.." && pwd)"
      export JAVA_HOME
      return 0
    fi
  done
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "installing Java needs root: run as root, install sudo, or install Java 17 by hand"
  fi
}

# ensure_java finds Java 17 or later, installing the Debian/Ubuntu package
# openjdk-17-jre-headless when there is none and apt-get is available.
ensure_java() {
  find_java && return 0
  command -v apt-get >/dev/null 2>&1 || die "Pulsar $version needs Java 17 or later; install it (or set JAVA_HOME)"
  echo "pulsar: installing openjdk-17-jre-headless"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache policy openjdk-17-jre-headless 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  as_root apt-get install -y -qq openjdk-17-jre-headless >/dev/null || die "apt-get install openjdk-17-jre-headless failed"
  find_java || die "no Java 17 or later found after installing openjdk-17-jre-headless"
}

# verify_archive checks the download against the SHA-1 published beside it
# on Maven Central, or, when that cannot be fetched, that tar can list it.
verify_archive() {
  local file="$1" want got
  if want="$(curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 --max-time 60 "$maven_url.sha1" 2>/dev/null)"; then
    want="$(printf '%s' "$want" | tr -dc '0-9a-f' | cut -c 1-40)"
    got="$(sha1sum "$file" | cut -d' ' -f1)"
    if [ "${#want}" -eq 40 ]; then
      [ "$want" = "$got" ] || {
        echo "checksum mismatch: sha1 $got, Maven Central publishes $want" >&2
        return 1
      }
      return 0
    fi
  fi
  tar tzf "$file" >/dev/null 2>&1 || {
    echo "the archive is not a readable tar.gz" >&2
    return 1
  }
}

cmd_install() {
  ensure_java
  if [ -x "$pulsar_home/bin/pulsar" ] && [ -f "$pulsar_home/.unpacked" ]; then
    echo "pulsar: $version already installed in $pulsar_home"
    return 0
  fi
  command -v curl >/dev/null 2>&1 || die "curl is needed to download Pulsar"
  command -v tar >/dev/null 2>&1 || die "tar is needed to unpack Pulsar"
  mkdir -p "$cache_dir"
  if [ ! -s "$archive" ]; then
    echo "pulsar: downloading $maven_url (about 240 MB)"
    rm -f "$archive.part"
    curl -fsSL --retry 5 --retry-delay 5 --retry-all-errors --connect-timeout 30 \
      -o "$archive.part" "$maven_url" || die "download of $maven_url failed"
    verify_archive "$archive.part" || {
      rm -f "$archive.part"
      die "the download of $maven_url is corrupt; it was removed, run install again"
    }
    mv "$archive.part" "$archive"
  fi
  echo "pulsar: unpacking $archive"
  rm -rf "$pulsar_home"
  tar xzf "$archive" -C "$cache_dir" || {
    rm -rf "$pulsar_home"
    die "unpacking $archive failed; delete it and run install again"
  }
  [ -x "$pulsar_home/bin/pulsar" ] || die "$archive does not contain apache-pulsar-$version/bin/pulsar"
  touch "$pulsar_home/.unpacked"
  echo "pulsar: $version installed in $pulsar_home"
}

healthy() {
  local body
  body="$(curl -fsS --max-time 5 "$admin_url/admin/v2/brokers/health" 2>/dev/null)" || return 1
  [ "$body" = ok ]
}

port_open() {
  (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

# running_pid prints the pid of the broker this script started, if it runs.
running_pid() {
  [ -s "$pid_file" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$pid_file")"
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # The recorded process is bin/pulsar until it execs java.
  if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'PulsarStandaloneStarter|bin/pulsar standalone'; then
    return 1
  fi
  echo "$pid"
}

write_config() {
  mkdir -p "$run_dir/data" "$run_dir/logs"
  chmod 700 "$run_dir"
  if [ ! -s "$secret_key" ]; then
    (umask 077 && head -c 32 /dev/urandom >"$secret_key")
  fi
  rm -f "$conf"
  {
    cat "$pulsar_home/conf/standalone.conf"
    echo
    echo "# Appended by scripts/pulsar.sh; rewritten on every start."
    echo "bindAddress=$host"
    echo "advertisedAddress=$host"
    echo "brokerServicePort=$broker_port"
    echo "webServicePort=$web_port"
    # Token authentication, with clients that present no token let in as
    # an anonymous role and authorization off, so both kinds of client work.
    echo "authenticationEnabled=true"
    echo "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
    echo "tokenSecretKey=file://$secret_key"
    echo "anonymousUserRole=anonymous"
    echo "authorizationEnabled=false"
    # Acks of single messages of a batch are kept, so that a consumer with
    # batch index acknowledgment gets only the unacked ones of a batch again.
    echo "acknowledgmentAtBatchIndexLevelEnabled=true"
    # Small caches suit a test machine.
    echo "dbStorage_writeCacheMaxSizeMb=64"
    echo "dbStorage_readAheadCacheMaxSizeMb=64"
    echo "managedLedgerCacheSizeMB=64"
    # Stop quickly: a test restarts the broker while clients are connected.
    echo "brokerShutdownTimeoutMs=5000"
  } >"$conf"
}

# make_token writes a token for the role "switchyard", signed with the
# secret key, using Pulsar's own token tool.
make_token() {
  if [ -s "$token_file" ] && [ "$token_file" -nt "$secret_key" ]; then
    return 0
  fi
  local out
  out="$(PULSAR_MEM="-Xms64m -Xmx256m" PULSAR_GC_LOG=" " PULSAR_LOG_DIR="$run_dir/logs" \
    "$pulsar_home/bin/pulsar" tokens create --secret-key "file://$secret_key" --subject switchyard 2>>"$log_file")" ||
    die "creating a token failed: $(log_tail)"
  out="$(printf '%s' "$out" | tail -n 1 | tr -d '[:space:]')"
  [ -n "$out" ] || die "creating a token printed nothing"
  (umask 077 && printf '%s\n' "$out" >"$token_file")
}

cmd_start() {
  lock
  [ -x "$pulsar_home/bin/pulsar" ] || die "Pulsar $version is not installed; run: $self install"
  find_java || die "Pulsar $version needs Java 17 or later; run: $self install"
  local pid
  if pid="$(running_pid)" && healthy; then
    echo "pulsar: already running (pid $pid) at pulsar://$host:$broker_port"
    return 0
  fi
  if [ -z "${pid:-}" ]; then
    for p in "$broker_port" "$web_port"; do
      if port_open "$p"; then
        die "port $host:$p is already in use by another process"
      fi
    done
  fi
  if [ -z "${pid:-}" ] && { [ "${keep_data:-no}" != yes ] || [ -e "$run_dir/unclean" ]; }; then
    echo "pulsar: starting on fresh data"
    rm -rf "$run_dir/data" "$run_dir/unclean"
    : >"$log_file"
  fi
  if [ -z "${pid:-}" ]; then
    write_config
    make_token
    rm -f "$pid_file"
    echo "pulsar: starting $version (log: $log_file)"
    (
      cd "$run_dir"
      export PULSAR_STANDALONE_CONF="$conf"
      export PULSAR_LOG_DIR="$run_dir/logs"
      export PULSAR_MEM="$pulsar_mem"
      export PULSAR_GC_LOG=" "
      nohup "$pulsar_home/bin/pulsar" standalone -nfw -nss \
        --bookkeeper-dir "$run_dir/data/bookkeeper" \
        --metadata-dir "$run_dir/data/metadata" \
        >>"$log_file" 2>&1 </dev/null 9>&- &
      echo $! >"$pid_file"
    )
  else
    echo "pulsar: process $pid is running but not healthy yet; waiting"
  fi
  local t0=$SECONDS deadline=$((SECONDS + start_timeout)) next=$((SECONDS + 10))
  until healthy; do
    if ! pid="$(running_pid)"; then
      rm -f "$pid_file"
      die "pulsar exited while starting: $(log_tail)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "pulsar did not become healthy within ${start_timeout}s (pid $pid still runs; see $log_file): $(log_tail)"
    fi
    if [ "$SECONDS" -ge "$next" ]; then
      echo "pulsar: waiting for $admin_url/admin/v2/brokers/health ($((SECONDS - t0))s)"
      next=$((SECONDS + 10))
    fi
    sleep 1
  done
  echo "pulsar: running (pid $pid) at pulsar://$host:$broker_port, admin $admin_url, healthy after $((SECONDS - t0))s"
}

cmd_stop() {
  lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file"
    echo "pulsar: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      rm -f "$pid_file"
      touch "$run_dir/unclean"
      echo "pulsar: did not stop within ${stop_timeout}s and was killed (pid $pid)" >&2
      return 0
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  echo "pulsar: stopped"
}

cmd_status() {
  local pid
  if healthy; then
    pid="$(running_pid || echo unknown)"
    echo "pulsar: healthy (pid $pid) at pulsar://$host:$broker_port"
    return 0
  fi
  if pid="$(running_pid)"; then
    echo "pulsar: running (pid $pid) but not healthy"
  else
    echo "pulsar: not running"
  fi
  exit 3
}

cmd_env() {
  local token=""
  if [ -s "$token_file" ]; then
    token="$(tr -d '[:space:]' <"$token_file")"
  fi
  printf 'export SWITCHYARD_PULSAR_URL=%q\n' "pulsar://$host:$broker_port"
  printf 'export SWITCHYARD_PULSAR_ADMIN_URL=%q\n' "$admin_url"
  printf 'export SWITCHYARD_PULSAR_RESTART=%q\n' "$self restart"
  printf 'export SWITCHYARD_PULSAR_TOKEN=%q\n' "$token"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart)
  cmd_stop
  keep_data=yes cmd_start
  ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 {install|start|stop|restart|status|env}" >&2
  exit 2
  ;;
esac
