#!/usr/bin/env bash
# Breaking-change gate: fails when the current spec breaks a client of the newest release.
#
#   contract-tests/breaking/gate.sh [SPEC] [RELEASES_DIR]
#     SPEC          default openapi/v1.yaml; its name vN.yaml selects the releases vN.x.y
#     RELEASES_DIR  default openapi/releases
#
# Picks the newest openapi/releases/vN.<minor>.<patch>.yaml by semantic version, prepares both
# specs (prepare.mjs), runs `optic diff <release> <current> --check` with the ruleset in
# optic.yml, prints Optic's report. Exit 0: no breaking change; 1: breaking change (or Optic
# could not read a spec); 2: the gate itself is broken (usage, no release, ruleset not loaded).
# Offline apart from `npm ci`: Optic 1.0.9 ships no telemetry keys; the update check is off.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
die() { echo "gate: $*" >&2; exit 2; }

SPEC=${1:-$ROOT/openapi/v1.yaml}
RELEASES=${2:-$ROOT/openapi/releases}
[ -f "$SPEC" ] || die "no spec at $SPEC"
[ -d "$RELEASES" ] || die "no releases directory at $RELEASES"
SPEC=$(cd "$(dirname "$SPEC")" && pwd)/$(basename "$SPEC")
RELEASES=$(cd "$RELEASES" && pwd)
[[ $(basename "$SPEC") =~ ^v([0-9]+)\.ya?ml$ ]] || die "spec file must be named vN.yaml, got $(basename "$SPEC")"
MAJOR=${BASH_REMATCH[1]}

# Newest vMAJOR.x.y.yaml, numerically by minor then patch (v1.10.0 > v1.9.3).
NEWEST=$(
  for f in "$RELEASES"/v"$MAJOR".*.*.yaml; do
    if [[ $(basename "$f") =~ ^v${MAJOR}\.([0-9]+)\.([0-9]+)\.yaml$ ]]; then
      echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} $(basename "$f")"
    fi
  done | sort -k1,1n -k2,2n | tail -n 1 | cut -d' ' -f3
)
[ -n "$NEWEST" ] || die "no release v$MAJOR.<minor>.<patch>.yaml in $RELEASES"

OPTIC=$HERE/node_modules/.bin/optic
[ -x "$OPTIC" ] || die "Optic is not installed: run 'npm ci' in $HERE"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/agentdesk-gate.XXXXXX")
echo "Breaking-change gate: ${SPEC#"$ROOT"/} against ${RELEASES#"$ROOT"/}/$NEWEST"
node "$HERE/prepare.mjs" "$RELEASES/$NEWEST" "$SPEC" "$WORK" 2>&1 || die "cannot prepare the specs"

set +e
(
  cd "$WORK" &&
    NO_UPDATE_NOTIFIER=1 OPTIC_TELEMETRY_LEVEL=off FORCE_COLOR=0 AGENTDESK_GATE_DIR=$HERE \
      "$OPTIC" diff release.json current.json --check --standard "$HERE/optic.yml" --severity error
) >"$WORK/report.txt" 2>&1
RC=$?
set -e
# Optic's report, minus its hint to rerun with --web (which would open a browser).
grep -v "Rerun this command with the --web flag" "$WORK/report.txt" || true

# Optic only warns when a ruleset fails to load, then checks nothing: that must not pass.
if grep -qE "Ruleset .*(does not exist|had configuration errors)|(Constructing|Loading) ruleset .* failed|Hosted rules are not supported" "$WORK/report.txt"; then
  echo "gate: the ruleset did not load (kept $WORK)" >&2
  exit 2
fi
if [ "$RC" -ne 0 ]; then
  echo "gate: FAILED: breaking change against $NEWEST (or a spec Optic cannot read); prepared specs kept in $WORK"
  exit 1
fi
rm -rf "$WORK"
echo "gate: passed: no breaking change against $NEWEST"
