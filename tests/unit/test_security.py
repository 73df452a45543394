"""The security gate's verdicts, with a fake command runner at the subprocess seam.

The scanners' JSON here has the shape the real tools print (checked against bandit 1.9, checkov 3.x,
detect-secrets 1.5, trivy 0.59 and pip-audit 2.10); tests/integration/test_security_gate.py runs the
real tools.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from stageflow import security
from stageflow.cli import main
from stageflow.errors import EnvironmentFailure, ExitCode, SecurityGateFailed, UsageError
from stageflow.security import CommandResult, ScannerError, Status, run_gate

PIP_AUDIT_OFFLINE = {
    "dependencies": [
        {
            "name": "click",
            "skip_reason": "Dependency not found on PyPI and could not be audited: click (8.1.7)",
        },
        {
            "name": "pyyaml",
            "skip_reason": "Dependency not found on PyPI and could not be audited: pyyaml (6.0)",
        },
    ],
    "fixes": [],
}


class FakeRunner:
    """Answers each tool by the basename of argv[0]; writes `-o FILE` outputs like the real tools."""

    def __init__(self, answers: dict[str, tuple[int, object]]):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv, *, cwd, timeout, env=None):
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        name = Path(argv[0]).name
        if name == "git":
            return CommandResult(argv, 128, "", "not a git repository", 0.0)
        rc, payload = self.answers[name]
        text = payload if isinstance(payload, str) else json.dumps(payload)
        if name in ("bandit", "pip-audit") and "-o" in argv:  # they write -o FILE
            Path(argv[argv.index("-o") + 1]).write_text(text)
            text = ""
        return CommandResult(argv, rc, text, "", 0.01)


@pytest.fixture
def bins(tmp_path):
    """A bin directory with executable stand-ins for every scanner (never run: the runner is fake)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("bandit", "checkov", "detect-secrets", "pip-audit"):
        p = d / name
        p.write_text("#!/bin/sh\nexit 99\n")
        p.chmod(0o755)
    return d


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "infrastructure").mkdir()
    (root / "infrastructure" / "main.tf").write_text("# nothing\n")
    return root


@pytest.fixture
def no_trivy(monkeypatch):
    monkeypatch.setattr(security, "find_trivy", lambda ctx: None)


def bandit_json(*results, errors=()):
    return {
        "results": list(results),
        "errors": list(errors),
        "metrics": {"_totals": {"nosec": 0, "skipped_tests": 1, "loc": 10}},
    }


def bandit_issue(sev, test_id="B602", filename="src/pkg/mod.py"):
    return {
        "issue_severity": sev,
        "issue_confidence": "HIGH",
        "test_id": test_id,
        "filename": filename,
        "line_number": 3,
        "issue_text": "subprocess call with shell=True identified, security issue.",
    }


def checkov_json(failed=(), skipped=(), passed=5, parsing_errors=0):
    return {
        "check_type": "terraform",
        "results": {"failed_checks": list(failed), "skipped_checks": list(skipped)},
        "summary": {
            "passed": passed,
            "failed": len(failed),
            "skipped": len(skipped),
            "parsing_errors": parsing_errors,
        },
    }


def check(check_id, resource, file_path="/main.tf", reason=None):
    c = {
        "check_id": check_id,
        "check_name": "a check",
        "resource": resource,
        "file_path": file_path,
        "check_result": {"result": "SKIPPED" if reason is not None else "FAILED"},
    }
    if reason is not None:
        c["check_result"]["suppress_comment"] = reason
    return c


