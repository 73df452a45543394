"""Everything stageflow asks git, in one place, through the one process runner.

Each question answers ``None`` (or False) when there is no git, no work tree, or no such commit, unless
it says it raises: a deploy from a tree outside git still works; what needs a commit says so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stageflow import process
from stageflow.errors import EnvironmentFailure, UsageError

TIMEOUT_S = 30.0


def _git(cwd: Path, *args: str, runner: process.Runner = process.RUNNER) -> process.Result | None:
    """``git -C cwd ARGS``; None when git is missing. Any exit code is returned."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        return runner([git, "-C", str(cwd), *args], timeout=TIMEOUT_S, ok_codes=None)
    except (process.CommandNotFound, process.CommandTimeout):
        return None


def is_work_tree(path: Path) -> bool:
    res = _git(path, "rev-parse", "--is-inside-work-tree")
    return res is not None and res.returncode == 0 and res.stdout.strip() == "true"


def head(root: Path, *, short: int | None = None) -> str | None:
    """The commit HEAD names (``short`` hex digits when given), or None."""
    args = ["rev-parse", f"--short={short}" if short else "--verify", "HEAD"]
    res = _git(root, *args)
    if res is None or res.returncode != 0:
        return None
    return res.stdout.strip() or None


def is_tracked(path: Path) -> bool:
    res = _git(path.parent, "ls-files", "--error-unmatch", "--", path.name)
    return res is not None and res.returncode == 0


def is_ignored(path: Path) -> bool | None:
    """True/False inside a git work tree; None outside one (or without git)."""
    if not is_work_tree(path.parent):
        return None
    res = _git(path.parent, "check-ignore", "-q", "--", path.name)
    return res is not None and res.returncode == 0


def listed_files(root: Path) -> list[str] | None:
    """Tracked plus untracked-but-not-ignored files relative to ``root``, sorted; None outside git."""
    if not (root / ".git").exists():
        return None
    res = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if res is None or res.returncode != 0:
        return None
    return sorted({n for n in res.stdout.split("\0") if n})


@dataclass(frozen=True)
class CommitFacts:
    time: datetime
    subject: str


def commit_facts(root: Path, commit: str) -> CommitFacts | None:
    """When ``commit`` was made and its subject; None when there is no such commit."""
    res = _git(root, "log", "-1", "--format=%ct%x00%s", commit, "--")
    if res is None or res.returncode != 0 or "\x00" not in res.stdout:
        return None
    stamp, subject = res.stdout.strip().split("\x00", 1)
    try:
        return CommitFacts(datetime.fromtimestamp(int(stamp), UTC), subject.strip())
    except ValueError:
        return None


def last_change(root: Path, paths: list[str], *, rev: str = "HEAD") -> str | None:
    """The newest commit up to ``rev`` that changed any of ``paths`` (relative to ``root``; pathspecs
    with magic such as ``:(glob,exclude)`` work), or None."""
    if rev.startswith("-"):  # a revision, never an option
        return None
    res = _git(root, "log", "-1", "--format=%H", rev, "--", *paths)
    if res is None or res.returncode != 0:
        return None
    return res.stdout.strip() or None


def is_dirty(root: Path, paths: list[str]) -> bool:
    """Uncommitted changes (staged, unstaged or untracked) under ``paths``."""
    res = _git(root, "status", "--porcelain", "--", *paths)
    return res is not None and res.returncode == 0 and bool(res.stdout.strip())


def required(root: Path, *args: str) -> str:
    """``git ARGS`` whose answer the caller cannot do without: no git → exit 3, git failing → exit 2."""
    res = _git(root, *args)
    if res is None:
        raise EnvironmentFailure("git is not installed", "install git")
    if res.returncode != 0:
        detail = " ".join(res.stderr.split())[:200]
        raise UsageError(
            f"cannot read the commit of {root}: git {' '.join(args)}: {detail}",
            "build from a git checkout with at least one commit",
        )
    return res.stdout.strip()


def has_commit(root: Path, commit: str) -> bool:
    """Whether ``commit`` names a commit of the repository ``root`` is in."""
    if not commit or commit.startswith("-"):
        return False
    res = _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    return res is not None and res.returncode == 0


def export_tree(root: Path, commit: str, dest: Path) -> Path:
    """The tree of ``root`` (a directory of a work tree) at ``commit``, written into ``dest`` through
    ``git archive`` (the repository and its work tree are left as they are); returns ``dest``. Raises
    like :func:`required` (no git: exit 3; no such commit: exit 2)."""
    import tarfile

    if not has_commit(root, commit):
        raise UsageError(
            f"commit {commit} is not in the repository at {root}", "fetch it, or run from a clone"
        )
    prefix = required(root, "rev-parse", "--show-prefix")
    top = Path(required(root, "rev-parse", "--show-toplevel"))
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.parent / f".{dest.name}.tar"
    try:
        required(
            top, "archive", "--format=tar", "-o", str(archive), f"{commit}:{prefix}" if prefix else commit
        )
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    finally:
        archive.unlink(missing_ok=True)
    return dest
