#!/usr/bin/env bash
# scripts/test.sh [cargo test args...] — the project's one test command.
#
# Checks the Nomad jobs first (scripts/nomad-check.sh: the checker's go test, then
# every job file with each var file; "skipped: go not found" without Go). Then
# starts the backing services (scripts/services.sh up: PostgreSQL, Redis,
# NATS+JetStream, and Cassandra through scripts/cassandra.sh when present),
# points the tests at them and runs `cargo test --release --workspace --no-fail-fast "$@"`
# (every test binary runs even after one failed, so one run reports every failure). Then, on a
# full run (no arguments), the load smoke test: every goose scenario of load/ for a few
# seconds against one node (scripts/load-smoke.sh, on the binaries cargo test just built;
# EMPORIUM_SKIP_LOAD_SMOKE=1 skips it). Exits with the checker's status if it fails, else
# with cargo's if it failed, else with the load smoke test's.
#
# Environment exported to the tests (a value already set is kept):
#   EMPORIUM_REQUIRE_SERVICES=1   tests needing a service fail instead of skipping
#   EMPORIUM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres
#   EMPORIUM_TEST_REDIS=redis://127.0.0.1:6379
#   EMPORIUM_TEST_NATS=nats://127.0.0.1:4222
#   SCYLLA_NODES=127.0.0.1:9042   only when scripts/cassandra.sh up succeeded
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${EMPORIUM_SERVICES_DIR:-${HOME:-/root}/.cache/emporium-services}"

"$ROOT/scripts/nomad-check.sh"
"$ROOT/scripts/services.sh" up

export EMPORIUM_REQUIRE_SERVICES="${EMPORIUM_REQUIRE_SERVICES:-1}"
export EMPORIUM_TEST_POSTGRES="${EMPORIUM_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
export EMPORIUM_TEST_REDIS="${EMPORIUM_TEST_REDIS:-redis://127.0.0.1:6379}"
export EMPORIUM_TEST_NATS="${EMPORIUM_TEST_NATS:-nats://127.0.0.1:4222}"
# services.sh writes this file only after `scripts/cassandra.sh up` exited 0.
if [[ -z ${SCYLLA_NODES:-} && "$(cat "$STATE/cassandra.reported" 2>/dev/null || true)" == up ]]; then
  export SCYLLA_NODES=127.0.0.1:9042
fi

echo "test: EMPORIUM_REQUIRE_SERVICES=$EMPORIUM_REQUIRE_SERVICES"
echo "test: EMPORIUM_TEST_POSTGRES=$EMPORIUM_TEST_POSTGRES"
echo "test: EMPORIUM_TEST_REDIS=$EMPORIUM_TEST_REDIS"
echo "test: EMPORIUM_TEST_NATS=$EMPORIUM_TEST_NATS"
echo "test: SCYLLA_NODES=${SCYLLA_NODES:-(unset: cassandra not up)}"
echo "test: cargo test --release --workspace --no-fail-fast $*"

status=0
cargo test --release --workspace --no-fail-fast "$@" || status=$?

# The smoke test runs the binaries the cargo tests built (`emporium` for the black-box
# tests, `load` for its CLI test): no second build with other features. A partial run
# (arguments) may not have built them.
if (( $# == 0 )) && [[ ${EMPORIUM_SKIP_LOAD_SMOKE:-0} != 1 ]]; then
  echo "test: scripts/load-smoke.sh"
  smoke=0
  EMPORIUM_LOAD_SMOKE_SKIP_BUILD=1 "$ROOT/scripts/load-smoke.sh" || smoke=$?
  if (( status == 0 )); then status=$smoke; fi
fi
exit "$status"
