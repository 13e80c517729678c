#!/usr/bin/env bash
# scripts/services.sh up|down|status
#
# Brings up (or down) the backing services Emporium's tests talk to, on
# loopback, with no systemd:
#   postgres  127.0.0.1:5432  Debian cluster via pg_ctlcluster; user postgres,
#                             no password from 127.0.0.1 (trust in pg_hba.conf)
#   redis     127.0.0.1:6379  redis-server daemon, state under $STATE/redis
#   nats      127.0.0.1:4222  nats-server with JetStream (store $STATE/nats/jetstream,
#                             emptied at each fresh start; redis keeps no data either),
#                             monitoring on 127.0.0.1:8222
#   cassandra delegated to scripts/cassandra.sh up|down|status when that file
#             exists and is executable (EMPORIUM_SKIP_CASSANDRA=1 skips it)
#
# Also installs (never starts) chromium and chromium-driver, for the admin console's
# browser test.
#
# Idempotent: `up` on a running service is a no-op. `down` stops only what
# this script started (recorded under $STATE/started/), never a service it
# found already running. Missing Debian packages are installed (one
# `apt-get update` + one `apt-get install`, only when something is missing).
#
# State (pidfiles, data, logs): ${EMPORIUM_SERVICES_DIR:-$HOME/.cache/emporium-services}
# Knobs: EMPORIUM_SERVICES_WAIT (seconds to wait per service, default 60),
#        EMPORIUM_SKIP_CASSANDRA=1.
# `status` exits 0 when every service is up, 3 when one is down.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${EMPORIUM_SERVICES_DIR:-${HOME:-/root}/.cache/emporium-services}"
WAIT_SECS="${EMPORIUM_SERVICES_WAIT:-60}"
CASSANDRA_SCRIPT="$ROOT/scripts/cassandra.sh"
# Written after `cassandra.sh up` succeeded; scripts/test.sh reads it.
CASSANDRA_REPORT="$STATE/cassandra.reported"

PG_HOST=127.0.0.1 PG_PORT=5432
REDIS_HOST=127.0.0.1 REDIS_PORT=6379
NATS_HOST=127.0.0.1 NATS_PORT=4222 NATS_MON_PORT=8222

