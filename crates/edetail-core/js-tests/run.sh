#!/bin/sh
# Runs the edetail.js / veeva-clm.js / containers.js tests (crates/edetail-core/js-tests/*.test.js) with Node's
# built-in test runner, shows its TAP output, then prints one plain line "N passed, M failed"
# taken from the runner's "# pass N" / "# fail M" summary. Exits non-zero when anything failed.
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp "${TMPDIR:-/tmp}/edetail-js-tests.XXXXXX")
trap 'rm -f "$OUT"' EXIT INT TERM

REPORTER=""
if node --help 2>/dev/null | grep -q -- "--test-reporter"; then REPORTER="--test-reporter=tap"; fi

# The files are listed explicitly: "node --test DIR" is treated differently across Node versions.
# shellcheck disable=SC2086
node --test $REPORTER "$DIR"/*.test.js >"$OUT" 2>&1
STATUS=$?
cat "$OUT"

PASS=$(sed -n 's/^# pass \([0-9][0-9]*\)$/\1/p' "$OUT" | tail -n 1)
FAIL=$(sed -n 's/^# fail \([0-9][0-9]*\)$/\1/p' "$OUT" | tail -n 1)
if [ -z "$PASS" ] || [ -z "$FAIL" ]; then
  echo "0 passed, 1 failed (no test summary from node --test; exit status $STATUS)"
  exit 1
fi
echo "$PASS passed, $FAIL failed"
if [ "$FAIL" -ne 0 ] || [ "$STATUS" -ne 0 ]; then exit 1; fi
exit 0
