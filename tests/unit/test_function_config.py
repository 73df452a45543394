"""The function as stageflow.toml says: its environment written by the secrets stage, the live
configuration compared with it (one line per difference), on botocore's Stubber and a fake store."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
from botocore.stub import ANY, Stubber

from stageflow.config import load
from stageflow.function_config import FunctionSpec, differences, wanted, write_environment
from stageflow.outputs import DeployOutputs
from stageflow.pipeline import stage_secrets
from stageflow.secrets.sinks import update_lambda_env

SPEC = FunctionSpec(
    handler="orders.api.handler",
    runtime="python3.12",
    architecture="x86_64",
    memory_mb=384,
    timeout_s=20,
    environment={"LOG_LEVEL": "info", "TABLE": "orders-dev"},
    secret_names=("API_TOKEN",),
)
LIVE = {
    "Handler": "orders.api.handler",
    "Runtime": "python3.12",
    "Architectures": ["x86_64"],
    "MemorySize": 384,
    "Timeout": 20,
    "Environment": {
        "Variables": {
            "SERVICE_NAME": "orders",
            "ENVIRONMENT": "dev",
            "PARAMETER_PREFIX": "/orders/dev",
            "LOG_LEVEL": "info",
            "TABLE": "orders-dev",
            "STAGEFLOW_SECRET_API_TOKEN": "ssm:/orders/token:3",
        }
    },
}


def test_wanted_reads_service_and_environment(tmp_path):
    (tmp_path / "stageflow.toml").write_text(
        '[service]\nname = "orders"\nhandler = "orders.api.handler"\nruntime = "python3.12"\n'
        "timeout_s = 20\n[environments.dev]\nmemory_mb = 384\n"
        '[environments.dev.environment]\nTABLE = "orders-dev"\nLOG_LEVEL = "info"\n'
        '[environments.dev.secrets]\nAPI_TOKEN = "ssm:/orders/token"\n'
    )
    assert wanted(load(tmp_path / "stageflow.toml"), "dev") == SPEC


def test_a_function_as_configured_has_no_differences():
    assert differences(SPEC, LIVE) == ()


def test_one_line_per_difference_naming_both_sides():
    live = {
        **LIVE,
        "Handler": "service.handler.handler",
        "Runtime": "python3.11",
        "MemorySize": 256,
        "Timeout": 30,
        "Environment": {
            "Variables": {
                "LOG_LEVEL": "debug",
                "MANUAL": "x",
                "STAGEFLOW_SECRET_API_TOKEN": "ssm:/orders/token:3",
                "ENVIRONMENT": "dev",
            }
        },
    }
    live.pop("Architectures")  # Lambda's default
    assert differences(SPEC, {**live, "Architectures": ["arm64"]}) == (
        "handler: service.handler.handler on the function, orders.api.handler in stageflow.toml",
        "runtime: python3.11 on the function, python3.12 in stageflow.toml",
        "architectures: arm64 on the function, x86_64 in stageflow.toml",
        "memory_mb: 256 on the function, 384 in stageflow.toml",
        "timeout_s: 30 on the function, 20 in stageflow.toml",
        "environment LOG_LEVEL: 'debug' on the function, 'info' in stageflow.toml",
        "environment TABLE: not set on the function, 'orders-dev' in stageflow.toml",
        "environment MANUAL: set on the function, not in stageflow.toml",
    )
    assert not any("architectures" in line for line in differences(SPEC, live))  # absent: x86_64


def test_secret_values_never_appear_in_differences():
    """A value an older stageflow left under the secret's own name is a leftover, named without it."""
    live = {**LIVE, "Environment": {"Variables": {"API_TOKEN": "tok-3f9a", "OLD_TOKEN": "tok-77aa"}}}
    text = "\n".join(differences(SPEC, live))
    assert "tok-" not in text and "OLD_TOKEN: set on the function, not in stageflow.toml" in text
    assert "API_TOKEN: set on the function, not in stageflow.toml" in text


class Store:
    def __init__(self, live):
        self.live = live
        self.calls = []

    def update_lambda_env(self, fn, secrets, *, plain=None, only=None):
        self.calls.append((fn, dict(secrets), plain, only))
        return SimpleNamespace(kept=("SERVICE_NAME",), removed=("MANUAL",))

    def function_configuration(self, fn):
        return self.live