SUDO=""
if [[ ${EUID:-$(id -u)} -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

log() { echo "services: $*"; }
die() { echo "services: ERROR: $*" >&2; exit 1; }
now() { date +%s; }

usage() {
  echo "usage: $0 up|down|status" >&2
  exit 2
}

# True when something accepts TCP connections on host:port.
port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for NAME LOGS PID CMD...: run CMD until it succeeds, at most WAIT_SECS.
# LOGS is a '|'-separated list of log files, PID (or "") a process that must
# stay alive meanwhile. On timeout or death print the tails of LOGS and fail.
wait_for() {
  local name="$1" logs="$2" pid="$3"; shift 3
  local deadline=$(( $(now) + WAIT_SECS )) why="" f
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      why="exited during start-up"
    elif (( $(now) >= deadline )); then
      why="did not come up within ${WAIT_SECS}s"
    fi
    if [[ -n $why ]]; then
      echo "services: ERROR: $name $why" >&2
      local IFS='|'
      for f in $logs; do
        [[ -s $f ]] || continue
        echo "---- last lines of $f" >&2
        tail -n 30 "$f" >&2 || true
      done
      exit 1
    fi
    sleep 0.5
  done
}

# rotate_log FILE: keep the previous run's log as FILE.1, start FILE afresh.
rotate_log() { if [[ -s $1 ]]; then mv -f "$1" "$1.1"; fi; : >"$1"; }

mark_started() { mkdir -p "$STATE/started"; printf '%s\n' "${2:-}" >"$STATE/started/$1"; }
started_by_us() { [[ -f "$STATE/started/$1" ]]; }
unmark() { rm -f "$STATE/started/$1"; }
origin() { if started_by_us "$1"; then echo "started by this script"; else echo "not started by this script"; fi; }

# pid_is PIDFILE COMM: the pid in PIDFILE is alive and its command name is COMM.
pid_is() {
  local pid
  pid="$(head -n1 "$1" 2>/dev/null | tr -dc 0-9)" || return 1
  [[ -n $pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

# stop_pidfile NAME PIDFILE COMM: SIGTERM, wait (bounded), then SIGKILL.
stop_pidfile() {
  local name="$1" pidfile="$2" comm="$3" pid deadline
  if ! pid_is "$pidfile" "$comm"; then rm -f "$pidfile"; return 0; fi
  pid="$(head -n1 "$pidfile" | tr -dc 0-9)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(now) + 30 ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(now) >= deadline )); then
      log "$name (pid $pid) ignored SIGTERM for 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- packages --

pg_version() {
  # Highest installed PostgreSQL server version (e.g. 15), empty if none.
  local d best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x $d ]] || continue
    d="${d#/usr/lib/postgresql/}"; d="${d%%/*}"
    if [[ -z $best ]] || (( d > best )); then best="$d"; fi
  done
  echo "$best"
}

ensure_packages() {
  local missing=()
  if [[ -z "$(pg_version)" ]] || ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
    missing+=(postgresql postgresql-client)
  fi
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server redis-tools)
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v curl >/dev/null || missing+=(curl)
  # The admin console's browser test (tests/blackbox/console.rs): headless Chromium driven
  # through chromedriver. Installed only, never started as a service.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  (( ${#missing[@]} )) || return 0

  local t0 policy_created=""
  t0="$(now)"
  log "installing Debian packages: ${missing[*]}"
  # Keep the packages' maintainer scripts from starting their daemons (this
  # script starts and tracks its own). Docker-like images usually ship this.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from emporium scripts/services.sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  local rc=0
  {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
           -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
           install "${missing[@]}"
  } 9>&- >"$STATE/apt.log" 2>&1 || rc=$?
  if [[ -n $policy_created ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
  if (( rc != 0 )); then
    echo "services: ERROR: apt-get failed (exit $rc); last lines of $STATE/apt.log:" >&2
    tail -n 30 "$STATE/apt.log" >&2
    exit 1
  fi
  log "installed ${missing[*]} in $(( $(now) - t0 ))s"
}

# ---------------------------------------------------------------- postgres --

# Prints "VERSION CLUSTER DATADIR LOGFILE STATUS" of the Debian cluster on
# PG_PORT, if any.
pg_cluster_on_port() {
  command -v pg_lsclusters >/dev/null || return 0
  pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $6, $7, $4; exit }'
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }
pg_trusts() { PGCONNECT_TIMEOUT=3 timeout 10 psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' 2>/dev/null | grep -qx 1; }

PG_HBA_MARK="# emporium scripts/services.sh: user postgres from loopback without a password"

# ensure_pg_hba VERSION CLUSTER RUNNING: trust user postgres from loopback; reload if running.
ensure_pg_hba() {
  local ver="$1" cl="$2" running="$3" hba
  hba="$(pg_conftool -s "$ver" "$cl" show hba_file 2>/dev/null || true)"
  [[ -n $hba ]] || hba="/etc/postgresql/$ver/$cl/pg_hba.conf"
  [[ -f $hba ]] || die "postgres: pg_hba.conf not found at $hba"
  if grep -qxF "$PG_HBA_MARK" "$hba"; then return 0; fi
  log "postgres: adding trust for user postgres from 127.0.0.1/32 and ::1/128 to $hba"
  local tmp
  tmp="$(mktemp)"
  {
    echo "$PG_HBA_MARK"
    printf 'host    all             postgres        127.0.0.1/32            trust\n'
    printf 'host    all             postgres        ::1/128                 trust\n'
    echo
    cat "$hba"
  } >"$tmp"
  # Rewrite in place so the file keeps its owner (postgres) and mode.
  $SUDO tee "$hba" <"$tmp" >/dev/null
  rm -f "$tmp"
  if [[ $running == 1 ]]; then $SUDO pg_ctlcluster "$ver" "$cl" reload 9>&- >/dev/null; fi
}

# A machine restored from a snapshot can keep postmaster.pid / socket lock
# files whose pid now belongs to another process; postgres then refuses to start.
pg_clear_stale_locks() {
  local datadir="$1" f
  for f in "$datadir/postmaster.pid" /var/run/postgresql/.s.PGSQL."$PG_PORT".lock; do
    [[ -f $f ]] || continue
    if ! pid_is "$f" postgres; then
      log "postgres: removing stale lock file $f"
      $SUDO rm -f "$f"
    fi
  done
}

pg_up() {
  local t0 info ver cl datadir logfile
  t0="$(now)"
  info="$(pg_cluster_on_port)"
  if pg_ready; then
    if [[ -n $info ]]; then
      read -r ver cl datadir logfile _ <<<"$info"
      ensure_pg_hba "$ver" "$cl" 1
    fi
    pg_trusts || die "postgres: something runs on $PG_HOST:$PG_PORT but user postgres cannot log in without a password (not a cluster this script can configure; see pg_lsclusters)"
    log "postgres up on $PG_HOST:$PG_PORT (already running, $(origin postgres))"
    return 0
  fi

  if [[ -z $info ]]; then
    ver="$(pg_version)"
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
      die "postgres: cluster $ver/main exists but not on port $PG_PORT (pg_lsclusters); fix its port or drop it"
    fi
    log "postgres: creating cluster $ver/main on port $PG_PORT"
    $SUDO pg_createcluster "$ver" main --port "$PG_PORT" 9>&- >"$STATE/pg_createcluster.log" 2>&1 \
      || { tail -n 30 "$STATE/pg_createcluster.log" >&2; die "postgres: pg_createcluster failed"; }
    info="$(pg_cluster_on_port)"
    [[ -n $info ]] || die "postgres: cluster $ver/main not listed on port $PG_PORT after pg_createcluster"
  fi
  read -r ver cl datadir logfile _ <<<"$info"
  [[ $logfile == /* ]] || logfile="/var/log/postgresql/postgresql-$ver-$cl.log"

  ensure_pg_hba "$ver" "$cl" 0
  pg_clear_stale_locks "$datadir"
  if ! $SUDO pg_ctlcluster "$ver" "$cl" start 9>&- >"$STATE/pg_ctlcluster.log" 2>&1; then
    cat "$STATE/pg_ctlcluster.log" >&2
    echo "services: ERROR: postgres: pg_ctlcluster $ver $cl start failed; last lines of $logfile:" >&2
    tail -n 30 "$logfile" >&2 2>/dev/null || true
    exit 1
  fi
  mark_started postgres "$ver $cl"
  wait_for postgres "$logfile|$STATE/pg_ctlcluster.log" "" pg_trusts
  log "postgres up on $PG_HOST:$PG_PORT (cluster $ver/$cl started in $(( $(now) - t0 ))s)"
}

pg_down() {
  if ! started_by_us postgres; then
    if pg_ready; then log "postgres left running on $PG_HOST:$PG_PORT (not started by this script)"
    else log "postgres down"; fi
    return 0
  fi
  local ver cl
  read -r ver cl <"$STATE/started/postgres" || true
  if [[ -n ${ver:-} && -n ${cl:-} ]] && pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v c="$cl" '$1 == v && $2 == c && $4 == "online" { f = 1 } END { exit !f }'; then
    $SUDO pg_ctlcluster "$ver" "$cl" stop -m fast 9>&- >/dev/null
    log "postgres stopped (cluster $ver/$cl)"
  else
    log "postgres down (was started by this script, no longer running)"
  fi
  unmark postgres
}

pg_status() {
  if pg_ready; then log "postgres up on $PG_HOST:$PG_PORT ($(origin postgres))"; return 0; fi
  log "postgres down"; return 1
}

# ------------------------------------------------------------------- redis --

REDIS_DIR="$STATE/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

redis_ready() { [[ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_up() {
  local t0; t0="$(now)"
  if redis_ready; then log "redis up on $REDIS_HOST:$REDIS_PORT (already running, $(origin redis))"; return 0; fi
  if port_open "$REDIS_HOST" "$REDIS_PORT"; then
    die "redis: $REDIS_HOST:$REDIS_PORT is taken by something that does not answer PING"
  fi
  mkdir -p "$REDIS_DIR"
  pid_is "$REDIS_PID" redis-server || rm -f "$REDIS_PID"
  rotate_log "$REDIS_LOG"; rotate_log "$REDIS_DIR/redis.out"
  # No persistence: it's a test server. Daemonizes itself and writes the pidfile.
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
    --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
    --save '' --appendonly no 9>&- >>"$REDIS_DIR/redis.out" 2>&1 \
    || { tail -n 30 "$REDIS_DIR/redis.out" "$REDIS_LOG" >&2 2>/dev/null; die "redis: redis-server failed to start"; }
  mark_started redis
  wait_for redis "$REDIS_LOG|$REDIS_DIR/redis.out" "" redis_ready
  log "redis up on $REDIS_HOST:$REDIS_PORT (started in $(( $(now) - t0 ))s, pid $(cat "$REDIS_PID" 2>/dev/null || echo '?'))"
}

redis_down() {
  if ! started_by_us redis; then
    if redis_ready; then log "redis left running on $REDIS_HOST:$REDIS_PORT (not started by this script)"
    else log "redis down"; fi
    return 0
  fi
  if pid_is "$REDIS_PID" redis-server; then
    stop_pidfile redis "$REDIS_PID" redis-server
    log "redis stopped"
  else
    log "redis down (was started by this script, no longer running)"
  fi
  unmark redis
}

redis_status() {
  if redis_ready; then log "redis up on $REDIS_HOST:$REDIS_PORT ($(origin redis))"; return 0; fi
  log "redis down"; return 1
}

# -------------------------------------------------------------------- nats --

NATS_DIR="$STATE/nats"
NATS_PID="$NATS_DIR/nats.pid"
NATS_LOG="$NATS_DIR/nats.log"

# The client port greets with an INFO line.
nats_info() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && head -c 4 <&3' _ "$NATS_HOST" "$NATS_PORT" 2>/dev/null | grep -q '^INFO'
}
# healthz must say ok, and /jsz must not say JetStream is disabled (nats-server
# 2.9.10's healthz answers ok even when JetStream is off).
nats_js_healthy() {
  local jsz
  curl -fsS -m 3 "http://$NATS_HOST:$NATS_MON_PORT/healthz?js-enabled-only=true" 2>/dev/null | grep -q '"ok"' || return 1
  jsz="$(curl -fsS -m 3 "http://$NATS_HOST:$NATS_MON_PORT/jsz" 2>/dev/null)" || return 1
  grep -q '"store_dir"' <<<"$jsz" && ! grep -Eq '"disabled": *true' <<<"$jsz"
}
nats_ready() { nats_info && nats_js_healthy; }

nats_up() {
  local t0; t0="$(now)"
  if nats_info; then
    nats_js_healthy || die "nats: a server answers on $NATS_HOST:$NATS_PORT (not started by this script) but JetStream health on $NATS_HOST:$NATS_MON_PORT is not ok"
    log "nats up on $NATS_HOST:$NATS_PORT (already running, JetStream ok, $(origin nats))"
    return 0
  fi
  if port_open "$NATS_HOST" "$NATS_PORT"; then die "nats: $NATS_HOST:$NATS_PORT is taken by something that is not NATS"; fi
  if port_open "$NATS_HOST" "$NATS_MON_PORT"; then die "nats: monitoring port $NATS_HOST:$NATS_MON_PORT is already taken"; fi
  mkdir -p "$NATS_DIR"
  pid_is "$NATS_PID" nats-server || rm -f "$NATS_PID"
  rotate_log "$NATS_LOG"; rotate_log "$NATS_DIR/nats.out"
  # A test server: each fresh start begins with an empty JetStream store, like
  # redis (no persistence), so leftovers of an earlier run can't leak into tests.
  rm -rf "$NATS_DIR/jetstream"
  # -a binds both the client and (by default) the monitoring listener to loopback.
  setsid nohup nats-server -a "$NATS_HOST" -p "$NATS_PORT" -m "$NATS_MON_PORT" \
    -js -sd "$NATS_DIR" -n emporium-test \
    -P "$NATS_PID" -l "$NATS_LOG" \
    9>&- </dev/null >>"$NATS_DIR/nats.out" 2>&1 &
  local pid=$!   # setsid execs in place here (not a group leader), so this is nats-server
  mark_started nats
  wait_for nats "$NATS_LOG|$NATS_DIR/nats.out" "$pid" nats_ready
  log "nats up on $NATS_HOST:$NATS_PORT with JetStream, monitoring on $NATS_HOST:$NATS_MON_PORT (started in $(( $(now) - t0 ))s, pid $(cat "$NATS_PID" 2>/dev/null || echo '?'))"
}

nats_down() {
  if ! started_by_us nats; then
    if nats_info; then log "nats left running on $NATS_HOST:$NATS_PORT (not started by this script)"
    else log "nats down"; fi
    return 0
  fi
  if pid_is "$NATS_PID" nats-server; then
    stop_pidfile nats "$NATS_PID" nats-server
    log "nats stopped"
  else
    log "nats down (was started by this script, no longer running)"
  fi
  unmark nats
}

nats_status() {
  if nats_info; then
    if nats_js_healthy; then log "nats up on $NATS_HOST:$NATS_PORT, JetStream ok ($(origin nats))"
    else log "nats up on $NATS_HOST:$NATS_PORT, JetStream NOT confirmed on :$NATS_MON_PORT ($(origin nats))"; fi
    return 0
  fi
  log "nats down"; return 1
}

# --------------------------------------------------------------- cassandra --

# cassandra_run ACTION: delegate to scripts/cassandra.sh; returns its status,
# or 10 when it is absent / skipped.
cassandra_run() {
  local action="$1"
  if [[ ${EMPORIUM_SKIP_CASSANDRA:-} == 1 ]]; then
    log "cassandra skipped (EMPORIUM_SKIP_CASSANDRA=1)"; return 10
  fi
  if [[ ! -e $CASSANDRA_SCRIPT ]]; then
    log "cassandra skipped (scripts/cassandra.sh absent)"; return 10
  fi
  if [[ ! -x $CASSANDRA_SCRIPT ]]; then
    log "cassandra skipped (scripts/cassandra.sh is not executable)"; return 10
  fi
  local rc=0
  "$CASSANDRA_SCRIPT" "$action" 9>&- || rc=$?
  return "$rc"
}

cassandra_up() {
  rm -f "$CASSANDRA_REPORT"
  local rc=0 t0; t0="$(now)"
  cassandra_run up || rc=$?
  case $rc in
    0)  echo up >"$CASSANDRA_REPORT"
        if (( $(now) - t0 > 5 )); then log "cassandra: scripts/cassandra.sh up took $(( $(now) - t0 ))s"; fi ;;
    10) ;;
    *)  die "cassandra: scripts/cassandra.sh up failed (exit $rc); set EMPORIUM_SKIP_CASSANDRA=1 to run without it" ;;
  esac
}

cassandra_down() {
  rm -f "$CASSANDRA_REPORT"
  local rc=0
  cassandra_run down || rc=$?
  case $rc in
    0|10) ;;
    *) die "cassandra: scripts/cassandra.sh down failed (exit $rc)" ;;
  esac
}

cassandra_status() {
  local rc=0
  cassandra_run status || rc=$?
  case $rc in
    0|10) return 0 ;;
    *) log "cassandra down (scripts/cassandra.sh status exit $rc)"; return 1 ;;
  esac
}

# -------------------------------------------------------------------- main --

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    log "waiting for another scripts/services.sh run (lock $STATE/.lock)"
    flock -w 1800 9 || die "timed out waiting for $STATE/.lock"
  fi
}

cmd="${1:-}"
case "$cmd" in
  up)
    lock
    t_all="$(now)"
    ensure_packages
    pg_up
    redis_up
    nats_up
    cassandra_up
    log "all up in $(( $(now) - t_all ))s (state in $STATE)"
    ;;
  down)
    lock
    cassandra_down
    nats_down
    redis_down
    pg_down
    ;;
  status)
    down=0
    if command -v pg_isready >/dev/null; then pg_status || down=1; else log "postgres down (not installed)"; down=1; fi
    if command -v redis-cli >/dev/null; then redis_status || down=1; else log "redis down (not installed)"; down=1; fi
    if command -v curl >/dev/null; then nats_status || down=1; else
      if nats_info; then log "nats up on $NATS_HOST:$NATS_PORT ($(origin nats))"; else log "nats down"; down=1; fi
    fi
    cassandra_status || down=1
    exit $(( down ? 3 : 0 ))
    ;;
  *) usage ;;
esac
