"""Each scanner's verdict, with a fake process runner at the seam (tests/unit/security/fakes.py)."""

from __future__ import annotations

import json

import pytest

from stageflow.errors import EnvironmentFailure, ExitCode, SecurityGateFailed
from stageflow.security.detect_secrets import files_to_scan
from stageflow.security.interface import Status
from stageflow.security.packages import runtime_closure
from stageflow.security.pip_audit import interpret_pip_audit
from stageflow.security.sbom import cyclonedx
from tests.unit.security.fakes import (
    PIP_AUDIT_OFFLINE,
    bandit_issue,
    bandit_json,
    check,
    checkov_json,
    ds_result,
    gate,
)


# -- bandit --------------------------------------------------------------------------------------------
def test_bandit_fails_on_medium_and_passes_with_only_low(tree, bins):
    report, runner = gate(tree, bins, {"bandit": (1, bandit_json(bandit_issue("MEDIUM")))}, ["bandit"])
    res = report.result("bandit")
    assert res.status is Status.FAIL and not report.passed
    assert res.findings[0].id == "B602" and res.findings[0].location == "src/pkg/mod.py:3"
    argv = runner.calls[-1]
    assert argv[1:3] == ("-r", "src") and "-x" in argv and "*/tests/*" in argv[argv.index("-x") + 1]

    report, _ = gate(tree, bins, {"bandit": (1, bandit_json(bandit_issue("LOW", "B404")))}, ["bandit"])
    assert report.result("bandit").status is Status.PASS and report.passed
    assert report.result("bandit").counts["low"] == 1


def test_bandit_fails_when_a_file_could_not_be_parsed(tree, bins):
    data = bandit_json(errors=[{"filename": "src/pkg/broken.py", "reason": "syntax error while parsing AST"}])
    report, _ = gate(tree, bins, {"bandit": (0, data)}, ["bandit"])
    assert report.result("bandit").status is Status.FAIL
    assert "1 files not scanned" in report.result("bandit").summary


def test_bandit_skipped_without_src_or_app(tmp_path, bins):
    report, runner = gate(tmp_path, bins, {}, ["bandit"])
    assert report.result("bandit").status is Status.SKIPPED and runner.calls == []
    assert not report.passed  # nothing was checked: no pass
    with pytest.raises(SecurityGateFailed, match="checked nothing"):
        report.raise_for_status()


# -- checkov and its baseline --------------------------------------------------------------------------
BASELINE = """skips:
  - check: CKV_AWS_18
    file: main.tf
    resources: [aws_s3_bucket.a]
    reason: access logs go elsewhere
"""


def test_checkov_failed_check_fails(tree, bins):
    data = checkov_json(failed=[check("CKV_AWS_145", "aws_s3_bucket.a")])
    report, runner = gate(tree, bins, {"checkov": (1, data)}, ["checkov"])
    res = report.result("checkov")
    assert res.status is Status.FAIL and res.findings[0].id == "CKV_AWS_145"
    assert res.findings[0].location == "main.tf:aws_s3_bucket.a"
    assert "--skip-download" in runner.calls[-1] and "--framework" in runner.calls[-1]


def test_checkov_skip_must_be_in_the_baseline_with_a_reason(tree, bins):
    skipped = [check("CKV_AWS_18", "module.x.aws_s3_bucket.a", reason="access logs go elsewhere")]
    # no baseline file: the inline skip is not allowed
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json(skipped=skipped))}, ["checkov"])
    res = report.result("checkov")
    assert res.status is Status.FAIL and res.counts["skipped_not_in_baseline"] == 1
    assert "not in .checkov.baseline.yaml" in res.findings[0].message

    (tree / "infrastructure" / ".checkov.baseline.yaml").write_text(BASELINE)
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json(skipped=skipped))}, ["checkov"])
    assert report.result("checkov").status is Status.PASS, report.result("checkov").line()

    # listed, but the baseline gives no reason
    (tree / "infrastructure" / ".checkov.baseline.yaml").write_text(
        BASELINE.replace("access logs go elsewhere", "")
    )
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json(skipped=skipped))}, ["checkov"])
    assert report.result("checkov").status is Status.FAIL


