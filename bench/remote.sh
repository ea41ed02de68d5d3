#!/usr/bin/env bash
# Measures a release `authd serve` from a separate load-generator process:
# starts the server on a fresh database (test profile, rate limits lifted
# since the load comes from one address), runs `authd-bench --url` against
# it, then stops the server and drops the database (BENCH_PG_SOCKET_DIR:
# connect over PostgreSQL's Unix socket instead of TCP). Extra AUTHD_* variables
# in the environment reach the server (e.g. AUTHD_HTTP__WORKER_NICE=0), and
# arguments go to authd-bench.
#
#   cargo build --release -p authd -p authd-bench
#   bench/remote.sh --duration 5s --levels 16 --out-dir bench-results/remote
set -euo pipefail
cd "$(dirname "$0")/.."

name="authd_perf_$$"
dir="$(mktemp -d)"
port=18080
export AUTHD_PROFILE=test
# PostgreSQL over TCP (with TLS where the server offers it), or over its
# Unix socket when BENCH_PG_SOCKET_DIR names the socket's directory (e.g.
# /var/run/postgresql), as the README advises for a PostgreSQL on the same host.
if [ -n "${BENCH_PG_SOCKET_DIR:-}" ]; then
  export AUTHD_DATABASE__URL="postgres://postgres@localhost/$name?host=$BENCH_PG_SOCKET_DIR"
else
  export AUTHD_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$name"
fi
export AUTHD_SECRETS__MASTER_KEY_FILE="$dir/master.key"
export AUTHD_HTTP__ADDR="127.0.0.1:$port"
export AUTHD_HTTP__ADMIN_ADDR="127.0.0.1:$((port + 1))"
export AUTHD_HTTP__MAX_CONNECTIONS_PER_PEER=4096
for limit in SIGNUP LOGIN REFRESH; do
  export "AUTHD_RATE_LIMIT__${limit}__BURST=1000000"
  export "AUTHD_RATE_LIMIT__${limit}__REPLENISH_MS=1"
done
export RUST_LOG=error

# In its own session, as a service manager or a container would start it:
# where the kernel groups CPU time by session (autogroup,
# /proc/sys/kernel/sched_autogroup_enabled), the load generator would
# otherwise share authd's group and wait behind its hashing threads.
setsid target/release/authd serve &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done

target/release/authd-bench --url "http://127.0.0.1:$port" \
  --database-url "$AUTHD_DATABASE__URL" --server-pid "$server" "$@"
