"""Typed errors from Terraform's stderr, the runner (streaming, timeout), binary and mirror lookup."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import zipfile

import pytest

from stageflow.errors import ExitCode, MissingBinaryError
from stageflow.terraform import binary as B
from stageflow.terraform.client import StateVersion, Terraform, plan_state_version
from stageflow.terraform.errors import (
    PolicyError,
    StalePlanError,
    StateLockedError,
    TerraformError,
    TerraformTimeout,
    classify,
    parse_lock_info,
)
from stageflow.terraform.runner import RunResult, SubprocessRunner

LOCK_STDERR = """
Error: Error acquiring the state lock

Error message: ConditionalCheckFailedException: The conditional request
failed
Lock Info:
  ID:        72fbf956-2c63-4ec3-a225-55532a45f417
  Path:      stageflow-local-tfstate/x/terraform.tfstate
  Operation: OperationTypeApply
  Who:       alice@build-7
  Version:   1.0.3
  Created:   2026-11-22 01:56:49.975151858 +0000 UTC
  Info:


Terraform acquires a state lock to protect the state from being written
by multiple users at the same time.
"""

SYNTAX_STDERR = """
│ Error: Unclosed configuration block
│
│   on main.tf line 5, in resource "null_resource" "oops":
│    5: resource "null_resource" "oops" {
│
│ There is no closing brace for this block before the end of the file.
"""


def test_lock_info_is_parsed_and_names_the_holder():
    info = parse_lock_info(LOCK_STDERR)
    assert info["ID"] == "72fbf956-2c63-4ec3-a225-55532a45f417"
    assert info["Who"] == "alice@build-7"
    err = classify(["terraform", "apply"], 1, LOCK_STDERR)
    assert isinstance(err, StateLockedError)
    assert err.exit_code == ExitCode.LOCKED
    assert "alice@build-7" in err.one_line()
    assert "72fbf956-2c63-4ec3-a225-55532a45f417" in err.one_line()
    assert err.one_line().startswith(
        "Terraform state stageflow-local-tfstate/x/terraform.tfstate is locked by"
    )


def test_not_a_lock_error():
    assert parse_lock_info(SYNTAX_STDERR) is None


def test_terraform_error_carries_terraforms_message():
    err = classify(["/bin/terraform", "init", "-input=false"], 1, SYNTAX_STDERR)
    assert isinstance(err, TerraformError)
    assert err.exit_code == ExitCode.ENVIRONMENT
    assert err.argv == ("/bin/terraform", "init", "-input=false")
    assert err.returncode == 1
    assert "There is no closing brace" in err.stderr_tail
    assert err.message == (
        "terraform init -input=false failed (exit 1): Error: Unclosed configuration block "
        '(on main.tf line 5, in resource "null_resource" "oops")'
    )


def test_stale_plan_and_policy_errors_are_usage_errors():
    err = classify(["terraform", "apply"], 1, "Error: Saved plan is stale\n")
    assert isinstance(err, StalePlanError) and err.exit_code == ExitCode.USAGE
    assert PolicyError("x").exit_code == ExitCode.USAGE


def test_runner_streams_and_captures(tmp_path):
    lines = []
    runner = SubprocessRunner(lambda line, stream: lines.append((stream, line)))
    code = "import sys; print('one'); print('two', file=sys.stderr); print('three'); sys.exit(2)"
    res = runner.run([sys.executable, "-c", code], cwd=str(tmp_path), env=dict(os.environ))
    assert res.returncode == 2
    assert res.stdout == "one\nthree\n" and res.stderr == "two\n"
    assert ("stdout", "one") in lines and ("stderr", "two") in lines and ("stdout", "three") in lines
    quiet = []
    SubprocessRunner(lambda line, s: quiet.append(line)).run(
        [sys.executable, "-c", code], cwd=str(tmp_path), env=dict(os.environ), stream=False
    )
    assert quiet == []


def test_runner_timeout_sigterm_then_sigkill(tmp_path):
    # A child that ignores SIGTERM: it must be SIGKILLed after the grace period.
    code = (
        "import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('started', flush=True); time.sleep(60)"
    )
    runner = SubprocessRunner(grace_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(TerraformTimeout) as exc:
        runner.run([sys.executable, "-c", code], cwd=str(tmp_path), env=dict(os.environ), timeout=1.0)
    assert time.monotonic() - t0 < 5
    assert exc.value.killed
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "timed out after 1 s and was killed (SIGKILL)" in exc.value.one_line()


def test_runner_timeout_sigterm_is_enough_for_a_polite_child(tmp_path):
    runner = SubprocessRunner(grace_s=5)
    t0 = time.monotonic()
    with pytest.raises(TerraformTimeout) as exc:
        runner.run(["sleep", "60"], cwd=str(tmp_path), env=dict(os.environ), timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not exc.value.killed
    assert "stopped (SIGTERM)" in exc.value.one_line()


class FakeRunner:
    """Records argv; answers from a table of (subcommand -> RunResult fields)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def run(self, argv, *, cwd, env, timeout=None, stream=True):
        self.calls.append(list(argv))
        rc, out, err = self.answers.get(" ".join(argv[1:3]), (0, "", ""))
        return RunResult(tuple(argv), rc, out, err, 0.0)


def _tf(runner, version='{"terraform_version": "1.0.3"}'):
    runner.answers.setdefault("version -json", (0, version, ""))
    return Terraform(binary="tf", workdir=".", env={}, runner=runner, lock_timeout="0s")


def test_workspace_select_or_create():
    runner = FakeRunner({"workspace select": (1, "", 'Workspace "prod" doesn\'t exist.\n')})
    assert _tf(runner).workspace_select_or_create("prod") is True
    assert runner.calls[-2:] == [
        ["tf", "workspace", "select", "-no-color", "prod"],
        ["tf", "workspace", "new", "-no-color", "-lock-timeout=10s", "prod"],
    ]
    runner = FakeRunner({})
    assert _tf(runner).workspace_select_or_create("prod") is False
    assert runner.calls[-1] == ["tf", "workspace", "select", "-no-color", "prod"]


def test_plan_exit_codes():
    from stageflow.terraform.args import PlanOptions

    for rc, changes in ((0, False), (2, True)):
        runner = FakeRunner({"plan -input=false": (rc, "", "")})
        assert _tf(runner).plan(PlanOptions(out="p")) is changes
        assert runner.calls[-1] == [
            "tf",
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            "-out=p",
            "-lock-timeout=0s",
        ]
    runner = FakeRunner({"plan -input=false": (1, "", "Error: Invalid reference\n")})
    with pytest.raises(TerraformError, match="Invalid reference"):
        _tf(runner).plan(PlanOptions(out="p"))


def test_outputs_and_state_parsing():
    runner = FakeRunner(
        {
            "output -json": (0, json.dumps({"a": {"value": 1, "type": "number", "sensitive": False}}), ""),
            "state pull": (0, json.dumps({"lineage": "L", "serial": 4}), ""),
        }
    )
    tf = _tf(runner)
    assert tf.outputs() == {"a": {"value": 1, "type": "number", "sensitive": False}}
    assert tf.state_version() == StateVersion("L", 4)
    assert _tf(FakeRunner({"state pull": (0, "", "")})).state_version() == StateVersion("", 0)


def test_version_too_old_is_refused():
    with pytest.raises(Exception, match="too old"):
        _tf(FakeRunner({}), '{"terraform_version": "0.14.0"}').version  # noqa: B018


def test_plan_state_version_reads_the_saved_plan(tmp_path):
    plan = tmp_path / "p.tfplan"
    with zipfile.ZipFile(plan, "w") as z:
        z.writestr("tfplan", b"")
        z.writestr("tfstate", json.dumps({"lineage": "abc", "serial": 7}))
    assert plan_state_version(str(plan)) == StateVersion("abc", 7)
    (tmp_path / "junk").write_text("x")
    assert plan_state_version(str(tmp_path / "junk")) is None


def test_find_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("TERRAFORM_BIN", str(tmp_path / "missing"))
    with pytest.raises(MissingBinaryError) as exc:
        B.find_binary()
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "make setup" in exc.value.one_line()
    fake = tmp_path / "tf"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TERRAFORM_BIN", str(fake))
    assert B.find_binary() == str(fake)


def _mirror(tmp_path, *sources):
    m = tmp_path / "mirror"
    for src in sources:
        d = m / "registry.terraform.io" / src / "1.0.0" / "linux_amd64"
        d.mkdir(parents=True)
        (d / "terraform-provider-x").write_text("")
    return m


def test_required_providers_follow_local_modules(tmp_path):
    root = tmp_path / "env"
    (tmp_path / "modules" / "svc").mkdir(parents=True)
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = ">= 5.0" }\n'
        '    random = {\n      source = "registry.terraform.io/hashicorp/random"\n    }\n  }\n}\n'
        'module "svc" {\n  source = "../modules/svc"\n}\nresource "null_resource" "x" {}\n'
        'data "terraform_remote_state" "y" {}\n'
    )
    (tmp_path / "modules" / "svc" / "main.tf").write_text(
        'resource "archive_file" "z" {}\n# resource "fake_x" "c" {}\n'
    )
    assert B.required_providers(root) == {
        "hashicorp/aws",
        "hashicorp/random",
        "hashicorp/null",
        "hashicorp/archive",
    }
    ok, reason = B.providers_available(root, _mirror(tmp_path, "hashicorp/null", "hashicorp/random"))
    assert not ok
    assert reason.startswith("provider(s) hashicorp/archive, hashicorp/aws not in the offline mirror")


def test_providers_available_when_all_present(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "main.tf").write_text('resource "null_resource" "x" {}\n')
    assert B.providers_available(root, _mirror(tmp_path, "hashicorp/null"))[0]
    assert not B.providers_available(tmp_path / "nope", tmp_path)[0]
