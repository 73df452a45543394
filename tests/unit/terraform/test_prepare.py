"""``prepare`` runs ``terraform init`` only when something init reads changed: the generated local
backend is one of those things (a restarted emulator listens on another port)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from stageflow.report import Reporter
from stageflow.terraform.api import EnvTarget, TerraformEndpoint, TerraformService
from stageflow.terraform.version import TerraformVersion


class FakeTerraform:
    binary = "/usr/bin/terraform"
    version = TerraformVersion.parse("1.11.4")
    env: dict = {}

    def __init__(self, target: EnvTarget):
        self.target = target
        self.inits = 0

    def init(self, opts):
        self.inits += 1
        (self.target.root / ".terraform.lock.hcl").write_text("# lock\n")

    def workspace_select_or_create(self, name):
        return False


def _service(endpoint: str, state_dir: Path) -> TerraformService:
    generated = {"endpoint": endpoint, "bucket": "b", "table": "t", "region": "us-east-1"}
    return TerraformService(
        config=SimpleNamespace(service=SimpleNamespace(name="svc"), root=state_dir),
        state_dir=state_dir,
        endpoint=lambda: TerraformEndpoint("local", backend=generated),
        reporter=Reporter(quiet=True),
    )


def test_init_runs_again_when_the_emulator_endpoint_changes_and_not_otherwise(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    work = tmp_path / "work"
    (work / ".terraform").mkdir(parents=True)
    target = EnvTarget("dev", root, work, (), (), "default", False, "local")
    tf = FakeTerraform(target)
    _service("http://127.0.0.1:4001", tmp_path).prepare(target, tf)
    _service("http://127.0.0.1:4001", tmp_path).prepare(target, tf)
    assert tf.inits == 1  # nothing init reads changed
    _service("http://127.0.0.1:4002", tmp_path).prepare(target, tf)  # the emulator came back on another port
    assert tf.inits == 2
    assert "4002" in (work / "backend-local.hcl").read_text()
