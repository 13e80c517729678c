#!/usr/bin/env bash
# scripts/cluster.sh up [N] | down | status
#
# A local N-node Emporium cluster (default 3, at most 9) of the release binary,
# on the PostgreSQL of scripts/services.sh (database emporium_cluster, created
# when missing):
#   node k   id nodek, HTTP http://127.0.0.1k:8080, cluster 127.0.0.1k:7100
#            (127.0.0.11, 127.0.0.12, …: every node on its own loopback address)
#
# up N     builds target/release/emporium when it is missing, starts PostgreSQL
#          (scripts/services.sh up) when nothing answers on 127.0.0.1:5432,
#          starts the nodes that are not running (node 1 alone first on an empty
#          cluster), stops running nodes above N, and waits until every node sees
#          all N up and alive with every shard owned. Then prints the admin's
#          email and password and a curl for /v1/admin/cluster. Idempotent.
# down     SIGTERMs every node at once and waits for them (a stopping node hands
#          its shards over for up to 20 s, then drains). Data and secrets stay.
# status   the nodes' processes, and GET /v1/admin/cluster as one node sees it.
#          Exits 0 when every node of the last `up` runs and is ready, 3 otherwise.
#
# Generated once and kept in the state dir (secrets.env, mode 600): the JWT
# secret every node signs tokens with, the cluster secret, the admin password.
# Demo data is on (the demo catalog is seeded into an empty store).
#
# State (secrets, per-node data dirs, logs, pidfiles):
#   ${EMPORIUM_CLUSTER_DIR:-$HOME/.cache/emporium-cluster}/nodeK/{data,node.log,pid}
# Knobs: EMPORIUM_CLUSTER_DB (database, default emporium_cluster),
#        EMPORIUM_CLUSTER_NET (node k on ${EMPORIUM_CLUSTER_NET}k, default 127.0.0.1),
#        EMPORIUM_CLUSTER_WAIT (seconds per wait, default 90),
#        EMPORIUM_CLUSTER_LOG (node log filter, default info),
#        EMPORIUM_CLUSTER_NATS (events, default nats://127.0.0.1:4222 of the test services),
#        EMPORIUM_CLUSTER_STREAM (its stream name and subject prefix),
#        EMPORIUM_BIN (the binary, default $CARGO_TARGET_DIR or target/, then release/emporium).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${EMPORIUM_CLUSTER_DIR:-${HOME:-/root}/.cache/emporium-cluster}"
NET="${EMPORIUM_CLUSTER_NET:-127.0.0.1}"
DB="${EMPORIUM_CLUSTER_DB:-emporium_cluster}"
WAIT_SECS="${EMPORIUM_CLUSTER_WAIT:-90}"
NODE_LOG="${EMPORIUM_CLUSTER_LOG:-info}"
BIN="${EMPORIUM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/emporium}"
HTTP_PORT=8080
CLUSTER_PORT=7100
ADMIN_PORT=9090
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
STORE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB"
SECRETS="$STATE/secrets.env"
SHARD_COUNT=1024
MAX_NODES=9

log() { echo "cluster: $*"; }
die() { echo "cluster: ERROR: $*" >&2; exit 1; }
now() { date +%s; }

usage() {
  echo "usage: $0 up [N] | down | status" >&2
  exit 2
}

node_dir() { echo "$STATE/node$1"; }
http_ip() { echo "$NET$1"; }
http_base() { echo "http://$(http_ip "$1"):$HTTP_PORT"; }
cluster_addr() { echo "$(http_ip "$1"):$CLUSTER_PORT"; }

# The nodes this script knows of (a directory under $STATE), in order.
known_nodes() {
  local d k
  for d in "$STATE"/node*; do
    [[ -d $d ]] || continue
    k="${d##*/node}"
    [[ $k =~ ^[1-9]$ ]] && echo "$k"
  done | sort -n
}

