#!/usr/bin/env bash
# scripts/load-smoke.sh — every goose scenario of load/ for a few seconds against one node;
# fails if any request of any scenario failed (status or body check).
#
# Builds the release binaries `emporium` and `load` (the workspace's one target dir),
# starts one node on the embedded store with demo data on a free loopback port (its URL
# read from what it prints), an admin account of our own and rate limits off, then runs
# each scenario (browse, cart, checkout, restock, storefront) for LOAD_SMOKE_SECS with
# LOAD_SMOKE_USERS users. `load` exits non-zero when goose counted any failed request or
# transaction, or made no request at all. The node is stopped at the end, whatever happens.
# Benchmarks are not tests: no timing is judged here.
#
# Knobs: LOAD_SMOKE_SECS (default 5), LOAD_SMOKE_USERS (default 4),
#        LOAD_SMOKE_DIR (reports and the node's log, default $TARGET/load-smoke),
#        EMPORIUM_LOAD_SMOKE_SKIP_BUILD=1 (use the binaries already built).
# Prints cargo's closing line format ("test result: ok. 5 passed; 0 failed; …"), one
# scenario per test, so CI reads it like the cargo tests before it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECS="${LOAD_SMOKE_SECS:-5}"
USERS="${LOAD_SMOKE_USERS:-4}"
OUT="${LOAD_SMOKE_DIR:-$TARGET/load-smoke}"
SCENARIOS=(browse cart checkout restock storefront)
START_WAIT=60                    # seconds for the node to print its URL and be ready
RUN_WAIT=$(( SECS + 60 ))        # seconds one scenario may take in all (start-up, prepare, stop)
ADMIN_EMAIL=load-admin@emporium.local
ADMIN_PASSWORD="load-smoke-$$-$RANDOM$RANDOM"

log() { echo "load-smoke: $*"; }
die() { echo "load-smoke: ERROR: $*" >&2; exit 1; }

[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "LOAD_SMOKE_SECS must be a whole number of seconds, got '$SECS'"
[[ $USERS =~ ^[1-9][0-9]*$ ]] || die "LOAD_SMOKE_USERS must be a whole number, got '$USERS'"

if [[ ${EMPORIUM_LOAD_SMOKE_SKIP_BUILD:-0} != 1 ]]; then
  # Two builds, each resolving its own features: one build of both would unify them into a
  # third variant of the shared dependencies (and rebuild them) beside cluster.sh's.
  log "cargo build --release --bin emporium; cargo build --release -p load"
  (cd "$ROOT" && cargo build --release --bin emporium && cargo build --release -p load)
fi
for bin in emporium load; do
  [[ -x $TARGET/release/$bin ]] || die "$TARGET/release/$bin is missing"
done

mkdir -p "$OUT"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/emporium-load-smoke.XXXXXX")"
NODE_LOG="$OUT/node.log"
NODE_PID=

cleanup() {
  if [[ -n $NODE_PID ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# One node: embedded store in a fresh data dir (so demo data is seeded), port 0 (the OS
# picks a free one), rate limits off (every goose user comes from 127.0.0.1).
EMPORIUM_HTTP_ADDR=127.0.0.1:0 EMPORIUM_DATA_DIR="$DATA" EMPORIUM_STORE=embedded \
EMPORIUM_DEMO=true EMPORIUM_RATE_LIMIT=off EMPORIUM_LOG=warn EMPORIUM_NODE_ID=load-smoke \
EMPORIUM_ADMIN_EMAIL="$ADMIN_EMAIL" EMPORIUM_ADMIN_PASSWORD="$ADMIN_PASSWORD" NO_COLOR=1 \
  "$TARGET/release/emporium" </dev/null >"$NODE_LOG" 2>&1 &
NODE_PID=$!

URL=
deadline=$(( $(date +%s) + START_WAIT ))
until [[ -n $URL ]]; do
  URL="$(sed -nE 's/.*serving on (http:\/\/[^ ]+).*/\1/p' "$NODE_LOG" | head -n1)"
  [[ -n $URL ]] && break
  kill -0 "$NODE_PID" 2>/dev/null || { tail -n 30 "$NODE_LOG" >&2; die "the node exited during start-up"; }
  (( $(date +%s) < deadline )) || { tail -n 30 "$NODE_LOG" >&2; die "no URL printed within ${START_WAIT}s"; }
  sleep 0.2
done
until [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/readyz" || true)" == 200 ]]; do
  (( $(date +%s) < deadline )) || { tail -n 30 "$NODE_LOG" >&2; die "$URL not ready within ${START_WAIT}s"; }
  sleep 0.2
done
log "node ready on $URL (log $NODE_LOG); ${#SCENARIOS[@]} scenarios, ${SECS}s each, $USERS users"

passed=0 failed=0 failures=() t0=$(date +%s)
for scenario in "${SCENARIOS[@]}"; do
  report="$OUT/goose-$scenario.html"
  log "scenario $scenario (report $report)"
  if LOAD_ADMIN_EMAIL="$ADMIN_EMAIL" LOAD_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
     timeout --kill-after=10 "$RUN_WAIT" "$TARGET/release/load" \
       --host "$URL" --users "$USERS" --hatch-rate "$USERS" --run-time "${SECS}s" \
       --scenarios "$scenario" --report-file "$report" --no-granular-report </dev/null; then
    passed=$(( passed + 1 ))
  else
    failed=$(( failed + 1 )); failures+=("$scenario")
  fi
  kill -0 "$NODE_PID" 2>/dev/null || { tail -n 30 "$NODE_LOG" >&2; die "the node died during scenario $scenario"; }
done

if (( failed > 0 )); then
  log "failed: ${failures[*]} (goose's error table above; node log $NODE_LOG)"
  echo "test result: FAILED. $passed passed; $failed failed; 0 ignored; 0 measured; 0 filtered out; finished in $(( $(date +%s) - t0 ))s"
  exit 1
fi
echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in $(( $(date +%s) - t0 ))s"
