"""The commit's facts DORA needs, read from git when a deployment starts.

Lead time starts at the commit that last changed what ships (``service.source`` minus what packaging
leaves out, plus its ``requirements.txt``: :meth:`stageflow.packaging.selection.Selection.pathspecs`),
not at the repository's HEAD: a docs-only commit after a service change does not restart the clock.
When the shipped files have uncommitted changes there is no such commit: the record says
``uncommitted`` and :mod:`stageflow.dora.compute` counts that change's lead time from the deployment's
start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stageflow import git
from stageflow.isotime import iso

SHORT = 12  # hex digits of a recorded commit, as the deployment's own ``commit``


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


def shipped_change_facts(root: str | Path, commit: str | None, pathspecs: list[str]) -> dict[str, Any]:
    """The facts of the change that ships with ``commit`` (the checkout's HEAD): ``change_commit`` (the
    newest commit up to ``commit`` that changed ``pathspecs``), its ``commit_time`` and ``hotfix``, and
    ``uncommitted``. Shipped files with uncommitted changes: ``{"uncommitted": True, "change_commit":
    None, "hotfix": False}`` (no commit time). Empty without a commit (a rehearsal, a tree outside git);
    no commit ever touched the paths: ``commit``'s own facts."""
    if not commit or commit.startswith("-"):  # never an option to git
        return {}
    top = Path(root)
    if pathspecs and git.is_dirty(top, pathspecs):
        return {"uncommitted": True, "change_commit": None, "hotfix": False}
    change = git.last_change(top, pathspecs, rev=commit) if pathspecs else None
    facts = commit_facts(top, change or commit)
    if not facts:
        return {}
    return {**facts, "change_commit": (change or commit)[:SHORT], "uncommitted": False}


def shipped_pathspecs(config) -> list[str]:
    """What ships of ``config``'s service, as git pathspecs relative to ``config.root``."""
    from stageflow.packaging.selection import Selection

    svc = config.service
    source = Path(svc.source)
    if source.is_absolute():
        try:
            source = source.resolve().relative_to(Path(config.root).resolve())
        except ValueError:  # outside the repository: no commit of it to find
            return []
    return Selection(svc.include, svc.exclude).pathspecs(source.as_posix())
