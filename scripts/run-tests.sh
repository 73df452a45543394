#!/usr/bin/env bash
# Start what the tests need, run the whole suite, and treat "no tests ran" (pytest exit 5) as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p reports
# A Docker engine, base image and loopback registry for the `docker` tests (docs/docker.md). Where none can
# be started (not root, no apt) the docker tests skip locally and fail in CI.
if engine_env=$(bash scripts/docker-engine.sh up >&2 && bash scripts/docker-engine.sh env); then
  eval "$engine_env"
else
  echo "run-tests: no Docker engine (scripts/docker-engine.sh up failed): docker tests will skip" >&2
fi
# Two workers, each taking whole test files (--dist loadfile: a module's Terraform-built environment stays
# on one worker; a session-wide one is built once per worker that needs it). Most of a Terraform apply on
# the emulator is the AWS provider's propagation waits, so two workers overlap them even on two cores.
# STAGEFLOW_TEST_WORKERS=0 runs in one process.
WORKERS=${STAGEFLOW_TEST_WORKERS:-2}
"$BIN/python" -m pytest -p no:cacheprovider -n "$WORKERS" --dist loadfile --durations=30 \
  --junitxml=reports/junit.xml "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
