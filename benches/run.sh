#!/usr/bin/env bash
# The platform benchmark (not a test), the one entry point: builds the release server and the
# benchmark first (so that compile time is not measured), checks the tools, raises the
# open-files limit and runs agentdesk-bench (benches/platform): for SQLite and PostgreSQL, a
# fresh database, the release `agentdesk serve` on 127.0.0.1, then /healthz and `pgbench -S`
# (the ceilings), authenticated reads and lists with wrk, event appends, an SSE fan-out,
# memory over two identical rounds and session starts. Prints one Markdown table with
# PASS/FAIL against the targets (README, "Benchmarks"). Takes about 7 minutes for both.
#
# Usage: benches/run.sh [sqlite] [postgres] [options]     (default: both backends)
#   e.g. benches/run.sh postgres --duration 3s; benches/run.sh --help lists the options.
#   With --bin PATH the server binary is not built.
# Env: AGENTDESK_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): the
#      bench creates agentdesk_bench_<random> databases there and drops them at the end. Its
#      connections (the server's and pgbench's) negotiate TLS over loopback when PostgreSQL has
#      `ssl = on` (Debian's default; sslmode `prefer` is the default of libpq and sqlx): that
#      realistic default is kept. To measure without TLS, append ?sslmode=disable to the URL.
# Exit: 0 when every backend ran (targets not met are FAIL rows, not errors); 1 when one could
#      not run; 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}

own_bin=no
postgres=yes
backends=()
for arg in "$@"; do
  case "$arg" in
    --bin) own_bin=yes ;;
    sqlite|postgres) backends+=("$arg") ;;
  esac
done
if [ ${#backends[@]} -gt 0 ] && [[ " ${backends[*]} " != *" postgres "* ]]; then
  postgres=no
fi

missing=()
command -v wrk >/dev/null || missing+=(wrk)
if [ "$postgres" = yes ]; then
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v pgbench >/dev/null || missing+=(postgresql-client)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing tools: apt-get install $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi

if [ "$own_bin" = no ]; then
  cargo build --release --bin agentdesk
fi
cargo build --release -p agentdesk-bench

# 1,000 SSE subscribers: about 1,100 descriptors in the bench and as many in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bin=()
[ "$own_bin" = no ] && bin=(--bin "$CARGO_TARGET_DIR/release/agentdesk")
exec "$CARGO_TARGET_DIR/release/agentdesk-bench" "${bin[@]}" "$@"
