"""The service's suites where the pipeline runs them, end to end through the CLI on the emulator: a
planted failing unit test stops `deploy dev` before anything is built or deployed; a regression only the
integration suite sees fails the dev stage after the canary; `load dev` writes its HTML and JSON reports
and records the result; a service slowed past the gate fails it."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import REPO
from tests.e2e.test_canary_cli import change_code, run

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]

FIXTURES = REPO / "tests" / "fixtures" / "service"


def test_deploy_dev_runs_the_service_suites_where_the_design_puts_them(project, deployed):
    # 1. a failing unit test: the pipeline stops at its unit stage, before the build, nothing deployed
    planted = project / "app" / "tests" / "unit" / "test_planted.py"
    shutil.copy(FIXTURES / "planted_unit_failure.py", planted)
    r = run(project, deployed, "deploy", "dev")
    assert r.returncode == 1, r.stderr
    assert "stageflow: error: stage unit failed: service unit tests failed: 1 of" in r.stderr
    assert "test_planted_failure" in r.stderr
    assert "stage build" not in r.stderr and "stage security" not in r.stderr
    assert not (project / "build" / "lambda").exists()  # nothing was even packaged
    assert (project / "reports" / "junit-service-unit.xml").is_file()
    planted.unlink()

    # 2. a regression only the integration suite sees (names cut at 32): deployed, then the stage fails
    handler = project / "app" / "service" / "handler.py"
    handler.write_text(handler.read_text().replace("[:64]", "[:32]"))
    r = run(project, deployed, "deploy", "dev")
    assert r.returncode == 1, r.stderr
    for stage in ("lint", "unit", "build", "security", "canary", "smoke"):
        assert f"stage {stage}: " in r.stderr, stage  # each passed before
    assert "stage integration failed: service integration tests failed on dev: 1 of" in r.stderr
    assert "test_long_names_are_cut" in r.stderr
    assert "stage canary: v" in r.stderr  # the version was deployed; the check ran after it
    hist = json.loads(run(project, deployed, "--json", "history", "dev").stdout)["deployments"]
    # smoke (through the alias) recorded after the canary
    assert hist[0]["extra"]["smoke"]["status"] == "passed"
    junit = (project / "reports" / "junit-service-integration-dev.xml").read_text()
    assert "test_long_names_are_cut" in junit and "<failure" in junit


def test_load_writes_html_and_json_recorded_and_a_slow_service_fails_the_gate(project, deployed):
    change_code(project, "load")
    assert run(project, deployed, "canary", "dev").returncode == 0
    # through the front door: the first requests pay the new version's cold starts (as on AWS)
    r = run(project, deployed, "--json", "load", "dev", "--users", "3", "--seconds", "8")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["requests"] > 0 and res["users"] == 3 and res["within_gates"] and res["deployment_id"]
    html = project / "reports" / "load-dev.html"
    assert html.is_file() and "locust" in html.read_text(errors="replace").lower()
    saved = json.loads((project / "reports" / "load-dev.json").read_text())
    assert saved["requests"] == res["requests"] and saved["deployment_id"] == res["deployment_id"]
    hist = json.loads(run(project, deployed, "--json", "history", "dev").stdout)["deployments"]
    assert hist[0]["extra"]["load"]["requests"] == res["requests"]
    assert hist[0]["extra"]["load"]["html"] == "reports/load-dev.html"

    # the same service, slowed past a 150 ms p95 gate
    handler = project / "app" / "service" / "handler.py"
    handler.write_text(
        handler.read_text()
        .replace("    query = query or {}\n", "    query = query or {}\n    time.sleep(0.3)\n", 1)
        .replace("import os\n", "import os\nimport time\n", 1)
    )
    # load goes through the front door to the deployed zip: the slowed version must be deployed
    assert run(project, deployed, "canary", "dev").returncode == 0
    with (project / "stageflow.toml").open("a") as fh:
        fh.write("\n[environments.dev.gates]\nmax_p95_ms = 150\n")
    slow = run(project, deployed, "load", "dev", "--users", "2", "--seconds", "8")
    assert slow.returncode == 1, slow.stderr
    assert (
        "stageflow: error: load test on dev outside the gates:" in slow.stderr and "> 150 ms" in slow.stderr
    )
    assert json.loads((project / "reports" / "load-dev.json").read_text())["within_gates"] is False
    bad = run(project, deployed, "load", "dev", "--users", "5000")
    assert bad.returncode == 2 and "5000" in bad.stderr