def test_write_environment_writes_plain_values_and_secret_references_never_values():
    store = Store({**LIVE, "Timeout": 3})
    said = []
    res = write_environment(store, "orders-dev", {"API_TOKEN": "ssm:/orders/token:3"}, SPEC, say=said.append)
    ((fn, secrets, plain, only),) = store.calls
    assert fn == "orders-dev" and secrets == {}
    assert plain == {**SPEC.environment, "STAGEFLOW_SECRET_API_TOKEN": "ssm:/orders/token:3"}
    assert only == {
        "SERVICE_NAME",
        "ENVIRONMENT",
        "PARAMETER_PREFIX",
        "LOG_LEVEL",
        "TABLE",
        "STAGEFLOW_SECRET_API_TOKEN",
    }  # a value left under API_TOKEN by an older stageflow is removed
    assert said == ["timeout_s: 3 on the function, 20 in stageflow.toml"]
    assert res.variables == ("LOG_LEVEL", "TABLE") and res.removed == ("MANUAL",)
    assert res.summary == (
        "1 secrets (API_TOKEN) and 2 variables (LOG_LEVEL, TABLE) into orders-dev's environment; "
        "removed MANUAL; 1 differences from stageflow.toml"
    )
    assert res.to_json()["differs"] == said


def test_stage_secrets_without_a_spec_merges_only_secrets():
    store = Store(LIVE)
    infra = SimpleNamespace(outputs=DeployOutputs("fn", "live", (), "t", "h"), secrets={})
    assert stage_secrets(store, infra).summary == "none configured" and not store.calls
    ok = stage_secrets(store, infra, SPEC)
    assert ok.summary.endswith("; configuration as in stageflow.toml") and ok.differs == ()


def _lambda():
    return boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_update_lambda_env_sets_plain_values_and_removes_leftovers():
    lam, fn = _lambda(), "orders-dev"
    done = {"Configuration": {"FunctionName": fn, "LastUpdateStatus": "Successful"}}
    current = {"SERVICE_NAME": "orders", "LOG_LEVEL": "debug", "MANUAL": "x", "API_TOKEN": "old-value"}
    with Stubber(lam) as s:
        s.add_response("get_function", done, {"FunctionName": fn})
        s.add_response(
            "get_function_configuration",
            {"FunctionName": fn, "RevisionId": "r1", "Environment": {"Variables": current}},
            {"FunctionName": fn},
        )
        s.add_response(
            "update_function_configuration",
            {"FunctionName": fn},
            {
                "FunctionName": fn,
                "RevisionId": "r1",
                "Environment": {
                    "Variables": {
                        "SERVICE_NAME": "orders",
                        "LOG_LEVEL": "info",
                        "TABLE": "orders-dev",
                        "STAGEFLOW_SECRET_API_TOKEN": "ssm:/orders/token:3",
                    }
                },
            },
        )
        s.add_response("get_function", done, {"FunctionName": ANY})
        plain = {**SPEC.environment, "STAGEFLOW_SECRET_API_TOKEN": "ssm:/orders/token:3"}
        res = update_lambda_env(lam, fn, {}, plain=plain, only=SPEC.managed_names)
        s.assert_no_pending_responses()
    assert res.set == ("LOG_LEVEL", "TABLE", "STAGEFLOW_SECRET_API_TOKEN") and res.kept == ("SERVICE_NAME",)
    assert res.removed == ("API_TOKEN", "MANUAL") and res.changed  # the old value is gone from $LATEST


def test_update_lambda_env_writes_nothing_when_the_environment_is_already_right():
    lam, fn = _lambda(), "orders-dev"
    done = {"Configuration": {"FunctionName": fn, "LastUpdateStatus": "Successful"}}
    variables = {"SERVICE_NAME": "orders", "LOG_LEVEL": "info", "TABLE": "orders-dev"}
    with Stubber(lam) as s:  # no update_function_configuration: a new version would follow it
        s.add_response("get_function", done, {"FunctionName": fn})
        s.add_response(
            "get_function_configuration",
            {"FunctionName": fn, "RevisionId": "r1", "Environment": {"Variables": variables}},
            {"FunctionName": fn},
        )
        res = update_lambda_env(lam, fn, {}, plain=SPEC.environment, only=SPEC.managed_names)
        s.assert_no_pending_responses()
    assert not res.changed and res.removed == ()


def test_wanted_all_merges_each_functions_values_over_the_environments():
    from pathlib import Path

    from stageflow.function_config import wanted_all

    cfg = load(Path(__file__).resolve().parents[2] / "tests/fixtures/services/orders/stageflow.toml")
    specs = wanted_all(cfg, "dev")
    assert list(specs) == ["api", "worker"]
    api, worker = specs["api"], specs["worker"]
    assert (api.handler, api.runtime, api.memory_mb, api.timeout_s) == (
        "orders.api.handler",
        "python3.12",
        256,
        10,
    )
    assert api.environment == {"GREETING": "hello from orders", "LOG_LEVEL": "DEBUG", "STAGE": "dev"}
    assert (worker.handler, worker.memory_mb, worker.timeout_s) == ("orders.worker.handler", 512, 30)
    assert worker.environment == {"BATCH_SIZE": "10", "LOG_LEVEL": "DEBUG", "STAGE": "dev"}
    assert wanted(cfg, "dev") == api  # the first function's, for one-function callers