# node_pid K: the pid of node K if it runs (its pidfile names a live emporium
# whose command line has this node's data dir), else nothing and status 1.
node_pid() {
  local dir pid args
  dir="$(node_dir "$1")"
  pid="$(head -n1 "$dir/pid" 2>/dev/null | tr -dc 0-9)" || return 1
  [[ -n $pid ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == emporium ]] || return 1
  args="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  grep -qxF "$dir/data" <<<"$args" || return 1
  echo "$pid"
}

port_open() {
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Who listens on ip:port, for error messages.
listener_of() {
  command -v ss >/dev/null || { echo "unknown process"; return; }
  ss -ltnpH "src $1:$2" 2>/dev/null | sed -nE 's/.*users:\(\((.*)\)\).*/\1/p' | head -n1
}

ready() { [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(http_base "$1")/readyz" 2>/dev/null)" == 200 ]]; }

tail_log() {
  local f
  f="$(node_dir "$1")/node.log"
  if [[ -s $f ]]; then
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
    if grep -q 'cluster secret differs' "$f"; then
      echo "cluster: the database $DB was first used with another cluster secret than $SECRETS" \
        "(another EMPORIUM_CLUSTER_DIR?): use that state dir, or start afresh with" \
        "dropdb -h $PG_HOST -U $PG_USER $DB" >&2
    fi
  fi
}

# ------------------------------------------------------------ prerequisites --

ensure_tools() {
  local tool
  for tool in curl jq psql pg_isready flock setsid openssl column; do
    command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install curl jq postgresql-client util-linux bsdextrautils openssl)"
  done
}

ensure_binary() {
  if [[ -x $BIN ]]; then return 0; fi
  [[ -z ${EMPORIUM_BIN:-} ]] || die "EMPORIUM_BIN=$BIN is not an executable file"
  log "building $BIN (cargo build --release --bin emporium; takes minutes)"
  (cd "$ROOT" && cargo build --release --bin emporium) || die "cargo build failed"
  [[ -x $BIN ]] || die "cargo build succeeded but $BIN is missing"
}