def test_checkov_a_skip_of_another_resource_is_not_covered(tree, bins):
    (tree / "infrastructure" / ".checkov.baseline.yaml").write_text(BASELINE)
    skipped = [check("CKV_AWS_18", "aws_s3_bucket.b", reason="same reason, other bucket")]
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json(skipped=skipped))}, ["checkov"])
    assert report.result("checkov").status is Status.FAIL


def test_checkov_config_file_and_parse_errors_fail(tree, bins):
    (tree / "infrastructure" / ".checkov.yaml").write_text("skip-check: [CKV_AWS_145]\n")
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json())}, ["checkov"])
    assert report.result("checkov").status is Status.FAIL
    (tree / "infrastructure" / ".checkov.yaml").unlink()
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json(parsing_errors=2))}, ["checkov"])
    assert report.result("checkov").status is Status.FAIL
    report, _ = gate(tree, bins, {"checkov": (0, checkov_json())}, ["checkov"])
    assert report.result("checkov").status is Status.PASS


def test_checkov_unexpected_exit_code_is_an_error_with_exit_3(tree, bins):
    report, _ = gate(tree, bins, {"checkov": (2, "Traceback ...\nValueError: boom")}, ["checkov"])
    res = report.result("checkov")
    assert res.status is Status.ERROR and "exited 2" in res.summary
    with pytest.raises(EnvironmentFailure) as exc:
        report.raise_for_status()
    assert exc.value.exit_code == ExitCode.ENVIRONMENT


# -- secrets -------------------------------------------------------------------------------------------
def test_secrets_new_finding_fails_and_an_audited_baseline_passes(tree, bins):
    scan = {"results": ds_result("src/pkg/mod.py", "abc123")}
    report, runner = gate(tree, bins, {"detect-secrets": (0, scan)}, ["secrets"])
    res = report.result("secrets")
    assert res.status is Status.FAIL and res.counts["new"] == 1
    argv = runner.calls[-1]
    assert (
        argv[1:3] == ("scan", "--all-files") and "src/pkg/mod.py" in argv and "infrastructure/main.tf" in argv
    )

    baseline = {"results": ds_result("src/pkg/mod.py", "abc123", line=7)}
    baseline["results"]["src/pkg/mod.py"][0]["is_secret"] = False
    (tree / ".secrets.baseline").write_text(json.dumps(baseline))
    report, runner = gate(tree, bins, {"detect-secrets": (0, scan)}, ["secrets"])
    assert report.result("secrets").status is Status.PASS  # line numbers may move
    assert ".secrets.baseline" not in runner.calls[-1]  # the baseline itself is not scanned

    # the same secret in another file is new
    scan2 = {"results": {**scan["results"], **ds_result("src/pkg/other.py", "abc123")}}
    report, _ = gate(tree, bins, {"detect-secrets": (0, scan2)}, ["secrets"])
    assert report.result("secrets").counts["new"] == 1


@pytest.mark.parametrize(("flag", "expect"), [(True, "audited as real secrets"), (None, "not audited")])
def test_secrets_baseline_must_be_audited_false_positives(tree, bins, flag, expect):
    baseline = {"results": ds_result("src/pkg/mod.py", "abc123")}
    if flag is not None:
        baseline["results"]["src/pkg/mod.py"][0]["is_secret"] = flag
    (tree / ".secrets.baseline").write_text(json.dumps(baseline))
    report, _ = gate(tree, bins, {"detect-secrets": (0, {"results": {}})}, ["secrets"])
    res = report.result("secrets")
    assert res.status is Status.FAIL and expect in res.summary


def test_files_to_scan_walks_without_git_and_skips_tool_dirs(tree):
    (tree / ".venv" / "lib").mkdir(parents=True)
    (tree / ".venv" / "lib" / "x.py").write_text("")
    (tree / "reports").mkdir()
    (tree / "reports" / "security.json").write_text("{}")
    (tree / ".secrets.baseline").write_text("{}")
    (tree / "infrastructure" / "dev").mkdir()
    (tree / "infrastructure" / "dev" / ".terraform.lock.hcl").write_text("h1:abc=")
    (tree / "infrastructure" / "dev" / "plan.tfplan").write_text("")
    (tree / "build").mkdir()
    (tree / "src" / "build").mkdir()
    (tree / "src" / "build" / "keep.py").write_text("")
    (tree / ".gitignore").write_text("# x\n.terraform.lock.hcl\n*.tfplan\n/build/\n")
    assert files_to_scan(tree) == [
        ".gitignore",
        "infrastructure/main.tf",
        "src/build/keep.py",
        "src/pkg/mod.py",
    ]


