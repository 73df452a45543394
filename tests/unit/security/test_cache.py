"""The content cache: unchanged inputs are not re-scanned; any change of a scanned file, the tool or
the gate's code is; a cached failure still fails; errors are never cached."""

from __future__ import annotations

import json

import pytest

from stageflow.errors import SecurityGateFailed
from stageflow.security.gate import run_gate
from tests.unit.security.fakes import CLEAN, FakeRunner, bandit_issue, bandit_json


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
    return report, runner.ran()


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
