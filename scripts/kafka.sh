#!/usr/bin/env bash
# Installs, runs and stops a local single-node Apache Kafka broker (KRaft
# mode, combined broker and controller) for the Kafka tests. Needs bash, Maven
# (mvn) and Java 17 or later; no Docker and no download besides Maven
# Central: the broker is assembled from the org.apache.kafka:kafka_2.13 jar
# and its runtime dependencies.
#
#   scripts/kafka.sh install   resolve the broker's jars from Maven Central (once, cached)
#   scripts/kafka.sh start     format fresh storage, start the broker in the background, wait until it serves
#   scripts/kafka.sh stop      stop it (its data is kept for restart)
#   scripts/kafka.sh restart   stop, then start again with the same data
#   scripts/kafka.sh status    exit 0 when the broker this script started serves clients, 3 otherwise
#   scripts/kafka.sh env       print the shell exports the tests read
#
# The broker listens on 127.0.0.1 only: PLAINTEXT on port 9092, SASL_PLAINTEXT
# (mechanism PLAIN, user "switchyard", a password generated on first use) on
# port 9094, and the KRaft controller on port 9093. Settings follow
# TrustGraph's Kafka template: auto.create.topics.enable=true and
# message.max.bytes=10485760.
#
# Files: the jars are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/kafka-<version>/lib
# (Maven checks each download against the checksum Maven Central publishes);
# the configuration, data, log, pid file and SASL password live in the run
# directory SWITCHYARD_KAFKA_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/kafka).
#
# A cold start formats fresh storage with a new cluster id; restart keeps the
# data, unless the stop had to kill the broker.
#
# Tunables (environment): SWITCHYARD_KAFKA_VERSION (default 4.1.2, the version
# TrustGraph's templates run), SWITCHYARD_KAFKA_PORT (9092),
# SWITCHYARD_KAFKA_SASL_PORT (9094), SWITCHYARD_KAFKA_CONTROLLER_PORT (9093),
# SWITCHYARD_KAFKA_START_TIMEOUT (seconds, default 120),
# SWITCHYARD_KAFKA_STOP_TIMEOUT (seconds, default 60), KAFKA_HEAP_OPTS (JVM
# heap flags, default -Xms256m -Xmx512m), SWITCHYARD_MAVEN_REPO (a Maven local
# repository other than ~/.m2/repository).
set -euo pipefail

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
version="${SWITCHYARD_KAFKA_VERSION:-4.1.2}"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
run_dir="${SWITCHYARD_KAFKA_DIR:-$cache_dir/kafka}"
kafka_home="$cache_dir/kafka-$version"
lib_dir="$kafka_home/lib"
host=127.0.0.1
port="${SWITCHYARD_KAFKA_PORT:-9092}"
sasl_port="${SWITCHYARD_KAFKA_SASL_PORT:-9094}"
controller_port="${SWITCHYARD_KAFKA_CONTROLLER_PORT:-9093}"
conf="$run_dir/server.properties"
log4j_conf="$run_dir/log4j2.properties"
pid_file="$run_dir/kafka.pid"
log_file="$run_dir/kafka.log"
out_file="$run_dir/kafka.out"
lock_file="$run_dir/kafka.lock"
password_file="$run_dir/sasl-password"
start_timeout="${SWITCHYARD_KAFKA_START_TIMEOUT:-120}"
stop_timeout="${SWITCHYARD_KAFKA_STOP_TIMEOUT:-60}"
heap_opts="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
sasl_user=switchyard

die() {
  printf 'kafka.sh: %s\n' "$*" >&2
  exit 1
}

log_tail() {
  local f
  for f in "$out_file" "$log_file"; do
    if [ -s "$f" ]; then
      tail -n 5 "$f" | tr '\n' ' ' | cut -c 1-600
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
    flock -w "$((start_timeout + stop_timeout + 30))" 9 || die "another kafka.sh holds $lock_file"
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

# find_java sets JAVA for a Java 17 or later: JAVA_HOME, the java on PATH,
# or one under /usr/lib/jvm.
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
      JAVA="$c"
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
    die "installing packages needs root: run as root, install sudo, or install $* by hand"
  fi
}

# apt_install installs the Debian package $1.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "Kafka $version needs the package $1; install it"
  echo "kafka: installing $1"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  as_root apt-get install -y -qq "$1" >/dev/null || die "apt-get install $1 failed"
}

ensure_java() {
  find_java && return 0
  apt_install openjdk-17-jre-headless
  find_java || die "no Java 17 or later found after installing openjdk-17-jre-headless"
}

cmd_install() {
  ensure_java
  if [ -f "$kafka_home/.assembled" ] && [ -d "$lib_dir" ]; then
    echo "kafka: $version already installed in $kafka_home"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  mkdir -p "$kafka_home"
  local pom="$kafka_home/pom.xml" tmp="$kafka_home/lib.part"
  # The log4j binding for slf4j 1.7 lets the broker's own logging reach the
  # log4j2 configuration that start writes.
  cat >"$pom" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.switchyard</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.3</version></dependency>
  </dependencies>
</project>
EOF
  echo "kafka: resolving org.apache.kafka:kafka_2.13:$version and its dependencies from Maven Central"
  rm -rf "$tmp"
  # -C fails on a checksum mismatch instead of warning.
  mvn -q -B -C -f "$pom" ${SWITCHYARD_MAVEN_REPO:+-Dmaven.repo.local="$SWITCHYARD_MAVEN_REPO"} dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$kafka_home/mvn.log" 2>&1 ||
    die "resolving the Kafka jars failed: $(tail -n 5 "$kafka_home/mvn.log" | tr '\n' ' ' | cut -c 1-600)"
  [ -f "$tmp/kafka_2.13-$version.jar" ] || die "Maven did not deliver kafka_2.13-$version.jar"
  rm -rf "$lib_dir"
  mv "$tmp" "$lib_dir"
  touch "$kafka_home/.assembled"
  echo "kafka: $version installed in $kafka_home ($(ls "$lib_dir" | wc -l) jars)"
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
  if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'; then
    return 1
  fi
  echo "$pid"
}