# -- trivy, pip-audit, SBOM ----------------------------------------------------------------------------
def test_trivy_not_available_is_skipped(tree, bins, no_trivy):
    report, runner = gate(tree, bins, {}, ["trivy"])
    res = report.result("trivy")
    assert (res.status, res.summary) == (Status.SKIPPED, "trivy not available") and runner.calls == []


def test_trivy_failure_fails(tree, bins):
    (bins / "trivy").write_text("#!/bin/sh\nexit 99\n")  # found in the bin directories like the others
    (bins / "trivy").chmod(0o755)
    data = {
        "Results": [
            {
                "Target": "main.tf",
                "MisconfSummary": {"Successes": 3, "Failures": 1},
                "Misconfigurations": [
                    {"AVDID": "AVD-AWS-0088", "Severity": "HIGH", "Title": "unencrypted", "Status": "FAIL"}
                ],
            }
        ]
    }
    report, runner = gate(tree, bins, {"trivy": (0, data)}, ["trivy"])
    assert report.result("trivy").status is Status.FAIL
    assert runner.calls[-1][1:3] == ("config", "--skip-check-update")


def test_pip_audit_offline_is_not_audited_and_never_a_pass(tree, bins, no_trivy):
    report, runner = gate(tree, bins, {"pip-audit": (0, PIP_AUDIT_OFFLINE)}, ["pip-audit"])
    res = report.result("pip-audit")
    assert res.status is Status.INFO and res.detail == "not_audited"
    assert res.counts == {"packages": 2, "audited": 0, "not_audited": 2, "vulnerabilities": 0}
    assert res.to_json()["counts_toward_gate"] is False
    assert not report.passed and report.checked == ()  # information alone passes nothing
    argv = runner.calls[-1]
    assert "--disable-pip" in argv and "--no-deps" in argv

    # next to a real pass it changes nothing either way
    report, _ = gate(
        tree,
        bins,
        {"pip-audit": (0, PIP_AUDIT_OFFLINE), "bandit": (0, bandit_json())},
        ["pip-audit", "bandit"],
    )
    assert report.passed and report.checked == ("bandit",)
    assert report.to_json()["scanners"]["pip-audit"]["status"] == "info"


def test_pip_audit_with_a_vulnerability_is_still_information():
    data = {
        "dependencies": [
            {"name": "pyyaml", "version": "5.3", "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.4"]}]}
        ]
    }
    res = interpret_pip_audit(data)
    assert (res.status, res.detail, res.counts["vulnerabilities"]) == (Status.INFO, "audited", 1)
    assert res.findings[0].location == "pyyaml 5.3"


def test_sbom_is_valid_cyclonedx_of_the_runtime_closure(tmp_path):
    top, packages = runtime_closure()
    names = {p.name for p in packages}
    assert top.name == "stageflow"
    assert {"click", "boto3", "botocore", "pyyaml", "rich", "docker"} <= names
    assert not names & {"pytest", "checkov", "bandit", "moto", "ruff"}  # dev tools are not runtime
    doc = cyclonedx(top, packages)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert {c["purl"] for c in doc["components"]} == {p.purl for p in packages}
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:  # pragma: no cover - cyclonedx-python-lib comes with pip-audit and checkov
        pytest.fail("cyclonedx-python-lib (a dependency of pip-audit) is needed to validate the SBOM")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(doc)) is None


def test_bandit_scans_the_services_own_source(tree, bins):
    """A team's service lives where `[service] source` says (not `app/`): bandit scans it beside `src`."""
    from stageflow.security.gate import run_gate
    from tests.unit.security.fakes import FakeRunner

    (tree / "svc" / "product").mkdir(parents=True)
    (tree / "svc" / "product" / "handler.py").write_text("import subprocess\n")
    runner = FakeRunner({"bandit": (0, bandit_json())})
    run_gate(tree, None, only=["bandit"], runner=runner, bin_dirs=[bins], reports_dir=tree / "out",
             service_source="svc")  # fmt: skip
    argv = runner.calls[-1]
    assert argv[1:4] == ("-r", "src", "svc"), argv
    assert "*/.venv/*" in argv[argv.index("-x") + 1]
