"""The service's own suites (stageflow.checks): real pytest runs over copies of app/ with planted
failures, the app server on loopback as the integration target, and the pipeline's stage order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stageflow import config as config_mod
from stageflow.checks import stages, suite
from stageflow.checks.integration import run_integration
from stageflow.checks.lint import run_lint
from stageflow.checks.target import ServiceTarget
from stageflow.checks.unit import run_unit
from stageflow.errors import CheckFailed, ExitCode, UsageError
from tests.conftest import REPO
from tests.helpers.appserver import local_service

FIXTURES = REPO / "tests" / "fixtures" / "service"


@pytest.fixture(autouse=True)
def _one_testenv_cache(monkeypatch, testenv_cache):
    """run_unit's default cache is the project's .stageflow/: one per test here, so share the session's."""
    monkeypatch.setattr("stageflow.checks.unit.TESTENV_CACHE", testenv_cache)


@pytest.fixture
def project(tmp_path) -> Path:
    dst = tmp_path / "svc"
    dst.mkdir()
    for name in ("stageflow.toml", "pyproject.toml"):  # the service config and the ruff settings
        shutil.copy(REPO / name, dst / name)
    shutil.copytree(REPO / "app", dst / "app", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dst


def cfg(project: Path, extra: str = ""):
    path = project / "stageflow.toml"
    if extra:
        path.write_text(path.read_text() + "\n" + extra)
    return config_mod.load(path)


# -- configuration ---------------------------------------------------------------------------------------
def test_defaults_follow_the_design(project):
    c = cfg(project)
    assert c.tests.unit == "app/tests/unit" and c.tests.coverage_floor == 80
    assert c.tests.locustfile == "app/tests/load/locustfile.py"
    dev, staging, prod = (c.env(n).tests for n in ("dev", "staging", "prod"))
    assert (dev.integration, dev.load) == (True, False)
    assert (staging.integration, staging.load, staging.users, staging.seconds) == (True, True, 100, 300)
    assert (prod.integration, prod.load) == (False, False)


def test_profile_and_floor_from_the_file(project):
    c = cfg(
        project,
        "[tests]\ncoverage_floor = 90\n\n[environments.dev.tests]\nload = true\nusers = 3\n"
        'spawn_rate = 3\nseconds = 4\nurl = "https://svc.example.com"\n',
    )
    t = c.env("dev").tests
    assert (c.tests.coverage_floor, t.load, t.users, t.spawn_rate, t.seconds) == (90, True, 3, 3.0, 4)
    assert t.url == "https://svc.example.com"


@pytest.mark.parametrize(
    "extra, key",
    [
        ("[tests]\ncoverage_floor = 120\n", "tests.coverage_floor"),
        ("[tests]\nfloor = 80\n", "tests.floor"),
        ("[environments.dev.tests]\nusers = 0\n", "environments.dev.tests.users"),
        ('[environments.dev.tests]\nurl = "ftp://x"\n', "environments.dev.tests.url"),
    ],
)
def test_bad_test_settings_are_exit_2_naming_the_key(project, extra, key):
    with pytest.raises(UsageError) as exc:
        cfg(project, extra)
    assert exc.value.exit_code == ExitCode.USAGE and key in exc.value.message


# -- unit ------------------------------------------------------------------------------------------------
def test_unit_passes_with_coverage_and_writes_junit_and_cobertura(project):
    res = run_unit(cfg(project))
    assert res.ok and res.counts.tests >= 5 and res.counts.failures == 0
    assert res.coverage_percent is not None and 80 <= res.coverage_percent <= 100
    junit, cov = project / res.junit, project / res.coverage_xml
    assert junit.is_file() and "<testsuite" in junit.read_text()
    assert cov.is_file() and "line-rate" in cov.read_text()
    # the service's tests are not measured, only its source
    assert "test_handler" not in cov.read_text() and "handler.py" in cov.read_text()


def test_a_planted_failing_unit_test_fails_naming_it(project):
    shutil.copy(FIXTURES / "planted_unit_failure.py", project / "app/tests/unit/test_planted.py")
    with pytest.raises(CheckFailed) as exc:
        run_unit(cfg(project))
    assert exc.value.exit_code == ExitCode.UNEXPECTED
    assert "1 of" in exc.value.message and "test_planted_failure" in exc.value.message


def test_coverage_below_the_floor_fails_with_the_figure(project):
    shutil.copy(FIXTURES / "uncovered.py", project / "app/service/uncovered.py")
    c = cfg(project)
    with pytest.raises(CheckFailed) as exc:
        run_unit(c)
    msg = exc.value.message
    assert "coverage" in msg and "< floor 80 %" in msg
    figure = float(msg.split("coverage ")[1].split(" %")[0])
    assert 0 < figure < 80
    # the same tree passes with a floor under its figure
    assert run_unit(c, floor=figure - 1).ok


def test_no_unit_tests_is_a_failure_not_a_pass(project):
    for f in (project / "app/tests/unit").glob("test_*.py"):
        f.unlink()
    with pytest.raises(CheckFailed, match=r"pytest collected no tests in app/tests/unit \(exit 5\)"):
        run_unit(cfg(project))


def test_missing_suite_directory_is_a_usage_error(project):
    config = cfg(project)  # loaded first: the smoke event lives in app/tests/events
    shutil.rmtree(project / "app/tests")  # (app/tests without a unit folder is itself the default)
    with pytest.raises(UsageError, match="no service unit tests at app/tests/unit"):
        run_unit(config)


# -- lint ------------------------------------------------------------------------------------------------
def test_lint_passes_clean_source_and_fails_a_planted_problem(project):
    c = cfg(project)
    assert run_lint(c).ok
    (project / "app/service/bad.py").write_text("import os\n")  # F401, unused import
    with pytest.raises(CheckFailed) as exc:
        run_lint(c)
    assert "F401" in exc.value.message and "bad.py" in exc.value.message


# -- integration -----------------------------------------------------------------------------------------
def test_integration_passes_against_the_app_server_on_loopback(project):
    c = cfg(project)
    with local_service(project / "app") as url:
        res = run_integration(c, "dev", ServiceTarget(url=url))
    assert res.ok and res.counts.tests >= 4 and res.target.startswith("http://127.0.0.1:")
    assert (project / res.junit).is_file() and (project / res.log).is_file()


def test_a_regression_only_the_integration_suite_sees(project):
    """Names are cut at 32 characters instead of 64: every unit test still passes, the integration
    suite (which checks the cut through the running service) fails and names the test."""
    handler = project / "app/service/handler.py"
    handler.write_text(handler.read_text().replace("[:64]", "[:32]"))
    c = cfg(project)
    assert run_unit(c).ok
    with local_service(project / "app") as url, pytest.raises(CheckFailed) as exc:
        run_integration(c, "dev", ServiceTarget(url=url))
    assert "integration tests failed on dev: 1 of" in exc.value.message
    assert "test_long_names_are_cut" in exc.value.message


def test_an_integration_conftest_that_cannot_import_is_shown_not_no_tests_ran(project):
    """pytest's exit 4 (an ImportError in the suite's conftest) was reported as "no tests ran"; the
    error is in the one line now (found by a new-user trial: its suite imported aws_lambda_powertools)."""
    (project / "app/tests/integration/conftest.py").write_text("import not_installed_anywhere_xyz\n")
    with local_service(project / "app") as url, pytest.raises(CheckFailed) as exc:
        run_integration(cfg(project), "dev", ServiceTarget(url=url))
    assert "could not be collected" in exc.value.message
    assert "No module named 'not_installed_anywhere_xyz'" in exc.value.message
    assert "\n" not in exc.value.message


def test_integration_target_environment():
    t = ServiceTarget(function="svc-dev", alias="live", region="eu-west-1")
    assert t.env() == {
        "SERVICE_FUNCTION": "svc-dev",
        "SERVICE_ALIAS": "live",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert t.where == "lambda:svc-dev:live"
    assert ServiceTarget(url="http://127.0.0.1:1").env() == {"SERVICE_URL": "http://127.0.0.1:1"}


# -- report parsing --------------------------------------------------------------------------------------
def test_parse_junit_and_cobertura(tmp_path):
    j = tmp_path / "j.xml"
    j.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="a" name="ok"/><testcase classname="a" name="bad"><failure/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = suite.parse_junit(j)
    assert (counts.tests, counts.failures, counts.skipped, counts.passed) == (3, 1, 1, 1)
    assert counts.failed_names == ("a::bad",)
    c = tmp_path / "c.xml"
    c.write_text('<coverage line-rate="0.8125"></coverage>')
    assert suite.parse_cobertura(c) == 81.25
    assert suite.parse_cobertura(tmp_path / "missing.xml") is None
    assert suite.parse_junit(tmp_path / "missing.xml").tests == 0


# -- the pipeline's order --------------------------------------------------------------------------------
def _fake_pipeline(order, fail=None):
    """Every service of the deploy a recorder (the one named ``fail`` raises CheckFailed)."""
    from stageflow import pipeline
    from tests.helpers.deploy_fakes import services

    failing = {fail: CheckFailed(f"{fail} failed: planted")} if fail else None
    return pipeline, services(order=order, fail=failing)


def test_pipeline_runs_lint_and_unit_first_and_the_service_checks_after_the_canary():
    order: list[str] = []
    pipeline, services = _fake_pipeline(order)
    run = pipeline.deploy(services, "dev")
    # every stage, in order (infrastructure and secrets use the Terraform and secret-store fakes)
    assert [s.name for s in run.stages] == [
        "lint",
        "unit",
        "build",
        "security",
        "image",
        "infrastructure",
        "secrets",
        "canary",
        "smoke",
        "integration",
        "load",
    ]
    assert order == [s.name for s in run.stages if s.name not in ("infrastructure", "secrets")]


def test_a_failing_unit_stage_stops_the_pipeline_before_the_build():
    order: list[str] = []
    pipeline, services = _fake_pipeline(order, fail="unit")
    with pytest.raises(CheckFailed) as exc:
        pipeline.deploy(services, "dev")
    assert exc.value.message.startswith("stage unit failed: unit failed: planted")
    assert order == ["lint", "unit"]


def test_post_deploy_checks_wait_for_the_promotion_and_honour_the_skip_list(monkeypatch):
    from types import SimpleNamespace

    tests = SimpleNamespace(integration=True, load=True, url=None)
    config = SimpleNamespace(env=lambda n: SimpleNamespace(tests=tests))

    def unused(*args):
        raise AssertionError("a waiting or skipped check must not reach the service")

    assert "awaits approval" in stages.stage_smoke("prod", unused, unused, paused=True).summary
    assert (
        "awaits approval"
        in stages.stage_integration(config, "prod", None, unused, unused, paused=True).summary
    )
    assert "awaits approval" in stages.stage_load(config, "prod", None, unused, unused, paused=True).summary
    monkeypatch.setenv(stages.SKIP_ENV, "integration, load")
    assert "skipped here" in stages.stage_integration(config, "dev", None, unused, unused).summary
    assert "skipped here" in stages.stage_load(config, "dev", None, unused, unused).summary


def test_cli_unit_below_the_floor_is_exit_1_with_the_figure(project):
    """What `nox -s unit` runs: `stageflow unit`; the error line carries the figure and the floor."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "stageflow", "--config", str(project / "stageflow.toml"), "unit"]
    ok = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "≥ floor 80 %" in ok.stdout
    low = subprocess.run([*argv, "--floor", "99.5"], capture_output=True, text=True, timeout=300)
    assert low.returncode == 1
    last = low.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: error: service unit tests: coverage ") and "< floor 99.5 %" in last
