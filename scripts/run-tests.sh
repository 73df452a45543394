#!/usr/bin/env bash
# Start what the tests need, run the whole suite, and treat "no tests ran" (pytest exit 5) as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p reports
"$BIN/python" -m pytest -p no:cacheprovider --junitxml=reports/junit.xml "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