pg() { PGCONNECT_TIMEOUT=3 psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"; }

ensure_postgres() {
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; then
    log "PostgreSQL is not up on $PG_HOST:$PG_PORT: running scripts/services.sh up"
    EMPORIUM_SKIP_CASSANDRA="${EMPORIUM_SKIP_CASSANDRA:-1}" "$ROOT/scripts/services.sh" up 9>&- \
      || die "scripts/services.sh up failed"
  fi
  pg -d postgres -tAc 'select 1' >/dev/null 2>&1 \
    || die "user $PG_USER cannot log in to $PG_HOST:$PG_PORT without a password (scripts/services.sh up configures that)"
  if [[ "$(pg -d postgres -tAc "select 1 from pg_database where datname = '$DB'")" != 1 ]]; then
    pg -d postgres -c "create database \"$DB\"" >/dev/null || die "cannot create database $DB"
    log "created database $DB"
  fi
}

# Generated once; later runs reuse them (the store remembers the cluster secret's
# fingerprint, and issued tokens stay valid).
ensure_secrets() {
  if [[ ! -s $SECRETS ]]; then
    (
      umask 077
      {
        echo "# scripts/cluster.sh: generated $(date -u +%FT%TZ); the nodes of $STORE_URL use these"
        echo "JWT_SECRET=$(openssl rand -hex 32)"
        echo "CLUSTER_SECRET=$(openssl rand -hex 32)"
        echo "ADMIN_EMAIL=cluster-admin@emporium.local"
        echo "ADMIN_PASSWORD=$(openssl rand -hex 12)"
        echo "ADMIN_TOKEN=$(openssl rand -hex 32)"
      } >"$SECRETS.tmp"
      mv "$SECRETS.tmp" "$SECRETS"
    )
    log "generated secrets in $SECRETS"
  fi
  load_secrets
}

load_secrets() {
  [[ -s $SECRETS ]] || die "no $SECRETS (run: $0 up)"
  # Secrets files written before the admin API existed lack its token: add one.
  if ! grep -q '^ADMIN_TOKEN=' "$SECRETS"; then
    echo "ADMIN_TOKEN=$(openssl rand -hex 32)" >>"$SECRETS"
  fi
  # shellcheck disable=SC1090
  source "$SECRETS"
  [[ -n ${JWT_SECRET:-} && -n ${CLUSTER_SECRET:-} && -n ${ADMIN_EMAIL:-} && -n ${ADMIN_PASSWORD:-} ]] \
    || die "$SECRETS is incomplete; remove it (and the database $DB, whose cluster secret it holds) to start afresh"
}

# -------------------------------------------------------------------- nodes --

# start_node K N: start node K of an N-node cluster in the background.
start_node() {
  local k="$1" n="$2" dir seeds="" j ip port
  dir="$(node_dir "$k")"
  ip="$(http_ip "$k")"
  for port in "$HTTP_PORT" "$CLUSTER_PORT" "$ADMIN_PORT"; do
    if port_open "$ip" "$port"; then
      die "node$k: $ip:$port is taken by something this script did not start ($(listener_of "$ip" "$port")); stop it, or pick other addresses with EMPORIUM_CLUSTER_NET"
    fi
  done
  for (( j = 1; j <= n; j++ )); do
    (( j == k )) || seeds+="${seeds:+,}$(cluster_addr "$j")"
  done
  mkdir -p "$dir/data"
  if [[ -s $dir/node.log ]]; then mv -f "$dir/node.log" "$dir/node.log.1"; fi
  # Secrets go in the environment (never on a command line); the rest as flags, so
  # that `ps` shows which node is which.
  EMPORIUM_JWT_SECRET="$JWT_SECRET" EMPORIUM_CLUSTER_SECRET="$CLUSTER_SECRET" \
  EMPORIUM_ADMIN_EMAIL="$ADMIN_EMAIL" EMPORIUM_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  EMPORIUM_ADMIN_TOKEN="$ADMIN_TOKEN" EMPORIUM_ADMIN_ADDR="$ip:$ADMIN_PORT" \
  EMPORIUM_RATE_LIMIT=off EMPORIUM_LOG="$NODE_LOG" NO_COLOR=1 \
  EMPORIUM_EVENTS="${EMPORIUM_CLUSTER_NATS:-nats://127.0.0.1:4222}" \
  EMPORIUM_NATS_STREAM="${EMPORIUM_CLUSTER_STREAM:-EMPORIUM_LOCAL_CLUSTER}" \
  EMPORIUM_NATS_SUBJECT_PREFIX="${EMPORIUM_CLUSTER_STREAM:-local-cluster}" \
    setsid nohup "$BIN" --node-id "node$k" --data-dir "$dir/data" --store "$STORE_URL" \
      --http-addr "$ip:$HTTP_PORT" --cluster-addr "$(cluster_addr "$k")" ${seeds:+--seeds "$seeds"} --demo \
      9>&- </dev/null >"$dir/node.log" 2>&1 &
  echo $! >"$dir/pid"   # setsid and nohup exec in place: this is the node
  log "node$k starting (pid $!, log $dir/node.log)"
}

# wait_ready K: until node K answers /readyz 200; fails with its log's tail.
wait_ready() {
  local k="$1" deadline
  deadline=$(( $(now) + WAIT_SECS ))
  until ready "$k"; do
    if ! node_pid "$k" >/dev/null; then
      echo "cluster: ERROR: node$k exited during start-up" >&2; tail_log "$k"; exit 1
    fi
    if (( $(now) >= deadline )); then
      echo "cluster: ERROR: node$k not ready within ${WAIT_SECS}s" >&2; tail_log "$k"; exit 1
    fi
    sleep 0.3
  done
}

# stop_nodes K…: SIGTERM them all, then wait (bounded) for each.
stop_nodes() {
  local k pid pids=() names=() t0 deadline i
  t0="$(now)"
  for k in "$@"; do
    if pid="$(node_pid "$k")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("node$k")
    fi
  done
  (( ${#pids[@]} )) || return 0
  log "SIGTERM sent to ${names[*]}; waiting (handover up to 20 s, then drain)"
  deadline=$(( t0 + 60 ))
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[$i]}" 2>/dev/null; do
      if (( $(now) >= deadline )); then
        log "${names[$i]} (pid ${pids[$i]}) still running 60 s after SIGTERM: SIGKILL"
        kill -KILL "${pids[$i]}" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  done
  for k in "$@"; do rm -f "$(node_dir "$k")/pid"; done
  log "stopped ${names[*]} in $(( $(now) - t0 ))s"
}

# ------------------------------------------------------------- admin API --

admin_token() {
  local k="$1" answer
  answer="$(curl -s -m 10 -X POST "$(http_base "$k")/v1/auth/login" -H 'content-type: application/json' \
    -d "$(jq -nc --arg e "$ADMIN_EMAIL" --arg p "$ADMIN_PASSWORD" '{email: $e, password: $p}')")" || return 1
  jq -er '.access_token' <<<"$answer" 2>/dev/null
}

cluster_view() { curl -s -m 10 -H "Authorization: Bearer $2" "$(http_base "$1")/v1/admin/cluster"; }

# view_complete VIEW IDS_JSON: every id up and alive, every shard owned.
view_complete() {
  jq -e --argjson ids "$2" --argjson shards "$SHARD_COUNT" '
    . as $v
    | ($ids | all(. as $id | any($v.nodes[]; .node_id == $id and .status == "up" and .liveness == "alive")))
      and .unowned_shards == 0
      and ([.nodes[].shards_owned] | add) == $shards' <<<"$1" >/dev/null 2>&1
}

print_view() {
  jq -r '"seen from \(.node_id): \(.mode), \(.shard_count) shards, \(.unowned_shards) unowned"' <<<"$1"
  jq -r '
    (["node", "status", "liveness", "shards", "actors", "heartbeat", "http"] | @tsv),
    (.nodes[] | [.node_id, .status, .liveness, .shards_owned,
                 (.active_actors // "?"),
                 (if .last_heartbeat_ms_ago == null then "-" else "\(.last_heartbeat_ms_ago)ms ago" end),
                 (.http_addr // "-")] | @tsv)' <<<"$1" | column -t -s $'\t'
}

# ------------------------------------------------------------------ commands --

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    log "waiting for another scripts/cluster.sh run (lock $STATE/.lock)"
    flock -w 600 9 || die "timed out waiting for $STATE/.lock"
  fi
}

cmd_up() {
  local n="${1:-3}" k t0 running=() missing=() extra=() token ids view deadline
  [[ $n =~ ^[1-9]$ ]] || die "N must be 1 to $MAX_NODES, got '$n'"
  t0="$(now)"
  ensure_tools
  lock
  ensure_binary
  ensure_postgres
  ensure_secrets

  for k in $(known_nodes); do
    if (( k > n )) && node_pid "$k" >/dev/null; then extra+=("$k"); fi
  done
  if (( ${#extra[@]} )); then
    log "stopping nodes above $n: ${extra[*]/#/node}"
    stop_nodes "${extra[@]}"
  fi
  for (( k = 1; k <= n; k++ )); do
    if node_pid "$k" >/dev/null; then running+=("$k"); else missing+=("$k"); fi
  done
  if (( ${#running[@]} )); then log "already running: ${running[*]/#/node}"; fi
  if (( ${#missing[@]} )); then
    # On an empty cluster one node first: it migrates the schema and seeds the demo data
    # alone, and the others join a running member.
    if (( ${#running[@]} == 0 )); then
      start_node "${missing[0]}" "$n"
      wait_ready "${missing[0]}"
      missing=("${missing[@]:1}")
    fi
    for k in "${missing[@]}"; do start_node "$k" "$n"; done
  fi
  for (( k = 1; k <= n; k++ )); do wait_ready "$k"; done

  token="$(admin_token 1)" || die "the admin cannot log in on node1 ($(http_base 1)); see $(node_dir 1)/node.log"
  ids="$(for (( k = 1; k <= n; k++ )); do echo "node$k"; done | jq -Rsc 'split("\n") | map(select(length > 0))')"
  for (( k = 1; k <= n; k++ )); do
    deadline=$(( $(now) + WAIT_SECS ))
    until view="$(cluster_view "$k" "$token")" && view_complete "$view" "$ids"; do
      if (( $(now) >= deadline )); then
        echo "cluster: ERROR: node$k does not see all of $ids up with every shard owned within ${WAIT_SECS}s; its view:" >&2
        print_view "$view" >&2 || echo "$view" >&2
        exit 1
      fi
      sleep 0.5
    done
  done
  echo "$n" >"$STATE/size"
  echo "$DB" >"$STATE/database"
  log "$n node(s) up in $(( $(now) - t0 ))s on $STORE_URL (state in $STATE)"
  print_view "$view"
  cat <<EOF

admin: $ADMIN_EMAIL / $ADMIN_PASSWORD
nodes: $(for (( k = 1; k <= n; k++ )); do printf '%s ' "$(http_base "$k")"; done)
try:
  TOKEN=\$(curl -s -X POST $(http_base 1)/v1/auth/login -H 'content-type: application/json' \\
    -d '{"email":"$ADMIN_EMAIL","password":"$ADMIN_PASSWORD"}' | jq -r .access_token)
  curl -s $(http_base 1)/v1/admin/cluster -H "Authorization: Bearer \$TOKEN" | jq .
console: $(http_base 1)/console (log in as the admin above)
ctl (admin gRPC API on port $ADMIN_PORT of every node):
  EMPORIUM_ADMIN_ADDR=$(http_ip 1):$ADMIN_PORT EMPORIUM_ADMIN_TOKEN=\$(grep ^ADMIN_TOKEN= $SECRETS | cut -d= -f2) \\
    $BIN ctl cluster
EOF
}

cmd_down() {
  lock
  local nodes
  mapfile -t nodes < <(known_nodes)
  if (( ${#nodes[@]} == 0 )); then log "no nodes (nothing under $STATE)"; return 0; fi
  local any=0 k
  for k in "${nodes[@]}"; do node_pid "$k" >/dev/null && any=1; done
  if (( any == 0 )); then log "all nodes down"; rm -f "$STATE"/node*/pid; return 0; fi
  stop_nodes "${nodes[@]}"
  log "data kept in $STATE and database $(cat "$STATE/database" 2>/dev/null || echo "$DB") (remove both to start afresh)"
}

cmd_status() {
  local k pid up=() down=() token view nodes size
  ensure_tools
  mapfile -t nodes < <(known_nodes)
  if (( ${#nodes[@]} == 0 )); then log "no nodes (nothing under $STATE; run: $0 up)"; exit 3; fi
  size="$(cat "$STATE/size" 2>/dev/null || echo "${nodes[-1]}")"
  for k in "${nodes[@]}"; do
    if (( k > size )); then
      if pid="$(node_pid "$k")"; then log "node$k running (pid $pid), but not one of the $size of the last up"
      else log "node$k stopped (not one of the $size of the last up)"; fi
      continue
    fi
    if pid="$(node_pid "$k")"; then
      if ready "$k"; then up+=("$k"); log "node$k running (pid $pid) on $(http_base "$k"), ready"
      else down+=("$k"); log "node$k running (pid $pid) on $(http_base "$k"), NOT ready"; fi
    else
      down+=("$k"); log "node$k down"
    fi
  done
  if (( ${#up[@]} )); then
    load_secrets
    k="${up[0]}"
    if token="$(admin_token "$k")" && view="$(cluster_view "$k" "$token")" && jq -e .nodes <<<"$view" >/dev/null 2>&1; then
      print_view "$view"
    else
      log "could not read /v1/admin/cluster from node$k"
    fi
  fi
  (( ${#down[@]} == 0 && ${#up[@]} > 0 )) || exit 3
}

case "${1:-}" in
  up) [[ $# -le 2 ]] || usage; cmd_up "${2:-3}" ;;
  down) [[ $# -eq 1 ]] || usage; cmd_down ;;
  status) [[ $# -eq 1 ]] || usage; cmd_status ;;
  *) usage ;;
esac
