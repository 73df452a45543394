"""What of service.source ships: the default exclusions, [service] include / exclude globs, and the same
selection said to git (pathspecs, for DORA's lead time) — checked against a real git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stageflow.config import load
from stageflow.errors import ConfigError
from stageflow.packaging.lambda_zip import package
from stageflow.packaging.selection import Selection, glob_regex

TREE = [
    "handler.py",
    "requirements.txt",
    "README.md",
    ".ruff.toml",
    "service/__init__.py",
    "service/api.py",
    "service/tests/test_api.py",
    "service/events/__init__.py",  # a package named events, below the top: ships
    "service/__pycache__/api.cpython-312.pyc",
    "service/templates/page.html",
    "service/templates/draft/page.md",
    "tests/unit/test_handler.py",
    "test/test_other.py",
    "cdk/app.py",
    "cdk.out/manifest.json",
    "infrastructure/main.tf",
    "infra/stack.py",
    "terraform/main.tf",
    "events/sample.json",
    "docs/index.md",
    ".venv/lib/site.py",
    "venv/lib/site.py",
    "node_modules/x/index.js",
    ".pytest_cache/v/cache",
    "scripts/seed.py",
]


def write_tree(root: Path) -> None:
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")


def shipped(sel: Selection) -> list[str]:
    return sorted(rel for rel in TREE if sel.ships(rel))


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("cdk", "cdk", True),
        ("cdk/", "cdk", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/index.md", False),  # anchored at the source: one segment
        ("**/*.md", "docs/index.md", True),
        ("**/*.md", "README.md", True),
        ("service/**/page.*", "service/templates/draft/page.md", True),
        ("service/*/page.*", "service/templates/draft/page.md", False),
        ("data_[0-9].csv", "data_7.csv", True),
        ("data_[!0-9].csv", "data_7.csv", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
    ],
)
def test_glob(pattern, path, hit):
    assert bool(glob_regex(pattern).fullmatch(path)) is hit


def test_defaults_leave_out_tests_tooling_and_infrastructure():
    assert shipped(Selection()) == [
        "README.md",
        "handler.py",
        "requirements.txt",
        "scripts/seed.py",
        "service/__init__.py",
        "service/api.py",
        "service/events/__init__.py",
        "service/templates/draft/page.md",
        "service/templates/page.html",
    ]


PICKED = Selection(
    include=("handler.py", "service", "events/**"), exclude=("**/*.md", "service/templates/draft")
)


def test_include_and_exclude():
    sel = PICKED
    assert shipped(sel) == [
        "events/sample.json",  # a default top-level exclusion an include glob names: ships
        "handler.py",
        "service/__init__.py",
        "service/api.py",
        "service/events/__init__.py",
        "service/templates/page.html",
    ]


@pytest.mark.parametrize(
    "sel",
    [
        Selection(),
        PICKED,
        Selection(exclude=("scripts/", "*.md")),
    ],
)
@pytest.mark.parametrize("source", ["app", "."])
def test_git_pathspecs_select_the_same_files_as_the_zip(tmp_path, sel, source):
    git = shutil.which("git")
    assert git, "git is needed"
    src = tmp_path if source == "." else tmp_path / source
    write_tree(src)
    (tmp_path / "outside.py").write_text("# not the service\n")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([git, "-C", str(tmp_path), "add", "-A", "-f"], check=True)
    res = subprocess.run(
        [git, "-C", str(tmp_path), "ls-files", "--", *sel.pathspecs(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    listed = sorted(res.stdout.split())
    prefix = "" if source == "." else f"{source}/"
    expected = {prefix + rel for rel in shipped(sel)} | {f"{prefix}requirements.txt"}
    if source == "." and not sel.include:
        expected.add("outside.py")  # the source is the whole repository
    assert listed == sorted(expected)


def test_the_zip_holds_what_ships(tmp_path):
    write_tree(tmp_path)
    z = package(tmp_path, Selection(exclude=("scripts",)))
    assert z.files == len(shipped(Selection(exclude=("scripts",))))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('["/abs/**"]', "must be relative to service.source"),
        ('["../other"]', "must stay inside service.source"),
        ('[""]', "is empty"),
        ("[1]", "must be a string glob"),
        ('"cdk"', "must be list"),
        ('["data_[0-9.csv"]', "unclosed"),
    ],
)
def test_bad_globs_are_config_errors(tmp_path, value, why):
    path = tmp_path / "stageflow.toml"
    path.write_text(f'[service]\nname = "svc"\nexclude = {value}\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "service.exclude" in err.value.one_line() and why in err.value.one_line()


def test_globs_reach_the_config(tmp_path):
    path = tmp_path / "stageflow.toml"
    path.write_text('[service]\nname = "svc"\ninclude = ["service/**"]\nexclude = ["service/fixtures"]\n')
    svc = load(path).service
    assert (svc.include, svc.exclude) == (("service/**",), ("service/fixtures",))
