#!/usr/bin/env bash
# Desktop relay benchmark (not a test): Agentdesk's relay vs websockify 0.13 (the relay noVNC
# ships with) vs direct TCP, on one real Xvnc at 1280×800, in one run (see benches/relay.rs).
# Installs websockify 0.13 from PyPI into a venv ($HOME/.cache/agentdesk-bench-venv), then
# `cargo bench --bench relay`. Needs Xvnc (apt-get install tigervnc-standalone-server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Xvnc >/dev/null || { echo "Xvnc is needed: apt-get install tigervnc-standalone-server" >&2; exit 1; }
VENV=${AGENTDESK_BENCH_VENV:-$HOME/.cache/agentdesk-bench-venv}
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check 'websockify==0.13.*'
export AGENTDESK_WEBSOCKIFY="$VENV/bin/websockify"
"$AGENTDESK_WEBSOCKIFY" --help >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdesk-target}
cargo bench --bench relay
