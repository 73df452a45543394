"""The HTTP front door end to end on the emulator: `stageflow status ENV --json`'s `url` is the loopback
front door of the stage Terraform built (modules/front_door); `curl` on it reaches the deployed zip
through the `live` alias (not the source tree); `stageflow load staging` goes through it, and the
per-version Invocations it produced are what the canary's metric source reads back.

One Terraform-built dev environment serves the session (tests/conftest.py ``deployed``); staging is
built once for this module in the same emulator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.test_canary_cli import run

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


def curl(url: str) -> tuple[int, str]:
    """``curl`` itself (the acceptance's command): status code and body."""
    exe = shutil.which("curl")
    if exe is None:
        pytest.fail("curl is not installed")
    r = subprocess.run(
        [exe, "-sS", "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def status_json(project, deployed, env: str) -> dict:
    r = run(project, deployed, "--json", "status", env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_status_url_answers_health_from_the_deployed_zip_through_the_alias(project, deployed):
    st = status_json(project, deployed, "dev")
    url = st["url"]
    assert url.startswith("http://127.0.0.1:") and "/_frontdoor/" in url and url.endswith("/v1-dev")
    code, body = curl(url + "/health")
    assert code == 200, body
    assert json.loads(body) == {"status": "ok", "version": "1.0.0"}  # the sample's health answer

    # the source changes, nothing is deployed: the front door still answers with the deployed zip
    init = project / "app" / "service" / "__init__.py"
    init.write_text(init.read_text().replace('"1.0.0"', '"1.0.1"'))
    assert json.loads(curl(url + "/health")[1])["version"] == "1.0.0"
    # deployed through the canary: now the alias serves the new zip
    assert run(project, deployed, "canary", "dev").returncode == 0
    assert json.loads(curl(url + "/health")[1])["version"] == "1.0.1"
    hello = json.loads(curl(url + "/hello?name=door")[1])
    serving = [v for v, w in status_json(project, deployed, "dev")["weights"].items() if w == 100]
    assert hello["message"] == "hello, door" and [hello["function_version"]] == serving

    # API Gateway's answers: the function's own 404; a stage that does not exist
    assert curl(url + "/nope")[0] == 404
    assert curl(url.rsplit("/", 1)[0] + "/no-such-stage/health")[0] == 403
    human = run(project, deployed, "status", "dev")
    assert f"url: {url}" in human.stderr + human.stdout

    # the stage Terraform built carries dev's throttling and no cache (the design: 1,000 req/s, off)
    api_id = url.split("/_frontdoor/")[1].split("/")[0]
    stage = deployed.aws.client("apigateway").get_stage(restApiId=api_id, stageName="v1-dev")
    every = stage["methodSettings"]["*/*"]
    assert (every["throttlingRateLimit"], every["throttlingBurstLimit"]) == (1000.0, 2000)
    assert not stage.get("cacheClusterEnabled") and not every["cachingEnabled"]


@pytest.fixture(scope="module")
def staging(deployed_env, tmp_path_factory):
    """staging, built by Terraform in the session's emulator and deployed by a canary (once)."""
    from tests.conftest import make_project

    project = make_project(tmp_path_factory.mktemp("staging") / "project")
    r = run(project, deployed_env, "apply", "staging", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(project, deployed_env, "canary", "staging", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return project


def test_load_staging_goes_through_the_front_door_and_the_metric_source_reads_its_invocations(
    staging, deployed_env
):
    from stageflow.metrics.cloudwatch import LocalSimulatorSource

    st = status_json(staging, deployed_env, "staging")
    url, function, alias = st["url"], st["function"], st["alias"]
    assert "/_frontdoor/" in url and url.endswith("/v1-staging")
    (version,) = [v for v, w in st["weights"].items() if w == 100]  # the canary promoted it
    cw = deployed_env.aws.client("cloudwatch")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)

    def invocations() -> int:
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        return LocalSimulatorSource(cw).series(function, alias, version, start, end).invocations

    before = invocations()
    r = run(staging, deployed_env, "--json", "load", "staging", "--users", "3", "--seconds", "5")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["requests"] > 0 and res["failures"] == 0, res
    assert res["target"] == url
    # every request became one Invoke of the alias, recorded for the version that served it; locust does
    # not count the requests its users still had in flight when the run time ended (one per user at most)
    assert res["requests"] <= invocations() - before <= res["requests"] + res["users"]
