"""Shared fixtures. Real parts where users would use them: the emulator runs as a real process over
HTTP, Terraform and Docker are real binaries. In CI (CI=true) a missing component is a failure, never
a silent skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip outside CI when a real component is missing; fail in CI, where it must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """No test may reach a real AWS account: dummy credentials, no metadata service."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "STAGEFLOW_LOCAL",
        "STAGEFLOW_STATE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/stageflow-tests/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stageflow-tests/config")


@pytest.fixture(scope="session")
def testenv_cache(tmp_path_factory) -> Path:
    """One cache of the services' test environments for the session (stageflow.testenv): pip runs once
    per runtime and requirement set, not once per test."""
    return tmp_path_factory.mktemp("testenv-cache")


@pytest.fixture(scope="session")
def emulator_state(tmp_path_factory):
    return tmp_path_factory.mktemp("stageflow-state")


@pytest.fixture(scope="session")
def emulator(emulator_state):
    """One emulator process for the session, on a free loopback port, stopped at the end."""
    from stageflow.local.emulator import Emulator

    emu = Emulator(emulator_state)
    status, _ = emu.up()
    yield status
    emu.down()


@pytest.fixture
def aws(emulator, emulator_state):
    """Clients pointed at a freshly reset emulator."""
    import urllib.request

    from stageflow.aws import AwsClients, AwsTarget

    req = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    for stale in (emulator_state / "local").glob("outputs-*.json"):  # what Terraform built is gone
        stale.unlink()
    return AwsClients(AwsTarget("us-east-1", True, emulator.endpoint))


@pytest.fixture
def project(tmp_path):
    """A copy of the repository's config and infrastructure in a temporary directory."""
    return make_project(tmp_path / "project")


def make_project(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("stageflow.toml", ".secrets.baseline", ".gitignore"):
        shutil.copy(REPO / name, dst / name)
    for sub in ("app", "infrastructure", "docker"):
        if (REPO / sub).exists():
            shutil.copytree(REPO / sub, dst / sub, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
    # a checkout with one commit, as in real use (image tags and deploy records carry the commit)
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    commit_all(dst, "test project")
    return dst


GIT = ["git", "-c", "user.name=stageflow-tests", "-c", "user.email=tests@localhost"]
GIT += ["-c", "commit.gpgsign=false"]


def commit_all(project: Path, message: str) -> str:
    """Commit everything in ``project`` (a test checkout); its new HEAD."""
    subprocess.run([*GIT, "-C", str(project), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(project), "commit", "-qm", message], check=True)
    out = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], check=True, capture_output=True)
    return out.stdout.decode().strip()