# serving is true when the broker this script started has logged that it
# started and accepts connections on its client port.
serving() {
  running_pid >/dev/null || return 1
  grep -q 'Kafka Server started' "$log_file" 2>/dev/null || return 1
  port_open "$port"
}

write_config() {
  mkdir -p "$run_dir/data"
  chmod 700 "$run_dir"
  if [ ! -s "$password_file" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$password_file")
  fi
  local password
  password="$(cat "$password_file")"
  (
    umask 077
    cat >"$conf" <<EOF
# Written by scripts/kafka.sh on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$controller_port
listeners=PLAINTEXT://$host:$port,SASL_PLAINTEXT://$host:$sasl_port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$host:$port,SASL_PLAINTEXT://$host:$sasl_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$password";
log.dirs=$run_dir/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# As in TrustGraph's Kafka template.
auto.create.topics.enable=true
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
# A consumer group forms at once instead of waiting for more members.
group.initial.rebalance.delay.ms=0
EOF
  )
  cat >"$log4j_conf" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $log_file
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
logger.coordinator.name = state.change.logger
logger.coordinator.level = WARN
EOF
}

format_storage() {
  local id
  id="$("$JAVA" -cp "$lib_dir/*" kafka.tools.StorageTool random-uuid 2>>"$out_file" | tail -n 1 | tr -d '[:space:]')"
  [ -n "$id" ] || die "generating a cluster id failed: $(log_tail)"
  "$JAVA" -Dlog4j2.configurationFile="$log4j_conf" -cp "$lib_dir/*" kafka.tools.StorageTool format \
    -t "$id" -c "$conf" >>"$out_file" 2>&1 || die "formatting the storage failed: $(log_tail)"
}

cmd_start() {
  lock
  [ -f "$kafka_home/.assembled" ] || die "Kafka $version is not installed; run: $self install"
  find_java || die "Kafka $version needs Java 17 or later; run: $self install"
  local pid
  if pid="$(running_pid)" && serving; then
    echo "kafka: already running (pid $pid) at $host:$port"
    return 0
  fi
  if [ -z "${pid:-}" ]; then
    for p in "$port" "$sasl_port" "$controller_port"; do
      if port_open "$p"; then
        die "port $host:$p is already in use by another process"
      fi
    done
  fi
  if [ -z "${pid:-}" ]; then
    local t0=$SECONDS
    write_config
    : >"$log_file"
    : >"$out_file"
    if [ "${keep_data:-no}" != yes ] || [ -e "$run_dir/unclean" ] || [ ! -f "$run_dir/data/meta.properties" ]; then
      echo "kafka: formatting fresh storage"
      rm -rf "$run_dir/data" "$run_dir/unclean"
      mkdir -p "$run_dir/data"
      format_storage
    fi
    rm -f "$pid_file"
    echo "kafka: starting $version (log: $log_file)"
    (
      cd "$run_dir"
      # shellcheck disable=SC2086
      nohup "$JAVA" $heap_opts -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$log4j_conf" -Dkafka.logs.dir="$run_dir" \
        -cp "$lib_dir/*" kafka.Kafka "$conf" \
        >>"$out_file" 2>&1 </dev/null 9>&- &
      echo $! >"$pid_file"
    )
  else
    echo "kafka: process $pid is running but not serving yet; waiting"
  fi
  local t1=$SECONDS deadline=$((SECONDS + start_timeout)) next=$((SECONDS + 10))
  until serving; do
    if ! pid="$(running_pid)"; then
      rm -f "$pid_file"
      die "kafka exited while starting: $(log_tail)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "kafka did not start within ${start_timeout}s (pid $pid still runs; see $log_file): $(log_tail)"
    fi
    if [ "$SECONDS" -ge "$next" ]; then
      echo "kafka: waiting for the broker to start ($((SECONDS - t1))s)"
      next=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  pid="$(running_pid)"
  echo "kafka: running (pid $pid) at $host:$port (SASL_PLAINTEXT $host:$sasl_port), serving after $((SECONDS - t1))s"
}

cmd_stop() {
  lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file"
    echo "kafka: not running"
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
      echo "kafka: did not stop within ${stop_timeout}s and was killed (pid $pid)" >&2
      return 0
    fi
    sleep 0.2
  done
  rm -f "$pid_file"
  echo "kafka: stopped"
}

cmd_status() {
  local pid
  if serving; then
    echo "kafka: serving (pid $(running_pid)) at $host:$port"
    return 0
  fi
  if pid="$(running_pid)"; then
    echo "kafka: running (pid $pid) but not serving"
  else
    echo "kafka: not running"
  fi
  exit 3
}

cmd_env() {
  local password=""
  if [ -s "$password_file" ]; then
    password="$(cat "$password_file")"
  fi
  printf 'export SWITCHYARD_KAFKA_BOOTSTRAP=%q\n' "$host:$port"
  printf 'export SWITCHYARD_KAFKA_SASL_BOOTSTRAP=%q\n' "$host:$sasl_port"
  printf 'export SWITCHYARD_KAFKA_SASL_USERNAME=%q\n' "$sasl_user"
  printf 'export SWITCHYARD_KAFKA_SASL_PASSWORD=%q\n' "$password"
  printf 'export SWITCHYARD_KAFKA_RESTART=%q\n' "$self restart"
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
