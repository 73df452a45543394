"""The digest of an environment's infrastructure inputs (a release records it): the real project's
roots, copied; no Terraform needed. The secrets recorded with it are the deploy's pinned references
(tests/unit/test_pipeline.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from stageflow.config import load
from stageflow.terraform.inputs import environment_digest, input_files

REPO = Path(__file__).resolve().parents[3]


def _copy(dest: Path) -> Path:
    shutil.copytree(REPO / "infrastructure", dest / "infrastructure")
    shutil.copy(REPO / "stageflow.toml", dest / "stageflow.toml")
    (dest / "app/tests/events").mkdir(parents=True)
    shutil.copy(REPO / "app/tests/events/health.json", dest / "app/tests/events/health.json")
    return dest


def test_the_same_inputs_anywhere_have_the_same_digest_and_a_variable_changes_it(tmp_path):
    a, b = _copy(tmp_path / "a"), _copy(tmp_path / "b")
    da = environment_digest(load(a / "stageflow.toml"), "dev")
    assert da == environment_digest(load(b / "stageflow.toml"), "dev")  # paths are relative to the root
    assert da != environment_digest(load(a / "stageflow.toml"), "staging")
    toml = b / "stageflow.toml"
    toml.write_text(toml.read_text().replace("log_retention_days = 14", "log_retention_days = 7"))
    assert environment_digest(load(toml), "dev") != da  # a value of the generated variables file


def test_module_files_count_and_terraforms_working_files_do_not(tmp_path):
    root = _copy(tmp_path / "p")
    cfg = load(root / "stageflow.toml")
    before = environment_digest(cfg, "dev")
    env_root = root / "infrastructure/environments/dev"
    (env_root / ".terraform").mkdir()
    (env_root / ".terraform" / "x").write_text("providers")
    (env_root / ".terraform.lock.hcl").write_text("lock")
    (env_root / "stageflow_local_override.tf").write_text("provider {}")
    assert environment_digest(cfg, "dev") == before
    names = [n for n, _ in input_files(env_root)]
    assert "../../modules/service/dashboards/service.json.tftpl" in names and "main.tf" in names
    lambda_tf = root / "infrastructure/modules/service/lambda.tf"
    lambda_tf.write_text(lambda_tf.read_text() + "\n# a comment is a change of the inputs too\n")
    assert environment_digest(cfg, "dev") != before
