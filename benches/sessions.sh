#!/usr/bin/env bash
# Session benchmarks (not a test): benches/sessions.rs on SQLite, then on PostgreSQL.
# Each run starts the server in-process on 127.0.0.1 against a fresh database and measures
# append throughput, live SSE delivery and session start (runtimes `none` and `process`),
# with GET /healthz as the baseline; it prints a Markdown table. A combined table of both
# backends follows at the end. Each backend run gives up by itself after 270 s.
# Usage: benches/sessions.sh [sqlite] [postgres]   (default: both)
# Env: AGENTDESK_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres):
#      the bench creates agentdesk_bench_<uuid> databases there and drops them afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}
export AGENTDESK_BENCH_POSTGRES_URL=${AGENTDESK_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(sqlite postgres)

# Build first, so that compile time is not part of any run.
cargo bench --bench sessions --no-run -q || exit 1

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
status=0
for backend in "${backends[@]}"; do
  echo "== $backend"
  if ! cargo bench -q --bench sessions -- "$backend" | tee -a "$OUT"; then
    echo "$backend: FAILED" >&2
    status=1
  fi
done

if [ ${#backends[@]} -gt 1 ]; then
  echo
  echo "### All backends"
  echo
  grep '^|' "$OUT" | awk '!seen[$0]++'
fi
exit $status
