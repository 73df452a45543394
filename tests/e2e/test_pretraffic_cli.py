"""The pre-traffic check end to end: the emulator's local runtime runs the published zip before any
weight moves (CodeDeploy's BeforeAllowTraffic), and the smoke after promotion goes through the alias.

On the session's Terraform-built dev environment (tests/conftest.py ``deployed``), through the real CLI.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_canary_cli import fast_project, run  # noqa: F401 - the fixture is used by name
from tests.helpers.policy import change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


def _alias(deployed) -> dict:
    return deployed.lam().get_alias(FunctionName=deployed.function, Name=deployed.outputs["alias_name"])


def test_a_zip_that_cannot_import_its_module_is_rejected_before_any_traffic(fast_project, deployed):  # noqa: F811
    """`yaml` is in stageflow's own venv but not in app/requirements.txt: the service's tests could
    import it; the zip cannot. The check runs the zip as Lambda would and rejects the release."""
    handler = fast_project / "app" / "service" / "handler.py"
    text = handler.read_text()
    handler.write_text(text.replace("import json\n", "import json\n\nimport yaml  # noqa: F401\n", 1))
    before = _alias(deployed)
    new = deployed.next_version()
    r = run(fast_project, deployed, "canary", "dev")
    assert r.returncode == 4, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stageflow: error: v{new} rejected in dev: pre-traffic check: ")
    assert "Runtime.ImportModuleError" in last and "No module named 'yaml'" in last
    assert f"no traffic moved: all traffic stays on v{before['FunctionVersion']}" in last
    after = _alias(deployed)  # read back: never touched, not moved and restored
    assert after["RevisionId"] == before["RevisionId"]
    assert after["FunctionVersion"] == before["FunctionVersion"] and not after.get("RoutingConfig", {}).get(
        "AdditionalVersionWeights"
    )
    hist = run(fast_project, deployed, "--json", "history", "dev")
    dep = json.loads(hist.stdout)["deployments"][0]
    assert (dep["version"], dep["status"]) == (new, "rolled_back")
    assert dep["extra"]["pre_traffic"]["status"] == "failed"
    assert "No module named 'yaml'" in dep["extra"]["pre_traffic"]["reason"]
    assert [(t["from"], t["to"]) for t in dep["transitions"]] == [
        ("publishing", "pending"),
        ("pending", "rolled_back"),
    ]
    text = run(fast_project, deployed, "history", "dev").stdout
    assert "pre-traffic check: " in text and "No module named 'yaml'" in text
    status = run(fast_project, deployed, "status", "dev").stdout
    assert f"pre-traffic check: {deployed.function}:{new} failed: Runtime.ImportModuleError" in status


def test_a_good_change_passes_the_check_and_smoke_runs_through_the_alias(fast_project, deployed):  # noqa: F811
    change_code(fast_project, "pretraffic-good")
    new = deployed.next_version()
    r = run(fast_project, deployed, "canary", "dev")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"pre-traffic dev: {deployed.function}:{new} passed" in r.stderr
    hist = json.loads(run(fast_project, deployed, "--json", "history", "dev").stdout)["deployments"][0]
    assert hist["extra"]["pre_traffic"]["executed_version"] == new  # the zip really ran
    smoke = run(fast_project, deployed, "--json", "smoke", "dev")
    assert smoke.returncode == 0, smoke.stderr
    data = json.loads(smoke.stdout)
    assert (data["qualifier"], data["status"], data["executed_version"]) == ("live", "passed", new)
