"""The service's own toolchain on the fixture services (issue 23 item 6), with real interpreters, real pip,
real ruff and pytest-cov: the unit stage runs the service's tests in an environment of its runtime's Python
and its own requirement files (the hash-locked one in pip's hash-checking mode, the dev file beside it),
with its region and dummy credentials; collection errors are shown; lint uses its ruff settings; coverage
follows its settings and floor. One test-environment cache for the session: pip runs once per set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stageflow import config as config_mod
from stageflow import process
from stageflow.checks.lint import run_lint
from stageflow.checks.unit import run_unit
from stageflow.errors import CheckFailed
from stageflow.report import Reporter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "services"
# the orders fixture declares [functions.*] (not yet supported): its one-function form, same service
ORDERS_TOML = """[service]
name = "orders"
region = "eu-west-1"
source = "svc"
runtime = "python3.12"
handler = "orders.api.handler"
"""


class Lines(Reporter):
    """Quiet; keeps every ``phase subject: message`` line."""

    def __init__(self):
        super().__init__(quiet=True)
        self.lines: list[str] = []

    def info(self, phase: str, subject: str, message: str) -> None:
        self.lines.append(f"{phase} {subject}: {message}")


@pytest.fixture
def orders(tmp_path) -> config_mod.Config:
    root = tmp_path / "orders"
    shutil.copytree(FIXTURES / "orders", root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "stageflow.toml").write_text(ORDERS_TOML)
    return config_mod.load(root / "stageflow.toml")


def test_orders_unit_tests_pass_in_their_own_environment(orders, testenv_cache, monkeypatch):
    # the shell's AWS settings must not reach the service's tests
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    (orders.root / "svc/tests/test_environment.py").write_text(
        "import os, sys\n\n\ndef test_the_environment():\n"
        "    assert sys.version_info[:2] == (3, 12)\n"
        "    assert os.environ['AWS_DEFAULT_REGION'] == 'eu-west-1'\n"
        "    assert os.environ['AWS_ACCESS_KEY_ID'] == 'testing' and 'AWS_PROFILE' not in os.environ\n"
    )
    rep = Lines()
    res = run_unit(orders, rep, cache_dir=testenv_cache)
    assert res.ok and res.counts.tests == 7 and res.counts.passed == 7, res.to_json()
    env = res.environment
    assert env["requirements"] == ["requirements.txt", "requirements-dev.txt"]
    assert Path(env["python"]).is_relative_to(testenv_cache)
    pins = process.run([env["python"], "-m", "pip", "list", "--format=freeze"]).stdout
    assert "pydantic_core==2.27.2" in pins.replace("-", "_") and "boto3==" in pins  # the lock, then dev
    assert (
        "unit service: test environment: python3.12 with requirements.txt (hash-locked), requirements-dev.txt"
        in rep.lines
    )
    # coverage: the service's settings (source orders, branches, fail_under 90 as the floor)
    assert res.floor == 90 and res.floor_from == "fail_under of svc/pyproject.toml [tool.coverage]"
    assert "svc/pyproject.toml [tool.coverage]; measures source orders" in res.coverage_settings
    xml = (orders.root / res.coverage_xml).read_text()
    assert 'filename="api.py"' in xml and "test_api" not in xml and "conftest" not in xml
    assert 'branch-rate="' in xml and 'branches-valid="0"' not in xml
    assert res.summary.endswith("≥ floor 90 % (fail_under of svc/pyproject.toml [tool.coverage])")

    # again: the environment is reused, not rebuilt
    rep = Lines()
    assert run_unit(orders, rep, cache_dir=testenv_cache).environment["reused"] is True
    reused = [line for line in rep.lines if ": reused (" in line]
    assert reused and reused[0].startswith("unit service: test environment ")


def test_collection_errors_are_shown_never_no_tests_ran(orders, testenv_cache):
    # a test module that builds a client at import with no region: botocore's NoRegionError
    planted = orders.root / "svc/tests/test_no_region.py"
    planted.write_text(
        "import os\n\nimport boto3\n\nfor name in ('AWS_DEFAULT_REGION', 'AWS_REGION'):\n"
        "    os.environ.pop(name, None)\nSQS = boto3.client('sqs')\n\n\ndef test_never():\n    pass\n"
    )
    rep = Lines()
    with pytest.raises(CheckFailed) as exc:
        run_unit(orders, rep, cache_dir=testenv_cache)
    msg = exc.value.message
    assert msg.startswith("service unit tests could not be collected: ")
    assert "ERROR collecting tests/test_no_region.py" in msg
    assert "NoRegionError" in msg and "no tests ran" not in msg
    assert any(line.startswith("unit pytest: E ") and "NoRegionError" in line for line in rep.lines)
    planted.unlink()

    # a conftest that cannot import (pytest exit 4, on stderr): its error, not "no tests ran"
    conftest = orders.root / "svc/tests/conftest.py"
    conftest.write_text(conftest.read_text() + "import orders_test_helpers  # noqa\n")
    with pytest.raises(CheckFailed) as exc:
        run_unit(orders, Lines(), cache_dir=testenv_cache)
    assert "could not be collected: ImportError while loading conftest" in exc.value.message
    assert "No module named 'orders_test_helpers'" in exc.value.message
    assert "tests.requirements" in exc.value.hint


def test_the_services_fail_under_is_the_floor(orders, testenv_cache):
    (orders.root / "svc/orders/unused.py").write_text(
        "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(40))
    )
    with pytest.raises(CheckFailed) as exc:
        run_unit(orders, Lines(), cache_dir=testenv_cache)
    assert "< floor 90 % (fail_under of svc/pyproject.toml [tool.coverage])" in exc.value.message
    assert "lower fail_under in the service's coverage settings" in exc.value.hint
    # an explicit --floor still wins
    assert run_unit(orders, Lines(), cache_dir=testenv_cache, floor=10).floor_from == "--floor"


def test_orders_lint_uses_its_own_ruff_settings(orders):
    res = run_lint(orders)
    assert res.ok and res.settings == "svc/pyproject.toml"
    assert res.summary == "ruff check + format: clean (svc; settings: svc/pyproject.toml)"
    # 95 characters: within stageflow's 110, over the service's 88
    api = orders.root / "svc/orders/api.py"
    api.write_text(api.read_text() + "# " + "x" * 93 + "\n")
    with pytest.raises(CheckFailed) as exc:
        run_lint(orders)
    assert "svc/orders/api.py:" in exc.value.message and "E501" in exc.value.message
    assert "--config pyproject.toml" in exc.value.hint


def test_devonly_tests_pass_with_its_dev_dependency(tmp_path, testenv_cache):
    root = tmp_path / "devonly"
    shutil.copytree(FIXTURES / "devonly", root, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = config_mod.load(root / "stageflow.toml")
    assert cfg.tests.unit == "src/tests"  # its tests have no unit folder
    res = run_unit(cfg, Lines(), cache_dir=testenv_cache)
    assert res.ok and res.counts.passed == 1
    assert res.floor_from == "tests.coverage_floor"
    assert res.coverage_settings.startswith("stageflow's defaults (the service has no coverage settings)")
    assert "measures what is shipped (src; " in res.coverage_settings
    xml = (root / res.coverage_xml).read_text()
    assert 'filename="notes/handler.py"' in xml and "test_handler" not in xml
    lint = run_lint(cfg)
    assert lint.ok and lint.settings == "ruff's defaults (no ruff settings in src)"
