#!/usr/bin/env bash
# Failover and catch-up of a three-node cluster (docs/benchmarks.md, "The cluster"): builds the
# release binary, then runs bench/cluster.py with the integration suite's Python environment
# against the machine's PostgreSQL and NATS (JetStream on).
#
#   bench/cluster.sh               5 rounds of every scenario
#   bench/cluster.sh --rounds 10
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin chargeops
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || { echo "no $PY: python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt" >&2; exit 1; }
exec "$PY" bench/cluster.py "$@"
