#!/usr/bin/env bash
# Runs the benchmarks described in bench/README.md (what `make bench` runs):
# starts Apache Pulsar, Mosquitto, RabbitMQ and Kafka the way `make test`
# does unless they already run, prepares the Python environment with
# trustgraph-base, builds bin/switchyard and bin/echo-llm, runs
# `switchyard bench` (table on stdout, progress on stderr, results in
# bench/results.json), and at the end stops only the brokers it started
# itself.
#
#   scripts/bench.sh                       the full run (about 12 minutes plus broker start-up)
#   scripts/bench.sh --duration 4s --rounds 1 --round-trip-time 2s    a quick smoke run
#
# Arguments are passed on to `switchyard bench` (see `bin/switchyard bench --help`).
# Before measuring it waits until the machine is quiet (see wait_quiet).
# Environment: SWITCHYARD_BENCH_BACKENDS (default memory,mqtt,pulsar,rabbitmq,kafka) chooses
# the backends and so the brokers to start; SWITCHYARD_BENCH_PYTHON=none skips
# the Python processor; SWITCHYARD_BENCH_PULSAR_PERF is the pulsar-perf script
# to run on Pulsar (default: the one of the distribution scripts/pulsar.sh
# installs), none skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
backends="${SWITCHYARD_BENCH_BACKENDS:-memory,mqtt,pulsar,rabbitmq,kafka}"

log() { printf '== %s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

started=()
stop_started() {
  local b
  for b in "${started[@]+"${started[@]}"}"; do
    log "stopping $b (started by this script)"
    "$root/scripts/$b.sh" stop >&2 || true
  done
}
trap stop_started EXIT

# ensure_broker NAME: install and start the broker unless a process of it
# already runs; remember it when this script started it.
ensure_broker() {
  local name=$1 status
  status=$("$root/scripts/$name.sh" status 2>/dev/null || true)
  "$root/scripts/$name.sh" install >&2
  if printf '%s' "$status" | grep -q "not running"; then
    started+=("$name")
    log "starting $name"
  else
    log "$name already runs; it is left running afterwards"
  fi
  "$root/scripts/$name.sh" start >&2
}

t0=$(date +%s)
mqtt_args=()
pulsar_args=()
rabbitmq_args=()
kafka_args=()
python_args=(--no-python)
perf_args=()
case ",$backends," in
*,mqtt,*)
  ensure_broker mosquitto
  eval "$("$root/scripts/mosquitto.sh" env)"
  mqtt_args=(--mqtt-host "${SWITCHYARD_MQTT_ADDR%:*}" --mqtt-port "${SWITCHYARD_MQTT_ADDR##*:}")
  ;;
esac
case ",$backends," in
*,pulsar,*)
  ensure_broker pulsar
  eval "$("$root/scripts/pulsar.sh" env)"
  pulsar_args=(--pulsar-host "$SWITCHYARD_PULSAR_URL")
  if [ "${SWITCHYARD_BENCH_PYTHON:-}" = "none" ]; then
    log "Python processor skipped (SWITCHYARD_BENCH_PYTHON=none)"
  elif py=$("$root/scripts/python-env.sh"); then
    python_args=(--python "$py" --python-script "$root/bench/tg_processor.py")
  else
    log "no Python environment with trustgraph-base; the Python processor is skipped"
  fi
  # pulsar-perf of the distribution scripts/pulsar.sh installed (its
  # download and unpack directory; see the top of scripts/pulsar.sh).
  perf="${SWITCHYARD_BENCH_PULSAR_PERF:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/apache-pulsar-${SWITCHYARD_PULSAR_VERSION:-4.0.8}/bin/pulsar-perf}"
  if [ "$perf" = "none" ]; then
    log "pulsar-perf skipped (SWITCHYARD_BENCH_PULSAR_PERF=none)"
  elif [ -x "$perf" ]; then
    perf_args=(--pulsar-perf "$perf")
  else
    log "no pulsar-perf at $perf; its rows are skipped"
  fi
  ;;
esac
case ",$backends," in
*,rabbitmq,*)
  ensure_broker rabbitmq
  # Exports SWITCHYARD_RABBITMQ_PASSWORD too, which the bench reads from
  # the environment: the password stays off the command line.
  eval "$("$root/scripts/rabbitmq.sh" env)"
  rabbitmq_args=(--rabbitmq-host "$SWITCHYARD_RABBITMQ_HOST" --rabbitmq-port "$SWITCHYARD_RABBITMQ_PORT"
    --rabbitmq-username "$SWITCHYARD_RABBITMQ_USER")
  ;;
esac
case ",$backends," in
*,kafka,*)
  ensure_broker kafka
  eval "$("$root/scripts/kafka.sh" env)"
  kafka_args=(--kafka-bootstrap-servers "$SWITCHYARD_KAFKA_BOOTSTRAP")
  ;;
esac
log "brokers ready after $(($(date +%s) - t0))s"

log "building bin/switchyard and bin/echo-llm"
go build -o "$root/bin/" ./cmd/switchyard ./examples/echo-llm

if ! "$root/bin/switchyard" bench --help >/dev/null 2>&1; then
  echo "bench.sh: bin/switchyard has no bench command (benchCommand in cmd/switchyard/bench.go is not registered)" >&2
  exit 1
fi

# cpu_busy_percent SECONDS: the share of all CPUs' time spent busy (not
# idle or waiting for I/O) over the next SECONDS, from /proc/stat.
cpu_busy_percent() {
  local a b
  a=$(head -n 1 /proc/stat)
  sleep "$1"
  b=$(head -n 1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    na = split(a, x); split(b, y); total = 0; idle = 0
    for (i = 2; i <= na; i++) total += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    busy = 0
    if (total > 0) busy = 100 * (total - idle) / total
    printf "%d", busy
  }'
}

# wait_quiet: wait until nothing else keeps the CPUs busy (brokers still
# starting, a broker's own background work), so that it does not take CPU
# from the first measurements: the CPUs must be at most
# SWITCHYARD_BENCH_QUIET_PERCENT busy (default 15) in two 2-second samples
# in a row, for at most SWITCHYARD_BENCH_QUIET_WAIT seconds (default 180).
wait_quiet() {
  local limit="${SWITCHYARD_BENCH_QUIET_PERCENT:-15}" max="${SWITCHYARD_BENCH_QUIET_WAIT:-180}"
  local start=$SECONDS calm=0 busy
  [ -r /proc/stat ] || return 0
  while :; do
    busy=$(cpu_busy_percent 2)
    if [ "$busy" -le "$limit" ]; then
      calm=$((calm + 1))
      if [ "$calm" -ge 2 ]; then
        log "machine quiet after $((SECONDS - start))s (CPUs ${busy}% busy)"
        return 0
      fi
    else
      calm=0
    fi
    if [ $((SECONDS - start)) -ge "$max" ]; then
      log "machine still ${busy}% busy after ${max}s; measuring anyway (the figures may be low)"
      return 0
    fi
  done
}

wait_quiet
log "running switchyard bench (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a))"
"$root/bin/switchyard" bench \
  --backends "$backends" \
  "${mqtt_args[@]+"${mqtt_args[@]}"}" \
  "${pulsar_args[@]+"${pulsar_args[@]}"}" \
  "${rabbitmq_args[@]+"${rabbitmq_args[@]}"}" \
  "${kafka_args[@]+"${kafka_args[@]}"}" \
  "${python_args[@]}" \
  "${perf_args[@]+"${perf_args[@]}"}" \
  --echo-llm "$root/bin/echo-llm" \
  --out "$root/bench/results.json" \
  "$@"
log "done in $(($(date +%s) - t0))s"
