"""The `image` scanner: trivy image over the service's image with a local vulnerability database; without
one (or without trivy) the image is "not scanned", which is never a pass (tests/integration runs the
real trivy only where one and a database exist)."""

from __future__ import annotations

import pytest

from stageflow.cli import main
from stageflow.errors import ExitCode, SecurityGateFailed
from stageflow.security.gate import run_gate
from stageflow.security.interface import Status
from tests.unit.security.fakes import FakeRunner

IMAGE = "registry.example/sample-api@sha256:" + "cd" * 32


def vuln(vid: str, severity: str = "HIGH") -> dict:
    return {
        "VulnerabilityID": vid,
        "Severity": severity,
        "PkgName": "openssl",
        "InstalledVersion": "3.0.1",
        "FixedVersion": "3.0.2",
        "Title": "a flaw",
    }


@pytest.fixture
def trivy(bins):
    p = bins / "trivy"
    p.write_text("#!/bin/sh\nexit 99\n")
    p.chmod(0o755)
    return p


@pytest.fixture
def db(tmp_path):
    cache = tmp_path / "trivy-cache"
    (cache / "db").mkdir(parents=True)
    (cache / "db" / "trivy.db").write_bytes(b"bolt")
    return cache


def scan(tree, bins, answers, *, image=IMAGE, cache=None, only=("image", "bandit")):
    runner = FakeRunner(answers)
    report = run_gate(
        tree, None, only=only, runner=runner, bin_dirs=[bins], reports_dir=tree / "out",
        image=image, trivy_cache=cache,
    )  # fmt: skip
    return report, runner


BANDIT_CLEAN = (0, {"results": [], "errors": [], "metrics": {}})


def test_with_a_database_the_image_is_scanned_offline_and_fixable_high_findings_fail(tree, bins, trivy, db):
    data = {
        "Results": [{"Target": "debian 12", "Vulnerabilities": [vuln("CVE-1"), vuln("CVE-2", "CRITICAL")]}]
    }
    report, runner = scan(tree, bins, {"trivy": (0, data), "bandit": BANDIT_CLEAN}, cache=db)
    res = report.result("image")
    assert res.status is Status.FAIL and res.counts["vulnerabilities"] == 2
    assert res.findings[0].id == "CVE-1" and "openssl 3.0.1" in res.findings[0].location
    argv = next(c for c in runner.calls if c[0].endswith("trivy"))
    assert argv[1] == "image" and argv[-1] == IMAGE
    assert {"--skip-db-update", "--offline-scan", "--ignore-unfixed"} <= set(argv)
    assert not report.passed


def test_a_clean_image_passes(tree, bins, trivy, db):
    data = {"Results": [{"Target": "debian 12"}, {"Target": "Python"}]}
    report, _ = scan(tree, bins, {"trivy": (0, data), "bandit": BANDIT_CLEAN}, cache=db)
    assert report.result("image").status is Status.PASS and report.passed
    report.require_image_scan()  # really scanned: no error


def test_without_a_database_the_image_is_not_scanned_and_that_is_no_pass(tree, bins, trivy, tmp_path):
    report, runner = scan(tree, bins, {"bandit": BANDIT_CLEAN}, cache=tmp_path / "empty-cache")
    res = report.result("image")
    assert (res.status, res.detail) == (Status.SKIPPED, "not_scanned")
    assert "not scanned: no vulnerability database" in res.summary and not res.counts_toward_gate
    assert "image" not in report.checked and "NOT SCANNED" in report.human()
    assert not any(c[0].endswith("trivy") for c in runner.calls)
    with pytest.raises(SecurityGateFailed, match="the image was not scanned") as e:
        report.require_image_scan()
    assert e.value.exit_code == ExitCode.SECURITY_GATE


def test_without_trivy_the_image_is_not_scanned(tree, bins, no_trivy, db):
    report, _ = scan(tree, bins, {"bandit": BANDIT_CLEAN}, cache=db)
    res = report.result("image")
    assert res.detail == "not_scanned" and "trivy not available" in res.summary


def test_no_image_given_is_skipped_and_not_a_not_scanned_warning(tree, bins, trivy, db):
    report, _ = scan(tree, bins, {"bandit": BANDIT_CLEAN}, image=None, cache=db)
    res = report.result("image")
    assert res.status is Status.SKIPPED and res.detail is None and not report.not_scanned
    with pytest.raises(SecurityGateFailed):
        report.require_image_scan()


def test_require_image_scan_on_the_cli_exits_7_when_not_scanned(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIVY_CACHE_DIR", str(tmp_path / "no-db"))
    (tmp_path / "repo").mkdir()
    argv = ["security", "--root", str(tmp_path / "repo"), "--only", "image", "--image", IMAGE]
    assert main([*argv, "--require-image-scan"]) in (ExitCode.SECURITY_GATE,)
