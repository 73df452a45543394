"""`approve`/`reject`/`tick` refuse bad input with one line and exit 2 before anything runs; the approver's
identity: the STS caller on AWS (``--as`` refused there), ``--as NAME`` locally."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

import pytest

from stageflow.errors import ExitCode, UsageError
from stageflow.wiring import approver
from tests.unit.test_on_call_safety import run


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--extend", "nan"), "--extend must be a finite number of minutes"),
        (("--extend", "inf"), "--extend must be a finite number of minutes"),
        (("--extend", "0"), "--extend must be between 1 and 120 minutes"),
        (("--extend", "100000"), "--extend must be between 1 and 120 minutes"),
        (("--extend", "5", "--skip-to-full"), "two different answers"),
    ],
    ids=["nan", "inf", "zero", "huge", "both"],
)
def test_bad_approve_options_are_exit_2_with_one_line_and_start_nothing(tmp_path, args, said):
    r = run(tmp_path, "--local", "approve", "dev", "--as", "alice", *args)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert said in line
    assert not (tmp_path / "state" / "local").exists()


def test_tick_of_an_unknown_environment_is_exit_2(tmp_path):
    r = run(tmp_path, "--local", "tick", "nope")
    assert r.returncode == 2 and "nope" in r.stderr


class FakeSts:
    def __init__(self, arn):
        self.arn = arn

    def get_caller_identity(self):
        return {"Arn": self.arn, "Account": "123456789012", "UserId": "AROAEXAMPLE:alice"}


def _factory(local: bool, arn="arn:aws:sts::123456789012:assumed-role/Deployer/alice"):
    approvers = MappingProxyType({"alice": ("devops",), "bob": ("product",)})
    return SimpleNamespace(
        local=local,
        aws=SimpleNamespace(client=lambda name: FakeSts(arn)),
        config=SimpleNamespace(approvers=approvers),
    )


def test_on_aws_the_approver_is_the_caller_with_the_roles_config_gives():
    assert approver(_factory(False), None) == ("alice", ("devops",))
    assert approver(_factory(False, "arn:aws:iam::123456789012:user/ops/carol"), None) == ("carol", ())


def test_as_is_refused_on_aws():
    with pytest.raises(UsageError) as exc:
        approver(_factory(False), "bob")
    assert exc.value.exit_code == ExitCode.USAGE and "local mode only" in exc.value.one_line()


def test_locally_as_names_the_approver():
    assert approver(_factory(True), "bob") == ("bob", ("product",))
