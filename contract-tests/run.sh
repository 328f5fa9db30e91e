#!/usr/bin/env bash
# Every contract test against the server binary in $AGENTDESK_BIN (CI passes the release
# build), in order, each timed; the first failure stops the run with a non-zero exit.
#   1. SDK (clients/typescript): npm ci, generated types drift check, build (ESM + CommonJS),
#      type-level checks, the README's ts blocks type-checked (strict; no `!`, no casts),
#      offline tests of both builds.
#   2. Breaking-change gate: Optic diff of openapi/v1.yaml against the newest openapi/releases/
#      spec, and the gate's own tests (known breaking edits must fail, non-breaking must pass).
#   3. SDK journey against the live server (node --test, through @agentdesk/client only).
#   4. Schemathesis against the live server (all checks, negative data), report saved.
#   5. Swagger UI in headless Debian Chromium (playwright-core): a read and a write executed
#      from the page; screenshots saved.
#   6. The built SDK in Chromium on a second origin (CORS allow-list): API key, idempotent retry,
#      exposed headers, SSE resumed with ?after_seq= (and by hand with Last-Event-ID); a third
#      origin is refused by the browser.
#   7. The console (console/): its committed dist/ equals a fresh build from the lockfile.
#   8. The console in Chromium against a live server with a real Xvnc: log in, watch the desktop
#      (a known background colour on the noVNC canvas), a message in the timeline, Take control
#      and click (the desktop's pointer moves), no CSP violation; screenshots saved.
#   9. The SDK in users' projects: the packed SDK (npm pack) runs the README's quick start, as
#      written, in a strict TypeScript CommonJS project, a strict ES module project and an
#      esbuild bundle in Chromium, against a live server with real desktops; two Chromium tabs
#      sharing one login refresh once per rotation and stay logged in (and, without the lock,
#      are logged out by the server's reuse detection).
# Reports and screenshots go to $AGENTDESK_CONTRACT_OUT (default ${TMPDIR:-/tmp}/agentdesk-contract).
# (Spec drift, step 0, is `agentdesk openapi --check`, run by .ci/run and tests/contract.rs.)
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export AGENTDESK_BIN=${AGENTDESK_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}/release/agentdesk}
export AGENTDESK_CONTRACT_OUT=${AGENTDESK_CONTRACT_OUT:-${TMPDIR:-/tmp}/agentdesk-contract}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_audit=false npm_config_fund=false
[ -x "$AGENTDESK_BIN" ] || { echo "contract tests: no server binary at $AGENTDESK_BIN" >&2; exit 1; }
mkdir -p "$AGENTDESK_CONTRACT_OUT"
TIMES=()
run() {
  local name=$1; shift
  echo; echo "--> contract: $name"
  local t0=$SECONDS
  "$@"
  TIMES+=("$(printf '%-34s %4ss' "$name" $((SECONDS - t0)))")
}

run "SDK build + generated drift" bash -c "cd '$ROOT/clients/typescript' && npm ci && npm run check:generated && npm run build && npm test"
run "breaking-change gate" bash -c "cd '$ROOT/contract-tests/breaking' && npm ci && npm run gate && npm test"
run "SDK journey (live server)" bash -c "cd '$ROOT/contract-tests/journey' && npm ci && npm test"
run "schemathesis (live server)" bash "$ROOT/contract-tests/schemathesis/run.sh"
run "Swagger UI in Chromium" bash -c "cd '$ROOT/contract-tests/swagger-ui' && npm ci && npm test"
run "SDK cross-origin in Chromium" bash -c "cd '$ROOT/contract-tests/cross-origin' && npm ci && npm test"
run "console dist drift" bash -c "cd '$ROOT/console' && npm ci && npm run check"
run "console in Chromium" bash -c "cd '$ROOT/contract-tests/console' && npm ci && npm test"
run "SDK in users' projects" bash -c "cd '$ROOT/contract-tests/sdk-projects' && npm ci && timeout 900 npm test"

echo; echo "contract tests passed; reports in $AGENTDESK_CONTRACT_OUT"
printf '  %s\n' "${TIMES[@]}"
