#!/usr/bin/env bash
# scripts/cassandra.sh up|down|status — one Apache Cassandra 5.0 node for the tests of the
# scylla adapter (emporium-store-scylla), on 127.0.0.1:9042.
#
# What: fetches Cassandra's jars from Maven Central once (through Maven, into
# ${EMPORIUM_SERVICES_DIR:-$HOME/.cache/emporium-services}/cassandra/lib), writes a minimal
# cassandra.yaml and logback.xml, and runs one node as a plain JVM under Java 17.
# Why not a package or a tarball: Maven Central is the one place this project's machines can
# fetch Cassandra from; `cassandra-all` resolves there with all its runtime dependencies.
#
# Invariants:
# - Idempotent: `up` on a running node only waits for readiness and reports; `down` on a
#   stopped node is a no-op. Jars are fetched only when absent.
# - `down` stops exactly the pid recorded by `up` (and only if that pid still runs
#   CassandraDaemon): TERM, then KILL after a grace period. Never a match by name.
# - `commitlog_sync: batch`: a write acknowledged to a client survives kill -9 of the node.
# - Heap fixed at 1 GiB (-Xms1G -Xmx1G); Java 17 is picked explicitly (Cassandra 5.0 runs on
#   Java 11 or 17 only, and the machine may carry a newer JDK as its default).
#
# Exit status: 0 on success (`status`: 0 when up, 1 when down or not answering).
# Environment: EMPORIUM_SERVICES_DIR (cache/state root), CASSANDRA_JAVA (a java 17 binary),
# CASSANDRA_UP_TIMEOUT (seconds to wait for CQL, default 120).
set -euo pipefail

CASSANDRA_VERSION=5.0.8
HOST=127.0.0.1
CQL_PORT=9042
STORAGE_PORT=7000
ROOT="${EMPORIUM_SERVICES_DIR:-$HOME/.cache/emporium-services}/cassandra"
LIB="$ROOT/lib"
CONF="$ROOT/conf"
NODE="$ROOT/node"
PIDFILE="$ROOT/cassandra.pid"
LOG="$NODE/logs/stdout.log"
UP_TIMEOUT="${CASSANDRA_UP_TIMEOUT:-120}"

say() { echo "services: cassandra $*"; }
die() {
    echo "services: cassandra: $*" >&2
    exit 1
}

