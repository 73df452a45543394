"""`stageflow rehearse` over the real CLI against the emulator: every shared scenario gives its
expected verdict and exit code, on the prod policy, on a virtual clock.

Rehearsals run on the session's Terraform-built dev environment (tests/conftest.py ``deployed``), with
prod's canary policy, gates and approvals given to dev in the test project's stageflow.toml."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import REPO

SCENARIOS = sorted((REPO / "tests" / "fixtures" / "scenarios").glob("*.json"))


def prod_policy_on_dev(project):
    """dev takes prod's settings (canary steps, monitoring, gates, approvals); prod is dropped."""
    import re

    text = (project / "stageflow.toml").read_text()
    parts = re.split(r"(?m)^(?=\[environments\.)", text)
    head, tables = parts[0], parts[1:]
    keep = [t for t in tables if not t.startswith("[environments.dev")]
    keep = [t.replace("[environments.prod", "[environments.dev", 1) for t in keep]
    keep = [t.replace("protected = true", "protected = false") for t in keep]
    (project / "stageflow.toml").write_text(head + "".join(keep))
    return project


@pytest.fixture
def prod_project(project):
    return prod_policy_on_dev(project)


EXIT = {"promote": 0, "rollback": 4}
VERDICT = {"promote": "promoted", "rollback": "rolled_back"}


@pytest.mark.emulator
@pytest.mark.terraform
@pytest.mark.e2e
@pytest.mark.timeout(1200)  # the first test of a session waits for Terraform to build the environment
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_rehearse_shared_scenarios(path, prod_project, deployed, cli):
    project = prod_project
    expect = json.loads(path.read_text())["expect"]
    t = time.monotonic()
    r = cli(
        "--config",
        str(project / "stageflow.toml"),
        "--json",
        "rehearse",
        "--env",
        "dev",
        "--scenario",
        str(path),
        env=deployed.env(),
        timeout=180,
    )
    wall = time.monotonic() - t
    assert r.returncode == EXIT[expect], r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["verdict"] == VERDICT[expect] and out["matches_expectation"] is True
    assert out["source"] == "local-simulator" and out["environment"] == "dev"
    assert out["looks"] >= out["decided_at_minute"] - 1  # judged about once a virtual minute
    if expect == "rollback":
        assert out["final_weight"] == 0 and out["reasons"] and all("(fail)" in x for x in out["reasons"])
        assert "rolled back" in r.stderr
    else:
        assert out["final_weight"] == 100 and out["decided_at_minute"] >= 60
    print(f"{path.stem}: {out['verdict']} at minute {out['decided_at_minute']}, {wall:.1f} s wall")


@pytest.mark.emulator
@pytest.mark.terraform
@pytest.mark.e2e
@pytest.mark.timeout(1200)  # the first test of a session waits for Terraform to build the environment
def test_rehearse_canary_failing_everything_is_rolled_back_within_two_minutes(
    prod_project, deployed, cli, tmp_path
):
    project = prod_project
    sc = tmp_path / "all-fail.json"
    sc.write_text(
        json.dumps(
            {
                "name": "canary fails every request",
                "seed": 9,
                "traffic_per_minute": 600,
                "stable": {"error_rate": 0.005, "latency_ms": {"median": 120, "p95": 450}},
                "canary": {"error_rate": 1.0, "latency_ms": {"median": 20, "p95": 40}},
                "expect": "rollback",
            }
        )
    )
    r = cli(
        "--config", str(project / "stageflow.toml"), "--json", "rehearse", "--env", "dev",
        "--scenario", str(sc), env=deployed.env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 4, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["verdict"] == "rolled_back" and out["decided_at_minute"] <= 2
    assert any(x.startswith("gate errors: 100.0%") for x in out["reasons"])


@pytest.mark.emulator
@pytest.mark.terraform
@pytest.mark.e2e
@pytest.mark.timeout(1200)  # the first test of a session waits for Terraform to build the environment
def test_rehearse_manual_approvals_stop_at_the_first_pause(prod_project, deployed, cli):
    project = prod_project
    r = cli(
        "--config", str(project / "stageflow.toml"), "--json", "rehearse", "--env", "dev",
        "--scenario", str(SCENARIOS[0]), "--approvals", "manual", env=deployed.env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["verdict"] == "awaiting_approval" and out["final_weight"] == 0
