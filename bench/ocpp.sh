#!/usr/bin/env bash
# The standard OCPP load benchmark of docs/benchmarks.md: builds the release binary, then runs
# `chargeops bench ocpp` against a server it starts itself (fresh data directory, open
# registration) and prints the table.
#
#   bench/ocpp.sh                     2,000 chargers, 20 s at the default offered load
#   bench/ocpp.sh --max               the same chargers in closed loop: the server's ceiling
#   CHARGERS=5000 bench/ocpp.sh --sources 4
#   bench/ocpp.sh --format json       the report as JSON
#
# CHARGERS and DURATION override the two standard parameters; other flags pass through
# (`chargeops bench ocpp --help` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin chargeops
exec "${CARGO_TARGET_DIR:-target}/release/chargeops" bench ocpp \
    --chargers "${CHARGERS:-2000}" --duration-secs "${DURATION:-20}" "$@"
