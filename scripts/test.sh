#!/usr/bin/env bash
# Runs every check `make test` promises: it installs and starts the real
# brokers the adapter tests need (Apache Pulsar standalone and Mosquitto),
# runs gofmt, go vet and the race-enabled tests against them, and stops the
# brokers again, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '== %s %s\n' "$(date +%H:%M:%S)" "$*"; }

# Stop only the brokers this run started: a developer's running brokers
# stay up.
started=()
stop_brokers() {
  for b in "${started[@]}"; do
    "$root/scripts/$b.sh" stop || true
  done
}
trap stop_brokers EXIT

start_broker() {
  "$root/scripts/$1.sh" install
  if ! "$root/scripts/$1.sh" status >/dev/null 2>&1; then
    started+=("$1")
    "$root/scripts/$1.sh" start
  fi
}

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:" >&2
  echo "$unformatted" >&2
  exit 1
fi

log "go vet"
go vet ./...

log "installing and starting brokers"
t0=$(date +%s)
start_broker mosquitto
start_broker pulsar
start_broker rabbitmq
start_broker kafka
log "preparing the TrustGraph Python environment"
"$root/scripts/python-env.sh" >/dev/null
eval "$("$root/scripts/pulsar.sh" env)"
eval "$("$root/scripts/mosquitto.sh" env)"
eval "$("$root/scripts/rabbitmq.sh" env)"
eval "$("$root/scripts/kafka.sh" env)"
export SWITCHYARD_REQUIRE_BROKERS=1
log "brokers ready after $(( $(date +%s) - t0 ))s"

# Tests that restart a broker run alone, so that they do not disturb the
# other packages' tests on the same broker.
# Every package runs even after a failure, so one run shows every problem.
packages=$(go list ./...)
failed=()
passed=0
for pkg in $packages; do
  t1=$(date +%s)
  log "go test -race $pkg"
  if go test -race -count=1 -timeout 30m "$pkg"; then
    passed=$((passed + 1))
  else
    failed+=("$pkg")
  fi
  log "$pkg took $(( $(date +%s) - t1 ))s"
done
if [ "${#failed[@]}" -gt 0 ]; then
  log "failed packages:"
  printf '  %s\n' "${failed[@]}"
  echo "packages: $passed passed, ${#failed[@]} failed"
  exit 1
fi
log "all tests passed"
