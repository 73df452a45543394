"""The one load run (checks/load.py): the profile's bounds, locust's argv, its statistics against the
gates, the reports and the record — locust faked at the runner seam (tests/e2e runs the real one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stageflow import config as config_mod
from stageflow import process
from stageflow.checks import load
from stageflow.errors import CheckFailed, EnvironmentFailure, ExitCode, UsageError
from tests.conftest import REPO

HEADER = "Type,Name,Request Count,Failure Count,95%,Requests/s\n"


@pytest.fixture
def cfg(tmp_path):
    shutil.copy(REPO / "stageflow.toml", tmp_path / "stageflow.toml")
    event = Path("app/tests/events/health.json")  # [service] smoke's event, checked at load
    (tmp_path / event).parent.mkdir(parents=True)
    shutil.copy(REPO / event, tmp_path / event)
    return config_mod.load(tmp_path / "stageflow.toml")


class FakeLocust:
    def __init__(self, row: str | None = ",Aggregated,200,1,120,20.0\n", rc: int = 0):
        self.row, self.rc, self.calls = row, rc, []

    def __call__(self, argv, **kwargs):
        self.calls.append((list(argv), kwargs))
        prefix = argv[argv.index("--csv") + 1]
        if self.row is not None:
            Path(prefix + "_stats.csv").write_text(HEADER + self.row)
        return process.Result(tuple(argv), self.rc, "", "boom" if self.rc else "", 0.1)


def test_within_the_gates_writes_the_json_and_records_it(cfg, tmp_path):
    fake, recorded = FakeLocust(), []
    run = load.run_load(
        cfg,
        "dev",
        "http://127.0.0.1:1",
        users=3,
        seconds=4,
        spawn_rate=2,
        locust_bin="/bin/locust",
        record=lambda data: recorded.append(data) or "dep-1",
        runner=fake,
    )
    argv, kwargs = fake.calls[0]
    assert argv[argv.index("--users") + 1] == "3" and argv[argv.index("--run-time") + 1] == "4s"
    assert (
        argv[argv.index("--spawn-rate") + 1] == "2" and argv[argv.index("--host") + 1] == "http://127.0.0.1:1"
    )
    assert kwargs["timeout"] == 64 and kwargs["ok_codes"] is None
    assert run.ok and run.deployment_id == "dep-1" and run.result.requests == 200
    assert "p95 120 ms" in run.result.detail and "errors 0.50%" in run.result.detail
    assert recorded[0]["html"] == "reports/load-dev.html" and recorded[0]["spawn_rate"] == 2
    saved = json.loads((tmp_path / "reports" / "load-dev.json").read_text())
    assert saved["deployment_id"] == "dep-1" and saved["within_gates"] is True


def test_outside_the_gates_is_exit_1_after_the_reports(cfg, tmp_path):
    slow = FakeLocust(",Aggregated,100,0,9000,10.0\n")
    with pytest.raises(CheckFailed) as exc:
        load.run_load(cfg, "dev", "http://127.0.0.1:1", users=1, seconds=1, locust_bin="l", runner=slow)
    assert exc.value.exit_code == ExitCode.UNEXPECTED and "outside the gates" in exc.value.message
    assert json.loads((tmp_path / "reports" / "load-dev.json").read_text())["within_gates"] is False


def test_the_bounds_are_the_cli_and_config_bounds(cfg):
    for users, seconds in ((0, 1), (load.MAX_USERS + 1, 1), (1, 0), (1, load.MAX_SECONDS + 1)):
        with pytest.raises(UsageError):
            load.run_load(
                cfg, "dev", "http://x", users=users, seconds=seconds, locust_bin="l", runner=FakeLocust()
            )
    assert (load.MAX_USERS, load.MAX_SECONDS) == (1000, 3600)
    # staging's configured profile (100 users for 5 minutes) is inside them
    staging = cfg.env("staging").tests
    assert staging.users <= load.MAX_USERS and staging.seconds <= load.MAX_SECONDS


def test_locust_failing_is_exit_3(cfg):
    with pytest.raises(EnvironmentFailure, match="locust failed"):
        load.run_load(cfg, "dev", "http://x", users=1, seconds=1, locust_bin="l", runner=FakeLocust(rc=1))
    with pytest.raises(EnvironmentFailure, match="no aggregated statistics"):
        load.run_load(
            cfg, "dev", "http://x", users=1, seconds=1, locust_bin="l", runner=FakeLocust(",GET /,1,0,5,1\n")
        )