# -- one Terraform-built environment for the whole session ------------------------------------------
class Deployed:
    """dev, built by Terraform from the repository's root in an emulator of its own (the expensive part,
    done once per session). Tests run the CLI with ``--local`` and ``STAGEFLOW_STATE_DIR=state`` from
    their own project copy: the outputs remembered after the apply lead them to Terraform's resources."""

    def __init__(
        self,
        project: Path,
        state: Path,
        endpoint: str,
        outputs: dict,
        apply_seconds: float,
        raw_outputs: dict | None = None,
        built_fresh: bool = False,
    ):
        from stageflow.aws import AwsClients, AwsTarget

        self.raw_outputs = raw_outputs or outputs  # every `terraform output` of the root, plain values
        self.built_fresh = built_fresh  # build/lambda/*.zip did not exist before `stageflow apply dev`
        self.project = project
        self.state = state
        self.endpoint = endpoint
        self.outputs = outputs
        self.apply_seconds = apply_seconds
        self.aws = AwsClients(AwsTarget("us-east-1", True, endpoint))
        self.base = "1"

    @property
    def function(self) -> str:
        return self.outputs["function_name"]

    def lam(self):
        return self.aws.client("lambda")

    def weights(self) -> dict[str, int]:
        a = self.lam().get_alias(FunctionName=self.function, Name=self.outputs["alias_name"])
        extra = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        w = {k: round(v * 100) for k, v in extra.items()}
        w[a["FunctionVersion"]] = 100 - sum(w.values())
        return w

    def latest_version(self) -> int:
        pages = self.lam().get_paginator("list_versions_by_function").paginate(FunctionName=self.function)
        return max(int(v["Version"]) for p in pages for v in p["Versions"] if v["Version"].isdigit())

    def next_version(self, k: int = 1) -> str:
        return str(self.latest_version() + k)

    def env(self, **extra) -> dict[str, str]:
        return {"STAGEFLOW_STATE_DIR": str(self.state), **extra}

    def history(self):
        from stageflow.history import DynamoHistory

        return DynamoHistory(self.aws.client("dynamodb"), self.outputs["history_table"], "sample-api", "dev")

    def clear_history(self) -> None:
        """For tests that need an empty history: every item goes, but one event keeps the latest time
        recorded, so the virtual clock of later runs still starts after every minute simulated before."""
        from stageflow.history import parse_iso

        h = self.history()
        times = []
        for dep in h.list(limit=100):
            times += [dep.started_at, dep.ended_at] + [t.get("at") for t in dep.transitions]
        times += [e.get("at") for e in h.events(limit=5)]
        latest = max((parse_iso(t) for t in times if t), default=None)
        ddb, table = self.aws.client("dynamodb"), self.outputs["history_table"]
        for it in ddb.scan(TableName=table, ProjectionExpression="pk, sk").get("Items", []):
            ddb.delete_item(TableName=table, Key={"pk": it["pk"], "sk": it["sk"]})
        if latest is not None:
            h.record_event("test_clock_floor", latest, {"why": "history cleared by a test"})

    def reset(self) -> None:
        """Between tests: no deployment in flight, no lock, the alias settled on what it serves, alarms
        OK. The history is kept (the virtual clock moves on after it, so simulated minutes never overlap)."""
        from datetime import UTC, datetime

        from stageflow.history import iso

        o = self.outputs
        h = self.history()
        now = datetime.now(UTC)
        for _ in range(5):
            dep = h.in_flight()
            if dep is None:
                break
            h.update(dep, status="failed", phase="failed", ended_at=iso(now))
        lock = h.lock()
        if lock:
            h.break_lock("test reset", "tests", now)
        h.clear_freeze("test reset", "tests", now)
        a = self.lam().get_alias(FunctionName=self.function, Name=o["alias_name"])
        self.lam().update_alias(
            FunctionName=self.function,
            Name=o["alias_name"],
            FunctionVersion=a["FunctionVersion"],
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        self.base = a["FunctionVersion"]
        cw = self.aws.client("cloudwatch")
        for name in o["alarm_names"]:
            cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test reset")


@pytest.fixture(scope="session")
def deployed_env(tmp_path_factory):
    """Build dev with Terraform in an emulator of the session's own (fails in CI when it cannot)."""
    import json
    import time

    from stageflow.local.emulator import Emulator

    mirror_aws = REPO / ".tools" / "terraform" / "mirror" / "registry.terraform.io" / "hashicorp" / "aws"
    require(
        any(mirror_aws.glob("*/*/terraform-provider-aws_*")),
        "hashicorp/aws provider is not in the offline mirror (.tools/terraform/mirror: setup_tools.py)",
    )
    # Developers iterating on e2e tests may keep one environment across runs:
    # STAGEFLOW_TEST_KEEP_DEPLOYED=DIR builds it once in DIR and leaves its emulator running
    # (CI never sets it).
    keep = os.environ.get("STAGEFLOW_TEST_KEEP_DEPLOYED")
    state = Path(keep) if keep else tmp_path_factory.mktemp("deployed-state")
    project = make_project(tmp_path_factory.mktemp("deployed") / "project")
    emu = Emulator(state)
    status, _ = emu.up()
    remembered = state / "outputs" / "local-dev.json"
    fresh = not (project / "build" / "lambda").exists()
    if keep and remembered.is_file():
        outputs = json.loads(remembered.read_text())["outputs"]
        yield Deployed(project, state, status.endpoint, outputs, 0.0, _raw_outputs(project, state), False)
        return
    try:
        t0 = time.monotonic()
        r = run_cli(
            "--config",
            str(project / "stageflow.toml"),
            "--local",
            "--json",
            "apply",
            "dev",
            env={"STAGEFLOW_STATE_DIR": str(state)},
            timeout=900,
        )
        assert r.returncode == 0, r.stderr[-4000:]
        took = time.monotonic() - t0
        outputs = json.loads((state / "outputs" / "local-dev.json").read_text())["outputs"]
        yield Deployed(project, state, status.endpoint, outputs, took, _raw_outputs(project, state), fresh)
    finally:
        if not keep:
            emu.down()


def _raw_outputs(project: Path, state: Path) -> dict:
    from stageflow.factory import Factory
    from stageflow.report import Reporter

    f = Factory(
        config_path=project / "stageflow.toml",
        local=True,
        state_dir=state,
        reporter=Reporter(quiet=True),
        command="status",
    )
    raw = f.terraform.raw_outputs("dev")
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}


@pytest.fixture
def deployed(deployed_env):
    deployed_env.reset()
    return deployed_env


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run the real `stageflow` CLI in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stageflow", *args],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
