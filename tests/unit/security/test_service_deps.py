"""What the service ships (requirements pins, the zip's packages), audited through the advisory source
(a fake, or pip-audit through the fake runner), and listed in the SBOM."""

from __future__ import annotations

import json

import pytest

from stageflow.errors import ExitCode, SecurityGateFailed
from stageflow.security.gate import run_gate
from stageflow.security.interface import Advisory, Status
from tests.unit.security.fakes import FakeAdvisories, FakeRunner


def service_tree(tree, requirements):
    (tree / "app" / "service").mkdir(parents=True, exist_ok=True)
    (tree / "app" / "service" / "__init__.py").write_text("")
    (tree / "app" / "requirements.txt").write_text(requirements)
    return tree


HIGH = Advisory("GHSA-x84v-xcm2-53pg", "requests", "2.19.0", "high", ("2.20.0",))
LOW = Advisory("PYSEC-LOW-1", "urllib3", "1.26.5", "low", ("1.26.18",))


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
    unrated = Advisory("PYSEC-2", "urllib3", "1.26.5", None)
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
    report = run_gate(tree, None, only=["service-deps"], advisory_source=source, artifact=art.data)
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
