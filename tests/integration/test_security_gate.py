"""The security gate with the real scanners (bandit, checkov, detect-secrets, pip-audit from the venv).

Acceptance: the gate fails on a planted ``subprocess.call(cmd, shell=True)`` and on a Terraform
fixture with an unencrypted S3 bucket, and passes on the repository itself.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from stageflow.security.gate import run_gate
from stageflow.security.interface import Status
from tests.conftest import REPO, require, run_cli

BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "fixtures" / "security"
PLANTED = """import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)
"""


def _require(*tools: str) -> None:
    for tool in tools:
        require((BIN / tool).exists(), f"{tool} is not installed in the venv (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def repo_report(tmp_path_factory):
    """The whole gate over the repository itself, once (about 15 s: checkov dominates)."""
    _require("bandit", "checkov", "detect-secrets", "pip-audit")
    out = tmp_path_factory.mktemp("security-reports")
    return run_gate(REPO, None, reports_dir=out), out


def test_the_repository_passes_the_gate(repo_report):
    report, out = repo_report
    lines = "\n".join(r.name + " " + r.line() for r in report.results)
    assert report.passed, lines
    status = {r.name: r.status for r in report.results}
    assert status["bandit"] is Status.PASS
    assert status["checkov"] is Status.PASS
    assert status["secrets"] is Status.PASS
    assert status["trivy"] in (Status.PASS, Status.SKIPPED)
    assert status["sbom"] is Status.INFO
    assert report.result("checkov").counts["passed"] > 100
    assert report.result("secrets").counts["files"] > 50
    data = json.loads((out / "security.json").read_text())
    assert data["passed"] is True and set(data["checked"]) >= {"bandit", "checkov", "secrets"}


def test_pip_audit_is_information_never_a_pass(repo_report):
    report, out = repo_report
    res = report.result("pip-audit")
    assert res.status is Status.INFO and res.status is not Status.PASS
    assert "pip-audit" not in report.checked
    assert res.counts["packages"] > 5
    if res.counts["audited"] == 0:  # offline: no advisory database reachable
        assert res.detail == "not_audited" and "not audited" in res.summary
    saved = json.loads((out / "security.json").read_text())["scanners"]["pip-audit"]
    assert saved["status"] == "info" and saved["counts_toward_gate"] is False


def test_sbom_lists_the_runtime_dependencies(repo_report):
    _, out = repo_report
    sbom = json.loads((out / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["name"] == "stageflow"
    names = {c["name"] for c in sbom["components"]}
    assert {"boto3", "click", "pyyaml"} <= names and "checkov" not in names


def _minimal_tree(root: Path, planted: bool) -> Path:
    """The sample service's code, optionally with a module that runs a command through a shell."""
    shutil.copytree(
        REPO / "app" / "service", root / "app" / "service", ignore=shutil.ignore_patterns("__pycache__")
    )
    if planted:
        (root / "app" / "service" / "shell.py").write_text(PLANTED)
    return root


def test_gate_fails_on_a_planted_shell_true(tmp_path):
    _require("bandit", "detect-secrets")
    clean = run_gate(_minimal_tree(tmp_path / "clean", False), None, only=["bandit", "secrets", "checkov"])
    assert clean.passed, clean.human()  # the same tree without the plant passes: the plant is what fails

    tree = _minimal_tree(tmp_path / "planted", True)
    report = run_gate(tree, None, only=["bandit", "secrets", "checkov"])
    assert not report.passed and report.failed == ("bandit",)
    bandit = report.result("bandit")
    assert [(f.id, f.severity, f.location) for f in bandit.findings] == [
        ("B602", "high", "app/service/shell.py:5")
    ]


def test_cli_exit_7_with_one_line_error_on_the_planted_tree(tmp_path):
    _require("bandit")
    tree = _minimal_tree(tmp_path / "planted", True)
    out = run_cli("security", "--root", str(tree), "--only", "bandit", cwd=tmp_path)
    assert out.returncode == 7, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("stageflow: error:")]
    assert len(errors) == 1 and "security gate failed: bandit" in errors[0]
    assert "reports/security.json" in errors[0]
    assert "bandit  fail:" in out.stdout and "B602" in out.stdout
    saved = json.loads((tree / "reports" / "security.json").read_text())
    assert saved["passed"] is False and saved["scanners"]["bandit"]["findings"][0]["id"] == "B602"


def test_gate_fails_on_an_unencrypted_s3_bucket(tmp_path):
    _require("checkov")
    tree = tmp_path / "repo"
    shutil.copytree(FIXTURES / "s3_buckets", tree / "infrastructure")
    report = run_gate(tree, None, only=["checkov"])
    assert not report.passed and report.failed == ("checkov",)
    kms = {f.location for f in report.result("checkov").findings if f.id == "CKV_AWS_145"}
    # the unencrypted bucket fails the encryption check; the encrypted control in the same run does not
    assert kms == {"unencrypted.tf:aws_s3_bucket.unencrypted"}


def test_service_pins_with_the_real_pip_audit(tmp_path):
    """What ships with the service, audited by the default advisory source. Offline (these machines)
    pip-audit reaches no database: the scanner says NOT AUDITED and the gate does not pass on it; where a
    database answers, requests 2.19.0 has known advisories (unrated by pip-audit: blocking)."""
    _require("pip-audit")
    root = tmp_path / "repo"
    (root / "app" / "service").mkdir(parents=True)
    (root / "app" / "service" / "__init__.py").write_text("")
    (root / "app" / "requirements.txt").write_text("requests==2.19.0\n")
    report = run_gate(root, None, only=["service-deps"], reports_dir=tmp_path / "out")
    res = report.result("service-deps")
    if res.detail == "not_audited":
        assert (
            res.status is Status.INFO
            and res.summary.startswith("NOT AUDITED")
            and "not a pass" in res.summary
        )
        assert not report.passed
    else:
        assert res.status is Status.FAIL and res.counts["blocking"] >= 1
