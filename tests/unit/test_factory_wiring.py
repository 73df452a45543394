"""The composition root's wiring: what the factory builds for AWS and for the local emulator, and that
building the services starts nothing and chooses no target until a service is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageflow.factory import Factory
from stageflow.outputs import DeployOutputs
from stageflow.outputs_store import OutputsStore
from stageflow.report import Reporter
from stageflow.services import DeployServices, SecretStore
from stageflow.terraform.api import TerraformService

REPO = Path(__file__).resolve().parents[2]
PROXY = "http://127.0.0.1:45998"
OUT = DeployOutputs("fn", "live", ("a",), "arn:aws:sns:us-east-1:1:t", "tbl")


def make(tmp_path, *, local) -> Factory:
    return Factory(
        config_path=REPO / "stageflow.toml",
        local=local,
        state_dir=tmp_path / "state",
        reporter=Reporter(quiet=True),
        command="canary",
    )


def test_the_services_are_built_once_and_start_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("STAGEFLOW_LOCAL_ENDPOINT", raising=False)
    f = make(tmp_path, local=None)
    services = f.deploy_services()
    assert isinstance(services, DeployServices)
    assert isinstance(services.terraform, TerraformService) and services.terraform is f.terraform
    assert isinstance(services.outputs, OutputsStore) and services.outputs is f.outputs_store
    assert isinstance(services.secrets, SecretStore) and services.secrets is f.secret_store
    assert services.config is f.config and services.reporter is f.reporter
    assert f.terraform.state_dir == tmp_path / "state" and f.terraform.config is f.config
    # nothing chose the target yet (no credential lookup), nothing started
    assert "_mode" not in f.__dict__ and "aws_target" not in f.__dict__
    assert not (tmp_path / "state" / "local").exists()


def test_on_aws_terraform_uses_the_roots_backend_and_metrics_come_from_cloudwatch(tmp_path, monkeypatch):
    from stageflow.metrics.cloudwatch import CloudWatchSource

    monkeypatch.delenv("STAGEFLOW_AWS_ENDPOINT", raising=False)
    f = make(tmp_path, local=False)
    endpoint = f.terraform.endpoint()
    assert endpoint.name == "aws" and endpoint.backend is None and endpoint.provider_override is None
    assert endpoint.env is None and endpoint.prepare is None
    assert type(f.metric_source()) is CloudWatchSource
    assert f.traffic_feed(OUT, None, None) is None  # real traffic: nothing to make
    assert f.child_env() == {}
    assert f.outputs_store.path("dev") == tmp_path / "state" / "outputs" / "aws-dev.json"
    assert f.secret_store.aws is f.aws


def test_locally_terraform_and_every_client_point_at_the_emulator(tmp_path, monkeypatch):
    from stageflow.metrics.cloudwatch import LocalSimulatorSource

    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY)  # the emulator's address, nothing started
    f = make(tmp_path, local=True)
    endpoint = f.terraform.endpoint()
    assert endpoint.name == "local" and endpoint.backend["endpoint"] == PROXY
    assert f'= "{PROXY}"' in endpoint.provider_override
    assert endpoint.env["AWS_ENDPOINT_URL"] == PROXY and callable(endpoint.prepare)
    assert type(f.metric_source()) is LocalSimulatorSource
    assert f.outputs_store.path("dev") == tmp_path / "state" / "outputs" / "local-dev.json"
    assert f.secret_store.aws.client("secretsmanager").meta.endpoint_url == PROXY


def test_a_scenario_is_refused_on_aws(tmp_path):
    from stageflow.errors import UsageError

    with pytest.raises(UsageError):
        make(tmp_path, local=False).traffic_feed(OUT, Path("s.json"), None)


def test_the_outputs_the_factory_hands_out_come_from_its_store(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY)
    f = make(tmp_path, local=True)
    f.outputs_store.remember("dev", OUT)
    assert f.outputs("dev") is OUT  # remembered in this process: no AWS call, no Terraform


def test_several_functions_get_their_own_ports_and_each_its_own_smoke(tmp_path, monkeypatch):
    from dataclasses import replace

    from stageflow.config.model import FunctionConfig
    from stageflow.invokecheck import Smoke
    from stageflow.outputs import FunctionTarget

    monkeypatch.setenv("STAGEFLOW_LOCAL_ENDPOINT", PROXY)
    f = make(tmp_path, local=True)
    api_smoke, worker_smoke = Smoke(expect={"ok": True}), Smoke(expect={"done": 1})
    f.__dict__["config"] = replace(
        f.config,
        function_tables=(
            FunctionConfig("api", "svc.api.handler", smoke=api_smoke),
            FunctionConfig("worker", "svc.worker.handler", smoke=worker_smoke),
        ),
    )
    two = replace(
        OUT,
        functions=(
            FunctionTarget("api", "svc-api-dev", "live"),
            FunctionTarget("worker", "svc-worker-dev", "live"),
        ),
    )
    rel = f.environment("dev", outputs=two).release
    assert [(m.key, m.function, m.alias) for m in rel.members] == [
        ("api", "svc-api-dev", "live"),
        ("worker", "svc-worker-dev", "live"),
    ]
    assert [m.check.smoke for m in rel.members] == [api_smoke, worker_smoke]
    assert [(m.gates.function, m.publisher.function) for m in rel.members] == [
        ("svc-api-dev", "svc-api-dev"),
        ("svc-worker-dev", "svc-worker-dev"),
    ]
    # one function (the sample): the context's own ports are the release's one member
    one = f.environment("dev", outputs=OUT)
    assert one.functions is None and one.release.single and one.release.first.traffic is one.traffic
