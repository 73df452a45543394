"""The Terraform service on a fake process runner: the argv it runs, the child environment it builds
and where the terraform endpoint (AWS or the emulator) sends the backend — no Terraform installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stageflow import process
from stageflow.config import load
from stageflow.errors import NotDeployed
from stageflow.report import Reporter
from stageflow.terraform.api import TerraformEndpoint, TerraformService

OUTPUTS = {
    "function_name": {"value": "fn", "type": "string", "sensitive": False},
    "alias_name": {"value": "live", "type": "string", "sensitive": False},
    "alarm_names": {"value": ["a"], "type": ["tuple", ["string"]], "sensitive": False},
    "topic_arn": {"value": "arn:aws:sns:us-east-1:1:t", "type": "string", "sensitive": False},
    "history_table": {"value": "tbl", "type": "string", "sensitive": False},
}


class FakeRun:
    """A :data:`stageflow.process.Runner`: records argv, cwd and env; answers by subcommand."""

    def __init__(self, outputs: dict | None = None):
        self.calls: list[tuple[list[str], str, dict]] = []
        self.outputs = OUTPUTS if outputs is None else outputs

    def __call__(self, argv, *, cwd=None, env=None, timeout=None, ok_codes=(0,), on_line=None, **_):
        argv = [str(a) for a in argv]
        self.calls.append((argv, str(cwd), dict(env or {})))
        out = ""
        if argv[1:3] == ["version", "-json"]:
            out = '{"terraform_version": "1.11.4"}'
        elif argv[1] == "output":
            out = json.dumps(self.outputs)
        elif argv[1] == "init":  # as Terraform does: its data directory exists after init
            Path(env["TF_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        return process.Result(tuple(argv), 0, out, "", 0.0)

    def sub(self, name: str) -> tuple[list[str], str, dict]:
        return next(c for c in self.calls if c[0][1] == name)


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "infra"
    root.mkdir()
    (root / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    (root / "backend.hcl").write_text('bucket = "b"\n')
    (tmp_path / "stageflow.toml").write_text(
        '[service]\nname = "svc"\n[environments.dev]\n[environments.dev.terraform]\nroot = "infra"\n'
        'workspace = "dev"\n'
    )
    return root


def _service(tmp_path: Path, endpoint: TerraformEndpoint, run: FakeRun, environ: dict) -> TerraformService:
    return TerraformService(
        config=load(tmp_path / "stageflow.toml"),
        state_dir=tmp_path / "state",
        endpoint=lambda: endpoint,
        reporter=Reporter(quiet=True),
        run=run,
        binary=lambda: "/opt/tf/terraform",
        environ=environ,
    )


def test_aws_endpoint_uses_the_roots_backend_and_a_clean_child_environment(tmp_path):
    root = _project(tmp_path)
    run = FakeRun()
    environ = {"PATH": "/bin", "TF_LOG": "TRACE", "TF_VAR_x": "leak", "AWS_PROFILE": "ops"}
    out = _service(tmp_path, TerraformEndpoint("aws"), run, environ).outputs("dev")
    assert out.function_name == "fn" and out.alias_name == "live"
    argv, cwd, env = run.sub("init")
    assert argv[0] == "/opt/tf/terraform" and cwd == str(root.resolve())
    assert argv[1:4] == ["init", "-input=false", "-no-color"]
    assert f"-backend-config={root.resolve() / 'backend.hcl'}" in argv
    assert run.sub("workspace")[0][1:] == ["workspace", "select", "-no-color", "dev"]
    assert run.sub("output")[0][1:3] == ["output", "-json"]
    # hygiene: nothing of the caller's TF_* steers it; the caller's AWS settings stay on AWS
    assert "TF_LOG" not in env and "TF_VAR_x" not in env and env["AWS_PROFILE"] == "ops"
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0"
    work = Path(env["TF_DATA_DIR"]).parent
    assert work.parent == tmp_path / "state" / "terraform" / "dev" and work.name.startswith("aws-")


def test_local_endpoint_generates_the_backend_and_sets_the_emulators_environment(tmp_path):
    _project(tmp_path)
    run = FakeRun()
    prepared = []
    endpoint = TerraformEndpoint(
        "local",
        backend={"endpoint": "http://127.0.0.1:4566", "bucket": "sb", "table": "lt", "region": "us-east-1"},
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ACCESS_KEY_ID": "test"},
        prepare=lambda: prepared.append(True),
    )
    environ = {"PATH": "/bin", "AWS_PROFILE": "ops", "AWS_SECRET_ACCESS_KEY": "real"}
    _service(tmp_path, endpoint, run, environ).outputs("dev")
    assert prepared  # the state bucket and lock table before init
    argv, _cwd, env = run.sub("init")
    work = Path(env["TF_DATA_DIR"]).parent
    assert work.name.startswith("local-")
    assert f"-backend-config={work / 'backend-local.hcl'}" in argv
    backend = (work / "backend-local.hcl").read_text()
    assert "http://127.0.0.1:4566" in backend and "svc/dev/terraform.tfstate" in backend
    # local mode: the caller's AWS settings are dropped, the emulator's are set
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566" and env["AWS_ACCESS_KEY_ID"] == "test"
    assert "AWS_PROFILE" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_no_outputs_is_not_deployed_and_names_the_emulator(tmp_path):
    _project(tmp_path)
    endpoint = TerraformEndpoint(
        "local",
        backend={"endpoint": "http://127.0.0.1:4566", "bucket": "b", "table": "t", "region": "us-east-1"},
    )
    with pytest.raises(NotDeployed) as exc:
        _service(tmp_path, endpoint, FakeRun(outputs={}), {"PATH": "/bin"}).outputs("dev")
    assert "dev has not been deployed on the local emulator" in exc.value.one_line()


def test_a_timeout_of_the_process_runner_is_a_terraform_timeout(tmp_path):
    from stageflow.terraform.errors import TerraformTimeout

    def slow(argv, **_):
        raise process.CommandTimeout(argv, 2.0, "", "last words\n", killed=True)

    _project(tmp_path)
    service = _service(tmp_path, TerraformEndpoint("aws"), FakeRun(), {"PATH": "/bin"})
    service.run = slow
    with pytest.raises(TerraformTimeout) as exc:
        service.outputs("dev")
    assert exc.value.killed and "timed out after 2 s and was killed (SIGKILL)" in exc.value.one_line()
