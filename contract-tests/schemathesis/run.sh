#!/usr/bin/env bash
# Schemathesis against a live Agentdesk server: every operation of /v1/openapi.json, all checks,
# positive and negative data, with a real bearer token and real resources behind the ids.
# Any failure (or a run cut short by the time bound) fails this script.
#
#   contract-tests/schemathesis/run.sh [extra `schemathesis run` options, e.g. --include-operation-id X]
#
# Environment:
#   AGENTDESK_BIN             server binary (default: $CARGO_TARGET_DIR/release/agentdesk)
#   AGENTDESK_CI_VENV         Python venv to install schemathesis into (shared with .ci/run)
#   AGENTDESK_CONTRACT_OUT    reports go to $AGENTDESK_CONTRACT_OUT/schemathesis/
#                             (schemathesis.txt, junit.xml, schemathesis.toml, server.log)
#   AGENTDESK_SCHEMATHESIS_MAX_EXAMPLES  examples per operation and phase (default: the config's)
#   AGENTDESK_SCHEMATHESIS_SEED          replay a run (the seed is printed in the summary)
#   AGENTDESK_SCHEMATHESIS_TIME_LIMIT_S  hard bound on the schemathesis run (default 300)
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${AGENTDESK_CI_VENV:-$HOME/.cache/agentdesk-ci-venv}
BIN=${AGENTDESK_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}/release/agentdesk}
OUT=${AGENTDESK_CONTRACT_OUT:-/tmp/agentdesk-contract}/schemathesis
TIME_LIMIT=${AGENTDESK_SCHEMATHESIS_TIME_LIMIT_S:-300}
MAX_EXAMPLES=${AGENTDESK_SCHEMATHESIS_MAX_EXAMPLES:-}
SEED=${AGENTDESK_SCHEMATHESIS_SEED:-}

die() { echo "schemathesis: FAILED: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no server binary at $BIN (cargo build --release, or set AGENTDESK_BIN)"

# CPython 3.11.7 (this machine kind's default) has an AST recursion bug (gh-106905) that breaks
# schemathesis on large specs: use the newest CPython ≥ 3.11.8 found (pyenv's too), and rebuild
# the venv when it was made with an older one.
good_python() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11, 8) else 1)' 2>/dev/null; }
PYTHON=
for cand in ${AGENTDESK_CI_PYTHON:-} $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V -r) \
    python3.13 python3.12 python3; do
  if command -v "$cand" >/dev/null 2>&1 && good_python "$cand"; then PYTHON=$cand; break; fi
done
[ -n "$PYTHON" ] || { echo "schemathesis: no CPython >= 3.11.8 found; using python3 (may hit gh-106905)" >&2; PYTHON=python3; }
if [ -x "$VENV/bin/python" ] && ! good_python "$VENV/bin/python" && [ "$PYTHON" != python3 ]; then
  rm -rf "$VENV"
fi
[ -x "$VENV/bin/pip" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
PY=$VENV/bin/python

rm -rf "$OUT"
mkdir -p "$OUT"
DATA_DIR=$(mktemp -d)
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

SERVER_PID=
CHURN_PID=
cleanup() {
  if [ -n "$CHURN_PID" ]; then kill "$CHURN_PID" 2>/dev/null || true; wait "$CHURN_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# SQLite in a fresh data dir, no desktops (`none` runtime: sessions run without one).
# Rate limits out of the way: the run sends thousands of requests from one IP and logs in
# many times. Queued commands must not expire during the run, and tokens must outlive it.
# Mail (verification links) goes to .eml files in $DATA_DIR/mail, where fixtures.py reads them.
# The server refuses unknown AGENTDESK_* variables, so it gets none but these (not this
# script's settings, nor .ci/run's AGENTDESK_TEST_POSTGRES_URL).
UNSET=()
while IFS= read -r name; do UNSET+=(-u "$name"); done < <(compgen -e | grep '^AGENTDESK_' || true)
env "${UNSET[@]}" AGENTDESK_LISTEN="127.0.0.1:$PORT" \
  AGENTDESK_DATA_DIR="$DATA_DIR" \
  AGENTDESK_JWT_SIGNING_KEY=dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx \
  AGENTDESK_LOG_LEVEL=warn \
  AGENTDESK_RATE_LIMIT_PER_IP_PER_MIN=1000000 \
  AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN=1000000 \
  AGENTDESK_LOGIN_RATE_LIMIT_PER_ACCOUNT_PER_MIN=1000000 \
  AGENTDESK_COMMAND_CLAIM_TIMEOUT_S=3600 \
  AGENTDESK_ACCESS_TOKEN_TTL_S=3600 \
  AGENTDESK_MAIL_SENDER=dir \
  AGENTDESK_MAIL_DIR="$DATA_DIR/mail" \
  "$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; die "the server exited during start-up"; }
  "$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$BASE/healthz" 2>/dev/null && break
  sleep 0.2
done
"$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$BASE/healthz" 2>/dev/null \
  || die "the server does not answer $BASE/healthz"

FIXTURE_ENV=$("$PY" "$HERE/fixtures.py" setup "$BASE" "$HERE/schemathesis.toml.in" "$OUT/schemathesis.toml" "$DATA_DIR/mail")
eval "$FIXTURE_ENV"
export ST_HOOKS=$HERE/hooks.py

"$PY" "$HERE/fixtures.py" churn "$BASE" "$ST_FIXTURES" "$ST_BEARER" &
CHURN_PID=$!

echo "schemathesis $("$VENV/bin/schemathesis" --version | awk '{print $NF}') against $BASE ($BIN), report in $OUT"
START=$(date +%s)
set +e
(
  cd "$OUT" # any state schemathesis keeps stays with the report
  timeout -s INT -k 30 "$TIME_LIMIT" "$VENV/bin/schemathesis" --config-file "$OUT/schemathesis.toml" \
    run "$BASE/v1/openapi.json" \
    --checks all --mode all \
    ${MAX_EXAMPLES:+--max-examples "$MAX_EXAMPLES"} ${SEED:+--seed "$SEED"} \
    --report junit --report-junit-path "$OUT/junit.xml" \
    "$@"
) 2>&1 | tee "$OUT/schemathesis.txt"
RC=${PIPESTATUS[0]}
set -e
ELAPSED=$(( $(date +%s) - START ))
kill "$CHURN_PID" 2>/dev/null || true
wait "$CHURN_PID" 2>/dev/null || true
CHURN_PID=

"$PY" "$HERE/fixtures.py" state "$BASE" "$ST_FIXTURES" "$ST_BEARER" | tee -a "$OUT/schemathesis.txt" || true
kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the run (see $OUT/server.log)"
PANICS=$(grep -c -i 'panicked' "$OUT/server.log" || true)
echo "schemathesis: exit $RC after ${ELAPSED}s; server log: $(wc -l <"$OUT/server.log") lines, $PANICS panics; report: $OUT"
[ "$PANICS" -eq 0 ] || die "the server panicked (see $OUT/server.log)"
[ "$RC" -ne 124 ] && [ "$RC" -ne 130 ] || die "the run did not finish within ${TIME_LIMIT}s"
[ "$RC" -eq 0 ] || die "schemathesis reported failures (see $OUT/schemathesis.txt, $OUT/junit.xml)"
echo "schemathesis: passed"
