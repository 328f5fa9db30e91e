#!/usr/bin/env bash
# HTTP benchmark (not a test): a release build of agentdesk on 127.0.0.1, wrk at 32
# connections for 10 s per target, on SQLite and (when reachable) PostgreSQL:
#   GET /healthz                      (no auth, no database)
#   GET /v1/orgs/{org_id}  (Bearer)   (JWT check + membership lookup + casbin + org read)
#   GET /v1/orgs/{org_id}  (API key)  (same read with `Authorization: Bearer ad_…`: key check
#                                      from the per-node cache + casbin + org read)
# Prints req/s and p50/p95/p99 per run, the authenticated/healthz throughput ratio and the
# API-key/JWT p95 ratio (target ≤ 1.10), all measured in the same run.
# Usage: benches/http.sh [--duration 10s] [--connections 32]
# Env: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres; "" to skip).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10s
CONNECTIONS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}
cargo build --release --bin agentdesk -q
BIN=$CARGO_TARGET_DIR/release/agentdesk
PG_URL=${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/postgres}
PORT=18181
WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

run_backend() {
  local name=$1 db_url=$2
  AGENTDESK_LISTEN=127.0.0.1:$PORT AGENTDESK_DATA_DIR=$WORK/$name AGENTDESK_DATABASE_URL=$db_url \
  AGENTDESK_LOG_LEVEL=warn AGENTDESK_RATE_LIMIT_PER_IP_PER_MIN=100000000 \
  AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN=1000 "$BIN" serve > "$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local base=http://127.0.0.1:$PORT email="bench-$RANDOM$RANDOM@example.com"
  curl -sf -X POST "$base/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"benchmark password\",\"display_name\":\"Bench\"}" >/dev/null
  local token org
  token=$(curl -sf -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"benchmark password\"}" | json_field access_token)
  org=$(curl -sf -X POST "$base/v1/orgs" -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d '{"name":"Bench"}' | json_field id)
  local key
  key=$(curl -sf -X POST "$base/v1/orgs/$org/api-keys" -H 'content-type: application/json' \
    -H "authorization: Bearer $token" -d '{"name":"bench","role":"viewer"}' | json_field secret)
  local health auth bykey
  health=$(BENCH_TOKEN= wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s benches/report.lua "$base/healthz" | grep '^RESULT')
  auth=$(BENCH_TOKEN=$token wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s benches/report.lua "$base/v1/orgs/$org" | grep '^RESULT')
  bykey=$(BENCH_TOKEN=$key wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s benches/report.lua "$base/v1/orgs/$org" | grep '^RESULT')
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  local r1 r2 p95jwt p95key
  r1=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$health"); r2=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$auth")
  p95jwt=$(sed -E 's/.*p95_ms=([0-9.]+).*/\1/' <<<"$auth"); p95key=$(sed -E 's/.*p95_ms=([0-9.]+).*/\1/' <<<"$bykey")
  printf '%-10s %-28s %s\n' "$name" "GET /healthz" "${health#RESULT }"
  printf '%-10s %-28s %s\n' "$name" "GET /v1/orgs/{id} (JWT)" "${auth#RESULT }"
  printf '%-10s %-28s %s\n' "$name" "GET /v1/orgs/{id} (API key)" "${bykey#RESULT }"
  printf '%-10s %-28s %s\n' "$name" "ratio auth/healthz" "$(python3 -c "print(f'{$r2/$r1:.2f}')")"
  printf '%-10s %-28s %s\n' "$name" "p95 API key / JWT" "$(python3 -c "print(f'{$p95key/$p95jwt:.2f}')")"
}

echo "agentdesk HTTP benchmark: $CONNECTIONS connections, $DURATION per target, $(nproc) cores"
run_backend sqlite "sqlite://$WORK/bench.db?mode=rwc"
if [ -n "$PG_URL" ] && psql "$PG_URL" -qAtc 'select 1' >/dev/null 2>&1; then
  db=agentdesk_bench_$$
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null; psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  run_backend postgres "${PG_URL%/*}/$db"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
else
  echo "postgres   skipped (BENCH_POSTGRES_URL unreachable)"
fi