def gate(tree, bins, answers, only):
    runner = FakeRunner(answers)
    return run_gate(tree, None, only=only, runner=runner, bin_dirs=[bins], reports_dir=tree / "out"), runner


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
def ds_result(filename, hashed, line=1, kind="Secret Keyword"):
    return {filename: [{"type": kind, "filename": filename, "hashed_secret": hashed, "line_number": line}]}


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
    assert security.files_to_scan(tree) == [
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


def test_trivy_failure_fails(tree, bins, monkeypatch):
    monkeypatch.setattr(security, "find_trivy", lambda ctx: str(bins / "bandit"))
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
    report, runner = gate(tree, bins, {"bandit": (0, data)}, ["trivy"])
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
    res = security.interpret_pip_audit(data)
    assert (res.status, res.detail, res.counts["vulnerabilities"]) == (Status.INFO, "audited", 1)
    assert res.findings[0].location == "pyyaml 5.3"


def test_sbom_is_valid_cyclonedx_of_the_runtime_closure(tmp_path):
    top, packages = security.runtime_closure()
    names = {p.name for p in packages}
    assert top.name == "stageflow"
    assert {"click", "boto3", "botocore", "pyyaml", "rich", "docker"} <= names
    assert not names & {"pytest", "checkov", "bandit", "moto", "ruff"}  # dev tools are not runtime
    doc = security.cyclonedx(top, packages)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert {c["purl"] for c in doc["components"]} == {p.purl for p in packages}
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:  # pragma: no cover - cyclonedx-python-lib comes with pip-audit and checkov
        pytest.fail("cyclonedx-python-lib (a dependency of pip-audit) is needed to validate the SBOM")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(doc)) is None


# -- the gate as a whole -------------------------------------------------------------------------------
def test_report_file_and_record(tree, bins, no_trivy):
    answers = {
        "bandit": (0, bandit_json()),
        "checkov": (0, checkov_json()),
        "detect-secrets": (0, {"results": {}}),
        "pip-audit": (0, PIP_AUDIT_OFFLINE),
    }
    report, _ = gate(tree, bins, answers, None)
    assert report.passed
    data = json.loads((tree / "out" / "security.json").read_text())
    assert data["passed"] is True and list(data["scanners"]) == list(security.SCANNERS)
    assert {n: s["status"] for n, s in data["scanners"].items()} == {
        "bandit": "pass",
        "checkov": "pass",
        "secrets": "pass",
        "trivy": "skipped",
        "pip-audit": "info",
        "service-deps": "skipped",  # no app/ in this tree
        "sbom": "info",
    }
    assert (tree / "out" / "sbom.cdx.json").exists() and data["sbom"].endswith("sbom.cdx.json")
    assert report.record()["scanners"]["pip-audit"] == "info/not_audited"
    report.raise_for_status()  # passes: no error
    lines = report.human().splitlines()
    assert lines[0].startswith("security gate passed") and len(lines) == 1 + len(security.SCANNERS)


