"""DORA lead time starts at the commit that last changed what ships (service.source minus what packaging
leaves out, plus requirements.txt), not at HEAD; shipped files with uncommitted changes are recorded as
"uncommitted" and counted from the deployment's start. A real temporary git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from stageflow.config import load
from stageflow.deploy import canary
from stageflow.dora.commit import shipped_change_facts, shipped_pathspecs
from stageflow.dora.compute import compute
from stageflow.dora.render import human
from tests.helpers.dora_seed import _dep

GIT = shutil.which("git")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Repo:
    def __init__(self, root: Path):
        assert GIT, "git is needed"
        self.root = root
        self.n = 0
        subprocess.run([GIT, "init", "-q", str(root)], check=True)

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_text(text)

    def commit(self, subject: str, files: dict[str, str]) -> tuple[str, str]:
        """Commit ``files`` (path → text) an hour after the previous commit; (sha, ISO time)."""
        for rel, text in files.items():
            self.write(rel, text)
        self.n += 1
        at = (T0 + timedelta(hours=self.n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        env = {**os.environ, "GIT_COMMITTER_DATE": at, "GIT_AUTHOR_DATE": at}
        ident = ["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=false"]
        subprocess.run([GIT, "-C", str(self.root), "add", "-A"], check=True)
        subprocess.run([GIT, "-C", str(self.root), *ident, "commit", "-qm", subject], check=True, env=env)
        sha = subprocess.run(
            [GIT, "-C", str(self.root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        return sha, at.replace("Z", ".000000Z")


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path)
    r.write("stageflow.toml", '[service]\nname = "svc"\nsource = "app"\nexclude = ["fixtures"]\n')
    r.commit(
        "start",
        {
            "app/service/handler.py": "def handler(e, c=None):\n    return 1\n",
            "app/requirements.txt": "",
            "README.md": "# svc\n",
        },
    )
    return r


def facts(r: Repo) -> dict:
    cfg = load(r.root / "stageflow.toml")
    return shipped_change_facts(r.root, "HEAD", shipped_pathspecs(cfg))


def test_lead_time_starts_at_the_service_commit_not_at_a_later_docs_only_commit(repo):
    sha, at = repo.commit(
        "hotfix: the handler", {"app/service/handler.py": "def handler(e, c=None):\n    return 2\n"}
    )
    repo.commit("docs only", {"README.md": "# svc, documented\n", "docs/guide.md": "guide\n"})
    repo.commit("tests only", {"app/tests/test_handler.py": "def test(): pass\n"})
    repo.commit("excluded fixtures", {"app/fixtures/event.json": "{}\n", "app/cdk/app.py": "x = 1\n"})
    repo.commit(
        "tooling", {"app/.ruff.toml": "", "stageflow.toml": (repo.root / "stageflow.toml").read_text() + "\n"}
    )
    assert facts(repo) == {"commit_time": at, "hotfix": True, "change_commit": sha[:12], "uncommitted": False}


def test_a_requirements_change_is_a_change_that_ships(repo):
    sha, at = repo.commit("pin six", {"app/requirements.txt": "six==1.16.0\n"})
    repo.commit("docs", {"README.md": "more\n"})
    got = facts(repo)
    assert (got["change_commit"], got["commit_time"], got["hotfix"]) == (sha[:12], at, False)


@pytest.mark.parametrize(
    ("rel", "uncommitted"),
    [
        ("app/service/handler.py", True),  # modified
        ("app/service/new.py", True),  # untracked
        ("app/requirements.txt", True),
        ("app/tests/test_x.py", False),  # does not ship
        ("app/fixtures/big.json", False),  # [service] exclude
        ("docs/notes.md", False),
    ],
)
def test_uncommitted_changes_to_what_ships_are_recorded_as_uncommitted(repo, rel, uncommitted):
    repo.write(rel, "changed = True\n")
    got = facts(repo)
    assert got["uncommitted"] is uncommitted
    if uncommitted:
        assert got == {"uncommitted": True, "change_commit": None, "hotfix": False}  # no commit time


def test_no_commit_no_facts(repo):
    pathspecs = shipped_pathspecs(load(repo.root / "stageflow.toml"))
    assert shipped_change_facts(repo.root, None, pathspecs) == {}
    assert shipped_change_facts(repo.root, "--output=/tmp/x", pathspecs) == {}  # never an option
    assert shipped_change_facts(repo.root / "nope", "HEAD", pathspecs) == {}


def test_the_deployment_record_gets_the_shipped_change(repo, monkeypatch):
    sha, at = repo.commit("service", {"app/service/handler.py": "def handler(e, c=None):\n    return 3\n"})
    repo.commit("docs", {"README.md": "more\n"})
    seen = {}
    monkeypatch.setattr(canary, "run_start", lambda ctx, artifact, **kw: seen.update(kw))
    cfg = load(repo.root / "stageflow.toml")
    head = subprocess.run(
        [GIT, "-C", str(repo.root), "rev-parse", "--short=12", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    canary.start(SimpleNamespace(), cfg, artifact=SimpleNamespace(), commit=head, extra={"pipeline": []})
    assert seen["commit"] == head  # the checkout deployed
    assert seen["extra"] == {
        "commit_time": at,
        "hotfix": False,
        "change_commit": sha[:12],
        "uncommitted": False,
        "pipeline": [],
    }


def test_dora_counts_an_uncommitted_change_from_the_deployments_start_and_marks_it():
    start = datetime(2026, 10, 3, 12, 0, tzinfo=UTC)
    committed = _dep(0, start, env="dev", service="svc", extra={"commit_time": "2026-10-03T11:00:00.000000Z"})
    dirty = _dep(1, start + timedelta(hours=5), env="dev", service="svc", extra={"uncommitted": True})
    report = compute("dev", [committed, dirty], [], until=start + timedelta(days=2), days=7)
    by_version = {c.version: c for c in report.changes}
    assert by_version["100"].lead_time_seconds == 122 * 60 and not by_version["100"].uncommitted
    assert (
        by_version["101"].lead_time_seconds == 62 * 60 and by_version["101"].uncommitted
    )  # start → promoted
    assert "1 uncommitted (from their deployment's start)" in report.lead_time.detail
    assert report.to_json()["changes"][1]["uncommitted"] is True
    assert "1 uncommitted" in human(report)
