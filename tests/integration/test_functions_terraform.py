"""Several functions, one environment (issue 23 item 2), with real Terraform on the emulator (the
orders fixture's two functions, applied from its stageflow.toml alone and read back, are in
tests/e2e/test_orders_release.py, which shares that environment with its release tests):

- an environment built with one function before the for_each (the module at commit ``BEFORE``) plans,
  after the change, with no function replaced: only the moves (and the rollback function's new
  ``STAGEFLOW_FUNCTIONS`` variable)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import REPO, make_project, require, run_cli
from tests.helpers.orders import require_mirror

pytestmark = [pytest.mark.terraform, pytest.mark.emulator, pytest.mark.timeout(1500)]
# main before the for_each (the last one merged): one function at module.service.aws_lambda_function.service
BEFORE = "18d9d8e"


def _cli(project, state, *args, timeout=900):
    return run_cli(
        "--config",
        str(project / "stageflow.toml"),
        "--local",
        "--json",
        *args,
        env={"STAGEFLOW_STATE_DIR": str(state)},
        timeout=timeout,
    )


def _old_infrastructure(project) -> None:
    """The environment roots and modules as they were before the for_each (commit BEFORE)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE, "infrastructure"],
        capture_output=True,
    )
    require(archive.returncode == 0, f"commit {BEFORE} is not in this checkout's history")
    shutil.rmtree(project / "infrastructure")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(project, filter="data")


def test_an_environment_built_with_one_function_keeps_it(tmp_path):
    """The sample's dev applied with the old module, then planned with the for_each one: no function,
    alias, log group or alarm is created, replaced or destroyed (the moves carry them over)."""
    from stageflow.local.emulator import Emulator

    require_mirror()
    project = make_project(tmp_path / "project")
    _old_infrastructure(project)
    state = tmp_path / "state"
    emu = Emulator(state)
    emu.up()
    try:
        r = _cli(project, state, "apply", "dev")
        assert r.returncode == 0, r.stderr[-4000:]
        shutil.rmtree(project / "infrastructure")
        shutil.copytree(
            REPO / "infrastructure", project / "infrastructure", ignore=shutil.ignore_patterns(".terraform")
        )
        plan = _cli(project, state, "plan", "dev")
        assert plan.returncode == 0, plan.stderr[-4000:]
        summary = json.loads(plan.stdout)["summary"]
        changes = {(c["address"], c["action"]) for c in summary["resources"]}
        # the rollback function learns every function (STAGEFLOW_FUNCTIONS); nothing else changes: no
        # function, alias, log group or alarm is created, replaced or destroyed, and the front door's API
        # snapshot is not redeployed (its trigger hashed an empty cache key list as null after the create
        # and as [] in this plan until modules/front_door normalised it)
        assert changes == {("module.service.aws_lambda_function.rollback", "update")}, changes
        if "state: moved" in plan.stderr:  # Terraform 1.0: moved in the state before the plan
            assert 'aws_lambda_function.service["sample-api"]' in plan.stderr
        r = _cli(project, state, "apply", "dev")
        assert r.returncode == 0, r.stderr[-4000:]
        outputs = json.loads((state / "outputs" / "local-dev.json").read_text())["outputs"]
        assert outputs["function_name"] == "sample-api-dev"
        assert [f["key"] for f in outputs["functions"]] == ["sample-api"]
    finally:
        emu.down()