def test_missing_binary_is_an_error_not_a_pass(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    report = run_gate(tree, None, only=["bandit"], bin_dirs=[tmp_path / "empty"], reports_dir=tmp_path / "o")
    res = report.result("bandit")
    assert res.status is Status.ERROR and "not installed" in res.summary and not report.passed


def test_unknown_scanner_is_a_usage_error(tree):
    with pytest.raises(UsageError, match="unknown security scanner gitleaks") as exc:
        run_gate(tree, None, only=["bandit", "gitleaks"])
    assert exc.value.hint.startswith("known scanners: bandit, checkov")


def test_cli_unknown_scanner_exit_2_one_line(tree, capsys):
    rc = main(["security", "--root", str(tree), "--only", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == ExitCode.USAGE and len(err) == 1
    assert err[0].startswith("stageflow: error: unknown security scanner nope (known scanners:")


def test_security_gate_failed_is_exit_7_and_documented():
    from stageflow.cli import EXIT_CODES_TEXT
    from stageflow.errors import CheckFailed

    assert ExitCode.SECURITY_GATE == 7 and issubclass(SecurityGateFailed, CheckFailed)
    assert SecurityGateFailed("x").exit_code == 7 and "security gate" in EXIT_CODES_TEXT
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    assert "| 7 |" in runbook


# -- the runner ----------------------------------------------------------------------------------------
def test_run_command_takes_argv_and_captures(tmp_path):
    res = security.run_command(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
        cwd=tmp_path,
        timeout=30,
    )
    assert (res.returncode, res.stdout.strip(), res.stderr.strip()) == (3, "out", "err")
    # an argument with shell syntax is one argument, never interpreted
    res = security.run_command(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", "$(id); ls"], cwd=tmp_path, timeout=30
    )
    assert res.stdout.strip() == "$(id); ls"


def test_run_command_timeout_kills_the_child(tmp_path):
    marker = tmp_path / "pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(ScannerError, match="timed out"):
        security.run_command([sys.executable, "-c", code], cwd=tmp_path, timeout=1.0)
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_run_command_missing_binary(tmp_path):
    with pytest.raises(ScannerError, match="cannot run"):
        security.run_command([str(tmp_path / "nope")], cwd=tmp_path, timeout=5)


# -- what the service ships: requirements pins and the zip, audited --------------------------------------
class FakeAdvisories:
    """The advisory source at its seam: answers from a table, or is unreachable."""

    name = "fake-advisories"

    def __init__(self, table=None, reachable=True, unchecked=()):
        self.table = table or {}
        self.reachable = reachable
        self.unchecked = set(unchecked)
        self.asked: list[tuple[str, str]] = []

    def audit(self, packages):
        self.asked = [(p.name, p.version) for p in packages]
        if not self.reachable:
            raise security.AdvisorySourceUnavailable("no advisory database reachable")
        found = tuple(a for p in packages for a in self.table.get((p.name, p.version), ()))
        return security.AuditOutcome(
            frozenset(p.name for p in packages if p.name not in self.unchecked), found
        )


def service_tree(tree, requirements):
    (tree / "app" / "service").mkdir(parents=True, exist_ok=True)
    (tree / "app" / "service" / "__init__.py").write_text("")
    (tree / "app" / "requirements.txt").write_text(requirements)
    return tree


HIGH = security.Advisory("GHSA-x84v-xcm2-53pg", "requests", "2.19.0", "high", ("2.20.0",))
LOW = security.Advisory("PYSEC-LOW-1", "urllib3", "1.26.5", "low", ("1.26.18",))


def test_a_pinned_package_with_a_high_advisory_fails_the_gate(tree):
    service_tree(tree, "# the service's runtime pins\nrequests==2.19.0\nurllib3==1.26.5  # via requests\n")
    source = FakeAdvisories({("requests", "2.19.0"): (HIGH,), ("urllib3", "1.26.5"): (LOW,)})
    report = run_gate(tree, None, only=["service-deps"], advisory_source=source, reports_dir=tree / "out")
    res = report.result("service-deps")
    assert source.asked == [("requests", "2.19.0"), ("urllib3", "1.26.5")]
    assert res.status is Status.FAIL and res.counts["blocking"] == 1 and res.counts["advisories"] == 2
    assert res.findings[0].id == "GHSA-x84v-xcm2-53pg" and res.findings[0].location == "requests 2.19.0"
    assert "1 high/critical advisories" in res.summary and "app/requirements.txt" in res.summary
    with pytest.raises(SecurityGateFailed) as exc:
        report.raise_for_status()
    assert exc.value.exit_code == ExitCode.SECURITY_GATE and "service-deps" in exc.value.message


def test_lower_advisories_do_not_block_and_unrated_ones_do(tree):
    service_tree(tree, "urllib3==1.26.5\n")
    ok = run_gate(
        tree, None, only=["service-deps"], advisory_source=FakeAdvisories({("urllib3", "1.26.5"): (LOW,)})
    )
    assert ok.result("service-deps").status is Status.PASS and ok.passed
    unrated = security.Advisory("PYSEC-2", "urllib3", "1.26.5", None)
    bad = run_gate(
        tree, None, only=["service-deps"], advisory_source=FakeAdvisories({("urllib3", "1.26.5"): (unrated,)})
    )
    assert bad.result("service-deps").status is Status.FAIL


def test_no_advisory_source_says_not_audited_and_is_never_a_pass(tree):
    service_tree(tree, "requests==2.19.0\n")
    report = run_gate(tree, None, only=["service-deps"], advisory_source=FakeAdvisories(reachable=False))
    res = report.result("service-deps")
    assert res.status is Status.INFO and res.detail == "not_audited"
    assert res.summary.startswith("NOT AUDITED") and "not a pass" in res.summary
    assert not report.passed and report.checked == ()


def test_unpinned_or_unchecked_packages_are_not_audited(tree):
    service_tree(tree, "requests==2.31.0\nboto3>=1.34\n")
    report = run_gate(tree, None, only=["service-deps"], advisory_source=FakeAdvisories())
    res = report.result("service-deps")
    assert res.status is Status.INFO and res.detail == "partially_audited" and "boto3>=1.34" in res.summary


def test_pip_audit_offline_source_is_unavailable(tree, bins):
    """The default source: pip-audit over the pins; offline every package comes back "not audited"."""
    service_tree(tree, "requests==2.19.0\n")
    offline = {"dependencies": [{"name": "requests", "skip_reason": "could not be audited"}], "fixes": []}
    runner = FakeRunner({"pip-audit": (0, offline)})
    report = run_gate(
        tree, None, only=["service-deps"], runner=runner, bin_dirs=[bins], reports_dir=tree / "o"
    )
    res = report.result("service-deps")
    assert res.detail == "not_audited" and "pip-audit reached no advisory database" in res.summary
    online = {
        "dependencies": [
            {
                "name": "requests",
                "version": "2.19.0",
                "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}],
            }
        ]
    }
    runner = FakeRunner({"pip-audit": (1, online)})
    report = run_gate(
        tree, None, only=["service-deps"], runner=runner, bin_dirs=[bins], reports_dir=tree / "o"
    )
    assert report.result("service-deps").status is Status.FAIL  # pip-audit gives no severity: treated as high


def test_the_zips_vendored_packages_are_audited_too(tree):
    from stageflow.packaging.lambda_zip import zip_files

    service_tree(tree, "")
    art = zip_files(
        {
            "service/__init__.py": b"",
            "requests-2.19.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n",
        }
    )
    source = FakeAdvisories({("requests", "2.19.0"): (HIGH,)})
    report = run_gate(tree, None, only=["service-deps"], advisory_source=source, artifact=art)
    assert source.asked == [("requests", "2.19.0")]
    assert (
        report.result("service-deps").status is Status.FAIL
        and "the Lambda zip" in report.result("service-deps").summary
    )


def test_nothing_shipped_is_nothing_to_audit(tree):
    service_tree(tree, "# no third-party runtime dependencies\n")
    res = run_gate(tree, None, only=["service-deps"], advisory_source=FakeAdvisories(reachable=False)).result(
        "service-deps"
    )
    assert res.status is Status.PASS and res.detail == "nothing_to_audit"


def test_sbom_lists_what_the_service_ships(tree):
    service_tree(tree, "requests==2.19.0\n")
    run_gate(tree, None, only=["sbom"], reports_dir=tree / "out")
    doc = json.loads((tree / "out" / "sbom.cdx.json").read_text())
    shipped = [
        c
        for c in doc["components"]
        if any(p["name"] == "stageflow:ships-with" for p in c.get("properties", []))
    ]
    assert [c["purl"] for c in shipped] == ["pkg:pypi/requests@2.19.0"]
    service = [d for d in doc["dependencies"] if d["ref"] == "stageflow:service:app"]
    assert service and service[0]["dependsOn"] == ["pkg:pypi/requests@2.19.0"]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(doc)) is None


# -- the result cache ------------------------------------------------------------------------------------
CLEAN = {
    "bandit": (0, bandit_json()),
    "checkov": (0, checkov_json()),
    "detect-secrets": (0, {"results": {}}),
    "pip-audit": (0, PIP_AUDIT_OFFLINE),
}


def cached_gate(tree, bins, answers, cache, only=("bandit", "checkov", "secrets")):
    runner = FakeRunner(answers)
    report = run_gate(
        tree,
        None,
        only=only,
        runner=runner,
        bin_dirs=[bins],
        reports_dir=tree.parent / "out",
        cache_dir=cache,
    )  # reports outside the scanned tree (reports/ is git-ignored in a real repository)
    return report, {Path(c[0]).name for c in runner.calls if Path(c[0]).name != "git"}


def test_cache_hit_runs_no_scanner_and_says_so(tree, bins, tmp_path):
    cache = tmp_path / "state" / "cache" / "security"
    first, ran = cached_gate(tree, bins, CLEAN, cache)
    assert first.passed and ran == {"bandit", "checkov", "detect-secrets"} and first.cached == ()
    assert all(r.fingerprint and not r.cached for r in first.results)
    second, ran = cached_gate(tree, bins, CLEAN, cache)
    assert ran == set()  # nothing re-scanned
    assert second.passed and second.cached == ("bandit", "checkov", "secrets")
    assert "(cached: inputs unchanged" in second.result("checkov").line()
    assert second.record()["cached"] == ["bandit", "checkov", "secrets"]
    assert second.record()["scanners"]["checkov"] == "pass (cached)"
    saved = json.loads((tree.parent / "out" / "security.json").read_text())
    assert (
        saved["cached"] == ["bandit", "checkov", "secrets"] and saved["scanners"]["bandit"]["cached"] is True
    )
    assert second.result("bandit").summary == first.result("bandit").summary


def test_cache_miss_without_a_cache_dir_and_on_a_new_tool(tree, bins, tmp_path):
    cache = tmp_path / "cache"
    cached_gate(tree, bins, CLEAN, cache)
    _, ran = cached_gate(tree, bins, CLEAN, None)  # no cache dir: every scanner runs
    assert ran == {"bandit", "checkov", "detect-secrets"}
    (bins / "checkov").write_text("#!/bin/sh\n# another checkov build\nexit 99\n")  # the tool changed
    report, ran = cached_gate(tree, bins, CLEAN, cache)
    assert ran == {"checkov"} and report.cached == ("bandit", "secrets")


@pytest.mark.parametrize(
    ("path", "rescanned"),
    [
        ("src/pkg/mod.py", {"bandit", "detect-secrets"}),
        ("infrastructure/main.tf", {"checkov", "detect-secrets"}),
        ("infrastructure/.checkov.baseline.yaml", {"checkov", "detect-secrets"}),
        (".secrets.baseline", {"detect-secrets"}),
        ("docs/new.md", {"detect-secrets"}),
    ],
)
def test_any_change_of_a_scanned_file_invalidates(tree, bins, tmp_path, path, rescanned):
    cache = tmp_path / "cache"
    cached_gate(tree, bins, CLEAN, cache)
    f = tree / path
    f.parent.mkdir(parents=True, exist_ok=True)
    if f.suffix == ".baseline":  # JSON: still valid, one more key
        f.write_text(json.dumps({"results": {}, "changed": True}))
    else:
        f.write_text((f.read_text() if f.exists() else "") + "# changed\n")
    report, ran = cached_gate(tree, bins, CLEAN, cache)
    assert ran == rescanned
    assert set(report.cached) == {"bandit", "checkov", "secrets"} - {
        n.removeprefix("detect-") for n in rescanned
    }
    _, ran = cached_gate(tree, bins, CLEAN, cache)  # the new content is cached in turn
    assert ran == set()


def test_a_cached_failure_still_fails_the_gate(tree, bins, tmp_path):
    cache = tmp_path / "cache"
    answers = dict(CLEAN, bandit=(1, bandit_json(*[bandit_issue("HIGH")] * 60)))
    first, _ = cached_gate(tree, bins, answers, cache, only=["bandit"])
    assert first.failed == ("bandit",)
    # the same inputs: the stored FAIL comes back (all 60 findings, not the report's first 50) and fails
    second, ran = cached_gate(tree, bins, CLEAN, cache, only=["bandit"])
    assert ran == set() and second.cached == ("bandit",) and not second.passed
    assert len(second.result("bandit").findings) == 60
    assert second.record()["scanners"]["bandit"] == "fail (cached)"
    with pytest.raises(SecurityGateFailed, match="security gate failed: bandit"):
        second.raise_for_status()


def test_errors_are_never_cached_and_a_corrupt_cache_is_a_miss(tree, bins, tmp_path):
    cache = tmp_path / "cache"
    broken = dict(CLEAN, checkov=(2, "Traceback: boom"))
    first, _ = cached_gate(tree, bins, broken, cache, only=["checkov"])
    assert first.errored == ("checkov",) and not (cache / "checkov.json").exists()
    _, ran = cached_gate(tree, bins, CLEAN, cache, only=["checkov"])
    assert ran == {"checkov"} and (cache / "checkov.json").exists()
    (cache / "checkov.json").write_text("{not json")
    report, ran = cached_gate(tree, bins, CLEAN, cache, only=["checkov"])
    assert ran == {"checkov"} and report.passed and report.cached == ()
