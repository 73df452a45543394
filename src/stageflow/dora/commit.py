"""The commit's facts DORA needs, read from git when a deployment starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stageflow import git
from stageflow.isotime import iso


def commit_facts(root: str | Path, commit: str | None) -> dict[str, Any]:
    """``{"commit_time": ISO, "hotfix": bool}`` for ``commit`` in the git checkout at ``root``
    (empty when there is no such commit: a rehearsal, a tree outside git). A hotfix is a commit whose
    subject starts with ``hotfix`` (e.g. ``hotfix: ...``, ``Hotfix(api): ...``)."""
    if not commit:
        return {}
    facts = git.commit_facts(Path(root), commit)
    if facts is None:
        return {}
    return {"commit_time": iso(facts.time), "hotfix": facts.subject.lower().startswith("hotfix")}
