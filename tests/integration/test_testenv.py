"""The service's own test environment: the runtime's Python, its own (hash-locked) requirement files,
built once per content. Real interpreters and pip (the package index is reachable here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stageflow import process, pythons, testenv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "services"


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("orders") / "orders"
    shutil.copytree(FIXTURES / "orders", dst)
    return dst


def test_orders_tests_run_in_their_own_environment(orders: Path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("testenv-cache")
    src = orders / "svc"
    files = testenv.requirement_files(src)
    assert [f.name for f in files] == ["requirements.txt", "requirements-dev.txt"]
    assert testenv.is_hash_locked(files[0].read_text())
    env = testenv.ensure("python3.12", files, cache)
    assert not env.reused
    version = process.run([str(env.python), "-c", "import sys, pydantic_core; print(sys.version_info[:2])"])
    assert version.stdout.strip() == "(3, 12)"  # the runtime's Python, not stageflow's 3.11
    again = testenv.ensure("python3.12", files, cache)
    assert again.reused and again.python == env.python

    # the worker module builds a boto3 client at import: without a region the suite cannot collect
    bare = {k: v for k, v in testenv.test_environ("eu-west-1").items() if not k.startswith("AWS_")}
    res = process.run([str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                      cwd=src, env=bare, ok_codes=None)  # fmt: skip
    assert res.returncode != 0
    errors = testenv.collection_errors(res.stdout)
    assert errors and "test_worker.py" in errors[0] and any("NoRegionError" in e for e in errors)

    res = process.run([str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                      cwd=src, env=testenv.test_environ("eu-west-1"), ok_codes=None)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:]
    assert "6 passed" in res.stdout


def test_a_file_pip_cannot_install_is_one_line_exit_3(tmp_path: Path):
    pythons.find("python3.12")
    bad = tmp_path / "requirements.txt"
    bad.write_text("pydantic-core==2.27.2 --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(testenv.EnvironmentFailure) as info:
        testenv.ensure("python3.12", [bad], tmp_path / "cache")
    assert "requirements.txt" in info.value.one_line() and info.value.exit_code == 3
    assert not any((tmp_path / "cache").glob("*/.complete"))


def test_test_environ_drops_credentials_and_sets_the_region():
    env = testenv.test_environ(
        "eu-west-1", {"AWS_PROFILE": "prod", "AWS_SECRET_ACCESS_KEY": "real", "HOME": "/h"}
    )
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert "AWS_PROFILE" not in env and env["HOME"] == "/h"