def test_wanted_all_falls_back_to_the_environments_memory_and_timeout(tmp_path):
    from stageflow.function_config import wanted_all

    (tmp_path / "stageflow.toml").write_text(
        '[service]\nname = "svc"\ntimeout_s = 12\n[functions.a]\nhandler = "a.h"\n'
        '[functions.a.environment]\nXX = "fn"\n[environments.staging]\nmemory_mb = 1024\n'
        '[environments.staging.environment]\nXX = "env"\nYY = "env"\n'
    )
    (spec,) = wanted_all(load(tmp_path / "stageflow.toml"), "staging").values()
    assert (spec.memory_mb, spec.timeout_s, spec.environment) == (1024, 12, {"XX": "fn", "YY": "env"})


REF = "ssm:/orders/token:3"


class MultiStore(Store):
    def __init__(self, live_by_name):
        super().__init__(None)
        self.by_name = live_by_name

    def function_configuration(self, fn):
        return self.by_name[fn]


def test_stage_secrets_writes_every_function_and_names_it_in_each_difference():
    from stageflow.outputs import FunctionTarget

    worker = FunctionSpec("orders.worker.handler", "python3.12", "x86_64", 512, 30, {"LOG_LEVEL": "info"})
    live_worker = {**LIVE, "Handler": "orders.worker.handler", "MemorySize": 256, "Timeout": 30}
    live_worker["Environment"] = {"Variables": {"LOG_LEVEL": "info"}}
    store = MultiStore({"orders-api-dev": LIVE, "orders-worker-dev": live_worker})
    targets = (
        FunctionTarget("api", "orders-api-dev", "live"),
        FunctionTarget("worker", "orders-worker-dev", "live"),
    )
    infra = SimpleNamespace(outputs=SimpleNamespace(functions=targets), secrets={"API_TOKEN": REF})
    said = []
    res = stage_secrets(store, infra, {"api": SPEC, "worker": worker}, say=said.append)
    assert [c[0] for c in store.calls] == ["orders-api-dev", "orders-worker-dev"]
    ref = {"STAGEFLOW_SECRET_API_TOKEN": REF}
    assert [c[2] for c in store.calls] == [{**SPEC.environment, **ref}, {**worker.environment, **ref}]
    assert said == ["orders-worker-dev: memory_mb: 256 on the function, 512 in stageflow.toml"]
    assert res.differs == tuple(said) and res.function == "orders-api-dev, orders-worker-dev"
    assert res.variables == ("LOG_LEVEL", "TABLE")


def test_outputs_naming_a_function_the_config_lacks_is_a_config_error():
    import pytest

    from stageflow.errors import ConfigError
    from stageflow.outputs import FunctionTarget

    targets = (FunctionTarget("api", "o-api-dev", "live"), FunctionTarget("old", "o-old-dev", "live"))
    infra = SimpleNamespace(outputs=SimpleNamespace(functions=targets), secrets={})
    with pytest.raises(ConfigError, match="does not have: old"):
        stage_secrets(Store(LIVE), infra, {"api": SPEC, "worker": SPEC})


def test_the_roots_function_environment_is_written_kept_and_not_a_difference():
    """The staging root's function_environment output (the FIS extension's variables) joins every
    function's plain variables: written, in ``only`` (never removed as left over), compared."""
    fis = {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/aws-fis/bootstrap",
        "AWS_FIS_CONFIGURATION_LOCATION": "arn:aws:s3:::orders-staging-fis-config-1/FisConfigs/",
    }
    live = {**LIVE, "Environment": {"Variables": {**LIVE["Environment"]["Variables"], **fis}}}
    store = Store(live)
    outputs = DeployOutputs("orders-dev", "live", (), "t", "h", function_environment=fis)
    infra = SimpleNamespace(outputs=outputs, secrets={"API_TOKEN": "ssm:/orders/token:3"})
    res = stage_secrets(store, infra, SPEC)
    ((_fn, _secrets, plain, only),) = store.calls
    assert {k: plain[k] for k in fis} == fis and set(fis) <= set(only)
    assert res.differs == ()
    # without the output (dev, prod) the same live variables are left over: removed and named
    res = stage_secrets(
        Store(live),
        SimpleNamespace(
            outputs=DeployOutputs("orders-dev", "live", (), "t", "h"),
            secrets={"API_TOKEN": "ssm:/orders/token:3"},
        ),
        SPEC,
    )
    assert "environment AWS_LAMBDA_EXEC_WRAPPER: set on the function, not in stageflow.toml" in res.differs
