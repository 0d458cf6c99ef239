#!/usr/bin/env bash
# Latency of OCPI status pushes to a partner (docs/benchmarks.md, "OCPI status pushes"): builds
# the release binary, then runs bench/ocpi_push.py with the integration suite's Python
# environment.
#
#   bench/ocpi_push.sh                          20 chargers x 40 status changes
#   bench/ocpi_push.sh --chargers 50 --changes 20
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin chargeops
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || { echo "no $PY: python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt" >&2; exit 1; }
exec "$PY" bench/ocpi_push.py "$@"
