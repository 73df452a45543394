"""Build once, deploy many, end to end on the emulator (the session's Terraform-built dev): `package`
writes the artifact; the source changes afterwards; `deploy dev --artifacts DIR` publishes exactly the
artifact's zip (not a rebuild of the changed tree); a tampered artifact is refused with exit 3 before
anything runs, and nothing is published."""

from __future__ import annotations

import base64
import json
import time

import pytest

from stageflow.errors import ExitCode
from tests.e2e.test_canary_cli import run
from tests.helpers.policy import change_code

pytestmark = [pytest.mark.e2e, pytest.mark.emulator, pytest.mark.terraform, pytest.mark.timeout(1200)]


def test_deploy_uses_the_verified_artifact_and_refuses_a_tampered_one(project, deployed, tmp_path):
    change_code(project, f"artifact-{time.time_ns()}")
    out = tmp_path / "artifact"
    r = run(project, deployed, "package", "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    built = manifest["files"]["sample-api.zip"]["sha256"]
    change_code(project, f"after-the-build-{time.time_ns()}")  # a rebuild now would give another zip

    before = deployed.latest_version()
    r = run(project, deployed, "deploy", "dev", "--artifacts", str(out), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stage image: skipped: the build artifact carries no image digest" in r.stderr
    version = deployed.latest_version()
    assert version == before + 1
    code = deployed.lam().get_function_configuration(FunctionName=deployed.function, Qualifier=str(version))
    assert base64.b64decode(code["CodeSha256"]).hex() == built  # the artifact's bytes, not a rebuild

    zip_path = out / "sample-api.zip"
    zip_path.write_bytes(zip_path.read_bytes() + b"\0")
    r = run(project, deployed, "deploy", "dev", "--artifacts", str(out))
    assert r.returncode == ExitCode.ENVIRONMENT, r.stderr
    assert "sample-api.zip has sha256:" in r.stderr and "refusing to deploy it" in r.stderr
    assert "stage lint" not in r.stderr  # nothing ran
    assert deployed.latest_version() == version  # nothing published
