from __future__ import annotations

import pytest


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
def no_trivy(monkeypatch, tmp_path):
    """No trivy anywhere the gate looks: not in ``bins``, not on PATH (the packaged one is only looked
    for when the gate picks its own bin directories)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
