"""SIGKILL at seeded random points of deploys and rollbacks, each followed by `status` and what it says
(`resume` / `rollback` / `unlock`): every run must end with the alias 100 % on one version, no lock,
nothing in flight, transitions that chain, and the version serving the one the history says.

The kill points are AWS API calls (``STAGEFLOW_FAILPOINT=kill-before-call:N`` / ``kill-after-call:N``,
stageflow.aws.CallFailpoint): between any two calls, e.g. after an alias update and before its
record. The cycle is tests/helpers/killcycle.py (bench/reliability_kills.py runs the same one).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.killcycle import Cli, run_cycles

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.e2e,
    pytest.mark.emulator,
    pytest.mark.terraform,
    pytest.mark.timeout(1500),  # the first test of a session waits for Terraform to build dev
]

RUNS = 8  # seeded kill runs in CI: ~11-15 s each on 2 loaded cores, plus ~15 s of calibration;
# more locally: STAGEFLOW_KILL_RUNS=40 (bench/reliability_kills.py runs the same cycle)
# chosen (tests/helpers/killcycle.py draws from it) so the CI runs include kills on both sides of an
# alias update, in a canary and in a rollback, besides publishing, records, the lock and notices
SEED = 4927


def test_sigkill_at_seeded_aws_calls_of_deploys_and_rollbacks_then_status_and_recovery(
    project, deployed, tmp_path
):
    runs = int(os.environ.get("STAGEFLOW_KILL_RUNS", RUNS))
    seed = int(os.environ.get("STAGEFLOW_KILL_SEED", SEED))
    figures = run_cycles(Cli(project, deployed), runs, seed, tmp_path)
    print(json.dumps({k: v for k, v in figures.items() if k != "cycles"}, indent=1))  # pytest -s
    dirty = [c for c in figures["cycles"] if not c["clean"]]
    assert not dirty, json.dumps(dirty, indent=1)
    assert figures["runs"] == runs
    # the seed must actually kill: most points fall inside a run (N past the last call is rare)
    assert figures["kill_points_hit"] >= runs * 2 // 3, figures["outcomes"]
    assert set(figures["outcomes"]) == {"canary", "rollback"}
    assert all(figures["outcomes"][c]["runs"] for c in ("canary", "rollback")), figures["outcomes"]