# A java 17 binary: $CASSANDRA_JAVA, else the first JDK 17 under /usr/lib/jvm.
find_java17() {
    local candidate
    for candidate in ${CASSANDRA_JAVA:-} /usr/lib/jvm/java-17-openjdk*/bin/java /usr/lib/jvm/*17*/bin/java; do
        [ -x "$candidate" ] || continue
        if "$candidate" -version 2>&1 | head -n1 | grep -Eq 'version "17[."]'; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# The CQL readiness probe: send an OPTIONS frame (protocol v4, stream 0), expect a SUPPORTED
# frame back (response version byte 0x84, opcode 0x06).
cql_ready() {
    local reply
    reply=$(timeout 3 bash -c "
        exec 3<>/dev/tcp/$HOST/$CQL_PORT || exit 1
        printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3
        head -c 5 <&3 | od -An -tx1
    " 2>/dev/null) || return 1
    reply=$(echo $reply)
    [ "${reply:0:2}" = "84" ] && [ "$(echo "$reply" | awk '{print $5}')" = "06" ]
}

# The pid from the pidfile, if that process is still our CassandraDaemon.
our_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'org.apache.cassandra.service.CassandraDaemon' || return 1
    # The same node, not someone else's Cassandra with a recycled pid.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF/cassandra.yaml" || return 1
    echo "$pid"
}

fetch_jars() {
    if [ -f "$LIB/cassandra-all-$CASSANDRA_VERSION.jar" ] && ls "$LIB"/jamm-*.jar >/dev/null 2>&1; then
        return 0
    fi
    command -v mvn >/dev/null || die "maven (mvn) is needed once to fetch the jars: apt-get install maven"
    say "fetching cassandra-all $CASSANDRA_VERSION and its dependencies from Maven Central"
    local work="$ROOT/fetch.$$"
    rm -rf "$work"
    mkdir -p "$work"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>emporium.services</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    (cd "$work" && mvn -B -ntp -q -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib") ||
        die "fetching the jars with maven failed"
    [ -f "$work/lib/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "maven did not produce cassandra-all-$CASSANDRA_VERSION.jar"
    # Publish whole or not at all: a half-fetched lib/ must not look complete.
    rm -rf "$LIB"
    mv "$work/lib" "$LIB"
    rm -rf "$work"
}

write_config() {
    mkdir -p "$CONF" "$NODE"/{data,commitlog,saved_caches,hints,cdc_raw,logs,tmp}
    cat >"$CONF/cassandra.yaml" <<EOF
# Written by scripts/cassandra.sh: a single-node test cluster. Unknown keys are refused.
cluster_name: emporium-test
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $STORAGE_PORT
native_transport_port: $CQL_PORT
start_native_transport: true
auto_bootstrap: false
data_file_directories:
  - $NODE/data
commitlog_directory: $NODE/commitlog
saved_caches_directory: $NODE/saved_caches
hints_directory: $NODE/hints
cdc_raw_directory: $NODE/cdc_raw
# batch: a write is acknowledged only after its commit log entry is fsynced.
commitlog_sync: batch
commitlog_disk_access_mode: legacy
concurrent_compactors: 1
file_cache_size: 128MiB
key_cache_size: 16MiB
auto_snapshot: false
EOF
    cat >"$CONF/logback.xml" <<EOF
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$NODE/logs/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
}

wait_ready() {
    local pid="$1" started="$2" deadline=$((SECONDS + UP_TIMEOUT))
    while ! cql_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            tail -n 40 "$LOG" >&2 || true
            die "the node exited during start-up (log: $LOG, $NODE/logs/system.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$LOG" >&2 || true
            die "no CQL answer on $HOST:$CQL_PORT after ${UP_TIMEOUT}s (pid $pid still running; logs in $NODE/logs)"
        fi
        sleep 0.5
    done
    say "up on $HOST:$CQL_PORT (pid $pid, ready after $((SECONDS - started))s)"
}

cmd_up() {
    local pid started=$SECONDS
    if pid=$(our_pid); then
        wait_ready "$pid" "$started"
        return 0
    fi
    rm -f "$PIDFILE"
    if cql_ready; then
        say "up on $HOST:$CQL_PORT (a node this script did not start answers there)"
        return 0
    fi
    local java
    java=$(find_java17) || die "no Java 17 found under /usr/lib/jvm (set CASSANDRA_JAVA); Cassandra 5.0 needs Java 11 or 17"
    fetch_jars
    write_config
    local jamm
    jamm=$(ls "$LIB"/jamm-*.jar | head -n1)
    local -a opts=(
        -Xms1G -Xmx1G
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
        -XX:G1HeapRegionSize=16m -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300
        -XX:InitiatingHeapOccupancyPercent=70
        -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$NODE/tmp" -XX:+CrashOnOutOfMemoryError
        -Xss256k
        -Djdk.attach.allowAttachSelf=true
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
        --add-exports java.base/sun.nio.ch=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
        --add-opens java.base/java.net=ALL-UNNAMED
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true
        -Dio.netty.allocator.maxOrder=11
        -javaagent:"$jamm"
        -Dcassandra.config="file://$CONF/cassandra.yaml"
        -Dcassandra.storagedir="$NODE"
        -Dcassandra.logdir="$NODE/logs"
        -Dlogback.configurationFile="$CONF/logback.xml"
        -Dcassandra-foreground=yes
        -Djava.io.tmpdir="$NODE/tmp"
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms=5000
        -Dcassandra.superuser_setup_delay_ms=0
    )
    # setsid: the node outlives this shell and the caller's terminal or job control group.
    # Launched from a subshell that is not a group leader, setsid execs in place, so $! is
    # the JVM's own pid.
    setsid "$java" "${opts[@]}" -cp "$CONF:$LIB/*" org.apache.cassandra.service.CassandraDaemon \
        </dev/null >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    say "starting (pid $pid, java $java, logs in $NODE/logs)"
    wait_ready "$pid" "$started"
}

cmd_down() {
    local pid
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"
        say "down"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PIDFILE"
    say "down (stopped pid $pid)"
}

cmd_status() {
    local pid
    if cql_ready; then
        if pid=$(our_pid); then
            say "up on $HOST:$CQL_PORT (pid $pid)"
        else
            say "up on $HOST:$CQL_PORT (not started by this script)"
        fi
        return 0
    fi
    if pid=$(our_pid); then
        say "down: pid $pid runs but does not answer CQL yet"
    else
        say "down"
    fi
    return 1
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
