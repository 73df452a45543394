"""State moves of an environment built before functions were for_each (terraform/moves.py)."""

from __future__ import annotations

from pathlib import Path

from stageflow.config import load
from stageflow.terraform.moves import MOVED_NAME, function_moves, moved_blocks, moved_hcl, state_moves
from stageflow.terraform.version import TerraformVersion

REPO = Path(__file__).resolve().parents[3]
V10, V111 = TerraformVersion(1, 0, 3), TerraformVersion(1, 11, 4)


def _root(tmp_path: Path, for_each: bool = True) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('module "service" {\n  source = "../modules/service"\n  x = 1\n}\n')
    module = tmp_path / "modules" / "service"
    module.mkdir(parents=True)
    body = "  for_each = var.functions\n" if for_each else ""
    (module / "lambda.tf").write_text(f'resource "aws_lambda_function" "service" {{\n{body}}}\n')
    return root


def test_the_sample_moves_each_per_function_object_to_its_key():
    moves = function_moves(load(REPO / "stageflow.toml"))
    assert (
        "module.service.aws_lambda_function.service",
        'module.service.aws_lambda_function.service["sample-api"]',
    ) in moves
    assert (
        "module.service.aws_lambda_alias.live",
        'module.service.aws_lambda_alias.live["sample-api"]',
    ) in moves
    assert len(moves) == 9  # function, alias, log group, six alarms
    text = moved_hcl(moves)
    assert (
        text.count("moved {") == 9
        and 'to   = module.service.aws_cloudwatch_metric_alarm.errors["sample-api"]' in text
    )


def test_a_service_whose_functions_are_not_named_after_it_moves_nothing():
    assert function_moves(load(REPO / "tests/fixtures/services/orders/stageflow.toml")) == ()


def test_moved_blocks_exist_only_during_the_run_and_only_on_terraform_1_1_and_later(tmp_path):
    root, cfg = _root(tmp_path), load(REPO / "stageflow.toml")
    with moved_blocks(root, cfg, V111) as path:
        assert path == root / MOVED_NAME and "moved {" in path.read_text()
    assert not (root / MOVED_NAME).exists()
    with moved_blocks(root, cfg, V10) as path:  # Terraform 1.0 has no moved blocks: state_moves instead
        assert path is None and not (root / MOVED_NAME).exists()
    (root / "main.tf").write_text('resource "null_resource" "x" {}\n')  # a root of one's own
    with moved_blocks(root, cfg, V111) as path:
        assert path is None


class FakeTf:
    def __init__(self, version, addresses):
        self.version, self.addresses, self.moved = version, list(addresses), []

    def state_list(self):
        return self.addresses

    def state_mv(self, src, dst):
        self.moved.append((src, dst))


def test_terraform_1_0_moves_in_the_state_what_is_still_at_the_old_address(tmp_path):
    root, cfg = _root(tmp_path), load(REPO / "stageflow.toml")
    tf = FakeTf(
        V10,
        [
            "module.service.aws_lambda_function.service",
            'module.service.aws_lambda_alias.live["sample-api"]',  # already moved
            "module.service.aws_lambda_alias.live",  # both: left alone (Terraform would refuse)
            "module.service.aws_dynamodb_table.history",
        ],
    )
    done = state_moves(tf, root, cfg)
    assert (
        tf.moved
        == list(done)
        == [
            (
                "module.service.aws_lambda_function.service",
                'module.service.aws_lambda_function.service["sample-api"]',
            )
        ]
    )
    assert state_moves(FakeTf(V111, tf.addresses), root, cfg) == ()  # 1.1+: the moved blocks do it
    fresh = FakeTf(V10, [])
    assert state_moves(fresh, root, cfg) == () and fresh.moved == []


def test_state_list_of_an_environment_without_state_is_empty():
    from types import SimpleNamespace

    import pytest

    from stageflow.terraform.client import Terraform
    from stageflow.terraform.errors import TerraformError

    class Runner:
        def __init__(self, code, out, err):
            self.result = SimpleNamespace(returncode=code, stdout=out, stderr=err)
            self.argv = None

        def run(self, argv, **kwargs):
            self.argv = argv
            return self.result

    def tf(code, out="", err=""):
        return Terraform(binary="terraform", workdir=".", env={}, runner=Runner(code, out, err), version=V10)

    none = "No state file was found!\n\nState management commands require a state file."
    assert tf(1, err=none).state_list() == []
    assert tf(0, out="module.a.b\nmodule.c.d\n").state_list() == ["module.a.b", "module.c.d"]
    with pytest.raises(TerraformError):
        tf(1, err="Error: Failed to load state: AccessDenied").state_list()


def test_a_root_calling_a_one_function_service_module_gets_no_moves(tmp_path):
    root, cfg = _root(tmp_path, for_each=False), load(REPO / "stageflow.toml")
    with moved_blocks(root, cfg, V111) as path:
        assert path is None  # Terraform would refuse: the old address is still declared
    tf = FakeTf(V10, ["module.service.aws_lambda_function.service"])
    assert state_moves(tf, root, cfg) == () and tf.moved == []


def test_the_repositorys_roots_call_the_for_each_module():
    from stageflow.terraform.moves import calls_service_module

    for env in ("dev", "staging", "prod"):
        assert calls_service_module(REPO / "infrastructure" / "environments" / env)
