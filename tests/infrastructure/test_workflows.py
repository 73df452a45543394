""".github/workflows: CI on pull requests and every branch, deploys from main, calling the same nox
sessions as the buildspecs; every session they name exists; actionlint and zizmor find nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.unit.test_buildspecs import NOX_CALL, _commands, _exec_noxfile
from tests.unit.test_buildspecs import _load as load_buildspec

WORKFLOWS = REPO / ".github" / "workflows"
NAMES = ("ci", "deploy")


def _wf(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def _sessions(text: str) -> set[str]:
    return set(NOX_CALL.findall(text))


@pytest.fixture(scope="module")
def sessions() -> set[str]:
    return _exec_noxfile()


def test_only_the_two_workflows():
    assert {p.stem for p in WORKFLOWS.glob("*.y*ml")} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_nox_session_named_exists(name, sessions):
    wf = _wf(name)
    named = {s for job in wf["jobs"].values() for s in _sessions(_runs(job))}
    assert named, f"{name} names no nox session"
    assert named <= sessions, f"{name} names sessions noxfile.py lacks: {sorted(named - sessions)}"


def test_ci_runs_on_pull_requests_and_every_branch_the_build_stages_sessions():
    wf = _wf("ci")
    assert "pull_request" in wf["on"] and wf["on"]["push"]["branches"] == ["**"]
    checks = _sessions(_runs(wf["jobs"]["checks"]))
    assert {"lint", "unit", "tool_tests", "security"} <= checks
    build = {s for c in _commands(load_buildspec("build")) for s in _sessions(c)}
    assert checks <= build  # the same sessions CodeBuild's Build stage (and its pull-request project) runs
    plan = wf["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["environment"] == ["dev", "staging", "prod"]
    assert "nox -s plan --" in _runs(plan) and "GITHUB_STEP_SUMMARY" in _runs(plan)
    assert plan["env"]["STAGEFLOW_LOCAL"] == "0"  # never the emulator by accident in CI


def test_deploy_runs_from_main_with_oidc_and_reviewed_production():
    wf = _wf("deploy")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["permissions"] == {} and wf["env"]["STAGEFLOW_LOCAL"] == "0"
    jobs = {name: job for name, job in wf["jobs"].items() if name != "build"}  # the build has no AWS
    assert (
        wf["jobs"]["build"]["permissions"] == {"contents": "read"}
        and "environment" not in wf["jobs"]["build"]
    )
    envs = {name: job.get("environment") for name, job in jobs.items()}
    assert envs == {
        "dev": "dev",
        "staging": "staging",
        "prod-canary-10": "prod",
        "prod-canary-50": "prod-canary-50",
        "prod-promote": "prod-promote",
    }
    order = ["build", "dev", "staging", "prod-canary-10", "prod-canary-50", "prod-promote"]
    for before, after in zip(order, order[1:], strict=False):
        assert wf["jobs"][after]["needs"] == before
    for name, job in jobs.items():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}, name  # OIDC, nothing else
        creds = [s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws")]
        assert creds and creds[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}", name
        assert set(creds[0]["with"]) == {"role-to-assume", "aws-region"}, name  # OIDC only, no stored keys
    assert "nox -s deploy -- dev" in _runs(jobs["dev"])
    assert "nox -s deploy -- staging" in _runs(jobs["staging"])
    assert "nox -s deploy -- prod" in _runs(jobs["prod-canary-10"])
    assert jobs["prod-canary-10"]["env"]["STAGEFLOW_PRE_APPROVED_BY"]
    promote = _runs(jobs["prod-promote"])
    assert promote.index("nox -s approve -- prod") < promote.index("nox -s smoke -- prod")
    # the same sessions as CodeBuild's deploy project
    deploy = {s for c in _commands(load_buildspec("deploy")) for s in _sessions(c)}
    assert {s for job in jobs.values() for s in _sessions(_runs(job))} <= deploy


def _step_env(job: dict, command: str) -> dict:
    return next(s.get("env", {}) for s in job["steps"] if command in s.get("run", ""))


def test_deploy_jobs_deploy_the_one_build_artifact_and_get_the_slack_webhook_secret():
    jobs = _wf("deploy")["jobs"]
    assert "nox -s package -- --out artifacts" in _runs(jobs["build"])
    upload = next(s for s in jobs["build"]["steps"] if "upload-artifact" in str(s.get("uses")))
    assert upload["with"]["name"] == "build-artifact" and upload["with"]["path"] == "artifacts/"
    for name, env in (("dev", "dev"), ("staging", "staging"), ("prod-canary-10", "prod")):
        job = jobs[name]
        down = [s for s in job["steps"] if "download-artifact" in str(s.get("uses"))]
        assert down and down[0]["with"] == {"name": "build-artifact", "path": "artifacts/"}, name
        step_env = _step_env(job, f"nox -s deploy -- {env}")
        assert step_env["STAGEFLOW_ARTIFACTS"] == "artifacts", name
    for name, job in jobs.items():
        for step in job["steps"]:
            if re.search(r"nox -s (deploy|approve)\b", step.get("run", "")):
                assert step["env"]["STAGEFLOW_SLACK_WEBHOOK"] == "${{ secrets.SLACK_WEBHOOK_URL }}", name
        if name == "build":
            assert "secrets." not in str(job)  # no secret where nothing notifies


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_pinned_by_commit_and_checkouts_keep_no_credentials(name):
    for job in _wf(name)["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (make setup installs it with the dev extras)")
    return found


def test_actionlint_finds_nothing():
    out = subprocess.run(
        [_tool("actionlint"), "-no-color"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor_finds_nothing():
    out = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--min-severity", "low", str(WORKFLOWS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_and_zizmor_see_a_planted_problem(tmp_path):
    """The checks can fail: an unpinned action with credentials left in the checkout, a bad expression."""
    wf = tmp_path / ".github" / "workflows"
    wf.mkdir(parents=True)
    (wf / "bad.yml").write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    lint = subprocess.run(
        [_tool("actionlint"), "-no-color", str(wf / "bad.yml")], capture_output=True, text=True
    )
    assert lint.returncode != 0 and "matrix" in lint.stdout
    ziz = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(wf)], capture_output=True, text=True, timeout=120
    )
    assert ziz.returncode != 0 and "template-injection" in ziz.stdout + ziz.stderr
