"""STAGEFLOW_LOCAL_ENDPOINT: the composition root's local-mode endpoint override (a fault proxy in front
of the emulator, in the reliability tests). No emulator is started or needed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stageflow.errors import ExitCode, LocalGuardError
from stageflow.factory import Factory
from stageflow.outputs import DeployOutputs
from stageflow.report import Reporter

REPO = Path(__file__).resolve().parents[2]
PROXY = "http://127.0.0.1:45999"


def make(tmp_path, *, local=True, command="canary") -> Factory:
    return Factory(
        config_path=REPO / "stageflow.toml",
        local=local,
        state_dir=tmp_path / "state",
        reporter=Reporter(quiet=True),
        command=command,
    )


def test_local_mode_uses_the_override_everywhere_and_starts_no_emulator(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY + "/")
    f = make(tmp_path)
    assert f.aws_target.endpoint == PROXY and f.aws_target.local
    assert f.aws.client("lambda").meta.endpoint_url == PROXY
    assert f.child_env()["AWS_ENDPOINT_URL"] == PROXY  # terraform and other children
    tf = f.terraform_endpoint()
    assert tf.backend["endpoint"] == PROXY and f'= "{PROXY}"' in tf.provider_override
    assert tf.variables == {"fis_extension_layer": False}  # the seam: no Lambda layers on the emulator
    assert not (tmp_path / "state" / "local" / "emulator.json").exists()  # nothing started


@pytest.mark.parametrize("bad", ["http://192.0.2.5:4566", "https://example.com", "http://127.0.0.1"])
def test_the_override_is_loopback_guarded(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", bad)
    with pytest.raises(LocalGuardError) as exc:
        make(tmp_path).aws_target  # noqa: B018
    assert exc.value.exit_code == ExitCode.ENVIRONMENT


def test_the_override_is_ignored_on_aws(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY)
    monkeypatch.delenv("STAGEFLOW_AWS_ENDPOINT", raising=False)
    f = make(tmp_path, local=False)
    assert f.local_endpoint_override is None and f.aws_target.endpoint is None
    assert f.terraform_endpoint().variables is None  # on AWS the roots attach the FIS layer


def test_outputs_remembered_through_the_override_name_the_state_not_the_proxy(tmp_path, monkeypatch):
    """With no emulator of this state directory running, the override itself names the state; with
    one running (tests/reliability), its own endpoint does, so a proxy in front keeps the cache valid."""
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY)
    f = make(tmp_path)
    out = DeployOutputs("fn", "live", ("a",), "arn:aws:sns:us-east-1:1:t", "tbl")
    f.outputs_store.remember("dev", out)
    saved = json.loads((tmp_path / "state" / "outputs" / "local-dev.json").read_text())
    assert saved["endpoint"] == PROXY

    from stageflow.local.emulator import EmulatorStatus

    running = EmulatorStatus(True, 123, 5001, "http://127.0.0.1:5001", "log")
    g = make(tmp_path)
    monkeypatch.setattr(type(g.emulator), "status", lambda self: running)
    assert g._state_endpoint == "http://127.0.0.1:5001"
    g.outputs_store.remember("dev", out)
    saved = json.loads((tmp_path / "state" / "outputs" / "local-dev.json").read_text())
    assert saved["endpoint"] == "http://127.0.0.1:5001"
