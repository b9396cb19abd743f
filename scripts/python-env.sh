#!/usr/bin/env bash
# Creates or updates the Python virtual environment that holds TrustGraph's
# own client code, used by the wire-format golden tests and the live interop
# test, and prints the path of its python interpreter on stdout.
#
#   scripts/python-env.sh          ensure the environment, print its python
#   scripts/python-env.sh --check  print its python only if it is complete;
#                                  exit 1 (printing nothing) otherwise
#
# Location: ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tgvenv.
# The interpreter used to create it is $SWITCHYARD_PYTHON, else python3; it
# must be Python 3.10 or newer. Running it again is cheap and changes nothing
# when the pinned versions are already installed.
set -euo pipefail

TRUSTGRAPH_BASE_VERSION=2.11.1
PULSAR_CLIENT_VERSION=3.13.0

venv="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tgvenv"
py="$venv/bin/python"

log() { printf 'python-env: %s\n' "$*" >&2; }

complete() {
  [ -x "$py" ] || return 1
  "$py" - "$TRUSTGRAPH_BASE_VERSION" "$PULSAR_CLIENT_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = {"trustgraph-base": sys.argv[1], "pulsar-client": sys.argv[2]}
for name, v in want.items():
    if version(name) != v:
        sys.exit(1)
import trustgraph.base.serialization, trustgraph.schema, pulsar  # noqa: F401
EOF
}

if complete; then
  echo "$py"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  exit 1
fi

base="${SWITCHYARD_PYTHON:-python3}"
if ! command -v "$base" >/dev/null 2>&1; then
  log "no $base found; install Python 3.10 or newer, or set SWITCHYARD_PYTHON"
  exit 1
fi
if ! "$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  log "$base is $("$base" --version 2>&1); Python 3.10 or newer is needed"
  exit 1
fi

if [ ! -x "$py" ]; then
  log "creating $venv"
  mkdir -p "$(dirname "$venv")"
  "$base" -m venv "$venv"
fi
log "installing trustgraph-base==$TRUSTGRAPH_BASE_VERSION pulsar-client==$PULSAR_CLIENT_VERSION"
"$py" -m pip install --quiet --disable-pip-version-check \
  "trustgraph-base==$TRUSTGRAPH_BASE_VERSION" \
  "pulsar-client==$PULSAR_CLIENT_VERSION" >&2

if ! complete; then
  log "the environment at $venv is still incomplete after installing"
  exit 1
fi
echo "$py"
