"""Fakes of the security gate's seams: the process runner and the advisory source, and the scanners'
JSON in the shape the real tools print (checked against bandit 1.9, checkov 3.x, detect-secrets 1.5,
trivy 0.59 and pip-audit 2.10); tests/integration/test_security_gate.py runs the real tools."""

from __future__ import annotations

import json
from pathlib import Path

from stageflow import process
from stageflow.security.gate import run_gate
from stageflow.security.interface import AdvisorySourceUnavailable, AuditOutcome

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
    """A ``process.Runner`` that answers each tool by the basename of argv[0] and writes ``-o FILE``
    outputs like the real tools. An answer that is an exception is raised (a timeout, a missing binary)."""

    def __init__(self, answers: dict[str, tuple[int, object] | BaseException]):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []
        self.timeouts: list[float | None] = []

    def __call__(self, argv, *, cwd=None, env=None, timeout=None, ok_codes=(0,), on_line=None, input=None):
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        self.timeouts.append(timeout)
        answer = self.answers[Path(argv[0]).name]
        if isinstance(answer, BaseException):
            raise answer
        rc, payload = answer
        text = payload if isinstance(payload, str) else json.dumps(payload)
        if Path(argv[0]).name in ("bandit", "pip-audit") and "-o" in argv:  # they write -o FILE
            Path(argv[argv.index("-o") + 1]).write_text(text)
            text = ""
        result = process.Result(argv, rc, text, "", 0.01)
        if ok_codes is not None and rc not in ok_codes:
            raise process.CommandFailed(result)
        return result

    def ran(self) -> set[str]:
        return {Path(c[0]).name for c in self.calls}


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
            raise AdvisorySourceUnavailable("no advisory database reachable")
        found = tuple(a for p in packages for a in self.table.get((p.name, p.version), ()))
        return AuditOutcome(frozenset(p.name for p in packages if p.name not in self.unchecked), found)


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


def ds_result(filename, hashed, line=1, kind="Secret Keyword"):
    return {filename: [{"type": kind, "filename": filename, "hashed_secret": hashed, "line_number": line}]}


CLEAN = {
    "bandit": (0, bandit_json()),
    "checkov": (0, checkov_json()),
    "detect-secrets": (0, {"results": {}}),
    "pip-audit": (0, PIP_AUDIT_OFFLINE),
}


def gate(tree, bins, answers, only):
    """The gate over ``tree`` with the fake runner, tools from ``bins``; the report and the runner."""
    runner = FakeRunner(answers)
    return run_gate(tree, None, only=only, runner=runner, bin_dirs=[bins], reports_dir=tree / "out"), runner
